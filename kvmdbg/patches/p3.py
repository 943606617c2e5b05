"""Patch 3/3: "KVM: arm64: Raise KVM's reported debug architecture to v8.2" (v1).

``read_id_reg()`` reports DebugVer 8 (Armv8.2) and DoubleLock 0xF (not
implemented) in the guest's ID_AA64DFR0_EL1; PMUVer and PMSVer handling is
unchanged. No ``set_user`` handler is added, so ``__set_id_reg()`` still
insists on the exact value KVM reports: a vCPU saved on a kernel that
reported DebugVer 6 cannot be restored (-EINVAL). That was the review's
objection (Marc Zyngier, <87k0hw9iez.wl-maz@kernel.org>).
"""

from __future__ import annotations

from kvmdbg.arch.registers import REGISTERS
from kvmdbg.kvm.api import Env, models
from kvmdbg.kvm.context import Vcpu
from kvmdbg.kvm.definition import Patch
from kvmdbg.kvm.sys_regs import read_id_reg_515
from kvmdbg.patches.registry import register

_DFR0 = REGISTERS["ID_AA64DFR0_EL1"]


@models("read_id_reg")
def read_id_reg_p3(env: Env, vcpu: Vcpu, name: str) -> int:
    """Patch 3 ``read_id_reg()``: DebugVer 8 (v8.2) and DoubleLock 0xF (not implemented)."""
    val = read_id_reg_515(env, vcpu, name)
    val = _DFR0.set(val, "DebugVer", 8)  # "Limit debug to ARMv8.2"
    return _DFR0.set(val, "DoubleLock", 0xF)  # "Hide DoubleLock from guests"


PATCH = register(Patch(
    name="p3",
    title="KVM: arm64: Raise KVM's reported debug architecture to v8.2",
    summary=(
        "Changes what ID_AA64DFR0_EL1 tells the guest: debug architecture v8.2 instead of v8.0, and "
        "FEAT_DoubleLock not implemented. Armv8.2 is the first version that allows leaving DoubleLock "
        "out, and KVM treats OSDLR_EL1 as RAZ/WI, so the new value is honest. But the ID register is "
        "invariant for userspace, so a VM saved on a kernel that reported the old value can no "
        "longer be restored on this one: its ID_AA64DFR0_EL1 is refused."
    ),
    message_id="<20211029003202.158161-4-oupton@google.com>",
    files=("arch/arm64/kvm/sys_regs.c",),
    hooks={"read_id_reg": read_id_reg_p3},
    notes={"access_id_reg": "Patch 3: ID_AA64DFR0_EL1 says DebugVer 8 and DoubleLock 0xF.",
           "read_id_reg": "Patch 3: ID_AA64DFR0_EL1 says DebugVer 8 and DoubleLock 0xF."},
    date="2021-10-29",
))
