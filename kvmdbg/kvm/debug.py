"""KVM's debug set-up around each guest entry: ``arch/arm64/kvm/debug.c`` (5.15).

``kvm_arm_setup_debug()`` runs before every entry and computes the vCPU's
MDCR_EL2 and the MDSCR_EL1 the guest runs with; ``kvm_arm_clear_debug()``
runs right after every exit and puts the guest's own MDSCR_EL1 back.
"""

from __future__ import annotations

from kvmdbg.arch import bits
from kvmdbg.kvm.api import Env
from kvmdbg.kvm.context import DEBUG_DIRTY, Vcpu

__all__ = [
    "MDCR_EL2_TDE", "MDCR_EL2_TDA", "MDCR_EL2_TDOSA", "MDCR_EL2_TDRA", "MDCR_EL2_ALWAYS",
    "MDSCR_SS", "MDSCR_KDE", "MDSCR_MDE", "DEBUG_DIRTY",
    "kvm_arm_setup_mdcr_el2", "kvm_arm_setup_debug", "kvm_arm_clear_debug",
]

MDCR_EL2_TPMCR = bits.MDCR_TPMCR
MDCR_EL2_TPM = bits.MDCR_TPM
MDCR_EL2_TDE = bits.MDCR_TDE
MDCR_EL2_TDA = bits.MDCR_TDA
MDCR_EL2_TDOSA = bits.MDCR_TDOSA
MDCR_EL2_TDRA = bits.MDCR_TDRA
MDCR_EL2_TPMS = bits.MDCR_TPMS
MDCR_EL2_TTRF = bits.MDCR_TTRF
# Set for every vCPU, whatever the guest does (kvm_arm_setup_mdcr_el2).
MDCR_EL2_ALWAYS = MDCR_EL2_TPM | MDCR_EL2_TPMS | MDCR_EL2_TTRF | MDCR_EL2_TPMCR | MDCR_EL2_TDRA | MDCR_EL2_TDOSA

MDSCR_SS = bits.MDSCR_SS
MDSCR_KDE = bits.MDSCR_KDE
MDSCR_MDE = bits.MDSCR_MDE


def kvm_arm_setup_mdcr_el2(env: Env, vcpu: Vcpu) -> None:
    """5.15: TDOSA and TDRA always; TDE whenever userspace debugs; TDA unless the guest's debug state is live."""
    mdcr = env.host_mdcr_el2 & bits.MDCR_HPMN  # keep HPMN
    mdcr |= MDCR_EL2_ALWAYS
    if vcpu.guest_debug:
        mdcr |= MDCR_EL2_TDE
    if "USE_HW" in vcpu.guest_debug or DEBUG_DIRTY not in vcpu.flags:
        mdcr |= MDCR_EL2_TDA
    vcpu.mdcr_el2 = mdcr


def save_guest_debug_regs(env: Env, vcpu: Vcpu) -> None:
    vcpu.preserved_mdscr = vcpu.ctxt.sys_regs.get("MDSCR_EL1", 0) & 0xFFFFFFFF  # a u32 in 5.15


def restore_guest_debug_regs(env: Env, vcpu: Vcpu) -> None:
    if vcpu.preserved_mdscr is not None:
        vcpu.ctxt.sys_regs["MDSCR_EL1"] = vcpu.preserved_mdscr
        vcpu.preserved_mdscr = None


def kvm_arm_setup_debug(env: Env, vcpu: Vcpu) -> str:
    """5.15: only userspace debugging (KVM_SET_GUEST_DEBUG) changes the guest's MDSCR_EL1."""
    env.setup_mdcr(vcpu)
    detail = []
    if vcpu.guest_debug:
        save_guest_debug_regs(env, vcpu)
        mdscr = vcpu.ctxt.sys_regs.get("MDSCR_EL1", 0)
        if "SINGLESTEP" in vcpu.guest_debug:
            vcpu.pstate_ss = True
            mdscr |= MDSCR_SS
        else:
            mdscr &= ~MDSCR_SS
        if "USE_HW" in vcpu.guest_debug:
            mdscr |= MDSCR_MDE
            vcpu.use_external_debug = True
            vcpu.flags.add(DEBUG_DIRTY)
        vcpu.ctxt.sys_regs["MDSCR_EL1"] = mdscr
        detail.append(f"userspace debugging: guest runs with MDSCR_EL1={mdscr:#x}")
    if vcpu.ctxt.sys_regs.get("MDSCR_EL1", 0) & (MDSCR_KDE | MDSCR_MDE):
        vcpu.flags.add(DEBUG_DIRTY)
    detail.insert(0, f"vcpu->arch.mdcr_el2={vcpu.mdcr_el2:#x}")
    return "; ".join(detail)


def kvm_arm_clear_debug(env: Env, vcpu: Vcpu) -> str:
    """5.15: undo what kvm_arm_setup_debug did for userspace debugging."""
    if vcpu.guest_debug:
        restore_guest_debug_regs(env, vcpu)
        if "USE_HW" in vcpu.guest_debug:
            vcpu.use_external_debug = False  # kvm_arm_reset_debug_ptr()
        return "guest's own MDSCR_EL1 restored"
    return ""
