"""What each variant does, stated once: one row per variant, read by the shared tests.

The shared tests in test_variants.py, test_scenarios.py, test_fidelity.py and
test_properties.py run over every variant of ``kvmdbg.VARIANTS`` and both host modes,
and take every per-variant expectation from this table; none of them names a variant
to decide what to expect. A fact that differs between nVHE and VHE is written
``ByMode(nvhe=..., vhe=...)``; any other value holds in both modes. Each row says
where its facts come from (``source``); the field comments below say what each fact
is and which kernel code decides it.

To add a variant, add its ``Facts(...)`` row to ``ROWS``, nothing else:
test_variants.py::test_every_variant_has_one_row_of_facts fails until you do.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, TypeVar

T = TypeVar("T")

UNLOCKED, LOCKED = 0x8, 0xA  # OSLSR_EL1 with OSLM = 0b10 (implemented) and OSLK clear / set
MODES = (False, True)  # vhe=False (nVHE), vhe=True (VHE)
MODE_IDS = ("nVHE", "VHE")


@dataclass(frozen=True)
class ByMode(Generic[T]):
    """A fact that differs between host modes."""

    nvhe: T
    vhe: T


class SetOslsr(enum.Enum):
    """What KVM_SET_ONE_REG does with a value for OSLSR_EL1."""

    NOT_A_REGISTER = "ENOENT"  # no descriptor with a context slot: not reachable by userspace
    ANY_VALUE = "ok"  # stored as given, with no check (patch 1's set_user)
    OSLK_ONLY = "EINVAL"  # only the OSLK bit may differ from the reset value; anything else is EINVAL


@dataclass(frozen=True)
class Facts:
    """One variant's facts. ``at(vhe)`` resolves every ``ByMode`` to one host mode."""

    variant: str
    source: str  # where these facts come from: BRIEF.md section, kernel function and version, recording

    # -- OSLSR_EL1 after vCPU reset (kvm_reset_sys_regs; trap_oslsr_el1) ------------------------
    oslsr_reset: int  # what a guest MRS OSLSR_EL1 returns right after reset
    oslsr_slot: int | None  # the vCPU context's copy after reset; None: the context has no slot
    oslsr_listed: bool  # OSLSR_EL1 is in KVM_GET_REG_LIST (walk_one_sys_reg: a descriptor with .reg)
    oslsr_set: SetOslsr  # what KVM_SET_ONE_REG of OSLSR_EL1 does
    # what a guest that reads after userspace planted OSLSR_EL1=0x0 sees, and what KVM_GET_ONE_REG
    # returns after that run (None: ENOENT); scenario "userspace-oslsr"
    planted: tuple[int, int | None] | ByMode[tuple[int, int | None]]

    # -- a guest OSLAR_EL1 write, and the PE (trap_oslar_el1; __sysreg_{save,restore}_el1_state) ---
    oslar_sets_oslk: bool  # a guest OSLAR_EL1 write sets / clears the stored OSLK
    pe_follows_guest: bool  # while the guest runs, the PE's OS Lock is the guest's stored OSLK
    host_runs_locked: bool | ByMode[bool]  # after a locked guest exits, and after vcpu_put, the PE stays locked
    host_oslsr: int | None | ByMode[int | None]  # the host context's saved OSLSR_EL1 after an exit; None: no slot
    unlock_lost: bool | ByMode[bool]  # the guest unlocks while loaded; after put/load it is locked again
    vmm_breakpoint_fires: bool  # a KVM_SET_GUEST_DEBUG hardware breakpoint fires in a guest that locked

    # -- ID_AA64DFR0_EL1 (read_id_reg / set_id_reg) -------------------------------------------------
    dfr0: tuple[int, int]  # (DebugVer, DoubleLock) the guest reads, default (Cortex-A57) profile
    baseline_dfr0_errno: int | None  # KVM_SET_ONE_REG of the value a baseline kernel saved; None: accepted
    # KVM_SET_ONE_REG of ID_AA64DFR0_EL1 (default profile), errno or None for accepted: PMUVer lowered
    # (1 -> 0) before the VM has run; the same after it has run; DebugVer raised by one above what KVM
    # reports, before the VM runs
    dfr0_set: tuple[int | None, int | None, int | None]
    # on a Cortex-A76 host (Debug v8.2): the DebugVer the guest reads, and the errno of restoring the
    # ID_AA64DFR0_EL1 a baseline kernel saved on the same host (None: accepted)
    dfr0_a76: tuple[int, int | None]

    # -- the kernel selftest debug-exceptions.c ([PATCH v5 6/6]), each stage on its own -------------
    # one letter per stage of SELFTEST_STAGES, P(ass) or F(ail); the real run stops at the first F
    selftest: str | ByMode[str]

    def at(self, vhe: bool) -> Facts:
        """These facts in one host mode: every ``ByMode`` replaced by its nVHE or VHE value."""
        mode = "vhe" if vhe else "nvhe"
        return replace(self, **{f.name: getattr(getattr(self, f.name), mode) for f in fields(self)
                                if isinstance(getattr(self, f.name), ByMode)})


