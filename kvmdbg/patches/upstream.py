"""The design that replaced v1: "KVM: arm64: Emulate the OS Lock" (v5), Linux 5.18.

Applied by Marc Zyngier on 8 Feb 2022 (commits e2ffceaae508, d42e26716d03,
f24adc65c556, 7dabf02f43a1, plus two selftest patches). The guest's OSLK is
stored in its context and never written to hardware; its effect is emulated
in ``kvm_arm_setup_debug()`` by running the guest with MDE and SS cleared in
MDSCR_EL1 while the lock is set, and by trapping debug register accesses.

Modelled as overrides of the 5.15 baseline: the rest of KVM moved between
5.15 and 5.18, but not in ways that touch the debug state the kit shows.
"""

from __future__ import annotations

import errno

from kvmdbg.arch.bits import OSLAR_OSLK, OSLSR_OSLK
from kvmdbg.kvm import debug as d
from kvmdbg.kvm.api import Env, models
from kvmdbg.kvm.context import Vcpu
from kvmdbg.kvm.definition import Patch
from kvmdbg.kvm.sys_regs import Cp14Desc, Params, SysRegDesc, read_from_write_only, write_to_read_only
from kvmdbg.patches.registry import register


def kvm_vcpu_os_lock_enabled(vcpu: Vcpu) -> bool:
    """kvm_host.h: the guest's stored OSLSR_EL1.OSLK."""
    return bool(vcpu.ctxt.sys_regs.get("OSLSR_EL1", 0) & OSLSR_OSLK)


