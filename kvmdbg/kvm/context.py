"""KVM's in-memory state: ``struct kvm_cpu_context`` and ``struct kvm_vcpu_arch``.

Only the parts the OS Lock story needs are modelled: the ``sys_regs[]``
array (indexed by ``enum vcpu_sysreg``), the debug register file
(``struct kvm_guest_debug_arch``, three of them: the guest's, the host's and
the VMM's ``external_debug_state``), the debug flags and ``mdcr_el2``.

Every container here is versioned (:mod:`kvmdbg.versioned`): a write to a context's
``sys_regs``, a debug register file, the flags or any field of a vCPU counts as a write, so
the recorder and the guest-view cache see it without a hand-written list of what to watch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvmdbg.versioned import VersionedDict, VersionedList, VersionedSet, WatchedSlots

__all__ = ["CpuContext", "DebugRegs", "Vcpu", "DEBUG_DIRTY"]

DEBUG_DIRTY = "KVM_ARM64_DEBUG_DIRTY"


def _sixteen() -> list[int]:
    return VersionedList([0] * 16)


@dataclass(slots=True)
class DebugRegs(WatchedSlots):
    """``struct kvm_guest_debug_arch``: breakpoint and watchpoint registers."""

    __versioned_parts__ = ("bvr", "bcr", "wvr", "wcr")

    bvr: list[int] = field(default_factory=_sixteen)
    bcr: list[int] = field(default_factory=_sixteen)
    wvr: list[int] = field(default_factory=_sixteen)
    wcr: list[int] = field(default_factory=_sixteen)

    def __post_init__(self) -> None:
        self._init_versioning()

    def copy(self) -> DebugRegs:
        return DebugRegs(list(self.bvr), list(self.bcr), list(self.wvr), list(self.wcr))

    def array(self, kind: str) -> list[int]:
        return {"BVR": self.bvr, "BCR": self.bcr, "WVR": self.wvr, "WCR": self.wcr}[kind]


@dataclass(slots=True)
class CpuContext(WatchedSlots):
    """``struct kvm_cpu_context``: the ``sys_regs[]`` slots a variant defines."""

    __versioned_parts__ = ("sys_regs",)

    sys_regs: dict[str, int] = field(default_factory=VersionedDict)

    def __post_init__(self) -> None:
        self._init_versioning()

    def copy(self) -> CpuContext:
        return CpuContext(dict(self.sys_regs))


@dataclass(slots=True)
class Vcpu(WatchedSlots):
    """One vCPU: its saved context and the debug bookkeeping of ``kvm_vcpu_arch``."""

    __versioned_parts__ = ("ctxt", "debug", "external_debug", "flags", "x")
    __watched_fields__ = ("index", "aarch32", "use_external_debug", "guest_debug", "preserved_mdscr", "mdcr_el2",
                          "mdcr_el2_host", "loaded", "running", "sp", "pc", "pstate_d", "pstate_ss",
                          "last_exception")

    index: int
    ctxt: CpuContext
    aarch32: bool = False
    debug: DebugRegs = field(default_factory=DebugRegs)  # vcpu_debug_state
    external_debug: DebugRegs = field(default_factory=DebugRegs)  # external_debug_state (the VMM's)
    use_external_debug: bool = False  # vcpu->arch.debug_ptr == &external_debug_state
    flags: set[str] = field(default_factory=VersionedSet)
    guest_debug: frozenset[str] = frozenset()  # KVM_GUESTDBG_* flags set by the VMM
    preserved_mdscr: int | None = None  # vcpu->arch.guest_debug_preserved.mdscr_el1
    mdcr_el2: int = 0  # the value __activate_traps writes for this vCPU
    mdcr_el2_host: int = 0
    loaded: bool = False
    running: bool = False
    # Guest general-purpose state while it runs a program (see cpu/pe.py).
    x: list[int] = field(default_factory=lambda: VersionedList([0] * 31))
    sp: int = 0
    pc: int = 0
    pstate_d: bool = True
    pstate_ss: bool = False
    last_exception: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        self._init_versioning()

    def debug_ptr(self) -> DebugRegs:
        """What ``vcpu->arch.debug_ptr`` points at: the VMM's registers or the guest's."""
        return self.external_debug if self.use_external_debug else self.debug

    def copy(self) -> Vcpu:
        return Vcpu(
            self.index, self.ctxt.copy(), self.aarch32, self.debug.copy(), self.external_debug.copy(),
            self.use_external_debug, set(self.flags), self.guest_debug, self.preserved_mdscr,
            self.mdcr_el2, self.mdcr_el2_host, self.loaded, self.running, list(self.x), self.sp,
            self.pc, self.pstate_d, self.pstate_ss, self.last_exception,
        )
