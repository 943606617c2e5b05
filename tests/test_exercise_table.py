"""Every exercise against a table: right answers in each accepted form, plausible wrong answers,
wrong types and the placeholders. Truthiness must be exact, the feedback must name the
exercise, and no feedback that is not "correct" may contain the answer."""

from __future__ import annotations

import re
from html import escape
from typing import Any

import numpy as np
import pytest

from kvmdbg.teach import exercises as X

PROGRAM = """
    mov x1, #1
    msr oslar_el1, x1
    isb
    mrs x2, oslsr_el1
"""

ESR = 0x62280420  # QEMU and the model agree (BRIEF section 7)


class Row(dict):
    """right / wrong / unreadable answers and the secrets no non-correct feedback may contain."""


def row(right: list[Any], wrong: list[Any], unreadable: list[Any], secrets: list[str]) -> Row:
    return Row(right=right, wrong=wrong, unreadable=unreadable, secrets=secrets)


NUMBER_JUNK = [True, False, 10.0, 3.5, "10.0", [1], {"value": 1}, (1,), object(), b"10", complex(1, 0)]
TEXT_JUNK = [42, 3.5, ["upstream"], {"a": 1}, object(), True]

TABLE: dict[str, Row] = {
    "reset-p2": row(
        [0xA, 10, "0xa", "0xA", "0XA", "10", "0b1010", "0o12", " 0xa ", "\t10\n", np.int64(10), np.uint64(10),
         np.int8(10), "1_0"],
        [0x8, "0x8", "0x2", 0, 11, 0xB, -10, "-0xa", 2**64 + 10, 0xA << 32],
        NUMBER_JUNK + ["no", "unlocked", "locked", "yes", "a", "1a", "0xzz", "ten", np.float64(10.0)],
        ["0xa", "10", "0b1010"]),
    "which-variant": row(
        ["upstream", " Upstream ", "UPSTREAM"],
        ["p2", "baseline", "p1", "p3", "p9", "5.18", "v5"],
        TEXT_JUNK + [3],
        ["upstream"]),
    "vhe-put-p2": row(
        [1, "1", " 1 ", "0x1", "0b1", np.int64(1), np.uint8(1)],
        [0, "0", 7, 2, 0xA],
        NUMBER_JUNK + ["yes", "locked", 1.0],
        []),
    "debugver-p3": row(
        [8, "8", "0x8", "0b1000", np.int64(8)],
        [6, 2, 0, 9, 16, 0x88],
        NUMBER_JUNK + ["v8.2", "Armv8.2", 8.0],
        ["0x8", "8"]),
    "brk-upstream": row(
        [True, "yes", "Yes", " YES ", "y", "true", "taken", "TAKEN", "it is taken", "1", 1, np.bool_(True),
         np.int64(1)],
        [False, "no", "n", "false", "not taken", "Not taken.", "blocked", 0, "0", np.bool_(False)],
        [2, -1, 7, [False], {"taken": False}, object(), "maybe", 1.0, "2", b"yes", (True,)],
        []),
    "esr-oslar": row(
        [ESR, "0x62280420", "62280420", " 0X62280420 ", "6228_0420", np.uint64(ESR), np.int64(ESR),
         bin(ESR), np.uint32(ESR)],
        [0x62280421, 0x62280400, 0x5E000000, 0x62280428, 0x60280420, "60280420", 0x62280443, 0x62A80420,
         0x62200420, (1 << 32) | ESR, "1647838240", 0],
        [float(ESR), True, "0xzz", "esr", [ESR], {"esr": ESR}, object(), "0x62280420.0"],
        ["62280420"]),
    "program-lock": row(
        [PROGRAM, "mov x0, #1\nmsr oslar_el1, x0\nmrs x5, oslsr_el1",
         "mov x3, #3\nmsr oslar_el1, x3\nisb\nmrs x30, oslsr_el1\nnop",
         "mov x1, #1\nmsr oslar_el1, x1\nisb\nmrs x2, oslsr_el1\nmov x2, #0"],
        ["nop", "mov x1, #1\nmsr oslar_el1, x1", "mrs x2, oslsr_el1", "frob",
         "mov x1, #1\nmsr oslar_el1, x1\nmov x2, #0xa",  # never reads OSLSR_EL1 (issue 9)
         "mov x1, #1\nmsr oslar_el1, x1\nisb\nmrs xzr, oslsr_el1",
         "mov x1, #0\nmsr oslar_el1, x1\nmrs x2, oslsr_el1",
         "mov x1, #2\nmsr oslar_el1, x1\nmrs x2, oslsr_el1",
         "mov x1, #1\nmsr oslar_el1, x1\nmsr oslar_el1, xzr\nmrs x2, oslsr_el1",
         "mrs x2, oslsr_el1\nmov x1, #1\nmsr oslar_el1, x1",
         "msr oslar_el1, x1\nmrs x2, oslsr_el1",
         "mov x1, #1\nmsr oslar_el1, x1\nmrs x2, oslar_el1",
         "loop:\n    b loop"],
        [42, [PROGRAM], {"src": PROGRAM}, object(), b"nop", 3.5, True],
        []),
    "migration-errno": row(
        [22, -22, "22", "-22", " 22 ", "EINVAL", "-EINVAL", "einval", " EINVAL ", "+EINVAL", np.int64(22),
         np.int64(-22), np.int32(22)],
        [0, 1, 13, -13, "EACCES", "ENOENT", "-ENOENT", "EPERM", 999, "0"],
        ["EFOO", "E", True, False, 22.0, "invalid", "invalid argument", [22], {"errno": 22}, object(), "22.0"],
        ["22", "EINVAL", "einval"]),
    "oslsr-write-upstream": row(
        [0, "0", "0x00", "0x0", "0b0", np.int64(0), np.uint8(0)],
        [0x18, "0x18", 0x3C, 1, 0x22, 0x62280420],
        NUMBER_JUNK + ["no", "unlocked", "UNDEF", 0.0],
        ["0x00"]),
    "nb00-oslsr-locked": row(
        [0xA, 10, "0xA", "0xa", "10", " 0xa ", "0b1010", np.uint64(10), np.int64(10)],
        [0x8, 0x2, 0xB, 0xE, 0],
        NUMBER_JUNK + ["locked", 10.0],
        ["0xa", "0xA", "10"]),
    "nb01-baseline-read": row(
        [8, 0x8, "0x8", "8", "0b1000", np.uint64(8), np.int64(8)],
        [0xA, 0, 0x2, 9, 0x9, 0xFF],
        NUMBER_JUNK + ["unlocked", 8.0],
        ["0x8", "8"]),
    "nb02-reg-list-p1": row(
        [True, "yes", "y", "listed", "included", "in the list", 1, np.bool_(True)],
        [False, "no", "not listed", "not included", "absent", 0],
        [2, "OSLSR_EL1", [True], {"listed": True}, object(), "perhaps", 1.0],
        []),
    "nb03-ttbr1-p2": row(
        [0x1A, 26, "0x1a", "0x1A", "26", "0b11010", np.int64(26), np.uint64(26)],
        [0, 0xA, 0x8, 0x1DE7EC7EDBADC0DE, 0x1B, 0x1A << 8],
        NUMBER_JUNK + ["1a", 26.0, "twenty-six"],
        ["0x1a", "26"]),
    "nb04-doublelock-p3": row(
        [0xF, 15, "0xf", "0xF", "15", "0b1111", np.int64(15)],
        [0, 1, 0xE, 16, 6, 8],
        NUMBER_JUNK + ["not implemented", 15.0],
        ["0xf", "15"]),
    "nb05-nvhe-exit-p2": row(
        [0, "0", np.int64(0), "0x0"],
        [1, "1", 2],
        NUMBER_JUNK + ["no", "unlocked", 0.0],
        []),
    "nb06-trap-ec": row(
        [0x18, 24, "0x18", "24", "0b11000", np.int64(24)],
        [0, 0x05, 0x3C, 0x16, 0x62280420, 0x19, 0x20],
        NUMBER_JUNK + ["SYS64", 24.0],
        ["0x18", "24"]),
    "nb07-set-oslsr-upstream": row(
        [22, -22, "22", "EINVAL", "-EINVAL", "einval", np.int64(-22)],
        [0, "0", "ENOENT", 1, 2],
        ["EFOO", True, False, 22.0, [22], object()],
        ["22", "EINVAL"]),
    "nb07-set-id-errno": row(
        [22, -22, "22", "-22", "EINVAL", "-EINVAL", np.int64(22)],
        [0, "0", "EPERM", 1],
        ["EFOO", True, 22.0, [22], object()],
        ["22", "EINVAL"]),
    "nb08-mde-upstream": row(
        [0, "0", np.int64(0)],
        [1, "1", 0x8000],
        NUMBER_JUNK + ["off", "cleared", 0.0],
        []),
}

