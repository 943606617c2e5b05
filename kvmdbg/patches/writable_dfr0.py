"""ID_AA64DFR0_EL1 writable by userspace, as in Linux 6.7: the answer to patch 3's objection.

Patch 3 of the v1 series raised the debug version KVM reports, and the review refused it
because ID_AA64DFR0_EL1 was invariant for userspace: a VM saved on a kernel that reported
DebugVer 6 could not be restored on one that reported more. Linux 6.5 moved the ID
registers into per-VM storage (Jing Zhang and Oliver Upton, "KVM: arm64: Save ID
registers' sanitized value per guest" and the commits after it), and 6.7 ("KVM: arm64:
Enable 'writable' ID registers", v11, merged by Oliver Upton on 4 Oct 2023) let
userspace lower DebugVer and PMUVer, and raised the reported debug version to Armv8.8
("KVM: arm64: Bump up the default KVM sanitised debug version to v8p8"). Modelled from
those sources, on top of the 5.18 OS Lock design (:mod:`kvmdbg.patches.upstream`),
whose handlers 6.7 still has unchanged:

* ``read_sanitised_id_aa64dfr0_el1()`` is the reset value and the upper limit: the
  host's sanitised value with DebugVer capped at 0xA (Armv8.8), PMUVer set only if the
  vCPU has a PMU, PMSVer 0 (SPE hidden); DoubleLock, BRPs, WRPs and CTX_CMPs stay as the
  host has them (so a Cortex-A57 guest is told DoubleLock is implemented, while OSDLR_EL1
  stays RAZ/WI, as in 5.15).
* The value lives in ``kvm->arch.id_regs[]``: one per VM, shared by every vCPU; guest
  reads (``access_id_reg()`` -> ``read_id_reg()``) and KVM_GET_ONE_REG return it.
* ``set_id_aa64dfr0_el1()``: a PMUVer of 0xF (IMPLEMENTATION DEFINED) is rewritten to 0;
  DebugVer below 6 is -EINVAL; then ``set_id_reg()``: once the VM has run
  (``kvm_vm_has_ran_once()``) a different value is -EBUSY and the same value is accepted;
  before that, ``arm64_check_features()`` lets DebugVer and PMUVer (the descriptor's
  ``.val``, the writable mask 0xf0f) be lowered but not raised, and every other bit must
  equal the limit; any refusal is -EINVAL.
* ``kvm_arch_vcpu_run_pid_change()`` sets KVM_ARCH_FLAG_HAS_RAN_ONCE at the first KVM_RUN.

Simplifications, each deliberate: the per-VM value is computed when first read, not at
the first vCPU reset (``kvm_reset_id_regs()``); the two are the same here because the
reset value depends only on the PE and on whether the vCPUs have a PMU, which a Machine
fixes at creation. PMUVer keeps the 5.15 cap of PMUv3 for Armv8.4 (5); later kernels
cap it differently, which makes no difference for the modelled CPUs (PMUVer 1 and 4).
Only the first vCPU's first KVM_RUN shows the run_pid_change step (later vCPUs'
first runs change nothing the model holds). The PMUVer signedness slip later fixed by
"KVM: arm64: Fix the ID_AA64DFR0_EL1 PMUVer check" (values 0x8-0xE treated as lower) is
not modelled.
"""

from __future__ import annotations

import errno

from kvmdbg.arch.registers import REGISTERS
from kvmdbg.kvm.api import Env, models
from kvmdbg.kvm.context import Vcpu
from kvmdbg.kvm.definition import Patch, StepEdit
from kvmdbg.kvm.switch import SwitchStep, World
from kvmdbg.kvm.sys_regs import (
    SysRegDesc,
    access_id_reg,
    cap_perfmon_field,
    get_id_reg,
    read_sanitised_ftr_reg,
)
from kvmdbg.patches.registry import register

_DFR0 = REGISTERS["ID_AA64DFR0_EL1"]
DEBUGVER_IMP = 0x6  # Armv8.0 debug: the lowest value KVM accepts (ID_AA64DFR0_EL1_DebugVer_IMP)
DEBUGVER_V8P8 = 0xA  # the cap on what KVM reports (ID_AA64DFR0_EL1_DebugVer_V8P8)
PMUVER_IMP_DEF = 0xF
WRITABLE = _DFR0.field("DebugVer").mask | _DFR0.field("PMUVer").mask  # the descriptor's .val: 0xf0f
_SLOT = "ID_AA64DFR0_EL1"  # kvm->arch.id_regs[] entry
_READY = "id_regs_initialized"  # KVM_ARCH_FLAG_ID_REGS_INITIALIZED
_RAN = "has_ran_once"  # KVM_ARCH_FLAG_HAS_RAN_ONCE


