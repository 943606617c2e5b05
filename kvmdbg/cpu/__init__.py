"""One physical PE and the documented CPU profiles it can be built from."""

from kvmdbg.cpu.pe import ArchitecturalError, PhysicalCPU
from kvmdbg.cpu.profiles import DEFAULT_PROFILE, PROFILES, CpuProfile, get_profile

__all__ = ["ArchitecturalError", "CpuProfile", "DEFAULT_PROFILE", "PROFILES", "PhysicalCPU", "get_profile"]
