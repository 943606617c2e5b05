"""The world switch as data: one list of kernel functions per switch and host mode (5.15).

Each entry of a list is a :class:`SwitchStep`: the kernel function's name and a small
Python function that does what that kernel function does to the state the model holds,
then returns the step's detail (see :data:`Detail`). The engine
(:class:`kvmdbg.kvm.runtime.Kvm`) runs a list top to bottom, one step at a time, so a
caller can stop between any two kernel functions; a patch edits a list (insert, replace,
remove a step) instead of the engine's code. The lists, in the kernel's order:

* ``nvhe.enter``: ``__kvm_vcpu_run()`` in hyp/nvhe/switch.c after ``kvm_arm_setup_debug()``
  (arm.c, ``kvm_arch_vcpu_ioctl_run()``): save the host's state, restore the guest's,
  ``__activate_traps()``, ``__debug_switch_to_guest()``, ``__guest_enter()``;
* ``nvhe.exit``: the second half of ``__kvm_vcpu_run()``, then ``kvm_arm_clear_debug()``;
* ``vhe.enter`` / ``vhe.exit``: ``__kvm_vcpu_run_vhe()`` in hyp/vhe/switch.c, which moves
  only the common state (MDSCR_EL1) and HCR_EL2;
* ``vhe.load`` / ``vhe.put``: ``kvm_vcpu_load_sysregs_vhe()`` and
  ``kvm_vcpu_put_sysregs_vhe()`` (hyp/vhe/sysreg-sr.c), where a VHE host switches the
  guest's EL1 state and MDCR_EL2 once per load;
* ``nvhe.load`` / ``nvhe.put``: ``kvm_arch_vcpu_load()`` / ``kvm_arch_vcpu_put()`` only.

A step's function receives the :class:`~kvmdbg.kvm.api.World` (the engine's state that
the world switch moves) and the vCPU. It returns the detail as a string, or as a tuple
``(template, *args)`` that is formatted only if someone records the step (tracing off
costs no formatting), or None when the kernel function does nothing this time and the
step is not shown at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from kvmdbg.arch import bits
from kvmdbg.arch.esr import EC, esr
from kvmdbg.cpu.pe import PhysicalCPU
from kvmdbg.kvm.context import DEBUG_DIRTY, CpuContext, DebugRegs, Vcpu

__all__ = ["World", "SwitchStep", "Detail", "SWITCHES_515", "SWITCH_NAMES", "render",
           "HCR_GUEST", "HCR_HOST_NVHE", "HCR_HOST_VHE", "HCR_E2H"]

# HCR_EL2 bits the model uses (Arm ARM D13.2.46).
HCR_E2H = bits.HCR_E2H
HCR_GUEST = bits.HCR_VM | bits.HCR_TID3 | bits.HCR_TSC  # HCR_GUEST_FLAGS (the bits modelled)
HCR_HOST_NVHE = 0  # HCR_HOST_NVHE_FLAGS has none of the modelled bits
HCR_HOST_VHE = bits.HCR_E2H | bits.HCR_TGE  # HCR_HOST_VHE_FLAGS

Detail = str | tuple[object, ...] | None
"""What a step returns: its detail text, a ``(template, *args)`` tuple, or None to skip it."""


class World(Protocol):
    """The engine's state that a world-switch step reads and moves."""

    pe: PhysicalCPU
    host_ctxt: CpuContext
    host_debug: DebugRegs
    pending_undef: dict[int, str]
    loaded: int | None  # which vCPU is loaded on the PE
    vm: dict[str, int]  # per-VM state a variant adds (struct kvm_arch)
    exit_syndrome: tuple[int, str]  # (ESR_EL2, reason) of the exit being handled

    @property
    def vhe(self) -> bool: ...

    @property
    def where_host_runs(self) -> int: ...

    def save_el1(self, ctxt: CpuContext) -> str:
        """``__sysreg_save_el1_state()``: returns what the variant's hooks did."""
        ...

    def restore_el1(self, ctxt: CpuContext) -> str:
        """``__sysreg_restore_el1_state()``: returns what the variant's hooks did."""
        ...

    def save_common(self, ctxt: CpuContext) -> None: ...

    def restore_common(self, ctxt: CpuContext) -> None: ...

    def setup_debug(self, vcpu: Vcpu) -> str: ...

    def clear_debug(self, vcpu: Vcpu) -> str: ...

    def take_guest_exception(self, vcpu: Vcpu, esr_el1: int, why: str, far: int | None = None) -> None: ...


