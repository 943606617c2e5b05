"""The exercises, one factory each, in the order of the learning path.

A grader returns ``(correct, message)`` and may raise
:class:`~kvmdbg.teach.exercises.answers.AnswerFormError` for an answer it cannot read;
:meth:`Exercise.check` turns both into :class:`Feedback` naming the exercise. Messages
never contain the right answer and never repeat the learner's text (which may contain it).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from typing import Any

import kvmdbg.teach.exercises.model as M
from kvmdbg.arch.registers import REGISTERS
from kvmdbg.errors import AsmError, KvmdbgError, RunawayGuestError
from kvmdbg.patches import VARIANTS
from kvmdbg.teach.exercises.answers import read_errno, read_hex, read_number, read_text, read_yes_no
from kvmdbg.teach.exercises.core import Exercise

__all__ = ["FACTORIES", "FORMS"]

Grade = tuple[bool, str]

# The answer forms, in words, as each prompt shows them (answers.py has the exact rules).
FORMS = {
    "number": "a whole number, typed like 7, 0x7, 0b111 or '0x7' (text without 0x or 0b is decimal)",
    "bit": "the number 0 or 1, typed like 0, 1 or '1' (True and False are not numbers)",
    "hex": "a number in hex, typed like 0x62280443, '0x62280443' or '62280443' (text without 0x is hex here)",
    "yesno": "yes or no (True/False, 'yes'/'no', 'y'/'n', 1/0)",
    "errno": "an errno: its number (2 or -2) or its name ('ENOENT', '-ENOENT'), or 0 if the call succeeds",
    "variant": "a variant name, as a string (one of kvmdbg.VARIANTS, listed in the prompt)",
    "program": "AArch64 assembly source, as a string",
}

OSLSR = REGISTERS["OSLSR_EL1"]


# -- shared graders ------------------------------------------------------------------------------


def _value(expected: Callable[[], int], what: str, close: Callable[[int, int], str | None] | None = None,
           reader: Callable[[Any], int] = read_number) -> Callable[[Any], Grade]:
    """Grade a number against ``expected()``; ``close(got, want)`` may give a specific hint."""

    def grade(answer: Any) -> Grade:
        got = reader(answer)
        want = expected()
        if got == want:
            return True, f"Correct: that is {what}. Well reasoned."
        if got < 0 or got >> 64:
            return False, "Not quite: a register value is between 0 and 2**64 - 1; that one is outside."
        msg = close(got, want) if close is not None else None
        return False, msg or f"Not quite; that is not {what}. Take another look and try again."

    return grade


def _bit(expected: Callable[[], int], what: str, wrong: str) -> Callable[[Any], Grade]:
    def close(got: int, want: int) -> str:
        return wrong if got in (0, 1) else "That field is a single bit: answer with one of the two values a bit has."

    return _value(expected, what, close)


def _oslsr_close(oslk_hint: str) -> Callable[[int, int], str | None]:
    def close(got: int, want: int) -> str | None:
        if OSLSR.get(got, "OSLM") != OSLSR.get(want, "OSLM"):
            return ("Not quite: check the OSLM bits (bits 3 and 0) first. They say which form of the OS Lock "
                    "is implemented, and every variant reports the AArch64 form.")
        if OSLSR.get(got, "OSLK") != OSLSR.get(want, "OSLK"):
            return "Close: the OSLM bits are right, but think again about OSLK (bit 1). " + oslk_hint
        return ("Not quite: OSLM and OSLK look right, but other bits differ; nTT (bit 2) reads as zero and so "
                "do the unnamed bits.")

    return close


def _errno_grade(expected: Callable[[], int], what: str, zero: str) -> Callable[[Any], Grade]:
    def grade(answer: Any) -> Grade:
        got = read_errno(answer)
        want = expected()
        if got == want:
            return True, f"Correct: that is {what}."
        if got == 0:
            return False, zero
        name = _errno.errorcode.get(got)
        if name is None:
            return False, "That number is not an errno Linux defines; errno values are small positive numbers."
        return False, (f"Not quite: {name} is not {what}. Which errno does KVM use for a value it will not "
                       "accept for this register?")

    return grade


def _yes_no(expected: Callable[[], bool], right: str, wrong: str, yes: tuple[str, ...] = (),
            no: tuple[str, ...] = ()) -> Callable[[Any], Grade]:
    def grade(answer: Any) -> Grade:
        got = read_yes_no(answer, yes, no)
        return (True, right) if got == expected() else (False, wrong)

    return grade


# -- the nine exercises of notebook 09 ---------------------------------------------------------------


def _ex_reset_p2() -> Exercise:
    return Exercise(
        "reset-p2", "Reset value under patch 2",
        "Under variant p2, a vCPU has just been reset (KVM_ARM_VCPU_INIT). The guest executes "
        "MRS x0, OSLSR_EL1. What value does it read?",
        ("OSLSR_EL1 has OSLM (bits 3 and 0), OSLK (bit 1) and nTT (bit 2).",
         "Patch 2 changes the reset value of the stored OSLSR_EL1: is the lock set or clear after a "
         "cold reset?"),
        _value(lambda: M.oslsr_after_reset("p2"), "what the guest reads after reset under p2",
               _oslsr_close("What does this variant choose as the reset value, and does anything change it "
                            "before the read?")),
        FORMS["number"], "03-patch2",
    )


def _ex_which_variant() -> Exercise:
    hidden = "upstream"
    seen, pe = M.signature(hidden)

    def grade(answer: Any) -> Grade:
        v = read_text(answer, "a variant name").strip().lower()
        if v not in VARIANTS:
            return False, "That is not one of the variants named in the prompt (kvmdbg.VARIANTS lists them)."
        target = M.signature(hidden)
        if M.signature(v) == target:
            return True, ("Correct: only that variant stores the guest's lock and still keeps the real OS Lock "
                          "out of the hardware.")
        sv, _ = M.signature(v)
        if sv != target[0]:
            return False, (f"Under {v} the guest's read back would differ from the one in the trace. Which "
                           "variants let a guest write to OSLAR_EL1 change what it reads?")
        return False, (f"Under {v} the guest's read matches, but look at the physical lane: what does {v} do to "
                       "the PE's OS Lock while the guest runs?")

    return Exercise(
        "which-variant", "Which variant made this trace?",
        f"A guest wrote 1 to OSLAR_EL1, then read OSLSR_EL1 and got {seen:#x}. While it ran, the physical "
        f"PE's OSLSR_EL1.OSLK was {pe}. Which variant (one of {', '.join(VARIANTS)}) produced this?",
        ("Compare the guest_view lane with the physical lane.",
         "Patch 2 copies the guest's OSLK into the hardware; which design never does?"),
        grade, FORMS["variant"], "08-upstream", data={"guest_read": seen, "physical_oslk": pe},
    )


def _ex_vhe_put() -> Exercise:
    return Exercise(
        "vhe-put-p2", "The host after vcpu_put (VHE, p2)",
        "Under p2 on a VHE host, a freshly reset vCPU runs (the guest only reads OSLSR_EL1 and never writes "
        "OSLAR_EL1), then KVM calls vcpu_put. What is the physical OSLSR_EL1.OSLK now, while the host runs?",
        ("Remember the reset value of the guest's OSLSR_EL1 under p2.",
         "On VHE the host's EL1 state is never saved or restored by the world switch."),
        _bit(lambda: M.vhe_put_oslk("p2"), "the host's OS Lock after vcpu_put",
             "Not quite. On VHE, which EL1 state does KVM save and restore at vcpu_put, and is the host's own "
             "OS Lock value ever put back?"),
        FORMS["bit"], "05-world-switch",
    )


def _ex_debugver() -> Exercise:
    def close(got: int, want: int) -> str | None:
        if got == M.debugver("baseline"):
            return "That is what the baseline reports. What does patch 3 raise it to?"
        if got >> 4:
            return "DebugVer is a 4-bit field: its value fits in four bits."
        return None

    return Exercise(
        "debugver-p3", "Debug architecture reported by patch 3",
        "Under p3, the guest reads ID_AA64DFR0_EL1. What is its DebugVer field (bits 3:0)?",
        ("Each DebugVer value names an Arm architecture version; the register table in BRIEF section 3 lists "
         "two of them.", "Patch 3's title says which version it raises the report to."),
        _value(lambda: M.debugver("p3"), "p3's DebugVer", close), FORMS["number"], "04-patch3",
    )


def _ex_brk() -> Exercise:
    return Exercise(
        "brk-upstream", "Is BRK taken with the OS Lock set?",
        "Under upstream, the guest sets the OS Lock (MSR OSLAR_EL1 with 1) and then executes BRK #0. "
        "Does the guest take the BRK exception?",
        ("The upstream selftest (debug-exceptions.c, from the v5 series) checks exactly this.",
         "Debug exceptions 'generated only if enabled' and software breakpoint instructions are different "
         "things."),
        _yes_no(lambda: M.brk_taken("upstream"),
                "Correct: the OS Lock blocks breakpoint, watchpoint and step exceptions, but the BRK instruction "
                "is a different kind of exception.",
                "Not quite. Look at the list of what the OS Lock blocks: is a BRK instruction exception on it? "
                "(Notebook 06 has the list.)",
                yes=("taken", "it is taken"), no=("not taken", "blocked", "it is blocked")),
        FORMS["yesno"] + ", or 'taken'/'not taken'", "06-guest-view",
    )


_ESR_FIELDS = (  # name, lsb, width, what to look at (never the value)
    ("EC", 26, 6, "the exception class: which class does a trapped MSR/MRS use?"),
    ("IL", 25, 1, "the instruction length bit: how long is an A64 instruction?"),
    ("RES0", 22, 3, "these bits are RES0 (zero) for this class."),
    ("Op0", 20, 2, "compare with OSLAR_EL1's encoding (op0, op1, CRn, CRm, op2)."),
    ("Op2", 17, 3, "compare with OSLAR_EL1's encoding."),
    ("Op1", 14, 3, "compare with OSLAR_EL1's encoding."),
    ("CRn", 10, 4, "compare with OSLAR_EL1's encoding."),
    ("Rt", 5, 5, "which general register does the MSR name?"),
    ("CRm", 1, 4, "compare with OSLAR_EL1's encoding."),
    ("direction", 0, 1, "is MSR a read or a write (1 = read)?"),
)


def esr_fields_differing(got: int, want: int) -> list[str]:
    """Names of the ESR fields (EC, IL, RES0, Op0, Op2, Op1, CRn, Rt, CRm, direction) that differ."""
    return [name for name, lsb, width, _ in _ESR_FIELDS
            if (got >> lsb) & ((1 << width) - 1) != (want >> lsb) & ((1 << width) - 1)]


def _esr_close(got: int, want: int) -> str:
    if got >> 32:
        return "ESR_EL2 is reported as a 32-bit value here (bits 63:32 are zero): your number is wider."
    differ = esr_fields_differing(got, want)
    bits = {name: (f"bit {lsb}" if width == 1 else f"bits {lsb + width - 1}:{lsb}") for name, lsb, width, _ in
            _ESR_FIELDS}
    why = {name: text for name, _, _, text in _ESR_FIELDS}
    if "EC" in differ:
        shown = [n for n in differ if n in ("EC", "IL")]
        return ("Check the exception class first; the ISS layout depends on it. Look again at: "
                + " ".join(f"{n} ({bits[n]}), {why[n]}" for n in shown))
    return ("Not quite. These fields differ from the syndrome KVM sees: "
            + " ".join(f"{n} ({bits[n]}), {why[n]}" for n in differ))


def _ex_esr() -> Exercise:
    return Exercise(
        "esr-oslar", "Decode a trap: the ESR_EL2 value",
        "With MDCR_EL2.TDOSA set, the guest executes MSR OSLAR_EL1, x1. What ESR_EL2 value does KVM see? "
        "Answer the 32-bit syndrome in hex.",
        ("EC is bits 31:26 (a trapped MSR/MRS has its own class); IL (bit 25) is 1 for a 32-bit instruction.",
         "ISS: Op0 21:20, Op2 19:17, Op1 16:14, CRn 13:10, Rt 9:5, CRm 4:1, direction bit 0 (1 = read)."),
        _value(M.esr_oslar_x1, "the syndrome", _esr_close, reader=read_hex), FORMS["hex"], "06-guest-view",
    )


def _program_grade(answer: Any) -> Grade:
    source = read_text(answer, "a program")
    try:
        _, accesses = M.run_recorded("upstream", source)
    except AsmError as e:
        return False, f"The program does not assemble: {e}. Fix that line and try again."
    except RunawayGuestError:
        return False, ("The program did not finish within 10000 instructions: does a branch loop forever? "
                       "A straight-line program is enough here.")
    except KvmdbgError as e:
        return False, f"The program did not run to its end: {e}"
    oslk = OSLSR.field("OSLK")
    writes = [k for k, a in enumerate(accesses) if a.register == "OSLAR_EL1" and not a.is_read and not a.faulted]
    if not writes:
        return False, ("Your program never writes OSLAR_EL1 (with MSR). Which register does a guest write to "
                       "set the OS Lock?")
    locks = [k for k in writes if (accesses[k].value or 0) & 1]
    if not locks:
        return False, ("Your program writes OSLAR_EL1, but never with bit 0 set: look at the value in the "
                       "general register the MSR names when it runs.")
    reads = [a for a in accesses[locks[0] + 1:] if a.register == "OSLSR_EL1" and a.is_read and not a.faulted]
    if not reads:
        return False, ("The lock is set. Now read OSLSR_EL1 back with MRS, after the lock, into a general "
                       "register so the program can see it.")
    if all(a.rt == 31 for a in reads):
        return False, ("Your MRS of OSLSR_EL1 names xzr, which discards the value: read it into one of x0 to "
                       "x30.")
    if not any(a.rt != 31 and oslk.extract(a.value or 0) for a in reads):
        return False, ("By the time your program reads OSLSR_EL1 the lock is clear again: read it back before "
                       "anything unlocks.")
    return True, "Correct: your program set the lock and read the locked status back into a general register."


def _ex_program() -> Exercise:
    return Exercise(
        "program-lock", "Write a guest program",
        "Write an AArch64 guest program (assembly, as a string) that sets the OS Lock and then reads "
        "OSLSR_EL1 back into a general register. It is checked by running it on Machine('upstream') and "
        "looking at the system-register accesses it made: a write of OSLAR_EL1 with bit 0 set, then a read "
        "of OSLSR_EL1 that returns the locked status into x0..x30.",
        ("Writing OSLAR_EL1 with bit 0 set locks; OSLSR_EL1 is read with MRS.",
         "Two instructions to set a register and write OSLAR_EL1, an ISB, then an MRS."),
        _program_grade, FORMS["program"], "06-guest-view",
    )


def _ex_migration() -> Exercise:
    return Exercise(
        "migration-errno", "Migrating from an older kernel",
        "A VMM saved a vCPU on the baseline kernel, including ID_AA64DFR0_EL1, and restores it with "
        "KVM_SET_ONE_REG on a p3 kernel. Which errno does the ioctl fail with?",
        ("ID registers are invariant for userspace in this era of KVM.",
         "Patch 3 changed two fields of the value KVM reports."),
        _errno_grade(lambda: M.migration_errno("baseline", "p3"), "the errno KVM returns here",
                     "Not quite: patch 3 does refuse the restore. Which errno does KVM use for a value it will not "
                     "accept?"),
        FORMS["errno"], "04-patch3",
    )


def _ex_oslsr_write() -> Exercise:
    def close(got: int, want: int) -> str:
        if got == 0x18:
            return ("That is the class EL2 sees for a trapped MSR/MRS, but this write never reaches KVM: the "
                    "architecture makes it UNDEFINED at the guest's own EL1. What class does an UNDEF have there?")
        return "Not quite: OSLSR_EL1 is read-only. What exception class does an UNDEFINED instruction have?"

    def expected() -> int:
        ec = M.oslsr_write_ec("upstream")
        assert ec is not None, "the model no longer faults a write of OSLSR_EL1"
        return ec

    return Exercise(
        "oslsr-write-upstream", "Writing a read-only register",
        "Under upstream, the guest executes MSR OSLSR_EL1, x0. It takes an exception at EL1. What is the "
        "exception class (ESR_EL1.EC)?",
        ("OSLSR_EL1 is read-only.", "Notebook 06 lists the exception classes that matter."),
        _value(expected, "the class of that exception", close), FORMS["number"], "06-guest-view",
    )


# -- one per lesson, notebooks 01-08 ----------------------------------------------------------------


def _ex_nb00() -> Exercise:
    return Exercise(
        "nb00-oslsr-locked", "OSLSR_EL1 with the lock set",
        "OSLSR_EL1 reads 0x8 while the OS Lock is clear: OSLM (bits 3 and 0) is 0b10 and OSLK (bit 1) is 0. A "
        "guest whose kernel emulates the lock faithfully (upstream) sets the lock with MSR OSLAR_EL1 and then "
        "reads OSLSR_EL1. What does it read?",
        ("Only one field changes when the lock is set.", "OSLK is bit 1: what is 0x8 with bit 1 set?"),
        _value(lambda: M.read_after_lock("upstream"), "what OSLSR_EL1 reads with the lock set",
               _oslsr_close("Setting the lock sets OSLK, bit 1.")),
        FORMS["number"], "00-welcome",
    )


def _ex_nb01() -> Exercise:
    return Exercise(
        "nb01-baseline-read", "Baseline: read back after asking for the lock",
        "Under baseline (5.15-rc4), the guest writes 1 to OSLAR_EL1 (asking for the OS Lock), then reads "
        "OSLSR_EL1. What value does it read?",
        ("OSLSR_EL1 has OSLM (bits 3 and 0), OSLK (bit 1) and nTT (bit 2).",
         "How does the baseline handle a guest's OSLAR_EL1 write, and where does a read of OSLSR_EL1 come "
         "from?"),
        _value(lambda: M.read_after_lock("baseline"), "what the baseline guest reads",
               _oslsr_close("Did the write of OSLAR_EL1 change anything under the baseline?")),
        FORMS["number"], "01-baseline",
    )


def _ex_nb02() -> Exercise:
    return Exercise(
        "nb02-reg-list-p1", "Patch 1: is OSLSR_EL1 in the register list?",
        "Under p1, a VMM calls KVM_GET_REG_LIST to learn which registers to save. Does the list include "
        "OSLSR_EL1?",
        ("KVM_GET_REG_LIST lists the registers KVM keeps a copy of in the vCPU context.",
         "Patch 1's subject says what it does with OSLSR_EL1."),
        _yes_no(lambda: M.in_reg_list("p1", "OSLSR_EL1"),
                "Correct: once a variant stores the register in the vCPU context, userspace sees it in the list.",
                "Not quite. What did patch 1 add to the vCPU context, and what does KVM_GET_REG_LIST list?",
                yes=("listed", "included", "in the list"), no=("not listed", "not included", "absent")),
        FORMS["yesno"] + ", or 'listed'/'not listed'", "02-patch1",
    )


def _ex_nb03() -> Exercise:
    def close(got: int, want: int) -> str:
        if got in (0x8, 0xA):
            return ("That is an OSLSR_EL1 value. Did the handler store into OSLSR_EL1, or somewhere else? Read "
                    "the handler's call of vcpu_write_sys_reg() against its prototype.")
        if got == M.ttbr1_before("p2"):
            return ("That is what TTBR1_EL1 held before the unlock: the write did change it. Which argument of "
                    "vcpu_write_sys_reg() is the value, and which the index?")
        return ("Not quite. Read patch 2's call vcpu_write_sys_reg(vcpu, OSLSR_EL1, new) against the 5.15 "
                "prototype (vcpu, val, reg): what value lands in which slot?")

    return Exercise(
        "nb03-ttbr1-p2", "Patch 2 as posted: what the unlock does to TTBR1_EL1",
        "Under p2 (the code as posted), a freshly reset guest unlocks the OS Lock by writing 0 to OSLAR_EL1, "
        "as Linux's clear_os_lock() does at boot, and then reads TTBR1_EL1. What value does it read?",
        ("Look at the arguments of vcpu_write_sys_reg() in trap_oslar_el1 and at its 5.15 prototype.",
         "In KVM's sysreg enum each register is a number; OSLSR_EL1's number is what gets stored."),
        _value(lambda: M.ttbr1_after_unlock("p2"), "what the guest reads from TTBR1_EL1", close),
        FORMS["number"], "03-patch2",
    )


def _ex_nb04() -> Exercise:
    def close(got: int, want: int) -> str | None:
        if got == M.doublelock("baseline"):
            return ("That is what the baseline reports (the host CPU's field, passed through). What does patch 3 "
                    "report instead?")
        if got >> 4:
            return "DoubleLock is a 4-bit field: its value fits in four bits."
        return None

    return Exercise(
        "nb04-doublelock-p3", "Patch 3: the DoubleLock field",
        "Under p3, the guest reads ID_AA64DFR0_EL1. What is its DoubleLock field (bits 39:36)?",
        ("DoubleLock is a 4-bit ID field: one value means 'implemented', another 'not implemented'.",
         "Patch 3 stops advertising FEAT_DoubleLock, which KVM never emulated."),
        _value(lambda: M.doublelock("p3"), "p3's DoubleLock field", close), FORMS["number"], "04-patch3",
    )


def _ex_nb05() -> Exercise:
    return Exercise(
        "nb05-nvhe-exit-p2", "nVHE, p2: the host's lock after an exit",
        "Under p2 on an nVHE host, a freshly reset vCPU runs (the guest only reads OSLSR_EL1), then the guest "
        "is interrupted and exits to the host, which handles the exit with the vCPU still loaded (no "
        "vcpu_put). What is the physical OSLSR_EL1.OSLK while the host runs?",
        ("On nVHE both the host's and the guest's EL1 contexts are switched on every entry and exit.",
         "What value did the host kernel give its own OS Lock at boot?"),
        _bit(lambda: M.nvhe_exit_oslk("p2"), "the host's OS Lock after the exit",
             "Not quite. On nVHE, which context does the exit path restore into the PE before the host runs?"),
        FORMS["bit"], "05-world-switch",
    )


def _ex_nb06() -> Exercise:
    def close(got: int, want: int) -> str | None:
        known = {0x00: "EC 0x00 (unknown reason) is what an UNDEF looks like to the guest; this MSR is not "
                       "UNDEFINED, it is trapped to EL2 by MDCR_EL2.TDOSA.",
                 0x05: "That is the class of a trapped AArch32 MCR/MRC p14 access; the guest here is AArch64.",
                 0x3C: "That is the class of a BRK instruction.",
                 0x16: "That is the class of an HVC instruction."}
        if got >> 6:
            return "EC is a 6-bit field (bits 31:26): answer the class, not the whole syndrome."
        return known.get(got)

    return Exercise(
        "nb06-trap-ec", "The exception class of a trapped MSR",
        "MDCR_EL2.TDOSA is set, so when the guest executes MSR OSLAR_EL1, x1 the access traps to EL2. What "
        "exception class (ESR_EL2.EC, bits 31:26) does KVM see?",
        ("The same class covers every trapped MSR, MRS and system instruction of an AArch64 guest.",
         "KVM sends this class to kvm_handle_sys_reg (ESR_ELx_EC_SYS64 in the kernel)."),
        _value(lambda: M.trapped_msr_ec("upstream"), "the class of a trapped MSR/MRS", close),
        FORMS["number"], "06-guest-view",
    )


def _ex_nb07_oslsr() -> Exercise:
    return Exercise(
        "nb07-set-oslsr-upstream", "Upstream: userspace writes OSLSR_EL1 = 0x0",
        "Under upstream, a VMM calls KVM_SET_ONE_REG to set OSLSR_EL1 to 0x0 (no OS Lock implemented). Does "
        "the ioctl succeed (answer 0) or fail, and with which errno?",
        ("Upstream checks what userspace writes to OSLSR_EL1: only one bit may differ from the reset value.",
         "OSLM says the OS Lock is implemented; may userspace change that?"),
        _errno_grade(lambda: M.set_oslsr_errno("upstream", 0x0), "what KVM answers here",
                     "Not quite: upstream refuses this value. Which bits of OSLSR_EL1 may userspace change?"),
        FORMS["errno"], "07-userspace",
    )


def _ex_nb07_id() -> Exercise:
    return Exercise(
        "nb07-set-id-errno", "Userspace changes an ID register",
        "Under baseline, a VMM reads ID_AA64DFR0_EL1 with KVM_GET_ONE_REG, changes its DebugVer field and "
        "writes the value back with KVM_SET_ONE_REG. Does the ioctl succeed (answer 0) or fail, and with which "
        "errno?",
        ("In this era of KVM, ID registers are invariant for userspace.",
         "A value other than the one KVM reports is refused; which errno means a bad argument?"),
        _errno_grade(lambda: M.changed_id_errno("baseline"), "the errno KVM returns here",
                     "Not quite: KVM refuses this write. Which errno does it use for a value it will not accept?"),
        FORMS["errno"], "07-userspace",
    )


def _ex_nb08() -> Exercise:
    return Exercise(
        "nb08-mde-upstream", "Upstream: MDE while the guest's lock is set",
        "Under upstream, the guest sets MDSCR_EL1.KDE and MDSCR_EL1.MDE (bit 15), then sets its OS Lock "
        "(MSR OSLAR_EL1 with 1). While the guest runs with its lock set, what is MDE in the MDSCR_EL1 value "
        "the PE actually holds?",
        ("Upstream never writes the guest's lock into the hardware; it emulates its effect another way.",
         "What must be off in MDSCR_EL1 so that breakpoints and watchpoints are not generated?"),
        _bit(lambda: M.mde_while_locked("upstream"), "MDE in the value the guest runs with",
             "Not quite: that is the guest's own copy, what it reads back. What does upstream do to the value it "
             "loads into the PE while the lock is set?"),
        FORMS["bit"], "08-upstream",
    )


FACTORIES: tuple[Callable[[], Exercise], ...] = (
    _ex_reset_p2, _ex_which_variant, _ex_vhe_put, _ex_debugver, _ex_brk, _ex_esr, _ex_program, _ex_migration,
    _ex_oslsr_write,
    _ex_nb00, _ex_nb01, _ex_nb02, _ex_nb03, _ex_nb04, _ex_nb05, _ex_nb06, _ex_nb07_oslsr, _ex_nb07_id, _ex_nb08,
)
