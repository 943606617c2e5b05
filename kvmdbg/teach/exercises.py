"""Graded exercises along the learning path.

Each :class:`Exercise` has a ``prompt``, ``hints`` and ``check(answer)``
returning :class:`Feedback` (``correct`` and a kind, specific ``message`` that
never gives the answer away). Every expected answer is computed from the
model when it is checked, so the exercises stay true as the model evolves.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvmdbg.arch.registers import REGISTERS
from kvmdbg.errors import GuestFault, KvmdbgError
from kvmdbg.machine import Machine
from kvmdbg.patches import VARIANTS

__all__ = ["Feedback", "Exercise", "all_exercises", "get", "names", "oslsr_after_reset", "signature",
           "vhe_put_oslk", "debugver", "brk_taken", "esr_oslar_x1", "migration_errno", "oslsr_write_ec"]


@dataclass(frozen=True)
class Feedback:
    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def _repr_html_(self) -> str:
        import html

        colour = "#1b7837" if self.correct else "#8c510a"
        mark = "✓" if self.correct else "✗"
        return f'<div style="color:{colour}"><b>{mark}</b> {html.escape(self.message)}</div>'

    def __str__(self) -> str:
        return ("✓ " if self.correct else "✗ ") + self.message


@dataclass
class Exercise:
    """One graded question: ``check(answer)`` compares with an answer the model computes."""

    name: str
    title: str
    prompt: str
    hints: tuple[str, ...]
    _grade: Callable[[Any], Feedback] = field(repr=False)
    data: Any = None

    def check(self, answer: Any) -> Feedback:
        try:
            return self._grade(answer)
        except (TypeError, ValueError) as e:
            first = self.hints[0] if self.hints else ""
            return Feedback(False, f"I could not read that answer ({e}). {first}")

    def hint(self, n: int = 0) -> str:
        return self.hints[min(n, len(self.hints) - 1)]

    def _repr_html_(self) -> str:
        import html

        return f"<h4>{html.escape(self.title)}</h4><p>{html.escape(self.prompt)}</p>"


# -- answer parsing ----------------------------------------------------------------------


def _as_int(answer: Any) -> int:
    if isinstance(answer, bool):
        return int(answer)
    if isinstance(answer, int):
        return answer
    if isinstance(answer, str):
        s = answer.strip().lower().replace("_", "")
        if s in ("yes", "true", "locked", "set"):
            return 1
        if s in ("no", "false", "unlocked", "clear"):
            return 0
        if s.startswith("0b"):
            return int(s, 2)
        return int(s, 0)
    raise TypeError(f"expected a number such as 0x8 or 10, got {type(answer).__name__}")


def _as_bool(answer: Any) -> bool:
    if isinstance(answer, str):
        s = answer.strip().lower()
        if s in ("yes", "y", "true", "taken", "1"):
            return True
        if s in ("no", "n", "false", "not taken", "blocked", "0"):
            return False
        raise ValueError(f"answer yes or no, not {answer!r}")
    return bool(answer)


# -- the model's answers -------------------------------------------------------------------


def oslsr_after_reset(variant: str) -> int:
    m = Machine(variant, trace=False)
    m.reset_vcpu()
    return m.guest_read("OSLSR_EL1")


def signature(variant: str) -> tuple[int, int]:
    """What the trace exercise shows: the guest's OSLSR read after locking, and the PE's OSLK meanwhile."""
    m = Machine(variant, trace=False)
    m.guest_write("OSLAR_EL1", 1)
    seen = m.guest_read("OSLSR_EL1")
    return seen, REGISTERS["OSLSR_EL1"].get(m.physical("OSLSR_EL1"), "OSLK")


def vhe_put_oslk(variant: str) -> int:
    m = Machine(variant, vhe=True, trace=False)
    m.guest_read("OSLSR_EL1")  # run the guest once (it comes up with its reset value)
    m.vcpu_put()
    return REGISTERS["OSLSR_EL1"].get(m.physical("OSLSR_EL1"), "OSLK")


def debugver(variant: str) -> int:
    m = Machine(variant, trace=False)
    return REGISTERS["ID_AA64DFR0_EL1"].get(m.guest_read("ID_AA64DFR0_EL1"), "DebugVer")


BRK_PROGRAM = """\
    mov x1, #1
    msr oslar_el1, x1
    isb
    brk #0
