"""The userspace ABI: the KVM ioctls a VMM issues on a vCPU, as :class:`~kvmdbg.Machine` offers them.

KVM_GET_REG_LIST, KVM_GET_ONE_REG / KVM_SET_ONE_REG (system registers, and ELR_EL1 / SPSR_EL1
as core registers), KVM_ARM_VCPU_INIT (reset), KVM_SET_GUEST_DEBUG, and the save / restore a
VMM does around a migration. Each ioctl needs KVM_RUN to have returned, so the vCPU is exited
and put first; a refusal is decided before that and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kvmdbg.arch.registers import KVM_REG_ARM64_SYSREG_BASE, REGISTERS, SysReg, check_value, lookup
from kvmdbg.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    RegisterNotModelledError,
    RegisterValueError,
    UnknownRegisterError,
    check_flag,
)
from kvmdbg.kvm.runtime import Step
from kvmdbg.kvm.sys_regs import CORE_REG_IDS, KVM_REG_ARM_CORE_BASE

if TYPE_CHECKING:
    from kvmdbg.core import MachineCore

__all__ = ["Userspace", "VMM_DBGBCR", "VMM_DBGWCR", "WATCHPOINT_ALIGN"]

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


def _addresses(value: object, name: str) -> list[object]:
    """An iterable of addresses as a list, or an ArgumentTypeError naming the argument."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(f"{name} must be a list of addresses such as [0x80010], not "
                                f"{type(value).__name__} ({value!r:.60})")
    return list(value)


class Userspace:
    """The ioctls of one machine's vCPUs (see the module docstring); ``Machine`` delegates to it."""

    def __init__(self, machine: MachineCore) -> None:
        self.m = machine

    def to_userspace(self, i: int) -> None:
        """A userspace ioctl needs KVM_RUN to have returned: exit and put the vCPU first."""
        v = self.m.kvm.vcpus[i]
        if v.running:
            self.m.drive(self.m.kvm.exit_to_userspace(i))
        if v.loaded:
            self.m.drive(self.m.kvm.vcpu_put(i))

    def get_reg_list(self, vcpu: int = 0) -> list[int]:
        """KVM_GET_REG_LIST (the system registers the model knows; core/FP registers left out)."""
        self.m.vcpu_index(vcpu)
        return self.m.kvm.reg_list()

    def userspace_reg(self, reg: str | int) -> tuple[SysReg | None, str | None]:
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
        i = self.m.vcpu_index(vcpu)
        r, core = self.userspace_reg(reg)
        if core is not None:
            self.to_userspace(i)
            return self.m.kvm.get_core_reg(i, core)
        assert r is not None
        desc = self.m.defn.desc(r)
        refused = self.m.kvm.refuse_one_reg(i, desc)
        if refused is not None:
            raise refused  # decided before the vCPU is exited or put: nothing changes
        self.to_userspace(i)
        return self.m.kvm.get_one_reg(i, desc)

    def set_one_reg(self, reg: str | int, value: int, vcpu: int = 0) -> None:
        """KVM_SET_ONE_REG; an OSError with the kernel's errno when the kernel would refuse."""
        i = self.m.vcpu_index(vcpu)
        r, core = self.userspace_reg(reg)
        name = core or (r.name if r is not None else "?")
        value = check_value(value, f"value for {name}")
        if core is not None:
            self.to_userspace(i)
            self.m.kvm.set_core_reg(i, core, value)
            self.m.record(Step("set_core_reg", "userspace", f"KVM_SET_ONE_REG {core}={value:#x} "
                             "(a core register: struct kvm_regs)", i))
            return
        assert r is not None
        desc = self.m.defn.desc(r)
        refused = self.m.kvm.refuse_one_reg(i, desc, value)
        if refused is not None:
            raise refused  # decided before the vCPU is exited or put: nothing changes
        self.to_userspace(i)
        self.m.kvm.set_one_reg(i, desc, value)
        self.m.record(Step("kvm_arm_sys_reg_set_reg", "userspace", f"KVM_SET_ONE_REG {r.name}={value:#x}", i))

    def reset_vcpu(self, vcpu: int = 0) -> None:
        """KVM_ARM_VCPU_INIT again: every register back to its reset value."""
        i = self.m.vcpu_index(vcpu)
        self.to_userspace(i)
        self.m.drive(self.m.kvm.reset_vcpu(i))

    def set_guest_debug(self, hw_breakpoints: Iterable[int] = (), single_step: bool = False,
                        vcpu: int = 0, hw_watchpoints: Iterable[int] = ()) -> None:
        """KVM_SET_GUEST_DEBUG: the VMM debugs the guest with hardware breakpoints / single step."""
        i = self.m.vcpu_index(vcpu)
        bps = [check_value(a, "breakpoint address") for a in _addresses(hw_breakpoints, "hw_breakpoints")]
        wps = [check_value(a, "watchpoint address") for a in _addresses(hw_watchpoints, "hw_watchpoints")]
        single_step = check_flag(single_step, "single_step")
        if len(bps) > self.m.pe.profile.breakpoints or len(wps) > self.m.pe.profile.watchpoints:
            raise ArgumentValueError(
                f"hw_breakpoints has {len(bps)} and hw_watchpoints {len(wps)} addresses, but "
                f"{self.m.pe.profile.name} has {self.m.pe.profile.breakpoints} breakpoints and "
                f"{self.m.pe.profile.watchpoints} watchpoints: give at most that many")
        for a in bps + wps:
            if a & 3:
                raise RegisterValueError(f"address {a:#x} is not 4-byte aligned; breakpoints match A64 "
                                         "instructions, which are word aligned")
        self.to_userspace(i)
        v = self.m.kvm.vcpus[i]
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
        self.m.record(Step("kvm_arch_vcpu_ioctl_set_guest_debug", "userspace",
                          f"guest_debug={'|'.join(sorted(flags)) or '0'}; "
                          f"{len(bps)} hardware breakpoint(s), {len(wps)} watchpoint(s)", i))

    def save_vcpu(self, vcpu: int = 0) -> dict[int, int]:
        """Save a vCPU as a VMM does before migration: every listed register, by userspace id."""
        i = self.m.vcpu_index(vcpu)
        return {rid: self.get_one_reg(rid, i) for rid in self.get_reg_list(i)}

    def restore_vcpu(self, state: dict[int, int], vcpu: int = 0) -> list[tuple[str, int, int, str]]:
        """Restore a saved vCPU with KVM_SET_ONE_REG; returns (register, value, errno, message) per refusal."""
        i = self.m.vcpu_index(vcpu)
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
