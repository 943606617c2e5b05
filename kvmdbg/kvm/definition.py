"""A KVM build as data: the named tables one kernel variant runs with.

:data:`BASELINE` is 5.15-rc4. A :class:`KvmDefinition` is a handful of named tables:
``sys_regs`` and ``cp14`` (the descriptor tables of sys_regs.c), ``vcpu_sysreg`` (the
context layout), the EL1 and common state the world switch moves plus the hooks added
to it, the world switch itself (:mod:`kvmdbg.kvm.switch`: one list of kernel functions
per switch and host mode), the named kernel functions a variant may replace or wrap
(``hooks``), and the per-VM state a variant adds (``vm_state``). A :class:`Patch` is a
named set of generic edits of those tables, applied in order with
:meth:`KvmDefinition.apply`, so "what did patch 2 touch?" is :func:`diff` of two
definitions, and nothing in the engine asks which variant runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

from kvmdbg.arch.registers import REGISTERS, Encoding
from kvmdbg.kvm import debug as _debug
from kvmdbg.kvm.api import DebugHook, IdReader, MdcrHook, kernel_name
from kvmdbg.kvm.switch import SWITCHES_515, SwitchStep
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
    from kvmdbg.kvm.context import CpuContext

__all__ = ["El1Hook", "KvmDefinition", "Patch", "StepEdit", "BASELINE", "HOOKS_515", "diff", "FUNCTION_FILES",
           "VHE_FUNCTION_FILES"]


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


Hook = Callable[..., object]

# The kernel functions a variant may replace or wrap, by their kernel names (5.15).
HOOKS_515: Mapping[str, Hook] = MappingProxyType({
    "read_id_reg": read_id_reg_515,
    "kvm_arm_setup_debug": _debug.kvm_arm_setup_debug,
    "kvm_arm_clear_debug": _debug.kvm_arm_clear_debug,
    "kvm_arm_setup_mdcr_el2": _debug.kvm_arm_setup_mdcr_el2,
})


@dataclass(frozen=True, slots=True)
class StepEdit:
    """One edit of a world-switch list: insert a step before or after ``anchor``, replace or remove it.

    ``switches`` names the lists it applies to (see :data:`kvmdbg.kvm.switch.SWITCH_NAMES`),
    for example ``("nvhe.enter", "vhe.enter")``; ``anchor`` is a kernel function in each.
    """

    switches: tuple[str, ...]
    op: str  # "before", "after", "replace" or "remove"
    anchor: str
    step: SwitchStep | None = None

    def apply(self, steps: tuple[SwitchStep, ...], switch: str) -> tuple[SwitchStep, ...]:
        names = [s.function for s in steps]
        if self.anchor not in names:
            raise ValueError(f"step edit: {switch} has no step {self.anchor!r} (it has {', '.join(names)})")
        i = names.index(self.anchor)
        if self.op == "remove":
            return steps[:i] + steps[i + 1:]
        if self.step is None:
            raise ValueError(f"step edit {self.op!r} at {self.anchor!r} needs a step")
        if self.op == "replace":
            return steps[:i] + (self.step,) + steps[i + 1:]
        if self.op == "before":
            return steps[:i] + (self.step,) + steps[i:]
        if self.op == "after":
            return steps[:i + 1] + (self.step,) + steps[i + 1:]
        raise ValueError(f"step edit: unknown operation {self.op!r} (before, after, replace, remove)")


@dataclass(frozen=True)
class KvmDefinition:
    """Everything that differs between variants, and nothing else: named tables."""

    name: str
    patches: tuple[str, ...]
    sys_regs: Mapping[Encoding, SysRegDesc]
    cp14: Mapping[tuple[int, int, int, int], Cp14Desc]
    vcpu_sysreg: tuple[str, ...]
    el1_hooks: tuple[El1Hook, ...] = ()
    hooks: Mapping[str, Hook] = field(default_factory=lambda: HOOKS_515)
    switches: Mapping[str, tuple[SwitchStep, ...]] = field(default_factory=lambda: SWITCHES_515)
    vm_state: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    notes: Mapping[str, str] = field(default_factory=dict)
    function_files: Mapping[str, str] = field(default_factory=lambda: FUNCTION_FILES)  # kernel function -> file

    # The EL1 state the model switches in __sysreg_{save,restore}_el1_state
    # (a subset of the kernel's list: the registers the model has).
    el1_state: tuple[str, ...] = ("CSSELR_EL1", "TTBR1_EL1", "ESR_EL1", "FAR_EL1", "VBAR_EL1", "ELR_EL1",
                                  "SPSR_EL1")
    common_state: tuple[str, ...] = ("MDSCR_EL1",)

    # -- the named kernel functions, typed ------------------------------------------------

    @property
    def read_id_reg(self) -> IdReader:
        return cast(IdReader, self.hooks["read_id_reg"])

    @property
    def setup_debug(self) -> DebugHook:
        return cast(DebugHook, self.hooks["kvm_arm_setup_debug"])

    @property
    def clear_debug(self) -> DebugHook:
        return cast(DebugHook, self.hooks["kvm_arm_clear_debug"])

    @property
    def setup_mdcr(self) -> MdcrHook:
        return cast(MdcrHook, self.hooks["kvm_arm_setup_mdcr_el2"])

    def switch(self, name: str) -> tuple[SwitchStep, ...]:
        """The kernel functions of one world switch, such as ``"nvhe.enter"``, in order."""
        return self.switches[name]

    def desc(self, reg: SysReg | str) -> SysRegDesc | None:
        r = REGISTERS[reg] if isinstance(reg, str) else reg
        return self.sys_regs.get(r.encoding) if r.encoding else None

    def sysreg_index(self, slot: str) -> int:
        """The ``enum vcpu_sysreg`` value of a context slot."""
        return self.vcpu_sysreg.index(slot)

    def apply(self, patch: Patch) -> KvmDefinition:
        """This definition with ``patch``'s edits made, in a fixed order (tables, layout, switch, hooks)."""
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
        switches = dict(self.switches)
        for edit in patch.steps:
            for name in edit.switches:
                if name not in switches:
                    raise ValueError(f"patch {patch.name}: no world switch {name!r} ({', '.join(switches)})")
                switches[name] = edit.apply(switches[name], name)
        hooks = dict(self.hooks)
        for name, fn in patch.hooks.items():
            hooks[name] = fn
        for name, wrap in patch.wraps.items():
            if name not in hooks:
                raise ValueError(f"patch {patch.name}: no hook {name!r} to wrap ({', '.join(hooks)})")
            hooks[name] = wrap(hooks[name])
        notes = dict(self.notes)
        for fn_name, text in patch.notes.items():
            notes[fn_name] = (notes[fn_name] + " " if fn_name in notes else "") + text
        return replace(
            self,
            name=patch.name if self.name == "baseline" else f"{self.name}+{patch.name}",
            patches=self.patches + (patch.name,),
            sys_regs=MappingProxyType(tables),
            cp14=MappingProxyType(cp14),
            vcpu_sysreg=layout,
            el1_hooks=self.el1_hooks + patch.el1_hooks,
            hooks=MappingProxyType(hooks),
            switches=MappingProxyType(switches),
            vm_state=MappingProxyType({**self.vm_state, **patch.vm_state}),
            el1_state=self.el1_state + tuple(r for r in patch.el1_state if r not in self.el1_state),
            notes=MappingProxyType(notes),
            function_files=MappingProxyType({**self.function_files, **patch.functions}),
        )