"""


def brk_taken(variant: str) -> bool:
    from kvmdbg.arch.a64 import assemble

    m = Machine(variant, trace=False)
    res = m.run(assemble(BRK_PROGRAM))
    return any(e.kind == "brk" for e in res.exceptions)


def esr_oslar_x1() -> int:
    from kvmdbg.arch.esr import esr_sysreg

    enc = REGISTERS["OSLAR_EL1"].encoding
    assert enc is not None
    return esr_sysreg(enc, 1, False)


def migration_errno(src: str, dst: str) -> int:
    saved = Machine(src, trace=False).get_one_reg("ID_AA64DFR0_EL1")
    try:
        Machine(dst, trace=False).set_one_reg("ID_AA64DFR0_EL1", saved)
    except OSError as e:
        return int(e.errno or 0)
    return 0


def oslsr_write_ec(variant: str) -> int | None:
    m = Machine(variant, trace=False)
    try:
        m.guest_write("OSLSR_EL1", 0)
    except GuestFault as e:
        return e.ec
    return None


# -- graders ------------------------------------------------------------------------------------


def _grade_value(expected: Callable[[], int], *, reg: str | None = None, what: str,
                 close: Callable[[int, int], str | None] | None = None) -> Callable[[Any], Feedback]:
    def grade(answer: Any) -> Feedback:
        got = _as_int(answer)
        want = expected()
        if got == want:
            return Feedback(True, f"Correct: that is {what}. Well reasoned.")
        if close is not None:
            msg = close(got, want)
            if msg:
                return Feedback(False, msg)
        if reg is not None:
            r = REGISTERS[reg]
            if got >> 64:
                return Feedback(False, f"{got:#x} does not fit in a 64-bit register; try again.")
            diff = [f.name for f in r.fields if f.extract(got) != f.extract(want)]
            if diff:
                return Feedback(False, f"Not quite: look again at the field(s) {', '.join(diff)} of {reg}. "
                                       "Decode your value with REGISTERS[...].describe() and compare it with "
                                       "what the variant does.")
            return Feedback(False, f"Not quite: the named fields of {reg} look right, but some other bits "
                                   "differ; the unnamed bits read as zero.")
        return Feedback(False, f"Not quite; that is not {what}. Take another look and try again.")

    return grade


def _oslsr_close(got: int, want: int) -> str | None:
    r = REGISTERS["OSLSR_EL1"]
    if r.get(got, "OSLM") != r.get(want, "OSLM"):
        return ("Not quite: check the OSLM bits first. They say which form of the OS Lock is implemented, "
                "and every variant reports the AArch64 form.")
    if r.get(got, "OSLK") != r.get(want, "OSLK"):
        return ("Close: the OSLM bits are right, but think again about OSLK. What does this variant "
                "choose as the reset value, and does anything change it before the read?")
    return None


def _ex_reset_p2() -> Exercise:
    return Exercise(
        "reset-p2", "Reset value under patch 2",
        "Under variant p2, a vCPU has just been reset. The guest executes MRS x0, OSLSR_EL1. "
        "What value does it read? Answer a number (for example 0x8).",
        ("OSLSR_EL1 has OSLM (bits 3 and 0), OSLK (bit 1) and nTT (bit 2).",
         "Patch 2 changes the reset value of the stored OSLSR_EL1: is the lock set or clear after a "
         "cold reset?"),
        _grade_value(lambda: oslsr_after_reset("p2"), what="what the guest reads after reset under p2",
                     close=_oslsr_close, reg="OSLSR_EL1"),
    )


def _ex_which_variant() -> Exercise:
    hidden = "upstream"
    seen, pe = signature(hidden)
    candidates = lambda: {v for v in VARIANTS if signature(v) == signature(hidden)}  # noqa: E731

    def grade(answer: Any) -> Feedback:
        if not isinstance(answer, str):
            raise TypeError("answer with a variant name such as 'p1'")
        v = answer.strip().lower()
        if v not in VARIANTS:
            return Feedback(False, f"{answer!r} is not one of the variants {', '.join(VARIANTS)}.")
        ok = candidates()
        if v in ok:
            return Feedback(True, "Correct: only that variant stores the guest's lock and still keeps the "
                                  "real "
                                  "OS Lock out of the hardware.")
        sv, spe = signature(v)
        if sv != seen:
            return Feedback(False, f"Under {v} the guest's read back would differ from the one in the trace. "
                                   "Which variants let a guest write to OSLAR_EL1 change what it reads?")
        return Feedback(False, f"Under {v} the guest's read matches, but look at the physical lane: "
                               "what does "
                               f"{v} do to the PE's OS Lock while the guest runs?")

    return Exercise(
        "which-variant", "Which variant made this trace?",
        f"A guest wrote 1 to OSLAR_EL1, then read OSLSR_EL1 and got {seen:#x}. While it ran, the physical "
        f"PE's OSLSR_EL1.OSLK was {pe}. Which variant (one of {', '.join(VARIANTS)}) produced this?",
        ("Compare the guest_view lane with the physical lane.",
         "Patch 2 copies the guest's OSLK into the hardware; which design never does?"),
        grade, data={"guest_read": seen, "physical_oslk": pe},
    )


def _ex_vhe_put() -> Exercise:
    def close(got: int, want: int) -> str | None:
        if got not in (0, 1):
            return "OSLK is a single bit: answer 0 or 1."
        return ("Not quite. On VHE, which EL1 state does KVM save and restore at vcpu_put, and is the "
                "host's own OS Lock value ever put back?")

    return Exercise(
        "vhe-put-p2", "The host after vcpu_put (VHE, p2)",
        "Under p2 on a VHE host, a freshly reset vCPU runs (the guest only reads OSLSR_EL1 and never "
        "writes OSLAR_EL1), then "
        "KVM calls vcpu_put. What is the physical OSLSR_EL1.OSLK now, while the host runs? Answer 0 or 1.",
        ("Remember the reset value of the guest's OSLSR_EL1 under p2.",
         "On VHE the host's EL1 state is never saved or restored by the world switch."),
        _grade_value(lambda: vhe_put_oslk("p2"), what="the host's OS Lock after vcpu_put", close=close),
    )


def _ex_debugver() -> Exercise:
    def close(got: int, want: int) -> str | None:
        if got == debugver("baseline"):
            return "That is what the baseline reports. What does patch 3 raise it to?"
        return None

    return Exercise(
        "debugver-p3", "Debug architecture reported by patch 3",
        "Under p3, the guest reads ID_AA64DFR0_EL1. What is its DebugVer field (bits 3:0)? Answer a number.",
        ("DebugVer 6 means Armv8.0, 8 means Armv8.2.", "Patch 3's title says what it raises the version to."),
        _grade_value(lambda: debugver("p3"), what="p3's DebugVer", close=close),
    )


def _ex_brk() -> Exercise:
    def grade(answer: Any) -> Feedback:
        got = _as_bool(answer)
        want = brk_taken("upstream")
        if got == want:
            return Feedback(True, "Correct: the OS Lock blocks breakpoint, watchpoint and step exceptions, "
                                  "but the BRK instruction is a different kind of exception.")
        return Feedback(False, "Not quite. Look at the list of what the OS Lock blocks: "
                               "is a BRK instruction exception on it? (Notebook 06 has the list.)")

    return Exercise(
        "brk-upstream", "Is BRK taken with the OS Lock set?",
        "Under upstream, the guest sets the OS Lock (MSR OSLAR_EL1 with 1) and then executes BRK #0. "
        "Does the guest take the BRK exception? Answer yes or no.",
        ("The upstream selftest (debug-exceptions.c, from the v5 series) checks exactly this.",
         "Debug exceptions 'generated only if enabled' and software breakpoint instructions are "
         "different things."),
        grade,
    )


def _ex_esr() -> Exercise:
    def close(got: int, want: int) -> str | None:
        if (got >> 26) & 0x3F != (want >> 26) & 0x3F:
            return "Check the exception class (bits 31:26): which EC does a trapped MSR/MRS use?"
        if (got >> 5) & 0x1F != (want >> 5) & 0x1F:
            return "The EC is right; now check Rt (bits 9:5): which general register does the MSR use?"
        if got & 1 != want & 1:
            return "Almost: check the direction bit (bit 0). Is MSR a read or a write?"
        return ("The EC, Rt and direction look right; check Op0, Op1, CRn, CRm and Op2 against "
                "OSLAR_EL1's encoding.")

    return Exercise(
        "esr-oslar", "Decode a trap: the ESR_EL2 value",
        "With MDCR_EL2.TDOSA set, the guest executes MSR OSLAR_EL1, x1. What ESR_EL2 value does KVM see? "
        "Answer a 32-bit number in hex.",
        ("EC 0x18 is a trapped MSR/MRS; IL (bit 25) is 1 for a 32-bit instruction.",
         "ISS: Op0 21:20, Op2 19:17, Op1 16:14, CRn 13:10, Rt 9:5, CRm 4:1, direction bit 0 (1 = read)."),
        _grade_value(esr_oslar_x1, what="the syndrome", close=close),
    )


def _ex_program() -> Exercise:
    def grade(answer: Any) -> Feedback:
        from kvmdbg.arch.a64 import assemble

        if not isinstance(answer, str):
            raise TypeError("answer with the program's assembly source as a string")
        try:
            program = assemble(answer)
        except KvmdbgError as e:
            return Feedback(False, f"The program does not assemble: {e}")
        m = Machine("upstream", trace=False)
        try:
            res = m.run(program, max_steps=10000)
        except KvmdbgError as e:
            return Feedback(False, f"The program did not finish cleanly: {e}")
        stored = m.vcpu_reg("OSLSR_EL1")
        r = REGISTERS["OSLSR_EL1"]
        if stored is None or not r.get(stored, "OSLK"):
            return Feedback(False, "After your program the guest's OS Lock is still clear. Which register "
                                   "does "
                                   "a guest write to set the lock, and with which bit?")
        if not any(v == stored for k, v in res.regs.items() if k != "sp"):
            return Feedback(False, "The lock is set. Now read OSLSR_EL1 back into a general register so the "
                                   "program can see it.")
        return Feedback(True, "Correct: the lock is set and your program read back the locked status.")

    return Exercise(
        "program-lock", "Write a guest program",
        "Write an AArch64 guest program (assembly, as a string) that sets the OS Lock and then reads "
        "OSLSR_EL1 back into a general register. It is checked by running it on Machine('upstream').",
        ("Writing OSLAR_EL1 with bit 0 set locks; OSLSR_EL1 is read with MRS.",
         "Two instructions to set a register and write OSLAR_EL1, an ISB, then an MRS."),
        grade,
    )


def _ex_migration() -> Exercise:
    def close(got: int, want: int) -> str | None:
        if got == 0:
            return "Not quite: patch 3 does refuse the restore. Which errno means 'invalid argument'?"
        return (f"Not quite: {_errno.errorcode.get(got, 'that number')} is not what KVM returns when a "
                "value it considers invariant does not match.")

    return Exercise(
        "migration-errno", "Migrating from an older kernel",
        "A VMM saved a vCPU on the baseline kernel, including ID_AA64DFR0_EL1, and restores it with "
        "KVM_SET_ONE_REG on a p3 kernel. Which errno does the ioctl fail with? Answer a number.",
        ("ID registers are invariant for userspace in this era of KVM.",
         "Patch 3 changed two fields of the value KVM reports."),
        _grade_value(lambda: migration_errno("baseline", "p3"), what="the errno", close=close),
    )


def _ex_oslsr_write() -> Exercise:
    def grade(answer: Any) -> Feedback:
        got = _as_int(answer)
        want = oslsr_write_ec("upstream")
        if want is not None and got == want:
            return Feedback(True, "Correct: an UNDEFINED access shows up in the guest with that class.")
        if got == 0x18:
            return Feedback(False, "That is the class EL2 sees for a trapped MSR/MRS, but this write never "
                                   "reaches KVM: the architecture makes it UNDEFINED at the guest's own EL1. "
                                   "What class does an UNDEF have there?")
        return Feedback(False, "Not quite: OSLSR_EL1 is read-only. What exception class does an UNDEFINED "
                               "instruction have?")

    return Exercise(
        "oslsr-write-upstream", "Writing a read-only register",
        "Under upstream, the guest executes MSR OSLSR_EL1, x0. It takes an exception at EL1. What is the "
        "exception class (ESR_EL1.EC)? Answer a number.",
        ("OSLSR_EL1 is read-only.", "Notebook 06 lists the exception classes that matter."),
        grade,
    )


_FACTORIES = (_ex_reset_p2, _ex_which_variant, _ex_vhe_put, _ex_debugver, _ex_brk, _ex_esr, _ex_program,
              _ex_migration, _ex_oslsr_write)


def all_exercises() -> list[Exercise]:
    """Fresh exercise objects, in the order of the learning path."""
    return [f() for f in _FACTORIES]


def names() -> list[str]:
    return [ex.name for ex in all_exercises()]


def get(name: str) -> Exercise:
    for ex in all_exercises():
        if ex.name == name:
            return ex
    raise KeyError(f"no exercise {name!r}; the exercises are {', '.join(names())}")