PLACEHOLDERS = [None, ..., "", "   "]


def _texts(fb: X.Feedback) -> list[str]:
    """What the learner reads: the message, the plain text and the HTML's text (tags and styles dropped)."""
    return [fb.message, str(fb), re.sub(r"<[^>]*>", "", fb._repr_html_())]


def _no_secret(name: str, answer: Any, fb: X.Feedback) -> None:
    for secret in TABLE[name]["secrets"]:
        for text in _texts(fb):
            assert secret.lower() not in text.lower(), f"{name}: feedback to {answer!r} reveals the answer: {text}"


def _names_the_exercise(name: str, fb: X.Feedback) -> None:
    assert fb.exercise == name
    assert name in str(fb), str(fb)
    assert f'data-exercise="{name}"' in fb._repr_html_() and f"<code>{name}</code>" in fb._repr_html_()


def test_the_table_covers_every_exercise() -> None:
    assert set(TABLE) == set(X.names())


@pytest.mark.parametrize("name", list(TABLE))
def test_right_answers_in_every_form_pass(name: str) -> None:
    ex = X.get(name)
    for answer in TABLE[name]["right"]:
        fb = ex.check(answer)
        assert fb.correct is True and bool(fb) is True, f"{name}: {answer!r} rejected: {fb.message}"
        assert fb.kind == "correct" and fb.message.startswith("Correct") and str(fb).startswith("✓")
        _names_the_exercise(name, fb)


