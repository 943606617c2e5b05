"""kvmdbg: see how Linux KVM on arm64 handles the debug OS Lock, patch by patch.

The core (``arch`` -> ``cpu`` -> ``kvm`` -> ``patches`` -> ``Machine``) imports
neither matplotlib nor ipywidgets; ``lab`` and ``plot`` load them on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmdbg.arch.registers import reg_id
from kvmdbg.errors import (
    ArchitecturalError,
    ArgumentTypeError,
    ArgumentValueError,
    AsmError,
    DuplicateVariantError,
    GuestFault,
    KvmdbgError,
    NotModelledError,
    PatchError,
    RegisterTypeError,
    RegisterValueError,
    RunawayGuestError,
    ScenarioError,
    UnknownRegisterError,
    VcpuIndexError,
    VcpuTypeError,
)
from kvmdbg.machine import Machine
from kvmdbg.patches import PATCHES, UPSTREAM, VARIANTS
from kvmdbg.trace import Event, Snapshot, Trace

__version__ = "0.1.0"

__all__ = [
    "ArgumentTypeError", "ArgumentValueError", "ArchitecturalError", "DuplicateVariantError",
    "NotModelledError", "RegisterTypeError", "VcpuTypeError",
    "AsmError", "Event", "GuestFault", "KvmdbgError", "Machine", "PATCHES", "PatchError",
    "RegisterValueError", "RunawayGuestError", "ScenarioError", "Snapshot", "Trace",
    "UPSTREAM", "UnknownRegisterError", "VARIANTS", "VcpuIndexError", "__version__", "assemble",
    "compare", "lab", "plot", "reg_id", "scenarios", "selftest_table", "selftest_stage_table",
    "selftest_run_table",
]

if TYPE_CHECKING:
    from kvmdbg.arch.a64 import assemble
    from kvmdbg.teach.compare import compare, selftest_run_table, selftest_stage_table, selftest_table


def __getattr__(name: str) -> Any:
    """Lazy attributes: the assembler, the teaching layer, plots and widgets."""
    if name == "assemble":
        from kvmdbg.arch.a64 import assemble

        return assemble
    if name == "disassemble":
        from kvmdbg.arch.a64 import disassemble

        return disassemble
    if name in ("compare", "selftest_table", "selftest_stage_table", "selftest_run_table"):
        from kvmdbg.teach import compare as _c

        return getattr(_c, name)
    if name == "scenarios":
        from kvmdbg.teach import scenarios

        return scenarios
    if name == "lab":
        from kvmdbg.teach.widgets import lab

        return lab
    if name == "plot":
        from kvmdbg.teach import plot

        return plot
    raise AttributeError(f"module 'kvmdbg' has no attribute {name!r}")
