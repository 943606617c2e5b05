"""Documented physical CPU profiles: the ID register values a PE reports.

Values are the parts' documented reset values of ID_AA64DFR0_EL1 (Arm
Cortex-A57 TRM, r1p3, 4.3.x "ID_AA64DFR0_EL1"; Cortex-A76 TRM, r4p1), which
QEMU's ``target/arm/cpu64.c`` also uses for its ``cortex-a57`` and
``cortex-a76`` models. Only the debug feature register matters to the kit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from kvmdbg.arch.registers import REGISTERS
from kvmdbg.errors import ArgumentTypeError, ArgumentValueError

__all__ = ["CpuProfile", "PROFILES", "DEFAULT_PROFILE", "get_profile"]


@dataclass(frozen=True, slots=True)
class CpuProfile:
    name: str
    description: str
    source: str
    id_aa64dfr0: int
    has_pmu: bool = True

    @property
    def breakpoints(self) -> int:
        return REGISTERS["ID_AA64DFR0_EL1"].get(self.id_aa64dfr0, "BRPs") + 1

    @property
    def watchpoints(self) -> int:
        return REGISTERS["ID_AA64DFR0_EL1"].get(self.id_aa64dfr0, "WRPs") + 1

    @property
    def has_double_lock(self) -> bool:
        return REGISTERS["ID_AA64DFR0_EL1"].get(self.id_aa64dfr0, "DoubleLock") == 0


PROFILES: Mapping[str, CpuProfile] = MappingProxyType(
    {
        p.name: p
        for p in (
            CpuProfile(
                "cortex-a57",
                "Arm Cortex-A57: an Armv8.0 core (Debug v8.0) that implements "
                "FEAT_DoubleLock, with 6 breakpoints and 4 watchpoints. The sort of "
                "host 5.15 KVM ran on, and the one that shows what patch 3 fixes.",
                "Cortex-A57 TRM, ID_AA64DFR0_EL1 reset value 0x10305106",
                0x10305106,
            ),
            CpuProfile(
                "cortex-a76",
                "Arm Cortex-A76: an Armv8.2 core (Debug v8.2) that still implements "
                "FEAT_DoubleLock (optional from v8.2), 6 breakpoints, 4 watchpoints.",
                "Cortex-A76 TRM, ID_AA64DFR0_EL1 reset value 0x10305408",
                0x10305408,
            ),
        )
    }
)

DEFAULT_PROFILE = "cortex-a57"


def get_profile(cpu: str | CpuProfile | None) -> CpuProfile:
    if cpu is None:
        return PROFILES[DEFAULT_PROFILE]
    if isinstance(cpu, CpuProfile):
        return cpu
    if not isinstance(cpu, str):
        raise ArgumentTypeError(f"cpu must be a profile name (str), a CpuProfile or None, not "
                                f"{type(cpu).__name__} ({cpu!r}); choose one of {', '.join(PROFILES)}")
    try:
        return PROFILES[cpu.strip().lower()]
    except KeyError:
        raise ArgumentValueError(
            f"unknown CPU profile cpu={cpu!r}; choose one of {', '.join(PROFILES)} "
            "(or pass None for the default)"
        ) from None