StepFn = Callable[[World, Vcpu], Detail]


@dataclass(frozen=True, slots=True)
class SwitchStep:
    """One kernel function of a world switch: its name and what it does."""

    function: str
    run: StepFn

    def __repr__(self) -> str:
        return f"<SwitchStep {self.function}>"


def render(detail: Detail) -> str:
    """The text of a step's detail."""
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail
    template, *args = detail
    return str(template).format(*args)


def _joined(text: str, extra: str) -> Detail:
    return ("{}; {}", text, extra) if extra else text


def _switch_debug_regs(pe: PhysicalCPU, save: DebugRegs, load: DebugRegs) -> None:
    for n in pe.breakpoint_slots():
        save.bvr[n], save.bcr[n] = pe.regs[f"DBGBVR{n}_EL1"], pe.regs[f"DBGBCR{n}_EL1"]
        pe.regs[f"DBGBVR{n}_EL1"], pe.regs[f"DBGBCR{n}_EL1"] = load.bvr[n], load.bcr[n]
    for n in pe.watchpoint_slots():
        save.wvr[n], save.wcr[n] = pe.regs[f"DBGWVR{n}_EL1"], pe.regs[f"DBGWCR{n}_EL1"]
        pe.regs[f"DBGWVR{n}_EL1"], pe.regs[f"DBGWCR{n}_EL1"] = load.wvr[n], load.wcr[n]


# -- vcpu_load / vcpu_put (arm.c, hyp/vhe/sysreg-sr.c, hyp/vhe/switch.c) ------------------


def kvm_arch_vcpu_load(w: World, vcpu: Vcpu) -> Detail:
    vcpu.loaded = True
    w.loaded = vcpu.index
    return ("vCPU {} is now loaded on this PE", vcpu.index)


def vhe_restore_el1_at_load(w: World, vcpu: Vcpu) -> Detail:
    return _joined("kvm_vcpu_load_sysregs_vhe: the guest's EL1 state goes onto the PE", w.restore_el1(vcpu.ctxt))


def activate_traps_vhe_load(w: World, vcpu: Vcpu) -> Detail:
    # 5.15 VHE switches MDCR_EL2 once per load, not per entry: kvm_vcpu_load_sysregs_vhe()
    # ends with activate_traps_vhe_load() -> __activate_traps_common() (hyp/vhe/switch.c,
    # hyp/include/hyp/switch.h), which saves the host's MDCR_EL2 and writes the vCPU's.
    vcpu.mdcr_el2_host = w.pe.regs["MDCR_EL2"]
    w.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2
    return ("MDCR_EL2={:#x} for the vCPU (host's {:#x} kept aside until vcpu_put)", vcpu.mdcr_el2,
            vcpu.mdcr_el2_host)


def deactivate_traps_vhe_put(w: World, vcpu: Vcpu) -> Detail:
    # kvm_vcpu_put_sysregs_vhe() starts with deactivate_traps_vhe_put() ->
    # __deactivate_traps_common(): the host's MDCR_EL2 comes back (hyp/vhe/switch.c).
    w.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2_host
    return ("host MDCR_EL2={:#x} back", vcpu.mdcr_el2_host)


def vhe_save_el1_at_put(w: World, vcpu: Vcpu) -> Detail:
    return _joined("kvm_vcpu_put_sysregs_vhe: the PE's EL1 state is saved into the guest context",
                   w.save_el1(vcpu.ctxt))


def kvm_arch_vcpu_put(w: World, vcpu: Vcpu) -> Detail:
    vcpu.loaded = False
    w.loaded = None
    return ("vCPU {} is no longer loaded", vcpu.index)


# -- entry -------------------------------------------------------------------------------


def setup_debug(w: World, vcpu: Vcpu) -> Detail:
    orig_mdcr_el2 = vcpu.mdcr_el2
    detail = w.setup_debug(vcpu)
    if w.vhe and orig_mdcr_el2 != vcpu.mdcr_el2:
        # kvm_arm_setup_debug() (debug.c, 5.15): "mdcr_el2 changes since vcpu_load" are written
        # straight to the PE on VHE, where the vCPU's value is on the PE from load to put.
        w.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2
        detail += "; VHE: the changed MDCR_EL2 is written to the PE now"
    return detail


