"""KVM's system-register emulation, as in ``arch/arm64/kvm/sys_regs.c`` (5.15).

A table of descriptors keyed by encoding, each pointing at a small handler
named after the kernel function it models. Patches replace entries of this
table (see :mod:`kvmdbg.patches`); nothing here knows which variant runs.

Handlers take ``(env, vcpu, p, r)`` like the kernel's ``(vcpu, p, r)``,
plus the :class:`~kvmdbg.kvm.runtime.Kvm` they run in, and return True when
the access completed (the PC is then advanced by ``kvm_incr_pc``) or False
when they injected an exception instead.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kvmdbg.arch.registers import REGISTERS, Encoding
from kvmdbg.kvm.api import Env, Params, kernel_name, models
from kvmdbg.kvm.context import DEBUG_DIRTY, Vcpu

__all__ = [
    "Params",
    "SysRegDesc",
    "Cp14Desc",
    "VCPU_SYSREG_515",
    "RESET_UNKNOWN",
    "CORE_REG_IDS",
    "VHE_SYSREGS_ON_CPU",
    "BASELINE_SYS_REGS",
    "BASELINE_CP14",
    "trap_raz_wi",
    "access_vm_reg",
    "on_cpu_name",
    "trap_oslsr_el1_515",
    "trap_debug_regs",
    "access_id_reg",
    "read_id_reg_515",
    "vcpu_read_sys_reg",
    "vcpu_write_sys_reg",
]

Handler = Callable[[Env, Vcpu, Params, "SysRegDesc"], bool]
UserGet = Callable[[Env, Vcpu, "SysRegDesc"], int]
UserSet = Callable[[Env, Vcpu, "SysRegDesc", int], int]  # returns 0 or -errno

# ``enum vcpu_sysreg`` in 5.15's arch/arm64/include/asm/kvm_host.h, complete: the
# indices matter, because patch 2's OSLAR handler passes a value where an index
# belongs (see kvmdbg/patches/p2.py), so a planted OSLSR value can reach any slot.
# Checked against a 5.15-era tree (OSS-SSH/linux 2baa35fe, kvm_host.h) and the
# context lines of patch 1 (DISR_EL1 is followed by PMCR_EL0); PMSWINC_EL0 left
# the enum before 5.15 (commit 7a3ba3095a32, "KVM: arm64: Remove PMSWINC_EL0
# shadow register", merged for 5.15). Patch 1 inserts OSLSR_EL1 after DISR_EL1
# (index 26), which moves PMCR_EL0 to 27 and everything after it up by one.
VCPU_SYSREG_515: tuple[str, ...] = (
    "__INVALID_SYSREG__", "MPIDR_EL1", "CSSELR_EL1", "SCTLR_EL1", "ACTLR_EL1", "CPACR_EL1",
    "ZCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "ESR_EL1", "AFSR0_EL1", "AFSR1_EL1",
    "FAR_EL1", "MAIR_EL1", "VBAR_EL1", "CONTEXTIDR_EL1", "TPIDR_EL0", "TPIDRRO_EL0",
    "TPIDR_EL1", "AMAIR_EL1", "CNTKCTL_EL1", "PAR_EL1", "MDSCR_EL1", "MDCCINT_EL1", "DISR_EL1",
    # Performance Monitors registers
    "PMCR_EL0", "PMSELR_EL0", *(f"PMEVCNTR{n}_EL0" for n in range(31)), "PMCCNTR_EL0",
    *(f"PMEVTYPER{n}_EL0" for n in range(31)), "PMCCFILTR_EL0", "PMCNTENSET_EL0",
    "PMINTENSET_EL1", "PMOVSSET_EL0", "PMUSERENR_EL0",
    # Pointer authentication keys
    "APIAKEYLO_EL1", "APIAKEYHI_EL1", "APIBKEYLO_EL1", "APIBKEYHI_EL1", "APDAKEYLO_EL1",
    "APDAKEYHI_EL1", "APDBKEYLO_EL1", "APDBKEYHI_EL1", "APGAKEYLO_EL1", "APGAKEYHI_EL1",
    "ELR_EL1", "SP_EL1", "SPSR_EL1",
    "CNTVOFF_EL2", "CNTV_CVAL_EL0", "CNTV_CTL_EL0", "CNTP_CVAL_EL0", "CNTP_CTL_EL0",
    # Memory Tagging Extension
    "RGSR_EL1", "GCR_EL1", "TFSR_EL1", "TFSRE0_EL1",
    # 32-bit specific registers, kept at the end of the range
    "DACR32_EL2", "IFSR32_EL2", "FPEXC32_EL2", "DBGVCR32_EL2",
)
"""Every ``enum vcpu_sysreg`` entry of 5.15, in order; its length is NR_SYS_REGS."""

# ``reset_unknown()`` (arch/arm64/kvm/sys_regs.h, 5.15) stores this marker in every
# register whose architectural reset value is UNKNOWN. The real runs under QEMU saw a
# guest read it from TTBR1_EL1 and KVM_GET_ONE_REG return it.
RESET_UNKNOWN = 0x1DE7EC7EDBADC0DE

# ELR_EL1 and SPSR_EL1 live in sys_regs[] (5.15) but have no sys_reg_descs[] entry:
# userspace reaches them as core registers (KVM_REG_ARM_CORE, struct kvm_regs in
# arch/arm64/include/uapi/asm/kvm.h; core_reg_addr() in arch/arm64/kvm/guest.c maps
# elr_el1 and spsr[KVM_SPSR_EL1] to those slots). The id is the byte offset in
# struct kvm_regs divided by 4: elr_el1 at 280, spsr[0] at 288.
KVM_REG_ARM_CORE_BASE = 0x6030000000100000
CORE_REG_IDS: Mapping[str, int] = MappingProxyType({
    "ELR_EL1": KVM_REG_ARM_CORE_BASE | (280 // 4),
    "SPSR_EL1": KVM_REG_ARM_CORE_BASE | (288 // 4),
})

# The registers ``__vcpu_read_sys_reg_from_cpu()`` / ``__vcpu_write_sys_reg_to_cpu()``
# reach on the CPU while a vCPU is loaded on a VHE host (kvm_host.h, 5.15).
# OSLSR_EL1 and MDSCR_EL1 are not among them, in any variant.
VHE_SYSREGS_ON_CPU = frozenset({
    "CSSELR_EL1", "SCTLR_EL1", "CPACR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "ESR_EL1",
    "AFSR0_EL1", "AFSR1_EL1", "FAR_EL1", "MAIR_EL1", "VBAR_EL1", "CONTEXTIDR_EL1", "TPIDR_EL0",
    "TPIDRRO_EL0", "TPIDR_EL1", "AMAIR_EL1", "CNTKCTL_EL1", "ELR_EL1", "PAR_EL1", "DACR32_EL2",
    "IFSR32_EL2", "DBGVCR32_EL2",
})


@dataclass(frozen=True, slots=True)
class SysRegDesc:
    """``struct sys_reg_desc``: one entry of ``sys_reg_descs[]``.

    ``reg`` is the ``enum vcpu_sysreg`` slot (None for 0: nothing stored),
    ``reset`` the reset function's kernel name with ``val`` its argument.
    ``get_user``/``set_user`` are None where the kernel uses the defaults.
    """

    name: str
    access: Handler | None
    reg: str | None = None
    reset: str | None = None
    val: int = 0
    get_user: UserGet | None = None
    set_user: UserSet | None = None
    debug_kind: str | None = None  # "BVR"/"BCR"/"WVR"/"WCR" for the breakpoint and watchpoint files
    debug_index: int = 0

    @property
    def handler_name(self) -> str:
        return kernel_name(self.access) if self.access else "(none)"

    @property
    def listed(self) -> bool:
        """``walk_one_sys_reg()``: listed in KVM_GET_REG_LIST iff ``reg || get_user``."""
        return self.reg is not None or self.get_user is not None


@dataclass(frozen=True, slots=True)
class Cp14Desc:
    """An entry of ``cp14_regs[]``: (Op1, CRn, CRm, Op2) -> handler."""

    name: str
    key: tuple[int, int, int, int]
    access: Handler
    reg: str | None = None
    aarch64: str = ""

    @property
    def handler_name(self) -> str:
        return kernel_name(self.access)


# --- accessors of the vCPU context (kvm_host.h / sys_regs.c) --------------------------


def _slot_name(env: Env, reg: str | int) -> str | None:
    """The enum entry at ``reg`` (an index may be anything: p2 passes a value), or None past the end."""
    if isinstance(reg, str):
        return reg
    layout = env.layout
    return layout[reg] if 0 <= reg < len(layout) else None


# The encoding ``__vcpu_write_sys_reg_to_cpu()`` uses for each on-CPU register (kvm_host.h,
# 5.15): the EL12 alias for EL1 registers the host's own EL1 view would otherwise hide,
# the plain name for the others.
_PLAIN_ON_CPU = frozenset({"CSSELR_EL1", "TPIDR_EL0", "TPIDRRO_EL0", "TPIDR_EL1", "PAR_EL1",
                           "DACR32_EL2", "IFSR32_EL2", "DBGVCR32_EL2"})


def on_cpu_name(name: str) -> str:
    """``SYS_TTBR1_EL12`` for TTBR1_EL1, ``SYS_TPIDR_EL1`` for TPIDR_EL1, and so on."""
    if name in _PLAIN_ON_CPU or not name.endswith("_EL1"):
        return name
    return name[: -len("_EL1")] + "_EL12"


def vcpu_read_sys_reg(env: Env, vcpu: Vcpu, reg: str | int) -> int:
    """``vcpu_read_sys_reg()``: from the CPU for the VHE on-CPU list while loaded, else memory."""
    name = _slot_name(env, reg)
    if name is None:
        env.note(f"read of sys_regs[{reg}] is past the end of the array (NR_SYS_REGS = "
                 f"{len(env.layout)}): the kernel reads whatever memory follows it; "
                 "the model returns 0")
        return 0
    if env.vhe and vcpu.loaded and name in VHE_SYSREGS_ON_CPU and env.cpu_has(name):
        return env.cpu_read(name)
    return vcpu.ctxt.sys_regs.get(name, 0)


def vcpu_write_sys_reg(env: Env, vcpu: Vcpu, val: int, reg: str | int) -> None:
    """``vcpu_write_sys_reg(vcpu, val, reg)``: note the order, value before register."""
    name = _slot_name(env, reg)
    if name is None:
        # In C this is an out-of-bounds store: sys_regs[] is followed by the rest of the
        # vCPU structure, state KVM itself relies on (and on VHE, where KVM is part of the
        # host kernel at EL2, state it loads into the host's own registers). The model does
        # not corrupt memory it does not have; it says so instead.
        env.note(f"sys_regs[{reg}] is past the end of the array (NR_SYS_REGS = "
                 f"{len(env.layout)}): the kernel stores {val:#x} out of bounds, into "
                 "whatever follows the array in the vCPU structure"
                 + (", which on VHE may end up in a register the host itself runs with"
                    if env.vhe else "") + "; the model does not emulate that corruption")
        return
    if env.vhe and vcpu.loaded and name in VHE_SYSREGS_ON_CPU and env.cpu_has(name):
        env.cpu_write(name, val)
        env.note(f"{on_cpu_name(name)} on the CPU <- {val:#x} (the vCPU is loaded on VHE)")
        return
    vcpu.ctxt.sys_regs[name] = val


# --- handlers: sys_regs.c, 5.15 -------------------------------------------------------


def ignore_write(env: Env, vcpu: Vcpu, p: Params) -> bool:
    return True


def read_zero(env: Env, vcpu: Vcpu, p: Params) -> bool:
    p.regval = 0
    return True


def trap_raz_wi(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """RAZ/WI: reads give 0, writes are dropped."""
    return ignore_write(env, vcpu, p) if p.is_write else read_zero(env, vcpu, p)


@models("trap_oslsr_el1")
def trap_oslsr_el1_515(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """5.15 ``trap_oslsr_el1``: writes ignored; reads return the constant 0x8 (OSLM=0b10)."""
    if p.is_write:
        return ignore_write(env, vcpu, p)
    p.regval = 1 << 3
    return True


def trap_debug_regs(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """MDSCR_EL1 and friends: stored in the context; a write marks debug state dirty."""
    assert r.reg is not None
    if p.is_write:
        vcpu_write_sys_reg(env, vcpu, p.regval, r.reg)
        vcpu.flags.add(DEBUG_DIRTY)
    else:
        p.regval = vcpu_read_sys_reg(env, vcpu, r.reg)
    return True


def access_vm_reg(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """``access_vm_reg()``: the stored register, reached only when HCR_EL2.TVM/TRVM trap it.

    The model never sets TVM or TRVM, so a guest reaches these registers on the PE without
    trapping; the handler is here so that the table matches the kernel's.
    """
    assert r.reg is not None
    if p.is_write:
        vcpu_write_sys_reg(env, vcpu, p.regval, r.reg)
    else:
        p.regval = vcpu_read_sys_reg(env, vcpu, r.reg)
    return True


def access_csselr(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """``access_csselr()``: the stored CSSELR_EL1, reached only when HCR_EL2.TID2 traps it.

    The model never sets TID2, so the guest reads and writes CSSELR_EL1 on the PE.
    """
    return access_vm_reg(env, vcpu, p, r)


def _trap_dbg(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """trap_bvr/bcr/wvr/wcr: the vCPU's own debug register file (vcpu_debug_state)."""
    assert r.debug_kind is not None
    regs = vcpu.debug.array(r.debug_kind)
    if p.is_write:
        regs[r.debug_index] = p.regval  # reg_to_dbg()
        vcpu.flags.add(DEBUG_DIRTY)
    else:
        p.regval = regs[r.debug_index]  # dbg_to_reg()
    return True


