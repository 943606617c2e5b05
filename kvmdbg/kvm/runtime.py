"""KVM running on one PE: boot, vCPU load/put, the world switch, trap handling.

Every operation is a generator that performs one kernel function at a time
and yields a :class:`Step` naming it, so a caller can stop between any two
functions (``Machine.step()``) or run them all. The sequences follow 5.15:

nVHE entry (``__kvm_vcpu_run``, hyp/nvhe/switch.c): ``__sysreg_save_state_nvhe(host)``,
``__sysreg_restore_state_nvhe(guest)``, ``__activate_traps``,
``__debug_switch_to_guest``, ``__guest_enter``; exit: ``fixup_guest_exit``,
``__sysreg_save_state_nvhe(guest)``, ``__deactivate_traps``,
``__sysreg_restore_state_nvhe(host)``, ``__debug_switch_to_host``. Both
save/restore calls include ``__sysreg_{save,restore}_el1_state``, for the host
*and* the guest context.

VHE (``__kvm_vcpu_run_vhe``, hyp/vhe/switch.c): only the common state
(MDSCR_EL1) and HCR_EL2 move on entry and exit; the guest's EL1 state is
restored once by ``kvm_vcpu_load_sysregs_vhe`` and saved once by
``kvm_vcpu_put_sysregs_vhe``, MDCR_EL2 is switched at the same two points
(``activate_traps_vhe_load``, ``deactivate_traps_vhe_put``), and the host's EL1
state is never saved: the host runs at EL2.

Simplifications, each deliberate: stage 2, timers, the vGIC, FP/SVE, PMU and
pointer authentication are left out (they do not touch the debug state); the
EL1 state the model switches is the handful of registers it has (see
``KvmDefinition.el1_state``); one PE runs everything, so loading a vCPU puts
any other loaded vCPU first, as the scheduler would.
"""

from __future__ import annotations

import errno
from collections import ChainMap
from collections.abc import Generator, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from kvmdbg.arch.esr import EC, decode_cp14, decode_sysreg, esr
from kvmdbg.arch.registers import REGISTERS, Encoding, lookup_encoding
from kvmdbg.kvm.api import Params, kernel_name
from kvmdbg.kvm.context import CpuContext, DebugRegs, Vcpu
from kvmdbg.kvm.switch import HCR_GUEST, HCR_HOST_NVHE, HCR_HOST_VHE, Detail, render
from kvmdbg.kvm.sys_regs import RESET_UNKNOWN, SysRegDesc

if TYPE_CHECKING:
    from kvmdbg.cpu.pe import PhysicalCPU
    from kvmdbg.kvm.definition import KvmDefinition

__all__ = ["Step", "Kvm", "TrapOutcome", "HCR_GUEST", "HCR_HOST_NVHE", "HCR_HOST_VHE"]

HOST_MDCR_EL2 = 0x6  # HPMN: the number of PMU counters (IMPLEMENTATION DEFINED; 6 on Cortex-A57)


@dataclass(frozen=True, slots=True)
class Step:
    """One kernel function (or architectural event) that has just run."""

    function: str
    phase: str
    detail: str = ""
    vcpu: int | None = None


@dataclass(slots=True)
class TrapOutcome:
    """What a trapped access came to: a read value, or an injected UNDEF."""

    value: int | None = None
    undef: bool = False
    explanation: str = ""
    handler: str = ""


Ops = Generator[Step, None, None]


def _encoding(desc: SysRegDesc) -> Encoding:
    enc = REGISTERS[desc.name].encoding
    assert enc is not None
    return enc


