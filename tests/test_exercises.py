"""Exercises: every check accepts the right answer and rejects a wrong one, kindly and without the answer."""

from __future__ import annotations

import pytest

from kvmdbg.teach import exercises as X

PROGRAM = """
    mov x1, #1
    msr oslar_el1, x1
    isb
    mrs x2, oslsr_el1
"""

# name -> (right answers, wrong answers, text the feedback must never contain)
CASES = {
    "reset-p2": (["0xA", 0xA, 10, "0b1010"], [0x8, "0x2", 0], ["0xa", "0xA", "10"]),
    "which-variant": (["upstream", " Upstream "], ["p2", "baseline", "p1", "p3"], ["upstream"]),
    "vhe-put-p2": ([1, "1", True], [0, "0", 7], []),
    "debugver-p3": ([8, "8", "0x8"], [6, 2], []),
    "brk-upstream": (["yes", True, "taken"], ["no", False], []),
    "esr-oslar": ([0x62280420, "0x62280420"], [0x62280421, 0x62280400, 0x5E000000, 0x62280428], ["62280420"]),
    "program-lock": ([PROGRAM], ["nop", "mov x1, #1\nmsr oslar_el1, x1", "mrs x2, oslsr_el1", "frob"], []),
    "migration-errno": ([22, "22"], [0, 1, 13], ["22"]),
    "oslsr-write-upstream": ([0, "0x00"], [0x18, 0x3C], []),
}


def test_at_least_eight_exercises_with_prompts_and_hints() -> None:
    exs = X.all_exercises()
    assert len(exs) >= 8
    assert set(CASES) == {e.name for e in exs} == set(X.names())
    for e in exs:
        assert e.prompt and e.hints and e.title
        assert e.hint(0) == e.hints[0] and e.hint(99) == e.hints[-1]
        assert e.title in e._repr_html_()


@pytest.mark.parametrize("name", list(CASES))
def test_right_answers_pass(name: str) -> None:
    if name in ("program-lock", "brk-upstream"):
        pytest.importorskip("kvmdbg.run")
    ex = X.get(name)
    for answer in CASES[name][0]:
        fb = ex.check(answer)
        assert fb.correct, f"{name}: {answer!r} rejected: {fb.message}"
        assert bool(fb) and fb.message.startswith("Correct")


@pytest.mark.parametrize("name", list(CASES))
def test_wrong_answers_fail_kindly_without_the_answer(name: str) -> None:
    if name in ("program-lock", "brk-upstream"):
        pytest.importorskip("kvmdbg.run")
    ex = X.get(name)
    for answer in CASES[name][1]:
        fb = ex.check(answer)
        assert not fb.correct, f"{name}: wrong answer {answer!r} accepted"
        assert fb.message and len(fb.message) > 20
        for secret in CASES[name][2]:
            assert secret not in fb.message, f"{name}: feedback reveals the answer: {fb.message}"
        assert str(fb).startswith("✗") and "✗" in fb._repr_html_()


def test_unreadable_answers_get_help_not_a_crash() -> None:
    for ex in X.all_exercises():
        fb = ex.check(None) if ex.name != "which-variant" else ex.check(3)
        assert not fb.correct and fb.message


def test_expected_answers_come_from_the_model() -> None:
    assert X.oslsr_after_reset("p2") == 0xA and X.oslsr_after_reset("upstream") == 0x8
    assert X.vhe_put_oslk("p2") == 1 and X.vhe_put_oslk("upstream") == 0
    assert X.debugver("p3") == 8 and X.debugver("baseline") == 6
    assert X.esr_oslar_x1() == 0x62280420
    assert X.migration_errno("baseline", "p3") == 22 and X.migration_errno("baseline", "p2") == 0
    assert X.oslsr_write_ec("upstream") == 0x00
    assert X.signature("upstream") != X.signature("p2")


def test_specific_feedback() -> None:
    assert "OSLK" in X.get("reset-p2").check(0x8).message
    assert "OSLM" in X.get("reset-p2").check(0x2).message
    assert "baseline" in X.get("debugver-p3").check(6).message
    assert "direction" in X.get("esr-oslar").check(0x62280421).message
    assert "Rt" in X.get("esr-oslar").check(0x62280400).message
    assert "not one of the variants" in X.get("which-variant").check("p9").message


def test_unknown_exercise() -> None:
    with pytest.raises(KeyError, match="reset-p2"):
        X.get("nope")