# The kernel has one function per kind (trap_bvr, trap_bcr, trap_wvr, trap_wcr); they differ
# only in which array of the vCPU's debug state they index, which the descriptor says here.
@models("trap_bvr")
def trap_bvr(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """``trap_bvr()``: a breakpoint value register of the vCPU's debug state."""
    return _trap_dbg(env, vcpu, p, r)


@models("trap_bcr")
def trap_bcr(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """``trap_bcr()``: a breakpoint control register of the vCPU's debug state."""
    return _trap_dbg(env, vcpu, p, r)


@models("trap_wvr")
def trap_wvr(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """``trap_wvr()``: a watchpoint value register of the vCPU's debug state."""
    return _trap_dbg(env, vcpu, p, r)


@models("trap_wcr")
def trap_wcr(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """``trap_wcr()``: a watchpoint control register of the vCPU's debug state."""
    return _trap_dbg(env, vcpu, p, r)


def get_dbg(env: Env, vcpu: Vcpu, r: SysRegDesc) -> int:
    assert r.debug_kind is not None
    return vcpu.debug.array(r.debug_kind)[r.debug_index]


def set_dbg(env: Env, vcpu: Vcpu, r: SysRegDesc, value: int) -> int:
    assert r.debug_kind is not None
    vcpu.debug.array(r.debug_kind)[r.debug_index] = value
    return 0


# ID_AA64DFR0_EL1 fields the 5.15 cpufeature code describes (ftr_id_aa64dfr0);
# read_sanitised_ftr_reg() keeps only described fields, so TraceVer and
# TraceFilt read as 0 whatever the CPU says.
_DFR0 = REGISTERS["ID_AA64DFR0_EL1"]
_DFR0_SANITISED_MASK = 0
for _name in ("DebugVer", "PMUVer", "BRPs", "WRPs", "CTX_CMPs", "PMSVer", "DoubleLock"):
    _DFR0_SANITISED_MASK |= _DFR0.field(_name).mask


def cap_perfmon_field(value: int, cap: int) -> int:
    """``cpuid_feature_cap_perfmon_field()``: IMP DEF (0xF) counts as 0, then min(value, cap)."""
    pmuver = _DFR0.get(value, "PMUVer")
    if pmuver == 0xF:
        pmuver = 0
    return _DFR0.set(value, "PMUVer", min(pmuver, cap))


def read_sanitised_ftr_reg(env: Env, name: str) -> int:
    """``read_sanitised_ftr_reg()`` (cpufeature.c): the PE's ID register, only the fields the host describes."""
    assert name == "ID_AA64DFR0_EL1", f"the model sanitises only ID_AA64DFR0_EL1, not {name}"
    return env.cpu_id_reg(name) & _DFR0_SANITISED_MASK


def read_id_reg_515(env: Env, vcpu: Vcpu, name: str) -> int:
    """5.15 ``read_id_reg()`` for ID_AA64DFR0_EL1: DebugVer 6, PMUVer capped, PMSVer hidden."""
    val = read_sanitised_ftr_reg(env, name)
    val = _DFR0.set(val, "DebugVer", 6)  # "Limit debug to ARMv8.0"
    val = cap_perfmon_field(val, 0x5 if env.pmu else 0)  # PMUv3 for ARMv8.4 (0x5), or none
    val = _DFR0.set(val, "PMSVer", 0)  # hide SPE
    return val


def access_id_reg(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """Guest reads of an ID register return the sanitised value; writes UNDEF."""
    if p.is_write:
        return write_to_read_only(env, vcpu, p, r)
    p.regval = env.id_reg(vcpu, r.name)
    return True


def get_id_reg(env: Env, vcpu: Vcpu, r: SysRegDesc) -> int:
    return env.id_reg(vcpu, r.name)


def set_id_reg(env: Env, vcpu: Vcpu, r: SysRegDesc, value: int) -> int:
    """``__set_id_reg()``: "invariant": any value other than what KVM reports is -EINVAL."""
    if value != env.id_reg(vcpu, r.name):
        return -errno.EINVAL
    return 0


def write_to_read_only(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """WARN_ONCE, print_sys_reg_instr, then ``kvm_inject_undefined``; the PC stays put."""
    env.inject_undefined(vcpu, f"{r.name} is read-only: KVM's write_to_read_only() injected an UNDEF")
    return False


def read_from_write_only(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """WARN_ONCE, print_sys_reg_instr, then ``kvm_inject_undefined``; the PC stays put."""
    env.inject_undefined(vcpu, f"{r.name} is write-only: KVM's read_from_write_only() injected an UNDEF")
    return False


# --- the 5.15 tables --------------------------------------------------------------------


def _desc(name: str, access: Handler | None, **kw: Any) -> tuple[Encoding, SysRegDesc]:
    enc = REGISTERS[name].encoding
    assert enc is not None
    return enc, SysRegDesc(name, access, **kw)


def _baseline() -> dict[Encoding, SysRegDesc]:
    table: dict[Encoding, SysRegDesc] = {}
    for n in range(16):  # DBG_BCR_BVR_WCR_WVR_EL1(n)
        for kind, handler in (("BVR", trap_bvr), ("BCR", trap_bcr), ("WVR", trap_wvr), ("WCR", trap_wcr)):
            enc, d = _desc(f"DBG{kind}{n}_EL1", handler, reset=f"reset_{kind.lower()}", get_user=get_dbg,
                           set_user=set_dbg, debug_kind=kind, debug_index=n)
            table[enc] = d
    for enc, d in (
        _desc("MDSCR_EL1", trap_debug_regs, reg="MDSCR_EL1", reset="reset_val", val=0),
        _desc("MDRAR_EL1", trap_raz_wi),
        _desc("OSLAR_EL1", trap_raz_wi),
        _desc("OSLSR_EL1", trap_oslsr_el1_515),
        _desc("OSDLR_EL1", trap_raz_wi),
        _desc("DBGPRCR_EL1", trap_raz_wi),
        _desc("ID_AA64DFR0_EL1", access_id_reg, get_user=get_id_reg, set_user=set_id_reg),
        # The non-debug EL1 registers the model keeps (sys_reg_descs[], 5.15): listed in
        # KVM_GET_REG_LIST and served by KVM_GET/SET_ONE_REG because they have a slot.
        _desc("CSSELR_EL1", access_csselr, reg="CSSELR_EL1", reset="reset_unknown"),
        _desc("TTBR1_EL1", access_vm_reg, reg="TTBR1_EL1", reset="reset_unknown"),
        _desc("ESR_EL1", access_vm_reg, reg="ESR_EL1", reset="reset_unknown"),
        _desc("FAR_EL1", access_vm_reg, reg="FAR_EL1", reset="reset_unknown"),
        _desc("VBAR_EL1", None, reg="VBAR_EL1", reset="reset_val", val=0),
    ):
        table[enc] = d
    return table


BASELINE_SYS_REGS: Mapping[Encoding, SysRegDesc] = _baseline()

BASELINE_CP14: Mapping[tuple[int, int, int, int], Cp14Desc] = {
    d.key: d
    for d in (
        Cp14Desc("DBGOSLAR", (0, 1, 0, 4), trap_raz_wi, aarch64="OSLAR_EL1"),
        Cp14Desc("DBGOSLSR", (0, 1, 1, 4), trap_oslsr_el1_515, aarch64="OSLSR_EL1"),
        Cp14Desc("DBGOSDLR", (0, 1, 3, 4), trap_raz_wi, aarch64="OSDLR_EL1"),
        Cp14Desc("DBGPRCR", (0, 1, 4, 4), trap_raz_wi, aarch64="DBGPRCR_EL1"),
    )
}