class Kvm:
    """KVM at one variant (``defn``) on one PE, with its VM's vCPUs."""

    def __init__(
        self,
        defn: KvmDefinition,
        pe: PhysicalCPU,
        *,
        vhe: bool,
        nr_vcpus: int = 1,
        pmu: bool = True,
        aarch32: frozenset[int] = frozenset(),
    ) -> None:
        self.defn = defn
        self.pe = pe
        self.vhe = vhe
        self.pmu = pmu
        self.host_ctxt = CpuContext({})  # kvm_host_data.host_ctxt
        self.host_debug = DebugRegs()  # kvm_host_data.host_debug_state
        self.host_mdcr_el2 = HOST_MDCR_EL2
        self.vcpus = [Vcpu(i, CpuContext({}), aarch32=i in aarch32) for i in range(nr_vcpus)]
        self.loaded: int | None = None  # which vCPU is loaded on the PE
        self.pending_undef: dict[int, str] = {}
        self._notes: list[str] = []
        self.vm: dict[str, int] = dict(defn.vm_state)  # struct kvm_arch: per-VM state a variant adds
        self.exit_syndrome: tuple[int, str] = (0, "")  # (ESR_EL2, reason) of the exit being run
        # Off when nobody records the steps: no detail text is built (see _run).
        self.describe = True
        self._bare: dict[tuple[str, str, int], Step] = {}

    # -- bookkeeping ------------------------------------------------------------------

    def note(self, text: str) -> None:
        self._notes.append(text)

    def take_notes(self) -> str:
        text = "; ".join(self._notes)
        self._notes.clear()
        return text

    def inject_undefined(self, vcpu: Vcpu, why: str) -> None:
        """``kvm_inject_undefined()``: queue an UNDEF (EC 0x00) for the guest's EL1."""
        self.pending_undef[vcpu.index] = why
        self.note(why)

    # -- the handlers' view of the engine (kvmdbg.kvm.api.Env) --------------------------

    @property
    def layout(self) -> tuple[str, ...]:
        return self.defn.vcpu_sysreg

    def cpu_has(self, name: str) -> bool:
        return self.pe.has(name)

    def cpu_read(self, name: str) -> int:
        return self.pe.regs[name]

    def cpu_write(self, name: str, value: int) -> None:
        self.pe.load(name, value)

    def cpu_id_reg(self, name: str) -> int:
        # The model's PE has one ID register that KVM sanitises: the profile's ID_AA64DFR0_EL1.
        assert name == "ID_AA64DFR0_EL1", f"the PE model has no ID register {name}"
        return self.pe.profile.id_aa64dfr0

    def id_reg(self, vcpu: Vcpu, name: str) -> int:
        return self.defn.read_id_reg(self, vcpu, name)

    def setup_mdcr(self, vcpu: Vcpu) -> None:
        self.defn.setup_mdcr(self, vcpu)

    @property
    def where_host_runs(self) -> int:
        return 2 if self.vhe else 1

    # -- boot and reset --------------------------------------------------------------

    def boot(self) -> Ops:
        """Cold reset, then the host kernel's boot path for this PE."""
        self.pe.cold_reset()
        yield Step("cold reset", "boot", "PE cold reset: the OS Lock comes up locked (OSLSR_EL1.OSLK=1)")
        self.pe.regs["HCR_EL2"] = HCR_HOST_VHE if self.vhe else HCR_HOST_NVHE
        self.pe.regs["MDCR_EL2"] = self.host_mdcr_el2
        self.pe.el = self.where_host_runs
        self.pe.write("OSDLR_EL1", 0)
        self.pe.write("OSLAR_EL1", 0)
        yield Step("clear_os_lock", "boot",
                   "the host kernel writes 0 to OSDLR_EL1 and OSLAR_EL1 on every CPU it brings up")
        for v in self.vcpus:
            yield from self.reset_vcpu(v.index)

    def reset_vcpu(self, index: int) -> Ops:
        """KVM_ARM_VCPU_INIT: ``kvm_reset_vcpu()`` -> ``kvm_reset_sys_regs()``."""
        vcpu = self.vcpus[index]
        was_loaded = vcpu.loaded
        if vcpu.running:
            yield from self.exit_to_userspace(index)
        if was_loaded:
            yield from self.vcpu_put(index)
        # The slots the model has a register for start at 0 (a new vCPU's memory is zeroed;
        # ELR_EL1 and SPSR_EL1 have no reset function in 5.15). Other enum slots come into
        # existence only if something writes them (see patch 2's swapped arguments).
        for slot in self.defn.vcpu_sysreg[1:]:
            if slot in REGISTERS:
                vcpu.ctxt.sys_regs.setdefault(slot, 0)
        for d in self.defn.sys_regs.values():
            if d.reset == "reset_val" and d.reg is not None:
                vcpu.ctxt.sys_regs[d.reg] = d.val
            elif d.reset == "reset_unknown" and d.reg is not None:
                vcpu.ctxt.sys_regs[d.reg] = RESET_UNKNOWN  # reset_unknown(), sys_regs.h
            elif d.debug_kind is not None:
                vcpu.debug.array(d.debug_kind)[d.debug_index] = d.val
        vcpu.flags.clear()
        vcpu.pc, vcpu.pstate_d, vcpu.pstate_ss = 0x80000, True, False
        self.pending_undef.pop(index, None)
        self.setup_mdcr(vcpu)  # kvm_arm_vcpu_init_debug()
        oslsr = vcpu.ctxt.sys_regs.get("OSLSR_EL1")
        detail = "reset values from sys_reg_descs[]" + (f"; OSLSR_EL1={oslsr:#x}" if oslsr is not None else
                                                         "; OSLSR_EL1 has no slot (reads are a constant)")
        yield Step("kvm_reset_sys_regs", "reset", detail, index)
        if was_loaded:
            yield from self.vcpu_load(index)

    # -- the EL1 / common state switch (hyp/include/hyp/sysreg-sr.h) ---------------

    def save_el1(self, ctxt: CpuContext) -> str:
        for name in self.defn.el1_state:
            ctxt.sys_regs[name] = self.pe.regs[name]
        hooks = self.defn.el1_hooks
        return "; ".join(h.save(self.pe, ctxt) for h in hooks) if hooks else ""

    def restore_el1(self, ctxt: CpuContext) -> str:
        for name in self.defn.el1_state:
            self.pe.load(name, ctxt.sys_regs.get(name, 0))
        hooks = self.defn.el1_hooks
        return "; ".join(h.restore(self.pe, ctxt) for h in hooks) if hooks else ""

    def save_common(self, ctxt: CpuContext) -> None:
        for name in self.defn.common_state:
            ctxt.sys_regs[name] = self.pe.regs[name]

    def restore_common(self, ctxt: CpuContext) -> None:
        for name in self.defn.common_state:
            self.pe.regs[name] = ctxt.sys_regs.get(name, 0)

    def setup_debug(self, vcpu: Vcpu) -> str:
        return self.defn.setup_debug(self, vcpu)

    def clear_debug(self, vcpu: Vcpu) -> str:
        return self.defn.clear_debug(self, vcpu)

    # -- running a world switch's step list (kvmdbg.kvm.switch) -------------------------

    def _run(self, switch: str, phase: str, vcpu: Vcpu) -> Ops:
        """Run one of the definition's step lists, yielding a Step after each kernel function.

        With ``describe`` off (nobody records the steps), no detail is formatted and each
        yielded Step is a shared one without detail.
        """
        steps = self.defn.switches[f"{'vhe' if self.vhe else 'nvhe'}.{switch}"]
        index = vcpu.index
        if self.describe:
            for s in steps:
                detail = s.run(self, vcpu)
                if detail is not None:
                    yield Step(s.function, phase, render(detail), index)
        else:
            bare = self._bare
            for s in steps:
                if s.run(self, vcpu) is not None:
                    key = (s.function, phase, index)
                    step = bare.get(key)
                    if step is None:
                        step = bare[key] = Step(s.function, phase, "", index)
                    yield step

    # -- vcpu_load / vcpu_put ----------------------------------------------------------

    def vcpu_load(self, index: int) -> Ops:
        vcpu = self.vcpus[index]
        if vcpu.loaded:
            return
        if self.loaded is not None and self.loaded != index:
            yield from self.exit_to_userspace(self.loaded)
            yield from self.vcpu_put(self.loaded)
        yield from self._run("load", "vcpu_load", vcpu)

    def vcpu_put(self, index: int) -> Ops:
        vcpu = self.vcpus[index]
        if not vcpu.loaded:
            return
        if vcpu.running:
            yield from self.exit_to_userspace(index)
        yield from self._run("put", "vcpu_put", vcpu)

    # -- entry and exit ------------------------------------------------------------------

    def enter(self, index: int) -> Ops:
        """One trip into the guest from the run loop of ``kvm_arch_vcpu_ioctl_run``."""
        vcpu = self.vcpus[index]
        if vcpu.running:
            return
        if not vcpu.loaded:
            yield from self.vcpu_load(index)
        yield from self._run("enter", "enter", vcpu)

    def exit(self, index: int, esr_el2: int, reason: str) -> Ops:
        """The guest takes an exception to EL2 and KVM goes back to the host."""
        vcpu = self.vcpus[index]
        if not vcpu.running:
            return
        self.exit_syndrome = (esr_el2, reason)
        yield from self._run("exit", "exit", vcpu)

    def exit_to_userspace(self, index: int) -> Ops:
        """An exit that the run loop returns to userspace for (KVM_RUN returns)."""
        yield from self.exit(index, esr(EC.UNKNOWN, 0, il=False), "host interrupt; KVM_RUN returns to userspace")

    # -- the guest's exceptions ----------------------------------------------------------

    def take_guest_exception(self, vcpu: Vcpu, esr_el1: int, why: str, far: int | None = None) -> None:
        """The guest takes an exception at its EL1: the PE's EL1 registers record it."""
        pe = self.pe
        pe.regs["ESR_EL1"] = esr_el1
        pe.regs["ELR_EL1"] = vcpu.pc
        if far is not None:
            pe.regs["FAR_EL1"] = far
        vcpu.last_exception = (esr_el1, why)

    # -- trapped accesses ------------------------------------------------------------------

    def _step(self, function: str, phase: str, detail: Detail, index: int) -> Step:
        """A Step, with its detail rendered only if someone describes the steps (see ``_run``)."""
        if self.describe:
            return Step(function, phase, render(detail), index)
        key = (function, phase, index)
        step = self._bare.get(key)
        if step is None:
            step = self._bare[key] = Step(function, phase, "", index)
        return step

    def handle_trap(self, index: int, esr_el2: int, regval: int, out: TrapOutcome) -> Ops:
        """``handle_exit`` -> ``kvm_handle_sys_reg`` / ``kvm_handle_cp14_32`` -> the table's handler."""
        vcpu = self.vcpus[index]
        ec = (esr_el2 >> 26) & 0x3F
        step = self._step
        if ec == EC.SYS64:
            t = decode_sysreg(esr_el2)
            enc, is_read = t.encoding, t.is_read
            yield step("handle_exit", "handle", ("EC {:#04x} (trapped MSR/MRS): kvm_handle_sys_reg", ec), index)
            desc: SysRegDesc | None = self.defn.sys_regs.get(enc)
            where: Detail = ""
            if self.describe:
                named = lookup_encoding(enc)
                where = (f"esr_sys64_to_params: Op0={enc.op0} Op1={enc.op1} CRn={enc.crn} CRm={enc.crm} "
                         f"Op2={enc.op2} Rt={t.rt} {'read' if is_read else 'write'} "
                         f"({named.name if named else enc.generic_name()})")
            yield step("kvm_handle_sys_reg", "handle", where, index)
            handler = desc.access if desc else None
            label = desc.handler_name if desc else "emulate_sys_reg"
            params_desc = desc
        else:
            c = decode_cp14(esr_el2)
            is_read = c.is_read
            yield step("handle_exit", "handle", ("EC {:#04x} (trapped MCR/MRC p14): kvm_handle_cp14_32", ec), index)
            cdesc = self.defn.cp14.get((c.opc1, c.crn, c.crm, c.opc2))
            yield step("kvm_handle_cp14_32", "handle",
                       ("Op1={} CRn={} CRm={} Op2={} Rt={} {} ({})", c.opc1, c.crn, c.crm, c.opc2, c.rt,
                        "read" if is_read else "write", cdesc.name if cdesc else "unknown"), index)
            handler = cdesc.access if cdesc else None
            label = cdesc.handler_name if cdesc else "emulate_cp"
            params_desc = (self.defn.desc(cdesc.aarch64) if cdesc else None)
            if cdesc is not None and params_desc is not None and cdesc.reg != params_desc.reg:
                params_desc = SysRegDesc(params_desc.name, params_desc.access, cdesc.reg, params_desc.reset,
                                         params_desc.val)
        if handler is None or params_desc is None:
            out.undef = True
            out.explanation = "no entry in KVM's table: 'Unsupported guest sys_reg access', UNDEF injected"
            self.inject_undefined(vcpu, out.explanation)
            yield step("kvm_inject_undefined", "handle", out.explanation, index)
            return
        p = Params(_encoding(params_desc), regval, not is_read)
        done = handler(self, vcpu, p, params_desc)
        out.handler = label
        notes = self.take_notes()
        detail: Detail
        if is_read and done:
            out.value = p.regval
            detail = ("returns {:#x}", p.regval)
        elif done:
            detail = ("write of {:#x} handled", regval)
        else:
            detail = "refused the access"
        if notes:
            detail = ("{}; {}", render(detail), notes) if self.describe else ""
        yield step(label, "handle", detail, index)
        if done:
            yield step("kvm_incr_pc", "handle", "access emulated: skip the instruction", index)
        else:
            out.undef = True
            out.explanation = self.pending_undef.get(index, "the handler refused the access")
            yield step("kvm_inject_undefined", "handle", out.explanation, index)

    # -- the guest's view, without side effects ---------------------------------------

    def peek_guest_read(self, index: int, desc: SysRegDesc) -> int | None:
        """What a guest MRS of ``desc`` would return now, or None if it would UNDEF.

        The handler runs against a :class:`DryEnv` and a scratch copy of the vCPU, so
        whatever it writes (the context, the flags, the PE, a note, an UNDEF) is thrown away.
        """
        if desc.access is None:
            return None
        p = Params(_encoding(desc), 0, False)
        ok = desc.access(DryEnv(self), scratch(self.vcpus[index]), p, desc)
        return p.regval if ok else None

    # -- userspace: KVM_GET_REG_LIST, KVM_GET/SET_ONE_REG ------------------------------

    def reg_list(self) -> list[int]:
        ids = []
        for _enc, d in self.defn.sys_regs.items():
            if not d.listed:
                continue
            ids.append(REGISTERS[d.name].kvm_id)
        return sorted(ids)

    def refuse_one_reg(self, index: int, desc: SysRegDesc | None, value: int | None = None) -> OSError | None:
        """The error KVM_GET_ONE_REG (``value`` None) or KVM_SET_ONE_REG would return, or None.

        Decided before anything changes, as the kernel does: kvm_arm_sys_reg_{get,set}_reg()
        look the id up (index_to_sys_reg_desc(): a descriptor with neither ``reg`` nor
        ``get_user`` counts as absent, then -ENOENT) and only then call ``set_user``.
        ``set_user`` is tried on a scratch copy of the vCPU, so a refusal leaves no trace.
        """
        ioctl = "KVM_GET_ONE_REG" if value is None else "KVM_SET_ONE_REG"
        if desc is None or not desc.listed:
            return OSError(errno.ENOENT, f"No such file or directory ({ioctl}: this variant does not "
                           "expose the register to userspace)")
        if value is not None and desc.set_user is not None:
            rc = desc.set_user(DryEnv(self), scratch(self.vcpus[index]), desc, value)
            if rc:
                return OSError(-rc, f"{errno.errorcode.get(-rc, '?')}: KVM_SET_ONE_REG of {desc.name}="
                               f"{value:#x} refused by {kernel_name(desc.set_user)}")
        return None

    def get_one_reg(self, index: int, desc: SysRegDesc | None) -> int:
        refused = self.refuse_one_reg(index, desc)
        if refused is not None:
            raise refused
        assert desc is not None
        vcpu = self.vcpus[index]
        if desc.get_user is not None:
            return desc.get_user(self, vcpu, desc)
        assert desc.reg is not None
        return vcpu.ctxt.sys_regs.get(desc.reg, 0)

    def set_one_reg(self, index: int, desc: SysRegDesc | None, value: int) -> None:
        refused = self.refuse_one_reg(index, desc, value)
        if refused is not None:
            raise refused
        assert desc is not None
        vcpu = self.vcpus[index]
        if desc.set_user is not None:
            rc = desc.set_user(self, vcpu, desc, value)
            assert rc == 0, "refuse_one_reg() let through a value set_user refuses"
            return
        assert desc.reg is not None
        vcpu.ctxt.sys_regs[desc.reg] = value  # reg_from_user(): stored as given, no validation

    def get_core_reg(self, index: int, name: str) -> int:
        """``get_core_reg()`` (guest.c) for ELR_EL1 / SPSR_EL1: their sys_regs[] slot."""
        return self.vcpus[index].ctxt.sys_regs.get(name, 0)

    def set_core_reg(self, index: int, name: str, value: int) -> None:
        """``set_core_reg()`` (guest.c): stored as given (only PSTATE's mode is checked, not these)."""
        self.vcpus[index].ctxt.sys_regs[name] = value

    def iter_vcpus(self) -> Iterator[Vcpu]:
        return iter(self.vcpus)