@models("read_sanitised_id_aa64dfr0_el1")
def read_sanitised_id_aa64dfr0_el1(env: Env, vcpu: Vcpu) -> int:
    """6.7: the host's value, DebugVer capped at v8.8, PMUVer only with a PMU, SPE hidden."""
    val = read_sanitised_ftr_reg(env, "ID_AA64DFR0_EL1")
    val = _DFR0.set(val, "DebugVer", min(_DFR0.get(val, "DebugVer"), DEBUGVER_V8P8))
    val = cap_perfmon_field(val, 0x5) if env.pmu else _DFR0.set(val, "PMUVer", 0)
    return _DFR0.set(val, "PMSVer", 0)


@models("read_id_reg")
def read_id_reg_per_vm(env: Env, vcpu: Vcpu, name: str) -> int:
    """6.7 ``read_id_reg()``: the VM's stored value (``IDREG(vcpu->kvm, ...)``)."""
    if not env.vm[_READY]:
        env.vm[_SLOT] = read_sanitised_id_aa64dfr0_el1(env, vcpu)
        env.vm[_READY] = 1
    return env.vm[_SLOT]


def _check_features(limit: int, value: int) -> bool:
    """``arm64_check_features()`` for ID_AA64DFR0_EL1: the writable fields lower-safe, the rest exact."""
    for name in ("DebugVer", "PMUVer"):
        if _DFR0.get(value, name) > _DFR0.get(limit, name):
            return False
    return (value & ~WRITABLE) == (limit & ~WRITABLE)


@models("set_id_aa64dfr0_el1")
def set_id_aa64dfr0_el1(env: Env, vcpu: Vcpu, r: SysRegDesc, value: int) -> int:
    """6.7: DebugVer and PMUVer may be lowered (not below v8.0 debug) until the VM first runs."""
    if _DFR0.get(value, "PMUVer") == PMUVER_IMP_DEF:
        value = _DFR0.set(value, "PMUVer", 0)
    if _DFR0.get(value, "DebugVer") < DEBUGVER_IMP:
        return -errno.EINVAL
    current = read_id_reg_per_vm(env, vcpu, r.name)
    if env.vm[_RAN]:  # set_id_reg(): only the value already there, once the VM has run
        return 0 if value == current else -errno.EBUSY
    if not _check_features(read_sanitised_id_aa64dfr0_el1(env, vcpu), value):
        return -errno.EINVAL
    env.vm[_SLOT] = value
    return 0


def kvm_arch_vcpu_run_pid_change(w: World, vcpu: Vcpu) -> str | None:
    """arm.c: the first KVM_RUN marks the VM as having run; its ID registers are fixed from now on."""
    if w.vm[_RAN]:
        return None
    w.vm[_RAN] = 1
    return "first KVM_RUN of this VM: KVM_ARCH_FLAG_HAS_RAN_ONCE set, the ID registers are now fixed"


PATCH = register(Patch(
    name="writable-dfr0",
    title="KVM: arm64: Enable 'writable' ID registers (v11, merged for Linux 6.7)",
    summary=(
        "Answers the objection to patch 3. ID_AA64DFR0_EL1 becomes one value per VM that "
        "userspace may lower: DebugVer (never below Armv8.0 debug) and PMUVer can be set to anything "
        "up to what KVM reports, every other field must match, and only until the VM first runs; "
        "after that a different value is refused with EBUSY. KVM now reports up to Armv8.8 debug, "
        "so a VM saved on an older kernel, which reported Armv8.0, can be restored, and a VMM can "
        "keep a VM's debug version stable across hosts. The OS Lock is handled as in 5.18."
    ),
    message_id="<20231003230408.3405722-1-oliver.upton@linux.dev>",
    files=("arch/arm64/kvm/sys_regs.c", "arch/arm64/kvm/arm.c", "arch/arm64/include/asm/kvm_host.h"),
    base="upstream",
    series="v11",
    sys_regs=(SysRegDesc("ID_AA64DFR0_EL1", access_id_reg, reset="read_sanitised_id_aa64dfr0_el1", val=WRITABLE,
                         get_user=get_id_reg, set_user=set_id_aa64dfr0_el1),),
    hooks={"read_id_reg": read_id_reg_per_vm},
    vm_state={_SLOT: 0, _READY: 0, _RAN: 0},
    steps=(StepEdit(("nvhe.enter", "vhe.enter"), "before", "kvm_arm_setup_debug",
                    SwitchStep("kvm_arch_vcpu_run_pid_change", kvm_arch_vcpu_run_pid_change)),),
    functions={"kvm_arch_vcpu_run_pid_change": "arch/arm64/kvm/arm.c",
               "read_sanitised_id_aa64dfr0_el1": "arch/arm64/kvm/sys_regs.c",
               "set_id_aa64dfr0_el1": "arch/arm64/kvm/sys_regs.c"},
    notes={
        "kvm_arch_vcpu_run_pid_change": "6.7: the VM's first KVM_RUN fixes its ID registers.",
        "read_id_reg": "6.7: ID registers are per VM; ID_AA64DFR0_EL1 reports up to DebugVer 0xA (v8.8).",
        "kvm_arm_sys_reg_set_reg": "6.7: ID_AA64DFR0_EL1 DebugVer/PMUVer may be lowered before the VM runs.",
    },
    date="2023-10-03",
))