@pytest.mark.parametrize("name", list(TABLE))
def test_wrong_answers_fail_kindly_without_the_answer(name: str) -> None:
    ex = X.get(name)
    for answer in TABLE[name]["wrong"]:
        fb = ex.check(answer)
        assert fb.correct is False and bool(fb) is False, f"{name}: wrong answer {answer!r} accepted"
        assert fb.kind == "wrong", f"{name}: {answer!r} should be read and judged wrong: {fb.message}"
        assert len(fb.message) > 20 and str(fb).startswith("✗") and "✗" in fb._repr_html_()
        _names_the_exercise(name, fb)
        _no_secret(name, answer, fb)


@pytest.mark.parametrize("name", list(TABLE))
def test_wrong_types_are_never_correct_and_say_which_forms_work(name: str) -> None:
    ex = X.get(name)
    for answer in TABLE[name]["unreadable"]:
        fb = ex.check(answer)
        assert fb.correct is False and bool(fb) is False, f"{name}: unreadable {answer!r} accepted"
        assert fb.kind == "unreadable", f"{name}: {answer!r} gave {fb.kind}: {fb.message}"
        assert "could not read" in fb.message and "answer with" in fb.message
        _names_the_exercise(name, fb)
        _no_secret(name, answer, fb)


@pytest.mark.parametrize("name", list(TABLE))
def test_placeholders_are_a_reminder_not_a_grade(name: str) -> None:
    ex = X.get(name)
    for answer in PLACEHOLDERS:
        fb = ex.check(answer)
        assert fb.correct is False and bool(fb) is False
        assert fb.kind == "unanswered" and "not answered yet" in fb.message and "placeholder" in fb.message
        _names_the_exercise(name, fb)
        _no_secret(name, answer, fb)


def test_integers_from_a_trace_dataframe_are_accepted() -> None:
    from kvmdbg import Machine

    m = Machine("p2")
    m.reset_vcpu()
    m.guest_read("OSLSR_EL1")
    df = m.trace.to_dataframe()
    value = df.query("location == 'guest_view' and register == 'OSLSR_EL1'")["value"].iloc[-1]
    assert not isinstance(value, int)  # a NumPy scalar, as the learner gets it
    assert X.get("reset-p2").check(value)


def test_yes_no_refuses_every_number_but_zero_and_one() -> None:
    ex = X.get("brk-upstream")
    for n in (2, 3, -1, 100, np.int64(2)):
        fb = ex.check(n)
        assert not fb and "not a yes/no answer" in fb.message


def test_esr_close_feedback_names_each_wrong_field() -> None:
    ex = X.get("esr-oslar")
    expect = {0x60280420: ["IL"], 0x62280421: ["direction"], 0x62280400: ["Rt"], 0x62280428: ["CRm"],
              0x62080420: ["Op0"], 0x62200420: ["Op2"], 0x62284420: ["Op1"], 0x622A0420: ["Op2"],
              0x62280020: ["CRn"], 0x60280421: ["IL", "direction"], 0x5E000000: ["EC"],
              0x62E80420: ["RES0"]}
    all_fields = ["EC", "IL", "RES0", "Op0", "Op2", "Op1", "CRn", "Rt", "CRm", "direction"]
    for value, fields in expect.items():
        msg = ex.check(value).message
        for f in all_fields:
            assert (f"{f} (" in msg) == (f in fields), f"{value:#x}: {msg}"


def test_hints_render_as_collapsible_sections() -> None:
    for ex in X.all_exercises():
        html = ex._repr_html_()
        assert escape(ex.title) in html and escape(ex.prompt) in html and ex.name in html
        assert html.count("<details") == len(ex.hints) >= 2
        for i in range(len(ex.hints)):
            assert f"<summary>Hint {i + 1}</summary>" in html
        assert ex.hint(0) == ex.hints[0] and ex.hint(99) == ex.hints[-1] and ex.hint(-1) == ex.hints[0]