@models("trap_oslar_el1")
def trap_oslar_el1_upstream(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """5.18 ``trap_oslar_el1``: forward OSLAR.OSLK into the stored OSLSR.OSLK; reads UNDEF."""
    if not p.is_write:
        return read_from_write_only(env, vcpu, p, r)
    oslsr = vcpu.ctxt.sys_regs.get("OSLSR_EL1", 0) & ~OSLSR_OSLK
    if p.regval & OSLAR_OSLK:
        oslsr |= OSLSR_OSLK
    vcpu.ctxt.sys_regs["OSLSR_EL1"] = oslsr
    return True


@models("trap_oslsr_el1")
def trap_oslsr_el1_upstream(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """5.18 ``trap_oslsr_el1``: reads return the stored value; writes UNDEF (write_to_read_only)."""
    if p.is_write:
        return write_to_read_only(env, vcpu, p, r)
    p.regval = vcpu.ctxt.sys_regs.get("OSLSR_EL1", 0)
    return True


# The reset value: 0x8, the OS Lock *unlocked* (only OSLM = 0b10, "implemented", in
# the 5.18 sys_reg_descs[] entry for OSLSR_EL1). The architecture resets OSLK to 1
# (a cold reset leaves the lock set, and v1 2/3 followed it with 0xA). 5.18 resets
# unlocked on purpose, and the model follows the code: a deliberate deviation from
# the architecture, not a modelling error.
OSLSR_RESET = 0x8


def set_oslsr_el1(env: Env, vcpu: Vcpu, r: SysRegDesc, value: int) -> int:
    """5.18 ``set_oslsr_el1``: only OSLK may differ from the reset value 0x8, else -EINVAL."""
    if (value ^ r.val) & ~OSLSR_OSLK:
        return -errno.EINVAL
    vcpu.ctxt.sys_regs["OSLSR_EL1"] = value
    return 0


@models("kvm_arm_setup_mdcr_el2")
def kvm_arm_setup_mdcr_el2_upstream(env: Env, vcpu: Vcpu) -> None:
    """5.18: as 5.15, and TDA also while the guest's OS Lock is set."""
    d.kvm_arm_setup_mdcr_el2(env, vcpu)
    if kvm_vcpu_os_lock_enabled(vcpu):
        vcpu.mdcr_el2 |= d.MDCR_EL2_TDA


@models("kvm_arm_setup_debug")
def kvm_arm_setup_debug_upstream(env: Env, vcpu: Vcpu) -> str:
    """5.18: with the OS Lock set, the guest runs with MDE and SS cleared (unless userspace debugs with them)."""
    env.setup_mdcr(vcpu)
    detail = []
    locked = kvm_vcpu_os_lock_enabled(vcpu)
    if vcpu.guest_debug or locked:
        d.save_guest_debug_regs(env, vcpu)
        mdscr = vcpu.ctxt.sys_regs.get("MDSCR_EL1", 0)
        if "SINGLESTEP" in vcpu.guest_debug:
            vcpu.pstate_ss = True
            mdscr |= d.MDSCR_SS
        else:
            mdscr &= ~d.MDSCR_SS
        if "USE_HW" in vcpu.guest_debug:
            mdscr |= d.MDSCR_MDE  # userspace debugging wins over the guest's OS Lock
            vcpu.use_external_debug = True
            vcpu.flags.add(d.DEBUG_DIRTY)
        elif locked:
            mdscr &= ~d.MDSCR_MDE
        vcpu.ctxt.sys_regs["MDSCR_EL1"] = mdscr
        why = "guest OS Lock set" if locked else "userspace debugging"
        if locked and vcpu.guest_debug:
            why = "guest OS Lock set and userspace debugging"
        detail.append(f"{why}: guest runs with MDSCR_EL1={mdscr:#x} "
                      f"(its own value {vcpu.preserved_mdscr:#x} is kept aside)")
    if vcpu.ctxt.sys_regs.get("MDSCR_EL1", 0) & (d.MDSCR_KDE | d.MDSCR_MDE):
        vcpu.flags.add(d.DEBUG_DIRTY)
    detail.insert(0, f"vcpu->arch.mdcr_el2={vcpu.mdcr_el2:#x}")
    return "; ".join(detail)


@models("kvm_arm_clear_debug")
def kvm_arm_clear_debug_upstream(env: Env, vcpu: Vcpu) -> str:
    """5.18: restore the guest's own MDSCR_EL1 after any run that changed it."""
    if vcpu.guest_debug or kvm_vcpu_os_lock_enabled(vcpu):
        d.restore_guest_debug_regs(env, vcpu)
        if "USE_HW" in vcpu.guest_debug:
            vcpu.use_external_debug = False
        return "guest's own MDSCR_EL1 restored"
    return ""


PATCH = register(Patch(
    name="upstream",
    title="KVM: arm64: Emulate the OS Lock (v5, merged for Linux 5.18)",
    summary=(
        "Keeps the guest's OS Lock out of the hardware. OSLAR_EL1 writes set or clear a stored OSLK, "
        "OSLSR_EL1 reads return the stored value, reads of OSLAR and writes of OSLSR UNDEF (in the "
        "architecture already, so KVM's handlers for them are a fallback), "
        "a vCPU resets unlocked (0x8: a deliberate deviation from the architecture, whose OS Lock is "
        "locked out of reset, as v1 2/3 had it), and userspace may change only the OSLK bit. While "
        "the guest's "
        "lock is set, KVM runs the guest with MDSCR_EL1.MDE and SS cleared (its own MDSCR is kept "
        "aside) and traps debug register accesses, so breakpoints, watchpoints and single step are "
        "blocked for the guest alone; BRK still works, and a VMM debugging with hardware breakpoints "
        "takes precedence."
    ),
    message_id="<20220203174159.2887882-1-oupton@google.com>",
    files=("arch/arm64/include/asm/kvm_host.h", "arch/arm64/include/asm/sysreg.h",
           "arch/arm64/kvm/debug.c", "arch/arm64/kvm/sys_regs.c"),
    sys_regs=(
        SysRegDesc("OSLAR_EL1", trap_oslar_el1_upstream),
        SysRegDesc("OSLSR_EL1", trap_oslsr_el1_upstream, reg="OSLSR_EL1", reset="reset_val", val=OSLSR_RESET,
                   set_user=set_oslsr_el1),
    ),
    cp14=(
        Cp14Desc("DBGOSLAR", (0, 1, 0, 4), trap_oslar_el1_upstream, aarch64="OSLAR_EL1"),
        Cp14Desc("DBGOSLSR", (0, 1, 1, 4), trap_oslsr_el1_upstream, reg="OSLSR_EL1", aarch64="OSLSR_EL1"),
    ),
    new_slots=(("MDCCINT_EL1", "OSLSR_EL1"),),
    hooks={"kvm_arm_setup_debug": kvm_arm_setup_debug_upstream,
           "kvm_arm_clear_debug": kvm_arm_clear_debug_upstream,
           "kvm_arm_setup_mdcr_el2": kvm_arm_setup_mdcr_el2_upstream},
    notes={
        "kvm_arm_setup_debug": "5.18: while the guest's OSLK is set, MDE and SS are cleared in the MDSCR_EL1 "
                               "the guest runs with, unless userspace debugs with USE_HW / SINGLESTEP.",
        "kvm_arm_clear_debug": "5.18: the guest's own MDSCR_EL1 is put back after the run.",
        "trap_oslar_el1": "5.18: stores OSLK in the vCPU context only; reads UNDEF.",
        "trap_oslsr_el1": "5.18: returns the stored value; writes UNDEF.",
        "kvm_reset_sys_regs": "5.18: OSLSR_EL1 resets to 0x8 (unlocked), deliberately unlike the "
                              "architecture's locked reset.",
        "__activate_traps": "5.18: MDCR_EL2.TDA is set while the guest's OS Lock is set.",
    },
    series="v5",
    date="2022-02-03",
))