class DryEnv:
    """An :class:`~kvmdbg.kvm.api.Env` that reads the engine and keeps every write to itself.

    Used to ask what a guest read would return without running the guest: notes and
    injected exceptions are dropped, PE writes land in a scratch overlay, per-VM state
    is a copy.
    """

    __slots__ = ("_kvm", "_overlay", "vm")

    def __init__(self, kvm: Kvm) -> None:
        self._kvm = kvm
        self._overlay: dict[str, int] = {}
        self.vm = dict(kvm.vm)

    @property
    def vhe(self) -> bool:
        return self._kvm.vhe

    @property
    def pmu(self) -> bool:
        return self._kvm.pmu

    @property
    def host_mdcr_el2(self) -> int:
        return self._kvm.host_mdcr_el2

    @property
    def layout(self) -> tuple[str, ...]:
        return self._kvm.defn.vcpu_sysreg

    def note(self, text: str) -> None:
        pass

    def inject_undefined(self, vcpu: Vcpu, why: str) -> None:
        pass

    def cpu_has(self, name: str) -> bool:
        return self._kvm.pe.has(name)

    def cpu_read(self, name: str) -> int:
        return self._overlay[name] if name in self._overlay else self._kvm.pe.regs[name]

    def cpu_write(self, name: str, value: int) -> None:
        self._overlay[name] = value

    def cpu_id_reg(self, name: str) -> int:
        return self._kvm.cpu_id_reg(name)

    def id_reg(self, vcpu: Vcpu, name: str) -> int:
        return self._kvm.defn.read_id_reg(self, vcpu, name)

    def setup_mdcr(self, vcpu: Vcpu) -> None:
        self._kvm.defn.setup_mdcr(self, vcpu)


