"""Whether a debug exception is generated: the architecture's rules, once.

Follows the Arm ARM pseudocode ``AArch64.GenerateDebugExceptionsFrom()``,
``DoubleLockStatus()`` and the breakpoint, watchpoint and software-step
checks (DDI 0487, D2.4 "Enabling debug exceptions from the current Exception
level" and D2.5 "The effect of powerdown on debug exceptions"). Secure state
and EL3 are outside the model: the PE is taken to run in Non-secure state
with MDCR_EL3.SDD irrelevant, which is how Linux/KVM hosts run.

The inputs are raw register values, so the same function answers for the
physical PE (the truth) and for any hypothetical state a lesson wants to show.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvmdbg.arch import bits

__all__ = ["DebugKind", "Verdict", "debug_target_el", "double_lock_in_effect", "debug_exception"]

_OSLK = bits.OSLSR_OSLK
_DLK = bits.OSDLR_DLK
_CORENPDRQ = bits.DBGPRCR_CORENPDRQ
_SS = bits.MDSCR_SS
_KDE = bits.MDSCR_KDE
_MDE = bits.MDSCR_MDE
_TDE = bits.MDCR_TDE
_TGE = bits.HCR_TGE


class DebugKind(enum.Enum):
    BREAKPOINT = "breakpoint"
    WATCHPOINT = "watchpoint"
    SOFTWARE_STEP = "step"
    BRK = "brk"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the exception is generated, where it goes, and why."""

    generated: bool
    target_el: int
    reason: str

    def __bool__(self) -> bool:
        return self.generated


def debug_target_el(mdcr_el2: int, hcr_el2: int) -> int:
    """EL2 when MDCR_EL2.TDE or HCR_EL2.TGE routes debug exceptions there, else EL1."""
    return 2 if (mdcr_el2 & _TDE or hcr_el2 & _TGE) else 1


def double_lock_in_effect(osdlr: int, dbgprcr: int, halted: bool = False) -> bool:
    """``DoubleLockStatus()``: DLK set, CORENPDRQ clear, not halted."""
    return bool(osdlr & _DLK) and not (dbgprcr & _CORENPDRQ) and not halted


def debug_exception(
    kind: DebugKind,
    *,
    current_el: int,
    oslsr: int,
    osdlr: int,
    dbgprcr: int,
    mdscr: int,
    mdcr_el2: int,
    hcr_el2: int,
    pstate_d: bool,
    halted: bool = False,
) -> Verdict:
    """Would a debug exception of ``kind`` be generated now, and to which EL?

    BRK is a synchronous exception from an instruction: neither the OS Lock
    nor any enable bit masks it (Arm ARM D2.3 "Breakpoint Instruction
    exceptions"). Everything else first needs debug exceptions enabled from
    the current EL, then its own enable bit in MDSCR_EL1.
    """
    target = debug_target_el(mdcr_el2, hcr_el2)
    if kind is DebugKind.BRK:
        # BRK goes to EL1 from EL0/EL1 unless routed to EL2 by TDE/TGE, and to
        # the current EL when that is higher.
        return Verdict(True, max(target, current_el), "BRK is always generated; the OS Lock never blocks it")
    if oslsr & _OSLK:
        return Verdict(False, target, "blocked: the OS Lock is set (OSLSR_EL1.OSLK=1)")
    if double_lock_in_effect(osdlr, dbgprcr, halted):
        return Verdict(False, target,
                       "blocked: the OS Double Lock is in effect (OSDLR_EL1.DLK=1, DBGPRCR_EL1.CORENPDRQ=0)")
    if halted:
        return Verdict(False, target, "blocked: the PE is halted")
    if target == current_el:
        if not mdscr & _KDE:
            return Verdict(False, target, f"blocked: same-EL (EL{target}) debug needs MDSCR_EL1.KDE=1")
        if pstate_d:
            return Verdict(False, target, "blocked: PSTATE.D masks same-EL debug exceptions")
    elif target < current_el:
        return Verdict(False, target, f"blocked: a debug exception cannot target EL{target} from EL{current_el}")
    if kind is DebugKind.SOFTWARE_STEP:
        if not mdscr & _SS:
            return Verdict(False, target, "not enabled: MDSCR_EL1.SS=0")
        return Verdict(True, target, f"software step enabled (MDSCR_EL1.SS=1), taken to EL{target}")
    if not mdscr & _MDE:
        return Verdict(False, target, f"not enabled: {kind.value}s need MDSCR_EL1.MDE=1")
    return Verdict(True, target, f"{kind.value} exceptions enabled, taken to EL{target}")