@dataclass(frozen=True)
class Patch:
    """One patch as data: metadata from its e-mail, and generic edits of the definition's tables.

    ``base`` is what the patch was written against: "baseline" (5.15-rc4) or the name of
    another patch, which must then be applied first. ``series`` groups the patches of one
    design: patches of different series written against the baseline cannot be mixed.
    """

    name: str
    title: str
    summary: str
    message_id: str
    files: tuple[str, ...]
    requires: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # patches it cannot be combined with (another reading of the same e-mail)
    base: str = "baseline"
    sys_regs: tuple[SysRegDesc, ...] = ()  # descriptors added or replaced, by register
    cp14: tuple[Cp14Desc, ...] = ()
    new_slots: tuple[tuple[str, str], ...] = ()  # (after, new) in enum vcpu_sysreg
    el1_hooks: tuple[El1Hook, ...] = ()
    el1_state: tuple[str, ...] = ()  # registers added to __sysreg_{save,restore}_el1_state
    hooks: Mapping[str, Hook] = field(default_factory=dict)  # kernel function name -> replacement
    wraps: Mapping[str, Callable[[Hook], Hook]] = field(default_factory=dict)  # name -> wrapper of the old one
    steps: tuple[StepEdit, ...] = ()  # edits of the world-switch lists
    vm_state: Mapping[str, int] = field(default_factory=dict)  # per-VM state added: name -> initial value
    functions: Mapping[str, str] = field(default_factory=dict)  # kernel functions it adds -> their files
    notes: Mapping[str, str] = field(default_factory=dict)
    series: str = "v1"
    date: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.hooks) - set(HOOKS_515))
        if unknown:
            raise ValueError(f"patch {self.name}: unknown hook(s) {', '.join(unknown)}; the hooks are "
                             f"{', '.join(HOOKS_515)}")

    @property
    def needs(self) -> tuple[str, ...]:
        """Every patch that must be applied with this one: its base (unless the baseline) and ``requires``."""
        first = () if self.base == "baseline" else (self.base,)
        return first + tuple(r for r in self.requires if r not in first)

    def __repr__(self) -> str:
        return f"<Patch {self.name}: {self.title!r} {self.message_id}>"


BASELINE = KvmDefinition(
    name="baseline",
    patches=(),
    sys_regs=MappingProxyType(dict(BASELINE_SYS_REGS)),
    cp14=MappingProxyType(dict(BASELINE_CP14)),
    vcpu_sysreg=VCPU_SYSREG_515,
)


def _fn(fn: object) -> str:
    return kernel_name(fn) if fn is not None else "(default)"