class _ScratchSet:
    """A set that reads through to another and keeps its own additions and removals."""

    __slots__ = ("_base", "_added", "_removed")

    def __init__(self, base: set[str]) -> None:
        self._base, self._added, self._removed = base, set[str](), set[str]()

    def __contains__(self, item: object) -> bool:
        return item in self._added or (item not in self._removed and item in self._base)

    def __iter__(self) -> Iterator[str]:
        return iter((set(self._base) - self._removed) | self._added)

    def __len__(self) -> int:
        return len((set(self._base) - self._removed) | self._added)

    def add(self, item: str) -> None:
        self._added.add(item)
        self._removed.discard(item)

    def discard(self, item: str) -> None:
        self._added.discard(item)
        self._removed.add(item)


class _ScratchContext:
    __slots__ = ("sys_regs",)

    def __init__(self, base: CpuContext) -> None:
        self.sys_regs: MutableMapping[str, int] = ChainMap({}, base.sys_regs)


class _ScratchVcpu:
    """A vCPU a dry run may write to: reads go through to the real vCPU, writes stay here.

    Cheaper than a copy, and a read still reads the real vCPU, so whoever tracks what a
    guest view depends on sees exactly what the handler read.
    """

    __slots__ = ("_real", "_own")

    def __init__(self, real: Vcpu) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_own", {})

    def __getattr__(self, name: str) -> object:
        own: dict[str, object] = object.__getattribute__(self, "_own")
        if name in own:
            return own[name]
        real: Vcpu = object.__getattribute__(self, "_real")
        value: object = getattr(real, name)
        if name == "ctxt":
            value = _ScratchContext(real.ctxt)
        elif name == "flags":
            value = _ScratchSet(real.flags)
        elif name in ("debug", "external_debug"):
            value = getattr(real, name).copy()
        elif name == "x":
            value = list(real.x)
        else:
            return value
        own[name] = value
        return value

    def __setattr__(self, name: str, value: object) -> None:
        object.__getattribute__(self, "_own")[name] = value

    def debug_ptr(self) -> DebugRegs:
        return cast(DebugRegs, self.external_debug if self.use_external_debug else self.debug)


def scratch(vcpu: Vcpu) -> Vcpu:
    """A stand-in for ``vcpu`` that a handler may read and write without changing ``vcpu``."""
    return cast(Vcpu, _ScratchVcpu(vcpu))
