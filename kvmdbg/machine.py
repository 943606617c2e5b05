"""``Machine``: one PE, a booted Linux host, KVM at a variant, and a VM.

This is the public face of the model (see shared/API.md). It validates every
argument before it changes anything, drives the kernel's operations one
function at a time, and records each as an :class:`~kvmdbg.trace.Event`.

It is a thin facade: what it records is decided by :mod:`kvmdbg.recorder`, stepping by
:mod:`kvmdbg.stepper`, the guest's accesses by :mod:`kvmdbg.guest` and the ioctls by
:mod:`kvmdbg.userspace` (:mod:`kvmdbg.core` says what those parts may ask of it).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING

from kvmdbg.arch.esr import EC, esr
from kvmdbg.arch.registers import Access, lookup
from kvmdbg.cpu.pe import PhysicalCPU
from kvmdbg.cpu.profiles import get_profile
from kvmdbg.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    VcpuIndexError,
    VcpuTypeError,
    check_count,
    check_flag,
)
from kvmdbg.guest import GuestAccess
from kvmdbg.kvm.definition import VHE_FUNCTION_FILES, KvmDefinition
from kvmdbg.kvm.runtime import Kvm, Step
from kvmdbg.patches import resolve, variant_name
from kvmdbg.recorder import WATCHED, Recorder
from kvmdbg.stepper import Stepper
from kvmdbg.trace import Event, Snapshot, Trace, WatchKey
from kvmdbg.userspace import VMM_DBGBCR, VMM_DBGWCR, Userspace

if TYPE_CHECKING:
    from kvmdbg.arch.a64 import Program
    from kvmdbg.run import RunResult

__all__ = ["Machine", "WATCHED", "VMM_DBGBCR", "VMM_DBGWCR"]  # the VMM_* constants live in kvmdbg.userspace

# Instruction-word tuples Machine.run has already checked, by id (see Machine.run).
_CHECKED_WORDS: dict[int, tuple[int, ...]] = {}


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
        self.kvm.describe = enabled  # untraced: the world switch formats no detail text
        self.trace = Trace(maxlen=maxlen, enabled=enabled)
        self._handler_names = frozenset(
            [d.handler_name for d in defn.sys_regs.values()] + [c.handler_name for c in defn.cp14.values()])
        self._files: dict[str, str] = {}  # function -> kernel file, as _file_of() found it
        self._notes = dict(defn.notes)  # the patch notes, as a plain dict (faster to read than a mapping proxy)
        self._step = 0
        # The parts this facade hands requests to (kvmdbg/core.py lists what they may ask of it).
        self._guest = GuestAccess(self)
        self._user = Userspace(self)
        self._stepper = Stepper(self)
        # Traced machines attach their state to the recorder's watch set (each write then names
        # its owner); untraced ones keep plain containers and no cache.
        self._rec = Recorder(self.pe, self.kvm.host_ctxt, self.kvm.host_debug, self.kvm.vcpus, self._guest.view,
                             frozenset(self._host_keeps()), incremental=enabled)
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

    def record_or_count(self, s: Step | bool) -> None:
        """Record ``s``; untraced (``s`` is False: the caller built no Step) only count the step."""
        if isinstance(s, Step):
            self.record(s)
        else:
            self._step += 1

    def _file_of(self, function: str) -> str:
        """The kernel file of a traced function: the table above, or sys_regs.c for a table handler."""
        if self.vhe and function in VHE_FUNCTION_FILES:
            return VHE_FUNCTION_FILES[function]
        if function in self.defn.function_files:
            return self.defn.function_files[function]
        if function in self._handler_names:
            return "arch/arm64/kvm/sys_regs.c"
        return "(unknown)"

    def drive(self, ops: Iterable[Step]) -> list[Event]:
        """Run a kernel operation (a generator of Steps from ``self.kvm``) to the end, recording each.

        Returns the events recorded; with ``trace=False`` nothing is recorded and the list is
        empty, which keeps untraced runs free of per-step Event objects.
        """
        self._stepper.finish_pending()
        if not self.trace.enabled:
            n = 0
            for _ in ops:
                n += 1
            self._step += n
            return []
        return [self.record(s) for s in ops]


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
        return self._guest.view(self.vcpu_index(vcpu), lookup(reg))


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
        return self._stepper.next_switch(vcpu)

    def begin(self, switch: str, vcpu: int = 0) -> None:
        """Start a world switch to be advanced with ``step()``."""
        self._stepper.begin(switch, vcpu)

    def step(self, vcpu: int = 0) -> Event | None:
        """Advance one phase of the switch in progress, or start the next natural one."""
        return self._stepper.step(vcpu)

    def run_to(self, where: str, vcpu: int = 0) -> list[Event]:
        """Step until the vCPU is in the guest (``where="guest"``) or back in the host (``"host"``)."""
        return self._stepper.run_to(where, vcpu)

    @property
    def in_progress(self) -> bool:
        return self._stepper.in_progress

    # -- guest actions --------------------------------------------------------------------

    def guest_write(self, reg: str | int, value: int, vcpu: int = 0) -> None:
        """The guest executes ``MSR reg, X0`` (``MCR p14`` on an AArch32 vCPU)."""
        self._guest.access(reg, value, is_read=False, vcpu=vcpu)

    def guest_read(self, reg: str | int, vcpu: int = 0) -> int:
        """The guest executes ``MRS X0, reg``; returns what it reads."""
        value = self._guest.access(reg, 0, is_read=True, vcpu=vcpu)
        assert value is not None
        return value


    # -- userspace -------------------------------------------------------------------------


    def get_reg_list(self, vcpu: int = 0) -> list[int]:
        """KVM_GET_REG_LIST (the system registers the model knows; core/FP registers left out)."""
        return self._user.get_reg_list(vcpu)


    def get_one_reg(self, reg: str | int, vcpu: int = 0) -> int:
        """KVM_GET_ONE_REG; an OSError with the kernel's errno when the kernel would refuse."""
        return self._user.get_one_reg(reg, vcpu)

    def set_one_reg(self, reg: str | int, value: int, vcpu: int = 0) -> None:
        """KVM_SET_ONE_REG; an OSError with the kernel's errno when the kernel would refuse."""
        self._user.set_one_reg(reg, value, vcpu)

    def reset_vcpu(self, vcpu: int = 0) -> None:
        """KVM_ARM_VCPU_INIT again: every register back to its reset value."""
        self._user.reset_vcpu(vcpu)

    def set_guest_debug(self, hw_breakpoints: Iterable[int] = (), single_step: bool = False,
                        vcpu: int = 0, hw_watchpoints: Iterable[int] = ()) -> None:
        """KVM_SET_GUEST_DEBUG: the VMM debugs the guest with hardware breakpoints / single step."""
        self._user.set_guest_debug(hw_breakpoints, single_step, vcpu, hw_watchpoints)

    def save_vcpu(self, vcpu: int = 0) -> dict[int, int]:
        """Save a vCPU as a VMM does before migration: every listed register, by userspace id."""
        return self._user.save_vcpu(vcpu)

    def restore_vcpu(self, state: dict[int, int], vcpu: int = 0) -> list[tuple[str, int, int, str]]:
        """Restore a saved vCPU with KVM_SET_ONE_REG; returns (register, value, errno, message) per refusal."""
        return self._user.restore_vcpu(state, vcpu)

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