def _summary(fn: object) -> str:
    doc = getattr(fn, "__doc__", None)
    first = doc.strip().splitlines()[0].replace("``", "") if isinstance(doc, str) and doc.strip() else ""
    return first or f"replaced by {_fn(fn)}"


def _desc_changes(da: SysRegDesc, db: SysRegDesc) -> list[str]:
    changes = []
    if da.access is not db.access:
        changes.append(f"handler {da.handler_name} -> {db.handler_name}" if da.handler_name != db.handler_name
                       else f"{db.handler_name} rewritten" + (f" ({_summary(db.access)})" if db.access else ""))
    if da.reg != db.reg:
        changes.append(f"context slot {da.reg} -> {db.reg}")
    if (da.reset, da.val) != (db.reset, db.val):
        changes.append(f"reset {da.reset}({da.val:#x}) -> {db.reset}({db.val:#x})")
    for role in ("get_user", "set_user"):
        fa, fb = getattr(da, role), getattr(db, role)
        if fa is not fb:
            changes.append(f"{role} {_fn(fa)} -> {_fn(fb)}" if _fn(fa) != _fn(fb) else f"{role} {_fn(fb)} rewritten")
    if da.listed != db.listed:
        changes.append(f"KVM_GET_REG_LIST: {'listed' if db.listed else 'not listed'}")
    return changes


def diff(a: KvmDefinition, b: KvmDefinition) -> list[str]:
    """What differs between two definitions, one line per table entry, in the kernel's names."""
    out: list[str] = []
    for enc in sorted(set(a.sys_regs) | set(b.sys_regs), key=lambda e: e.sys_reg):
        da, db = a.sys_regs.get(enc), b.sys_regs.get(enc)
        if da == db:
            continue
        if da is None or db is None:
            d = db or da
            assert d is not None
            out.append(f"sys_reg_descs[{d.name}]: " + (f"added ({d.handler_name})" if db else "removed"))
            continue
        changes = _desc_changes(da, db)
        if changes:
            out.append(f"sys_reg_descs[{db.name}]: " + "; ".join(changes))
    for key in sorted(set(a.cp14) | set(b.cp14)):
        ca, cb = a.cp14.get(key), b.cp14.get(key)
        if ca == cb:
            continue
        if ca is None or cb is None:
            c = cb or ca
            assert c is not None
            out.append(f"cp14_regs[{c.name}]: " + (f"added ({c.handler_name})" if cb else "removed"))
            continue
        parts = []
        if ca.access is not cb.access:
            parts.append(f"handler {ca.handler_name} -> {cb.handler_name}" if ca.handler_name != cb.handler_name
                         else f"{cb.handler_name} rewritten")
        if cb.reg != ca.reg:
            parts.append(f"slot {ca.reg} -> {cb.reg}")
        out.append(f"cp14_regs[{cb.name}]: " + ", ".join(parts or ["changed"]))
    if a.vcpu_sysreg != b.vcpu_sysreg:
        added = [f"{s} (index {b.vcpu_sysreg.index(s)})" for s in b.vcpu_sysreg if s not in a.vcpu_sysreg]
        removed = [s for s in a.vcpu_sysreg if s not in b.vcpu_sysreg]
        out.append("enum vcpu_sysreg: " + "; ".join(
            (["adds " + ", ".join(added)] if added else []) + (["removes " + ", ".join(removed)] if removed else [])
            or ["reordered"]))
    for regs, what in ((b.el1_state, "__sysreg_save/restore_el1_state"), (b.common_state, "common state")):
        old = a.el1_state if what.startswith("__") else a.common_state
        if regs != old:
            out.append(f"{what}: now switches {', '.join(regs)}")
    for h in b.el1_hooks:
        if h not in a.el1_hooks:
            out.append(f"__sysreg_save_el1_state/__sysreg_restore_el1_state: {h.name}")
    for h in a.el1_hooks:
        if h not in b.el1_hooks:
            out.append(f"__sysreg_save_el1_state/__sysreg_restore_el1_state: no longer {h.name}")
    for name in sorted(set(a.switches) | set(b.switches)):
        sa, sb = a.switches.get(name, ()), b.switches.get(name, ())
        if sa == sb:
            continue
        fa, fb = [s.function for s in sa], [s.function for s in sb]
        parts = [f"adds {f}" for f in fb if f not in fa] + [f"drops {f}" for f in fa if f not in fb]
        parts += [f"{x.function} rewritten" for x in sb for y in sa if x.function == y.function and x.run is not y.run]
        out.append(f"world switch {name}: " + ", ".join(parts or ["reordered"]))
    for name in sorted(set(a.hooks) | set(b.hooks)):
        ha, hb = a.hooks.get(name), b.hooks.get(name)
        if ha is not hb:
            out.append(f"{name}: {_summary(hb)}")
    for name in sorted(set(b.vm_state) - set(a.vm_state)):
        out.append(f"struct kvm_arch: adds {name} (initially {b.vm_state[name]:#x})")
    return out
