"""One physical processing element (PE): its debug-relevant registers.

This is the hardware that KVM programs. It knows the architecture's side
effects (a write of OSLAR_EL1 sets OSLSR_EL1.OSLK; OSLSR_EL1 is read-only and
OSLAR_EL1 write-only), the cold-reset values, and which EL1 accesses the
current MDCR_EL2/HCR_EL2 configuration traps to EL2. It knows nothing about
Linux: who programs it is the business of the layers above.

Simplification: the general-purpose registers and PC of whatever runs on the
PE are not held here; the guest executor works on the vCPU's copy directly,
which is what the hardware state is while that vCPU runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from kvmdbg.arch.debug import DebugKind, Verdict, debug_exception
from kvmdbg.arch.registers import REGISTERS, Access, check_value, lookup
from kvmdbg.cpu.profiles import CpuProfile, get_profile
from kvmdbg.errors import ArchitecturalError
from kvmdbg.versioned import VersionedDict, WatchedSlots

__all__ = ["PhysicalCPU", "ArchitecturalError", "trap_control", "OS_LOCK_GROUP", "TDA_GROUP", "ID_GROUP"]

OSLK = 1 << 1

# Registers each MDCR_EL2 / HCR_EL2 control traps from EL1 (Arm ARM D13.2.x).
OS_LOCK_GROUP = frozenset({"OSLAR_EL1", "OSLSR_EL1", "OSDLR_EL1", "DBGPRCR_EL1"})  # MDCR_EL2.TDOSA
ID_GROUP = frozenset({"ID_AA64DFR0_EL1"})  # HCR_EL2.TID3
TDA_GROUP = frozenset(
    {"MDSCR_EL1"}
    | {f"DBG{k}{n}_EL1" for k in ("BVR", "BCR", "WVR", "WCR") for n in range(16)}
)  # MDCR_EL2.TDA
_TDOSA, _TDA, _TDRA = 1 << 10, 1 << 9, 1 << 11
_TID3 = 1 << 18


def trap_control(name: str, mdcr_el2: int, hcr_el2: int) -> str | None:
    """The MDCR_EL2/HCR_EL2 control that traps an EL1 access of ``name`` to EL2, or None."""
    if name in OS_LOCK_GROUP and mdcr_el2 & _TDOSA:
        return "MDCR_EL2.TDOSA"
    if name in TDA_GROUP and mdcr_el2 & _TDA:
        return "MDCR_EL2.TDA"
    if name == "MDRAR_EL1" and mdcr_el2 & (_TDRA | _TDA):
        return "MDCR_EL2.TDRA"
    if name in ID_GROUP and hcr_el2 & _TID3:
        return "HCR_EL2.TID3"
    return None


# Registers of which the PE keeps only some bits. CSSELR_EL1: Level (3:1) and InD (0); TnD (bit 4)
# is RES0 without FEAT_MTE2 and the other bits are RES0 (Arm ARM, CSSELR_EL1). QEMU's -cpu max
# keeps the same four bits: the real-kernel recording reads KVM's reset value 0x1de7ec7edbadc0de
# back as 0xe on the PE (realkvm/recording.json, scenario planted_slot_csselr).
IMPLEMENTED_BITS: dict[str, int] = {"CSSELR_EL1": 0xF}


class PhysicalCPU(WatchedSlots):
    """The debug state of one Armv8 PE.

    ``regs`` is a versioned register file and every attribute write counts as a write
    (:mod:`kvmdbg.versioned`), so whoever caches something derived from the PE sees each change.
    """

    __slots__ = ("profile", "regs", "el", "pstate_d", "halted", "_names")
    __watched_fields__ = ("el", "pstate_d", "halted")
    __versioned_parts__ = ("regs",)

    def __init__(self, profile: str | CpuProfile | None = None) -> None:
        self._init_versioning()
        self.profile = get_profile(profile)
        self.regs: dict[str, int] = VersionedDict()
        self.el = 2
        self.pstate_d = True
        self.halted = False
        names = ["OSLSR_EL1", "OSDLR_EL1", "DBGPRCR_EL1", "MDRAR_EL1", "MDSCR_EL1", "ID_AA64DFR0_EL1",
                 "MDCR_EL2", "HCR_EL2", "ESR_EL1", "ESR_EL2", "ELR_EL1", "TTBR1_EL1", "SPSR_EL1", "FAR_EL1", "VBAR_EL1",
                 "CSSELR_EL1"]
        names += [f"DBG{k}{n}_EL1" for n in range(self.profile.breakpoints) for k in ("BVR", "BCR")]
        names += [f"DBG{k}{n}_EL1" for n in range(self.profile.watchpoints) for k in ("WVR", "WCR")]
        self._names = frozenset(names) | {"OSLAR_EL1"}
        self.cold_reset()

    # -- reset -----------------------------------------------------------------

    def cold_reset(self) -> None:
        """Power-on reset: OSLK=1 (Arm ARM: the OS Lock is locked on a cold reset).

        Registers the architecture leaves UNKNOWN at reset are modelled as 0,
        a documented choice that makes traces deterministic.
        """
        for name in self._names:
            if name == "OSLAR_EL1":
                continue
            reset = REGISTERS[name].reset
            self.regs[name] = reset if reset is not None else 0
        self.regs["ID_AA64DFR0_EL1"] = self.profile.id_aa64dfr0
        self.el = 2
        self.pstate_d = True

    # -- architectural accesses --------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self._names

    def read(self, reg: str) -> int:
        """``MRS`` executed by privileged software (no trap is considered)."""
        r = lookup(reg)
        if r.name not in self._names:
            raise ArchitecturalError(f"this PE ({self.profile.name}) has no {r.name}")
        if r.access is Access.WO:
            raise ArchitecturalError(f"{r.name} is write-only: reading it is UNDEFINED")
        return self.regs[r.name]

    def write(self, reg: str, value: int) -> None:
        """``MSR`` executed by privileged software, with its side effects."""
        r = lookup(reg)
        value = check_value(value)
        if r.name not in self._names:
            raise ArchitecturalError(f"this PE ({self.profile.name}) has no {r.name}")
        if r.access is Access.RO:
            raise ArchitecturalError(f"{r.name} is read-only: writing it is UNDEFINED")
        if r.name == "OSLAR_EL1":
            # OSLAR_EL1.OSLK -> OSLSR_EL1.OSLK (Arm ARM D13.3.x OSLAR_EL1).
            self.regs["OSLSR_EL1"] = (self.regs["OSLSR_EL1"] & ~OSLK) | ((value & 1) << 1)
            return
        self.load(r.name, value)

    def load(self, name: str, value: int) -> None:
        """Put ``value`` into register ``name`` as the hardware keeps it (bits it does not implement read 0).

        Used by every write to the PE, the world switch's restores included.
        """
        mask = IMPLEMENTED_BITS.get(name)
        self.regs[name] = value if mask is None else value & mask

    @property
    def os_lock(self) -> bool:
        return bool(self.regs["OSLSR_EL1"] & OSLK)

    # -- traps and debug exceptions ------------------------------------------------

    def traps_to_el2(self, name: str) -> str | None:
        """Which control traps an EL1 access of ``name`` to EL2 now, or None."""
        return trap_control(name, self.regs["MDCR_EL2"], self.regs["HCR_EL2"])

    def debug_verdict(self, kind: DebugKind, el: int | None = None, pstate_d: bool | None = None) -> Verdict:
        """Would a debug exception of ``kind`` be generated on this PE now?"""
        r = self.regs
        return debug_exception(
            kind,
            current_el=self.el if el is None else el,
            oslsr=r["OSLSR_EL1"],
            osdlr=r["OSDLR_EL1"],
            dbgprcr=r["DBGPRCR_EL1"],
            mdscr=r["MDSCR_EL1"],
            mdcr_el2=r["MDCR_EL2"],
            hcr_el2=r["HCR_EL2"],
            pstate_d=self.pstate_d if pstate_d is None else pstate_d,
            halted=self.halted,
        )

    def breakpoint_slots(self) -> Iterable[int]:
        return range(self.profile.breakpoints)

    def watchpoint_slots(self) -> Iterable[int]:
        return range(self.profile.watchpoints)