def save_host_state_nvhe(w: World, vcpu: Vcpu) -> Detail:
    detail = w.save_el1(w.host_ctxt)
    w.save_common(w.host_ctxt)
    return _joined("host EL1 and common state saved into host_ctxt", detail)


def restore_guest_state_nvhe(w: World, vcpu: Vcpu) -> Detail:
    detail = w.restore_el1(vcpu.ctxt)
    w.restore_common(vcpu.ctxt)
    return _joined("guest EL1 and common state loaded onto the PE", detail)


def activate_traps_nvhe(w: World, vcpu: Vcpu) -> Detail:
    # hyp/nvhe/switch.c __activate_traps() -> __activate_traps_common(): every entry.
    pe = w.pe
    pe.regs["HCR_EL2"] = HCR_GUEST
    vcpu.mdcr_el2_host = pe.regs["MDCR_EL2"]
    pe.regs["MDCR_EL2"] = vcpu.mdcr_el2
    return ("MDCR_EL2={:#x}, HCR_EL2 guest flags", vcpu.mdcr_el2)


def save_host_state_vhe(w: World, vcpu: Vcpu) -> Detail:
    w.save_common(w.host_ctxt)
    return "host MDSCR_EL1 saved (common state only)"


def activate_traps_vhe(w: World, vcpu: Vcpu) -> Detail:
    # hyp/vhe/switch.c __activate_traps(): HCR_EL2 (and CPACR, VBAR) only; MDCR_EL2
    # was switched at vcpu_load.
    w.pe.regs["HCR_EL2"] = HCR_GUEST | HCR_E2H
    return "HCR_EL2 guest flags (MDCR_EL2 stays as loaded)"


def restore_guest_state_vhe(w: World, vcpu: Vcpu) -> Detail:
    w.restore_common(vcpu.ctxt)
    return "guest MDSCR_EL1 loaded onto the PE"


def debug_switch_to_guest(w: World, vcpu: Vcpu) -> Detail:
    if DEBUG_DIRTY in vcpu.flags:
        _switch_debug_regs(w.pe, save=w.host_debug, load=vcpu.debug_ptr())
        return ("debug state is dirty: host breakpoint/watchpoint registers saved, {} loaded",
                "the VMM's" if vcpu.use_external_debug else "the guest's")
    return "debug state clean: nothing to switch"


def guest_enter(w: World, vcpu: Vcpu) -> Detail:
    pe = w.pe
    pe.el = 1
    pe.pstate_d = vcpu.pstate_d
    vcpu.running = True
    if vcpu.index in w.pending_undef:
        why = w.pending_undef.pop(vcpu.index)
        w.take_guest_exception(vcpu, esr(EC.UNKNOWN), why)
        return "ERET into the guest at EL1; the guest takes the pending UNDEF at its EL1 vector"
    return "ERET into the guest at EL1"


# -- exit --------------------------------------------------------------------------------


def guest_exit(w: World, vcpu: Vcpu) -> Detail:
    esr_el2, reason = w.exit_syndrome
    pe = w.pe
    pe.el = 2
    pe.regs["ESR_EL2"] = esr_el2
    vcpu.running = False
    vcpu.pstate_d = pe.pstate_d
    return ("{}; ESR_EL2={:#010x}", reason, esr_el2)


def fixup_guest_exit(w: World, vcpu: Vcpu) -> Detail:
    return "not handled at EL2: back to the host"


def save_guest_state_nvhe(w: World, vcpu: Vcpu) -> Detail:
    detail = w.save_el1(vcpu.ctxt)
    w.save_common(vcpu.ctxt)
    return _joined("guest EL1 and common state saved into the vCPU context", detail)


def deactivate_traps_nvhe(w: World, vcpu: Vcpu) -> Detail:
    w.pe.regs["HCR_EL2"] = HCR_HOST_NVHE
    w.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2_host
    return ("host MDCR_EL2={:#x} back", vcpu.mdcr_el2_host)