ROWS: tuple[Facts, ...] = (
    Facts("baseline", "BRIEF.md 5 (baseline) and 8; trap_raz_wi, trap_oslsr_el1 and read_id_reg in sys_regs.c, "
                      "5.15-rc4; README selftest table",
          oslsr_reset=UNLOCKED, oslsr_slot=None, oslsr_listed=False, oslsr_set=SetOslsr.NOT_A_REGISTER,
          planted=(UNLOCKED, None),
          oslar_sets_oslk=False, pe_follows_guest=False, host_runs_locked=False, host_oslsr=None,
          unlock_lost=False, vmm_breakpoint_fires=True,
          dfr0=(6, 0x0), baseline_dfr0_errno=None,
          dfr0_set=(errno.EINVAL, errno.EINVAL, errno.EINVAL),  # __set_id_reg(): invariant
          dfr0_a76=(6, None),
          selftest="PPPPPPFFFF"),
    Facts("p1", "BRIEF.md 5 (patch 1) and 8 (p1 reads back a planted 0x0); [PATCH 1/3] trap_oslsr_el1, "
                "reset_val 0x8",
          oslsr_reset=UNLOCKED, oslsr_slot=UNLOCKED, oslsr_listed=True, oslsr_set=SetOslsr.ANY_VALUE,
          planted=(0x0, 0x0),
          oslar_sets_oslk=False, pe_follows_guest=False, host_runs_locked=False, host_oslsr=None,
          unlock_lost=False, vmm_breakpoint_fires=True,
          dfr0=(6, 0x0), baseline_dfr0_errno=None,
          dfr0_set=(errno.EINVAL, errno.EINVAL, errno.EINVAL),  # __set_id_reg(): invariant
          dfr0_a76=(6, None),
          selftest="PPPPPPFFFF"),
    Facts("p2", "BRIEF.md 5 (patch 2: swapped vcpu_write_sys_reg arguments; nVHE/VHE consequences) and 8; "
                "[PATCH 2/3] trap_oslar_el1, __sysreg_save/restore_el1_state",
          oslsr_reset=LOCKED, oslsr_slot=LOCKED, oslsr_listed=True, oslsr_set=SetOslsr.ANY_VALUE,
          # nVHE: the trapped read exits first, which saves the PE's 0x8; VHE: vcpu_put saves it
          planted=ByMode(nvhe=(UNLOCKED, UNLOCKED), vhe=(0x0, UNLOCKED)),
          oslar_sets_oslk=False, pe_follows_guest=True, host_runs_locked=ByMode(nvhe=False, vhe=True),
          host_oslsr=ByMode(nvhe=UNLOCKED, vhe=None),
          unlock_lost=True, vmm_breakpoint_fires=False,
          dfr0=(6, 0x0), baseline_dfr0_errno=None,
          dfr0_set=(errno.EINVAL, errno.EINVAL, errno.EINVAL),  # __set_id_reg(): invariant
          dfr0_a76=(6, None),
          selftest="PFFFFFPPPP"),
    Facts("p3", "BRIEF.md 5 (patch 3 and the migration objection, Re: [PATCH 3/3]) and 8; [PATCH 3/3] "
                "read_id_reg: DebugVer 8, DoubleLock 0xF; the rest as p2",
          oslsr_reset=LOCKED, oslsr_slot=LOCKED, oslsr_listed=True, oslsr_set=SetOslsr.ANY_VALUE,
          planted=ByMode(nvhe=(UNLOCKED, UNLOCKED), vhe=(0x0, UNLOCKED)),
          oslar_sets_oslk=False, pe_follows_guest=True, host_runs_locked=ByMode(nvhe=False, vhe=True),
          host_oslsr=ByMode(nvhe=UNLOCKED, vhe=None),
          unlock_lost=True, vmm_breakpoint_fires=False,
          dfr0=(8, 0xF), baseline_dfr0_errno=errno.EINVAL,
          dfr0_set=(errno.EINVAL, errno.EINVAL, errno.EINVAL),  # __set_id_reg(): invariant
          dfr0_a76=(8, errno.EINVAL),
          selftest="PFFFFFPPPP"),
    Facts("upstream", "BRIEF.md 5 (upstream, 5.18) and 8; [PATCH v4 3/6] set_oslsr_el1, [PATCH v4 4/6] "
                      "kvm_arm_setup_debug; selftest [PATCH v5 6/6]",
          oslsr_reset=UNLOCKED, oslsr_slot=UNLOCKED, oslsr_listed=True, oslsr_set=SetOslsr.OSLK_ONLY,
          planted=(UNLOCKED, UNLOCKED),
          oslar_sets_oslk=True, pe_follows_guest=False, host_runs_locked=False, host_oslsr=None,
          unlock_lost=False, vmm_breakpoint_fires=True,
          dfr0=(6, 0x0), baseline_dfr0_errno=None,
          dfr0_set=(errno.EINVAL, errno.EINVAL, errno.EINVAL),  # __set_id_reg(): invariant
          dfr0_a76=(6, None),
          selftest="PPPPPPPPPP"),
    Facts("p2-intended", "BRIEF.md 5 (patch 2 as intended; VHE again, for the intended reading); 5.15 "
                         "vcpu_write_sys_reg and kvm_vcpu_put_sysregs_vhe; README selftest table",
          oslsr_reset=LOCKED, oslsr_slot=LOCKED, oslsr_listed=True, oslsr_set=SetOslsr.ANY_VALUE,
          planted=ByMode(nvhe=(UNLOCKED, UNLOCKED), vhe=(0x0, UNLOCKED)),
          oslar_sets_oslk=True, pe_follows_guest=True, host_runs_locked=ByMode(nvhe=False, vhe=True),
          host_oslsr=ByMode(nvhe=UNLOCKED, vhe=None),
          unlock_lost=ByMode(nvhe=False, vhe=True), vmm_breakpoint_fires=False,
          dfr0=(6, 0x0), baseline_dfr0_errno=None,
          dfr0_set=(errno.EINVAL, errno.EINVAL, errno.EINVAL),  # __set_id_reg(): invariant
          dfr0_a76=(6, None),
          selftest=ByMode(nvhe="PPPPPPPPPP", vhe="PFFFFFPPPP")),
    Facts("writable-dfr0", "Linux 6.7 sys_regs.c: set_id_aa64dfr0_el1, set_id_reg (kvm_vm_has_ran_once: EBUSY), "
                           "arm64_check_features (DebugVer, PMUVer lower-safe), read_sanitised_id_aa64dfr0_el1 "
                           "(DebugVer capped at v8.8); 'Enable writable ID registers' v11; OS Lock as upstream",
          oslsr_reset=UNLOCKED, oslsr_slot=UNLOCKED, oslsr_listed=True, oslsr_set=SetOslsr.OSLK_ONLY,
          planted=(UNLOCKED, UNLOCKED),
          oslar_sets_oslk=True, pe_follows_guest=False, host_runs_locked=False, host_oslsr=None,
          unlock_lost=False, vmm_breakpoint_fires=True,
          dfr0=(6, 0x0), baseline_dfr0_errno=None,
          dfr0_set=(None, errno.EBUSY, errno.EINVAL),
          dfr0_a76=(8, None),
          selftest="PPPPPPPPPP"),
)

FACTS: dict[str, Facts] = {row.variant: row for row in ROWS}


def facts(variant: str, vhe: bool) -> Facts:
    """The facts of ``variant`` in one host mode."""
    return FACTS[variant].at(vhe)


def variants_where(test: Any) -> list[str]:
    """The variants (in table order) whose facts pass ``test``, a function of a :class:`Facts`."""
    return [row.variant for row in ROWS if test(row)]


def after_oslar(f: Facts) -> tuple[int, int]:
    """What the guest reads in OSLSR_EL1 after it writes OSLAR_EL1=1, and after OSLAR_EL1=0."""
    return (LOCKED, UNLOCKED) if f.oslar_sets_oslk else (f.oslsr_reset, f.oslsr_reset)
