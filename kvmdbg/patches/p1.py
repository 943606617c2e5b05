"""Patch 1/3: "KVM: arm64: Stash OSLSR_EL1 in the cpu context" (v1, 29 Oct 2021).

OSLSR_EL1 gets a slot in ``enum vcpu_sysreg`` (after DISR_EL1), reset to 0x8
by ``reset_val``; ``trap_oslsr_el1`` returns the stored value instead of a
constant, for the AArch64 register and the cp14 DBGOSLSR view alike. Writes
are still ignored. Because the descriptor now has ``.reg``, the register
shows up in KVM_GET_REG_LIST and userspace can set any 64-bit value.
"""

from __future__ import annotations

from kvmdbg.kvm.api import Env, models
from kvmdbg.kvm.context import Vcpu
from kvmdbg.kvm.definition import Patch
from kvmdbg.kvm.sys_regs import Cp14Desc, Params, SysRegDesc, ignore_write, vcpu_read_sys_reg
from kvmdbg.patches.registry import register


@models("trap_oslsr_el1")
def trap_oslsr_el1_p1(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """Patch 1 ``trap_oslsr_el1``: writes ignored; reads return the stored OSLSR_EL1."""
    if p.is_write:
        return ignore_write(env, vcpu, p)
    p.regval = vcpu_read_sys_reg(env, vcpu, r.reg or "OSLSR_EL1")
    return True


PATCH = register(Patch(
    name="p1",
    title="KVM: arm64: Stash OSLSR_EL1 in the cpu context",
    summary=(
        "Gives OSLSR_EL1 a home in the vCPU's saved context, reset to 0x8 (OS Lock implemented, "
        "unlocked), and makes guest reads return that stored copy instead of a hard-coded constant. "
        "The guest sees no difference; userspace does, because a register with a context slot is "
        "listed by KVM_GET_REG_LIST and can be read and written with KVM_GET/SET_ONE_REG, and "
        "nothing checks what userspace writes."
    ),
    message_id="<20211029003202.158161-2-oupton@google.com>",
    files=("arch/arm64/include/asm/kvm_host.h", "arch/arm64/kvm/sys_regs.c"),
    sys_regs=(SysRegDesc("OSLSR_EL1", trap_oslsr_el1_p1, reg="OSLSR_EL1", reset="reset_val", val=0x8),),
    cp14=(Cp14Desc("DBGOSLSR", (0, 1, 1, 4), trap_oslsr_el1_p1, reg="OSLSR_EL1", aarch64="OSLSR_EL1"),),
    new_slots=(("DISR_EL1", "OSLSR_EL1"),),
    notes={
        "trap_oslsr_el1": "Patch 1: returns the vCPU's stored OSLSR_EL1 instead of the constant 0x8.",
        "kvm_reset_sys_regs": "Patch 1: OSLSR_EL1 gets a context slot, reset to 0x8.",
    },
    date="2021-10-29",
))