def restore_host_state_nvhe(w: World, vcpu: Vcpu) -> Detail:
    detail = w.restore_el1(w.host_ctxt)
    w.restore_common(w.host_ctxt)
    return _joined("host EL1 and common state back on the PE", detail)


def save_guest_state_vhe(w: World, vcpu: Vcpu) -> Detail:
    w.save_common(vcpu.ctxt)
    return "guest MDSCR_EL1 saved (common state only)"


def deactivate_traps_vhe(w: World, vcpu: Vcpu) -> Detail:
    w.pe.regs["HCR_EL2"] = HCR_HOST_VHE
    return "HCR_EL2 host flags (MDCR_EL2 keeps the vCPU's value until vcpu_put)"


def restore_host_state_vhe(w: World, vcpu: Vcpu) -> Detail:
    w.restore_common(w.host_ctxt)
    return "host MDSCR_EL1 back on the PE"


def debug_switch_to_host(w: World, vcpu: Vcpu) -> Detail:
    if DEBUG_DIRTY in vcpu.flags:
        _switch_debug_regs(w.pe, save=vcpu.debug_ptr(), load=w.host_debug)
        vcpu.flags.discard(DEBUG_DIRTY)
        return "guest debug registers saved, host's restored; DEBUG_DIRTY cleared"
    return "debug state clean: nothing to switch"


def clear_debug(w: World, vcpu: Vcpu) -> Detail:
    w.pe.el = w.where_host_runs  # back in the host's run loop, at the host's EL
    return w.clear_debug(vcpu)


S = SwitchStep

SWITCHES_515: Mapping[str, tuple[SwitchStep, ...]] = MappingProxyType({
    "nvhe.load": (S("kvm_arch_vcpu_load", kvm_arch_vcpu_load),),
    "nvhe.put": (S("kvm_arch_vcpu_put", kvm_arch_vcpu_put),),
    "vhe.load": (
        S("kvm_arch_vcpu_load", kvm_arch_vcpu_load),
        S("__sysreg_restore_el1_state", vhe_restore_el1_at_load),
        S("activate_traps_vhe_load", activate_traps_vhe_load),
    ),
    "vhe.put": (
        S("deactivate_traps_vhe_put", deactivate_traps_vhe_put),
        S("__sysreg_save_el1_state", vhe_save_el1_at_put),
        S("kvm_arch_vcpu_put", kvm_arch_vcpu_put),
    ),
    "nvhe.enter": (
        S("kvm_arm_setup_debug", setup_debug),
        S("__sysreg_save_state_nvhe", save_host_state_nvhe),
        S("__sysreg_restore_state_nvhe", restore_guest_state_nvhe),
        S("__activate_traps", activate_traps_nvhe),
        S("__debug_switch_to_guest", debug_switch_to_guest),
        S("__guest_enter", guest_enter),
    ),
    "vhe.enter": (
        S("kvm_arm_setup_debug", setup_debug),
        S("sysreg_save_host_state_vhe", save_host_state_vhe),
        S("__activate_traps", activate_traps_vhe),
        S("sysreg_restore_guest_state_vhe", restore_guest_state_vhe),
        S("__debug_switch_to_guest", debug_switch_to_guest),
        S("__guest_enter", guest_enter),
    ),
    "nvhe.exit": (
        S("__guest_exit", guest_exit),
        S("fixup_guest_exit", fixup_guest_exit),
        S("__sysreg_save_state_nvhe", save_guest_state_nvhe),
        S("__deactivate_traps", deactivate_traps_nvhe),
        S("__sysreg_restore_state_nvhe", restore_host_state_nvhe),
        S("__debug_switch_to_host", debug_switch_to_host),
        S("kvm_arm_clear_debug", clear_debug),
    ),
    "vhe.exit": (
        S("__guest_exit", guest_exit),
        S("fixup_guest_exit", fixup_guest_exit),
        S("sysreg_save_guest_state_vhe", save_guest_state_vhe),
        S("__deactivate_traps", deactivate_traps_vhe),
        S("sysreg_restore_host_state_vhe", restore_host_state_vhe),
        S("__debug_switch_to_host", debug_switch_to_host),
        S("kvm_arm_clear_debug", clear_debug),
    ),
})
"""The 5.15 world switch: switch name -> its kernel functions, in order."""

SWITCH_NAMES: tuple[str, ...] = tuple(SWITCHES_515)
