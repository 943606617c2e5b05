"""A KVM build as data: the tables and hooks one kernel variant runs with.

:data:`BASELINE` is 5.15-rc4. A :class:`Patch` is a named set of overrides of
that data (table entries, reset values, world-switch steps, debug set-up),
applied in order with :meth:`KvmDefinition.apply`, so "what did patch 2
touch?" is :func:`diff` of two definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from kvmdbg.arch.registers import REGISTERS, Encoding
from kvmdbg.kvm import debug as _debug
from kvmdbg.kvm.sys_regs import (
    BASELINE_CP14,
    BASELINE_SYS_REGS,
    VCPU_SYSREG_515,
    Cp14Desc,
    SysRegDesc,
    read_id_reg_515,
)

if TYPE_CHECKING:
    from kvmdbg.arch.registers import SysReg
    from kvmdbg.cpu.pe import PhysicalCPU
    from kvmdbg.kvm.context import CpuContext, Vcpu
    from kvmdbg.kvm.runtime import Kvm

__all__ = ["El1Hook", "KvmDefinition", "Patch", "BASELINE", "diff", "FUNCTION_FILES", "VHE_FUNCTION_FILES"]


@dataclass(frozen=True, slots=True)
class El1Hook:
    """An addition to ``__sysreg_save_el1_state`` / ``__sysreg_restore_el1_state``."""

    name: str
    register: str  # the context slot it saves and restores
    save: Callable[[PhysicalCPU, CpuContext], str]
    restore: Callable[[PhysicalCPU, CpuContext], str]


# Where each modelled kernel function lives (5.15 tree).
FUNCTION_FILES: Mapping[str, str] = MappingProxyType({
    "clear_os_lock": "arch/arm64/kernel/debug-monitors.c",
    "cold reset": "(the architecture: PE cold reset)",
    "kvm_arch_vcpu_load": "arch/arm64/kvm/arm.c",
    "kvm_arch_vcpu_put": "arch/arm64/kvm/arm.c",
    "kvm_arch_vcpu_ioctl_run": "arch/arm64/kvm/arm.c",
    "kvm_reset_vcpu": "arch/arm64/kvm/reset.c",
    "kvm_reset_sys_regs": "arch/arm64/kvm/sys_regs.c",
    "kvm_vcpu_load_sysregs_vhe": "arch/arm64/kvm/hyp/vhe/sysreg-sr.c",
    "kvm_vcpu_put_sysregs_vhe": "arch/arm64/kvm/hyp/vhe/sysreg-sr.c",
    "__sysreg_save_el1_state": "arch/arm64/kvm/hyp/include/hyp/sysreg-sr.h",
    "__sysreg_restore_el1_state": "arch/arm64/kvm/hyp/include/hyp/sysreg-sr.h",
    "kvm_arm_setup_debug": "arch/arm64/kvm/debug.c",
    "kvm_arm_clear_debug": "arch/arm64/kvm/debug.c",
    "__sysreg_save_state_nvhe": "arch/arm64/kvm/hyp/nvhe/sysreg-sr.c",
    "__sysreg_restore_state_nvhe": "arch/arm64/kvm/hyp/nvhe/sysreg-sr.c",
    "sysreg_save_host_state_vhe": "arch/arm64/kvm/hyp/vhe/sysreg-sr.c",
    "sysreg_restore_guest_state_vhe": "arch/arm64/kvm/hyp/vhe/sysreg-sr.c",
    "sysreg_save_guest_state_vhe": "arch/arm64/kvm/hyp/vhe/sysreg-sr.c",
    "sysreg_restore_host_state_vhe": "arch/arm64/kvm/hyp/vhe/sysreg-sr.c",
    "__activate_traps": "arch/arm64/kvm/hyp/nvhe/switch.c",
    "__deactivate_traps": "arch/arm64/kvm/hyp/nvhe/switch.c",
    "__debug_switch_to_guest": "arch/arm64/kvm/hyp/nvhe/debug-sr.c",
    "__debug_switch_to_host": "arch/arm64/kvm/hyp/nvhe/debug-sr.c",
    "activate_traps_vhe_load": "arch/arm64/kvm/hyp/vhe/switch.c",
    "deactivate_traps_vhe_put": "arch/arm64/kvm/hyp/vhe/switch.c",
    "__guest_enter": "arch/arm64/kvm/hyp/entry.S",
    "__guest_exit": "arch/arm64/kvm/hyp/entry.S",
    "fixup_guest_exit": "arch/arm64/kvm/hyp/include/hyp/switch.h",
    "handle_exit": "arch/arm64/kvm/handle_exit.c",
    "kvm_handle_sys_reg": "arch/arm64/kvm/sys_regs.c",
    "kvm_handle_cp14_32": "arch/arm64/kvm/sys_regs.c",
    "kvm_incr_pc": "arch/arm64/include/asm/kvm_emulate.h",
    "kvm_inject_undefined": "arch/arm64/kvm/inject_fault.c",
    "kvm_handle_guest_debug": "arch/arm64/kvm/handle_exit.c",
    "handle_hvc": "arch/arm64/kvm/handle_exit.c",
    "kvm_arm_sys_reg_set_reg": "arch/arm64/kvm/sys_regs.c",
    "set_core_reg": "arch/arm64/kvm/guest.c",
    "kvm_arch_vcpu_ioctl_set_guest_debug": "arch/arm64/kvm/guest.c",
    "guest exception": "(the architecture: exception taken at guest EL1)",
    "guest access": "(the architecture: the guest's MSR/MRS/MCR/MRC on the PE)",
})


# The functions that exist once per host mode (5.15): on a VHE host the world switch
# runs the hyp/vhe/ copies, which differ in what they switch (MDCR_EL2, for one).
# Each calls the common part in hyp/include/hyp/ (debug-sr.h, switch.h).
VHE_FUNCTION_FILES: Mapping[str, str] = MappingProxyType({
    "__activate_traps": "arch/arm64/kvm/hyp/vhe/switch.c",
    "__deactivate_traps": "arch/arm64/kvm/hyp/vhe/switch.c",
    "__debug_switch_to_guest": "arch/arm64/kvm/hyp/vhe/debug-sr.c",
    "__debug_switch_to_host": "arch/arm64/kvm/hyp/vhe/debug-sr.c",
})


@dataclass(frozen=True)
class KvmDefinition:
    """Everything that differs between variants, and nothing else."""

    name: str
    patches: tuple[str, ...]
    sys_regs: Mapping[Encoding, SysRegDesc]
    cp14: Mapping[tuple[int, int, int, int], Cp14Desc]
    vcpu_sysreg: tuple[str, ...]
    el1_hooks: tuple[El1Hook, ...] = ()
    read_id_reg: Callable[[Kvm, Vcpu, str], int] = read_id_reg_515
    setup_debug: Callable[[Kvm, Vcpu], str] = _debug.kvm_arm_setup_debug
    clear_debug: Callable[[Kvm, Vcpu], str] = _debug.kvm_arm_clear_debug
    setup_mdcr: Callable[[Kvm, Vcpu], None] = _debug.kvm_arm_setup_mdcr_el2
    notes: Mapping[str, str] = field(default_factory=dict)

    # The EL1 state the model switches in __sysreg_{save,restore}_el1_state
    # (a subset of the kernel's list: the registers the model has).
    el1_state: tuple[str, ...] = ("CSSELR_EL1", "TTBR1_EL1", "ESR_EL1", "FAR_EL1", "VBAR_EL1", "ELR_EL1",
                                  "SPSR_EL1")
    common_state: tuple[str, ...] = ("MDSCR_EL1",)

    def desc(self, reg: SysReg | str) -> SysRegDesc | None:
        r = REGISTERS[reg] if isinstance(reg, str) else reg
        return self.sys_regs.get(r.encoding) if r.encoding else None

    def sysreg_index(self, slot: str) -> int:
        """The ``enum vcpu_sysreg`` value of a context slot."""
        return self.vcpu_sysreg.index(slot)

    def apply(self, patch: Patch) -> KvmDefinition:
        tables = dict(self.sys_regs)
        for d in patch.sys_regs:
            enc = REGISTERS[d.name].encoding
            assert enc is not None
            tables[enc] = d
        cp14 = dict(self.cp14)
        for c in patch.cp14:
            cp14[c.key] = c
        layout = self.vcpu_sysreg
        for after, slot in patch.new_slots:
            i = layout.index(after) + 1
            layout = layout[:i] + (slot,) + layout[i:]
        notes = dict(self.notes)
        for fn, text in patch.notes.items():
            notes[fn] = (notes[fn] + " " if fn in notes else "") + text
        return replace(
            self,
            name=patch.name if self.name == "baseline" else f"{self.name}+{patch.name}",
            patches=self.patches + (patch.name,),
            sys_regs=MappingProxyType(tables),
            cp14=MappingProxyType(cp14),
            vcpu_sysreg=layout,
            el1_hooks=self.el1_hooks + patch.el1_hooks,
            read_id_reg=patch.read_id_reg or self.read_id_reg,
            setup_debug=patch.setup_debug or self.setup_debug,
            clear_debug=patch.clear_debug or self.clear_debug,
            setup_mdcr=patch.setup_mdcr or self.setup_mdcr,
            notes=MappingProxyType(notes),
        )


@dataclass(frozen=True)
class Patch:
    """One patch as data: metadata from its e-mail, and what it overrides."""

    name: str
    title: str
    summary: str
    message_id: str
    files: tuple[str, ...]
    requires: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # patches it cannot be combined with (another reading of the same e-mail)
    sys_regs: tuple[SysRegDesc, ...] = ()
    cp14: tuple[Cp14Desc, ...] = ()
    new_slots: tuple[tuple[str, str], ...] = ()  # (after, new) in enum vcpu_sysreg
    el1_hooks: tuple[El1Hook, ...] = ()
    read_id_reg: Callable[[Kvm, Vcpu, str], int] | None = None
    setup_debug: Callable[[Kvm, Vcpu], str] | None = None
    clear_debug: Callable[[Kvm, Vcpu], str] | None = None
    setup_mdcr: Callable[[Kvm, Vcpu], None] | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    series: str = "v1"
    date: str = ""

    def __repr__(self) -> str:
        return f"<Patch {self.name}: {self.title!r} {self.message_id}>"


BASELINE = KvmDefinition(
    name="baseline",
    patches=(),
    sys_regs=MappingProxyType(dict(BASELINE_SYS_REGS)),
    cp14=MappingProxyType(dict(BASELINE_CP14)),
    vcpu_sysreg=VCPU_SYSREG_515,
)


def diff(a: KvmDefinition, b: KvmDefinition) -> list[str]:
    """Human-readable list of what differs between two definitions."""
    out: list[str] = []
    for enc in sorted(set(a.sys_regs) | set(b.sys_regs), key=lambda e: e.sys_reg):
        da, db = a.sys_regs.get(enc), b.sys_regs.get(enc)
        if da == db or da is None or db is None:
            continue
        changes = []
        if da.access is not db.access:
            changes.append(f"handler {da.handler_name} -> {db.handler_name}"
                           if da.handler_name != db.handler_name else f"{db.handler_name} rewritten")
        if da.reg != db.reg:
            changes.append(f"context slot {da.reg} -> {db.reg}")
        if (da.reset, da.val) != (db.reset, db.val):
            changes.append(f"reset {da.reset}({da.val:#x}) -> {db.reset}({db.val:#x})")
        if da.set_user is not db.set_user:
            changes.append("userspace set_user changed")
        if da.listed != db.listed:
            changes.append(f"KVM_GET_REG_LIST: {'listed' if db.listed else 'not listed'}")
        if changes:
            out.append(f"sys_reg_descs[{db.name}]: " + "; ".join(changes))
    for key in sorted(set(a.cp14) | set(b.cp14)):
        ca, cb = a.cp14.get(key), b.cp14.get(key)
        if ca != cb and ca is not None and cb is not None:
            out.append(f"cp14_regs[{cb.name}]: handler {ca.access.__name__} -> {cb.access.__name__}"
                       + (f", slot {cb.reg}" if cb.reg != ca.reg else ""))
    if a.vcpu_sysreg != b.vcpu_sysreg:
        added = [s for s in b.vcpu_sysreg if s not in a.vcpu_sysreg]
        out.append(f"enum vcpu_sysreg: adds {', '.join(added)}")
    for h in b.el1_hooks:
        if h not in a.el1_hooks:
            out.append(f"world switch: {h.name}")
    for attr, fn_name in (("read_id_reg", "read_id_reg"), ("setup_debug", "kvm_arm_setup_debug"),
                          ("clear_debug", "kvm_arm_clear_debug"), ("setup_mdcr", "kvm_arm_setup_mdcr_el2")):
        if getattr(a, attr) is not getattr(b, attr):
            out.append(f"{fn_name}: {getattr(b, attr).__doc__.strip().splitlines()[0]}")
    return out
