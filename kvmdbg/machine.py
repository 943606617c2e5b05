"""``Machine``: one PE, a booted Linux host, KVM at a variant, and a VM.

This is the public face of the model (see shared/API.md). It validates every
argument before it changes anything, drives the kernel's operations one
function at a time, and records each as an :class:`~kvmdbg.trace.Event`.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from kvmdbg.arch.esr import EC, esr, esr_cp14, esr_sysreg
from kvmdbg.arch.registers import (
    CP14_REGISTERS,
    KVM_REG_ARM64_SYSREG_BASE,
    REGISTERS,
    Access,
    SysReg,
    check_value,
    lookup,
)
from kvmdbg.cpu.pe import PhysicalCPU, trap_control
from kvmdbg.cpu.profiles import get_profile
from kvmdbg.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    GuestFault,
    RegisterNotModelledError,
    RegisterValueError,
    UnknownRegisterError,
    VcpuIndexError,
    VcpuTypeError,
    check_count,
    check_flag,
)
from kvmdbg.kvm.definition import FUNCTION_FILES, VHE_FUNCTION_FILES, KvmDefinition
from kvmdbg.kvm.runtime import HCR_GUEST, Kvm, Step, TrapOutcome
from kvmdbg.kvm.sys_regs import CORE_REG_IDS, KVM_REG_ARM_CORE_BASE, SysRegDesc
from kvmdbg.patches import resolve, variant_name
from kvmdbg.recorder import WATCHED, Recorder
from kvmdbg.trace import Event, Snapshot, Trace, WatchKey

if TYPE_CHECKING:
    from kvmdbg.arch.a64 import Program
    from kvmdbg.run import RunResult

__all__ = ["Machine", "WATCHED", "VMM_DBGBCR", "VMM_DBGWCR"]

_SITE_RT = 0  # the general register guest_write/guest_read use (x0 / r0)


# What a VMM writes into struct kvm_guest_debug_arch (arch/arm64/include/uapi/asm/kvm.h: dbg_bcr[],
# dbg_wcr[], passed with KVM_SET_GUEST_DEBUG) for one hardware breakpoint / watchpoint on a guest
# address, built from the register table's fields (Arm ARM DBGBCR<n>_EL1, DBGWCR<n>_EL1):
# enabled, matching at EL1 and EL0 (PMC/PAC = 0b11), for a whole A64 instruction (BAS = 0b1111)
# and for loads and stores of any byte of the doubleword (LSC = 0b11, BAS = 0xff). The kernel's
# selftest aarch64/debug-exceptions.c composes its values the same way (DBGBCR_E, DBGWCR_LEN8 ...).
VMM_DBGBCR = REGISTERS["DBGBCR0_EL1"].encode(E=1, PMC=0b11, BAS=0b1111)  # 0x1e7
VMM_DBGWCR = REGISTERS["DBGWCR0_EL1"].encode(E=1, PAC=0b11, LSC=0b11, BAS=0xFF)  # 0x1fff
WATCHPOINT_ALIGN = 8  # DBGWVR<n>_EL1 holds a doubleword-aligned address; BAS picks bytes within it
# The low 16 bits of a KVM_GET/SET_ONE_REG id name the register within its group: for a system
# register Op0, Op1, CRn, CRm, Op2 (KVM_REG_ARM64_SYSREG_*_MASK in arch/arm64/include/uapi/asm/kvm.h),
# for a core register its offset in struct kvm_regs; the bits above say which group and size.
_ID_INDEX_BITS = 0xFFFF

# Instruction-word tuples Machine.run has already checked, by id (see Machine.run).
_CHECKED_WORDS: dict[int, tuple[int, ...]] = {}


def _addresses(value: object, name: str) -> list[object]:
    """An iterable of addresses as a list, or an ArgumentTypeError naming the argument."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(f"{name} must be a list of addresses such as [0x80010], not "
                                f"{type(value).__name__} ({value!r:.60})")
    return list(value)


class Machine:
    """A physical PE running Linux with KVM at ``variant`` and one VM of ``vcpus`` vCPUs.

    ``variant`` is a name from ``VARIANTS``, a set of patch names, or a
    :class:`~kvmdbg.kvm.definition.KvmDefinition` built by hand (``BASELINE.apply(patch)``),
    for a patch that is not in the registry.
    """

    def __init__(
        self,
        variant: str | Iterable[str] | KvmDefinition = "baseline",
        *,
        vhe: bool = False,
        vcpus: int = 1,
        cpu: str | None = None,
        trace: bool | int = True,
        pmu: bool = True,
        aarch32: Iterable[int] = (),
    ) -> None:
        if isinstance(variant, KvmDefinition):
            # A definition built by hand (``BASELINE.apply(Patch(...))``): for experiments and
            # tests with a patch that is not in the registry. Its name is the variant's name.
            defn, self.variant = variant, variant.name
        else:
            defn = resolve(variant)  # PatchError before anything is built
            self.variant = variant_name(variant)
        vhe = check_flag(vhe, "vhe")
        pmu = check_flag(pmu, "pmu")
        if isinstance(vcpus, bool) or not isinstance(vcpus, int) and not hasattr(vcpus, "__index__"):
            raise VcpuTypeError(f"vcpus must be a whole number from 1 to 8, not {type(vcpus).__name__} "
                                f"({vcpus!r})")
        nr = operator.index(vcpus)
        if not 1 <= nr <= 8:
            raise VcpuIndexError(f"vcpus={nr}: the model supports 1 to 8 vCPUs on its one PE")
        if isinstance(trace, bool):
            maxlen, enabled = None, trace
        else:
            maxlen, enabled = check_count(trace, "trace (True, False or a number of events to keep)", 1), True
        if isinstance(aarch32, (str, bytes)) or not isinstance(aarch32, Iterable):
            raise ArgumentTypeError(f"aarch32 must be a collection of vCPU indices such as {{0}}, not "
                                    f"{type(aarch32).__name__} ({aarch32!r})")
        a32 = frozenset(aarch32)
        bad = [i for i in a32 if isinstance(i, bool) or not (isinstance(i, int) and 0 <= i < nr)]
        if bad:
            raise VcpuIndexError(f"aarch32={sorted(a32, key=repr)!r} names vCPUs this VM does not have "
                                 f"(give indices 0..{nr - 1})")
        get_profile(cpu)  # ArgumentTypeError / ArgumentValueError before anything is built
        self.vhe = bool(vhe)
        self.defn = defn
        self.pe = PhysicalCPU(cpu)
        self.kvm = Kvm(defn, self.pe, vhe=self.vhe, nr_vcpus=nr, pmu=pmu, aarch32=a32)
        self.trace = Trace(maxlen=maxlen, enabled=enabled)
        self._descs: dict[str, SysRegDesc | None] = {}  # register name -> this variant's descriptor
        self._handler_names = frozenset(
            [d.handler_name for d in defn.sys_regs.values()] + [c.access.__name__ for c in defn.cp14.values()])
        self._files: dict[str, str] = {}  # function -> kernel file, as _file_of() found it
        self._syndromes: dict[tuple[str, bool, bool], int] = {}  # (register, read?, cp14?) -> ESR_EL2 of its trap
        self._notes = dict(defn.notes)  # the patch notes, as a plain dict (faster to read than a mapping proxy)
        # Traced machines attach their state to the recorder's watch set (each write then names
        # its owner); untraced ones do not, so their writes cost only a version bump.
        self._rec = Recorder(self.pe, self.kvm.host_ctxt, self.kvm.host_debug, self.kvm.vcpus, self._guest_view,
                             frozenset(self._host_keeps()), incremental=enabled)
        self._step = 0
        self._pending: Iterator[Step] | None = None
        self._pending_name = ""
        self._pending_vcpu = 0
        self._pending_left = 0  # functions of the pending switch not yet run (see begin())
        self.drive(self.kvm.boot())

    def __repr__(self) -> str:
        mode = "VHE" if self.vhe else "nVHE"
        return (f"<Machine {self.variant} {mode} cpu={self.pe.profile.name} vcpus={len(self.kvm.vcpus)} "
                f"OSLK(PE)={int(self.pe.os_lock)} steps={self._step}>")

    # -- recording ----------------------------------------------------------------

    def _watch(self) -> dict[WatchKey, int | None]:
        """Every watched value now, by (location, register, vCPU or -1)."""
        return dict(zip(self._rec.keys, self._rec.current(), strict=True))

    def _host_keeps(self) -> set[str]:
        """Registers KVM keeps a saved host copy of: common state always, EL1 state on nVHE only."""
        keep = set(self.defn.common_state)
        if not self.vhe:
            keep |= set(self.defn.el1_state)
            keep |= {h.register for h in self.defn.el1_hooks}
        return keep

    def record(self, s: Step) -> Event:
        """Record one step as an Event (for extensions such as the guest executor)."""
        self._step += 1
        trace = self.trace
        function = s.function
        file = self._files.get(function)
        if file is None:
            file = self._files[function] = self._file_of(function)
        ev = Event(self._step, s.phase, function, file, s.detail, s.vcpu,
                   self._rec.changes() if trace.enabled else (), self._notes.get(function, ""))
        trace.append(ev)
        return ev

    def _record_or_count(self, s: Step | bool) -> None:
        """Record ``s``; untraced (``s`` is False: the caller built no Step) only count the step."""
        if isinstance(s, Step):
            self.record(s)
        else:
            self._step += 1

    def _file_of(self, function: str) -> str:
        """The kernel file of a traced function: the table above, or sys_regs.c for a table handler."""
        if self.vhe and function in VHE_FUNCTION_FILES:
            return VHE_FUNCTION_FILES[function]
        if function in FUNCTION_FILES:
            return FUNCTION_FILES[function]
        if function in self._handler_names:
            return "arch/arm64/kvm/sys_regs.c"
        return "(unknown)"

    def drive(self, ops: Iterable[Step]) -> list[Event]:
        """Run a kernel operation (a generator of Steps from ``self.kvm``) to the end, recording each.

        Returns the events recorded; with ``trace=False`` nothing is recorded and the list is
        empty, which keeps untraced runs free of per-step Event objects.
        """
        self._finish_pending()
        if not self.trace.enabled:
            n = 0
            for _ in ops:
                n += 1
            self._step += n
            return []
        return [self.record(s) for s in ops]

    def _finish_pending(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            for s in pending:
                self.record(s)

    # -- validation -------------------------------------------------------------------

    def vcpu_index(self, vcpu: int) -> int:
        """``vcpu`` checked against this VM: the index, or a VcpuIndexError naming the valid range."""
        if isinstance(vcpu, bool):
            raise VcpuTypeError(f"vcpu must be an integer index, not a bool ({vcpu!r})")
        try:
            i = operator.index(vcpu)
        except TypeError:
            raise VcpuTypeError(f"vcpu must be an integer index, not {type(vcpu).__name__} ({vcpu!r})") from None
        n = len(self.kvm.vcpus)
        if not 0 <= i < n:
            raise VcpuIndexError(f"vcpu={i}: this VM has {n} vCPU{'s' if n > 1 else ''} "
                                 f"(indices 0..{n - 1}); create Machine(vcpus=...) with more")
        return i

    # -- inspection --------------------------------------------------------------------

    def physical(self, reg: str | int) -> int:
        r = lookup(reg)
        if not self.pe.has(r.name) or r.access is Access.WO:
            raise ArgumentValueError(f"reg={r.name} is not a readable register of this PE "
                              + ("(write-only: read OSLSR_EL1 for the lock state)" if r.access is Access.WO
                                 else f"({self.pe.profile.name})"))
        return self.pe.regs[r.name]

    def vcpu_reg(self, reg: str | int, vcpu: int = 0) -> int | None:
        r = lookup(reg)
        v = self.kvm.vcpus[self.vcpu_index(vcpu)]
        for kind in ("BVR", "BCR", "WVR", "WCR"):
            if r.name.startswith(f"DBG{kind}"):
                return v.debug.array(kind)[int(r.name[6:].split("_")[0])]
        if r.name in self.defn.vcpu_sysreg:
            return v.ctxt.sys_regs.get(r.name)
        return None

    def host_reg(self, reg: str | int) -> int | None:
        r = lookup(reg)
        if r.name not in self._host_keeps():
            return None
        return self.kvm.host_ctxt.sys_regs.get(r.name)

    def where(self, vcpu: int = 0) -> str:
        return "guest" if self.kvm.vcpus[self.vcpu_index(vcpu)].running else "host"

    def loaded(self, vcpu: int = 0) -> bool:
        return self.kvm.vcpus[self.vcpu_index(vcpu)].loaded

    def snapshot(self) -> Snapshot:
        return Snapshot(
            values=MappingProxyType(self._watch()),
            where=tuple("guest" if v.running else "host" for v in self.kvm.vcpus),
            loaded=tuple(v.loaded for v in self.kvm.vcpus),
            step=self._step,
        )

    def guest_view(self, reg: str | int, vcpu: int = 0) -> int | None:
        """What the guest would read from ``reg`` now, or None if the read would UNDEF. No side effects."""
        return self._guest_view(self.vcpu_index(vcpu), lookup(reg))

    def _guest_view(self, index: int, r: SysReg) -> int | None:
        kvm = self.kvm
        v = kvm.vcpus[index]
        if r.access is Access.WO or r.el == 2 or not self.pe.has(r.name):
            return None
        # Would the read trap? With the vCPU running, the PE's MDCR_EL2 says; otherwise the
        # value KVM will program at the next entry (vcpu->arch.mdcr_el2).
        trapped = (self.pe.traps_to_el2(r.name) if v.running
                   else trap_control(r.name, v.mdcr_el2, HCR_GUEST))
        if trapped:
            if r.name not in self._descs:
                self._descs[r.name] = self.defn.desc(r)
            desc = self._descs[r.name]
            if desc is None:
                return None
            if r.name == "MDSCR_EL1" and v.preserved_mdscr is not None:
                return v.preserved_mdscr  # the exit restores the guest's own value before the handler runs
            return kvm.peek_guest_read(index, desc)
        if v.running:
            return self.pe.regs[r.name]
        if r.name in v.ctxt.sys_regs:
            return v.ctxt.sys_regs[r.name]
        return self.pe.regs[r.name] if v.loaded and self.vhe else None  # v.loaded: kvm.loaded == index

    # -- world switch -----------------------------------------------------------------

    def vcpu_load(self, vcpu: int = 0) -> list[Event]:
        return self.drive(self.kvm.vcpu_load(self.vcpu_index(vcpu)))

    def vcpu_put(self, vcpu: int = 0) -> list[Event]:
        return self.drive(self.kvm.vcpu_put(self.vcpu_index(vcpu)))

    def enter_guest(self, vcpu: int = 0) -> list[Event]:
        return self.drive(self.kvm.enter(self.vcpu_index(vcpu)))

    def exit_guest(self, vcpu: int = 0) -> list[Event]:
        """The guest is interrupted: KVM exits to the host and stays in its run loop (still loaded)."""
        i = self.vcpu_index(vcpu)
        return self.drive(self.kvm.exit(i, esr(EC.UNKNOWN, 0, il=False),
                                         "host interrupt: the guest exits to the host"))

    def next_switch(self, vcpu: int = 0) -> str:
        """The world switch ``step()`` would start next: vcpu_load, enter_guest or exit_guest."""
        if self._pending is not None:
            return self._pending_name
        v = self.kvm.vcpus[self.vcpu_index(vcpu)]
        return "exit_guest" if v.running else ("enter_guest" if v.loaded else "vcpu_load")

    def begin(self, switch: str, vcpu: int = 0) -> None:
        """Start a world switch to be advanced with ``step()``."""
        i = self.vcpu_index(vcpu)
        ops: dict[str, Callable[[Kvm], Iterator[Step]]] = {
            "vcpu_load": lambda kvm: kvm.vcpu_load(i),
            "vcpu_put": lambda kvm: kvm.vcpu_put(i),
            "enter_guest": lambda kvm: kvm.enter(i),
            "exit_guest": lambda kvm: kvm.exit(i, esr(EC.UNKNOWN, 0, il=False),
                                               "host interrupt: the guest exits to the host"),
        }
        if not isinstance(switch, str):
            raise ArgumentTypeError(f"switch must be a str, one of {', '.join(ops)}; not "
                                    f"{type(switch).__name__} ({switch!r})")
        if switch not in ops:
            raise ArgumentValueError(f"unknown world switch switch={switch!r}; choose one of {', '.join(ops)}")
        self._finish_pending()
        # How many functions this switch runs from this state: found by running it on a copy of
        # KVM and the PE (the definition is shared: it is immutable), so step() knows which
        # function is the last without a table of last functions to keep in step with runtime.py.
        scratch = copy.deepcopy(self.kvm, {id(self.defn): self.defn})
        self._pending_left = sum(1 for _ in ops[switch](scratch))
        self._pending = iter(ops[switch](self.kvm))
        self._pending_name = switch
        self._pending_vcpu = i

    def step(self, vcpu: int = 0) -> Event | None:
        """Advance one phase of the switch in progress, or start the next natural one."""
        self.vcpu_index(vcpu)  # a bad index is refused even while a switch is pending
        if self._pending is None:
            self.begin(self.next_switch(vcpu), vcpu)
        assert self._pending is not None
        s = next(self._pending, None)
        if s is None:
            self._pending = None
            return self.step(vcpu)
        self._pending_left -= 1
        if self._pending_left <= 0:
            self._pending = None  # the switch is complete (nothing runs after its last function)
        return self.record(s)

    def run_to(self, where: str, vcpu: int = 0) -> list[Event]:
        """Step until the vCPU is in the guest (``where="guest"``) or back in the host (``"host"``)."""
        if not isinstance(where, str):
            raise ArgumentTypeError(f"where must be 'guest' or 'host', not {type(where).__name__} ({where!r})")
        if where not in ("guest", "host"):
            raise ArgumentValueError(f"run_to() takes where='guest' or where='host', not {where!r}")
        i = self.vcpu_index(vcpu)
        events: list[Event] = []
        while True:
            ev = self.step(i)
            if ev is not None:
                events.append(ev)
            if self._pending is None and self.where(i) == where:
                return events
            if len(events) > 500:  # pragma: no cover - a model bug, not a user error
                raise RuntimeError("run_to() did not converge")

    @property
    def in_progress(self) -> bool:
        return self._pending is not None

    # -- guest actions --------------------------------------------------------------------

    def guest_write(self, reg: str | int, value: int, vcpu: int = 0) -> None:
        """The guest executes ``MSR reg, X0`` (``MCR p14`` on an AArch32 vCPU)."""
        self._guest_access(reg, value, is_read=False, vcpu=vcpu)

    def guest_read(self, reg: str | int, vcpu: int = 0) -> int:
        """The guest executes ``MRS X0, reg``; returns what it reads."""
        value = self._guest_access(reg, 0, is_read=True, vcpu=vcpu)
        assert value is not None
        return value

    def _guest_access(self, reg: str | int, value: int, *, is_read: bool, vcpu: int) -> int | None:
        i = self.vcpu_index(vcpu)
        r = lookup(reg)
        if not is_read:
            value = check_value(value, f"value for {r.name}")
        v = self.kvm.vcpus[i]
        cp14 = None
        if v.aarch32:
            cp14 = next((c for c in CP14_REGISTERS.values() if c.aarch64 == r.name), None)
            if cp14 is None:
                raise ArgumentValueError(f"vCPU {i} is an AArch32 guest: the model reaches only the cp14 views "
                                  f"{', '.join(CP14_REGISTERS)} from it, not {r.name}")
            if value > 0xFFFFFFFF:
                raise RegisterValueError(f"{value:#x} does not fit the 32-bit register of an AArch32 guest")
        if not v.running:
            self.drive(self.kvm.enter(i))

        def insn() -> str:  # the instruction as the trace names it (built only for a trace or an error)
            return ((f"MRC p14, {cp14.name}" if cp14 else f"MRS X0, {r.name}") if is_read else
                    (f"MCR p14, {cp14.name} <- {value:#x}" if cp14 else f"MSR {r.name}, X0 ({value:#x})"))

        traced = self.trace.enabled
        # The architecture first: an encoding with no such accessor is UNDEFINED at EL1
        # and never reaches KVM (Arm ARM; KVM's v5 1/6 message says the same of OSLSR writes).
        if (is_read and r.access is Access.WO) or (not is_read and r.access is Access.RO) or r.el == 2 \
                or not self.pe.has(r.name):
            why = (f"{insn()}: {r.name} is {r.access.value}, so this access is UNDEFINED in the "
                   "architecture; the PE takes the UNDEF at the guest's EL1 without trapping to KVM"
                   if r.el != 2 and self.pe.has(r.name) else f"{insn()}: not accessible at EL1 on this PE")
            self.kvm.take_guest_exception(v, esr(EC.UNKNOWN), why)
            self.record(Step("guest exception", "guest", why, i))
            raise GuestFault(esr(EC.UNKNOWN), why, pc=v.pc)
        trap = self.pe.traps_to_el2(r.name)
        if not trap:
            if is_read:
                got = self.pe.regs[r.name]
                self._record_or_count(traced and Step("guest access", "guest",
                                                      f"{insn()}: not trapped; the PE returns {got:#x}", i))
                return got
            self.pe.write(r.name, value)
            self._record_or_count(traced and Step("guest access", "guest",
                                                  f"{insn()}: not trapped; written to the PE", i))
            return None
        key = (r.name, is_read, cp14 is not None)
        syndrome = self._syndromes.get(key)
        if syndrome is None:
            if cp14 is not None:
                syndrome = esr_cp14(cp14.opc1, cp14.crn, cp14.crm, cp14.opc2, _SITE_RT, is_read)
            else:
                assert r.encoding is not None
                syndrome = esr_sysreg(r.encoding, _SITE_RT, is_read)
            self._syndromes[key] = syndrome
        self._record_or_count(traced and Step("guest access", "guest", f"{insn()}: trapped to EL2 by {trap}", i))
        out = TrapOutcome()
        self.drive(self.kvm.exit(i, syndrome, f"trapped {'MRC/MCR p14' if cp14 else 'MSR/MRS'}"))
        self.drive(self.kvm.handle_trap(i, syndrome, value, out))
        self.drive(self.kvm.enter(i))
        if out.undef:
            self.record(Step("guest exception", "guest", f"{insn()}: the guest takes the injected UNDEF", i))
            raise GuestFault(esr(EC.UNKNOWN), f"{insn()}: {out.explanation}", pc=v.pc)
        return out.value

    # -- userspace -------------------------------------------------------------------------

    def _to_userspace(self, i: int) -> None:
        """A userspace ioctl needs KVM_RUN to have returned: exit and put the vCPU first."""
        v = self.kvm.vcpus[i]
        if v.running:
            self.drive(self.kvm.exit_to_userspace(i))
        if v.loaded:
            self.drive(self.kvm.vcpu_put(i))

    def get_reg_list(self, vcpu: int = 0) -> list[int]:
        """KVM_GET_REG_LIST (the system registers the model knows; core/FP registers left out)."""
        self.vcpu_index(vcpu)
        return self.kvm.reg_list()

    def _userspace_reg(self, reg: str | int) -> tuple[SysReg | None, str | None]:
        """What a KVM_GET/SET_ONE_REG ``reg`` names: (system register, None) or (None, core register).

        ELR_EL1 and SPSR_EL1 are core registers for userspace (see CORE_REG_IDS); by name they
        take that path, by their system-register encoding they do not exist (ENOENT, as in
        5.15). A well-formed id of a register the model does not have is NotModelledError.
        """
        if isinstance(reg, str):
            r = lookup(reg)
            return (None, r.name) if r.name in CORE_REG_IDS else (r, None)
        if isinstance(reg, int) and not isinstance(reg, bool):
            for name, rid in CORE_REG_IDS.items():
                if reg == rid:
                    return None, name
            try:
                return lookup(reg), None
            except UnknownRegisterError:
                if reg & ~_ID_INDEX_BITS in (KVM_REG_ARM64_SYSREG_BASE, KVM_REG_ARM_CORE_BASE):
                    raise RegisterNotModelledError(hex(reg), (
                        f"reg={reg:#x} is a well-formed KVM register id, but not one the model has: the "
                        "real kernel may well serve it; kvmdbg models only the registers in "
                        "kvmdbg.arch.registers.REGISTERS (and ELR_EL1/SPSR_EL1 as core registers)")) from None
                raise
        return lookup(reg), None  # raises UnknownRegisterError naming what was given

    def get_one_reg(self, reg: str | int, vcpu: int = 0) -> int:
        """KVM_GET_ONE_REG; an OSError with the kernel's errno when the kernel would refuse."""
        i = self.vcpu_index(vcpu)
        r, core = self._userspace_reg(reg)
        if core is not None:
            self._to_userspace(i)
            return self.kvm.get_core_reg(i, core)
        assert r is not None
        desc = self.defn.desc(r)
        refused = self.kvm.refuse_one_reg(i, desc)
        if refused is not None:
            raise refused  # decided before the vCPU is exited or put: nothing changes
        self._to_userspace(i)
        return self.kvm.get_one_reg(i, desc)

    def set_one_reg(self, reg: str | int, value: int, vcpu: int = 0) -> None:
        """KVM_SET_ONE_REG; an OSError with the kernel's errno when the kernel would refuse."""
        i = self.vcpu_index(vcpu)
        r, core = self._userspace_reg(reg)
        name = core or (r.name if r is not None else "?")
        value = check_value(value, f"value for {name}")
        if core is not None:
            self._to_userspace(i)
            self.kvm.set_core_reg(i, core, value)
            self.record(Step("set_core_reg", "userspace", f"KVM_SET_ONE_REG {core}={value:#x} "
                             "(a core register: struct kvm_regs)", i))
            return
        assert r is not None
        desc = self.defn.desc(r)
        refused = self.kvm.refuse_one_reg(i, desc, value)
        if refused is not None:
            raise refused  # decided before the vCPU is exited or put: nothing changes
        self._to_userspace(i)
        self.kvm.set_one_reg(i, desc, value)
        self.record(Step("kvm_arm_sys_reg_set_reg", "userspace", f"KVM_SET_ONE_REG {r.name}={value:#x}", i))

    def reset_vcpu(self, vcpu: int = 0) -> None:
        """KVM_ARM_VCPU_INIT again: every register back to its reset value."""
        i = self.vcpu_index(vcpu)
        self._to_userspace(i)
        self.drive(self.kvm.reset_vcpu(i))

    def set_guest_debug(self, hw_breakpoints: Iterable[int] = (), single_step: bool = False,
                        vcpu: int = 0, hw_watchpoints: Iterable[int] = ()) -> None:
        """KVM_SET_GUEST_DEBUG: the VMM debugs the guest with hardware breakpoints / single step."""
        i = self.vcpu_index(vcpu)
        bps = [check_value(a, "breakpoint address") for a in _addresses(hw_breakpoints, "hw_breakpoints")]
        wps = [check_value(a, "watchpoint address") for a in _addresses(hw_watchpoints, "hw_watchpoints")]
        single_step = check_flag(single_step, "single_step")
        if len(bps) > self.pe.profile.breakpoints or len(wps) > self.pe.profile.watchpoints:
            raise ArgumentValueError(
                f"hw_breakpoints has {len(bps)} and hw_watchpoints {len(wps)} addresses, but "
                f"{self.pe.profile.name} has {self.pe.profile.breakpoints} breakpoints and "
                f"{self.pe.profile.watchpoints} watchpoints: give at most that many")
        for a in bps + wps:
            if a & 3:
                raise RegisterValueError(f"address {a:#x} is not 4-byte aligned; breakpoints match A64 "
                                         "instructions, which are word aligned")
        self._to_userspace(i)
        v = self.kvm.vcpus[i]
        flags = set()
        ext = v.external_debug
        for n in range(16):
            ext.bvr[n] = ext.bcr[n] = ext.wvr[n] = ext.wcr[n] = 0
        if bps or wps:
            flags.add("USE_HW")
        for n, a in enumerate(bps):
            ext.bvr[n] = a
            ext.bcr[n] = VMM_DBGBCR
        for n, a in enumerate(wps):
            ext.wvr[n] = a & ~(WATCHPOINT_ALIGN - 1)
            ext.wcr[n] = VMM_DBGWCR
        if single_step:
            flags.add("SINGLESTEP")
        if flags:
            flags.add("ENABLE")
        v.guest_debug = frozenset(flags)
        self.record(Step("kvm_arch_vcpu_ioctl_set_guest_debug", "userspace",
                          f"guest_debug={'|'.join(sorted(flags)) or '0'}; "
                          f"{len(bps)} hardware breakpoint(s), {len(wps)} watchpoint(s)", i))

    def save_vcpu(self, vcpu: int = 0) -> dict[int, int]:
        """Save a vCPU as a VMM does before migration: every listed register, by userspace id."""
        i = self.vcpu_index(vcpu)
        return {rid: self.get_one_reg(rid, i) for rid in self.get_reg_list(i)}

    def restore_vcpu(self, state: dict[int, int], vcpu: int = 0) -> list[tuple[str, int, int, str]]:
        """Restore a saved vCPU with KVM_SET_ONE_REG; returns (register, value, errno, message) per refusal."""
        i = self.vcpu_index(vcpu)
        if not isinstance(state, Mapping):
            raise ArgumentTypeError(f"state must be a mapping of register id to value (what save_vcpu() "
                                    f"returns), not {type(state).__name__}")
        refused = []
        for rid, value in state.items():
            name = lookup(rid).name
            try:
                self.set_one_reg(rid, value, i)
            except OSError as e:
                refused.append((name, value, e.errno or 0, str(e.strerror)))
        return refused

    # -- guest programs ------------------------------------------------------------------

    def run(self, program: Program, vcpu: int = 0, max_steps: int = 100000) -> RunResult:
        from kvmdbg.arch.a64 import Program
        from kvmdbg.run import run_program

        i = self.vcpu_index(vcpu)
        if not isinstance(program, Program):
            raise ArgumentTypeError(f"program must be a Program from kvmdbg.assemble(), not "
                                    f"{type(program).__name__} ({program!r:.60})")
        if isinstance(program.base, bool) or not isinstance(program.base, int) or program.base < 0 \
                or program.base % 4:
            raise ArgumentValueError(f"program.base={program.base!r} must be a non-negative multiple of 4; "
                                     "build programs with kvmdbg.assemble()")
        words = program.words
        if _CHECKED_WORDS.get(id(words)) is not words:
            if not isinstance(words, tuple) or any(
                    isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 0xFFFFFFFF for w in words):
                raise ArgumentValueError("program.words must be a tuple of 32-bit instruction words (ints from "
                                         "0 to 0xffffffff); build programs with kvmdbg.assemble()")
            # A tuple cannot change, so a checked one need not be checked again; holding it keeps its id unique.
            _CHECKED_WORDS[id(words)] = words
            while len(_CHECKED_WORDS) > 16:
                del _CHECKED_WORDS[next(iter(_CHECKED_WORDS))]
        steps = check_count(max_steps, "max_steps", 1)
        return run_program(self, program, i, steps)

