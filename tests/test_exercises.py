"""Exercises: the public interface, the model's answers, and specific feedback.

The table of every answer form is in test_exercise_table.py; the widget in
test_exercise_widget.py; notebook 09 answered out of order in test_exercise_notebook.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kvmdbg.errors import KvmdbgError
from kvmdbg.teach import exercises as X
from kvmdbg.teach.exercises import Exercise, Feedback, all_exercises, get, names  # the promised imports

NINE = ["reset-p2", "which-variant", "vhe-put-p2", "debugver-p3", "brk-upstream", "esr-oslar", "program-lock",
        "migration-errno", "oslsr-write-upstream"]
LESSONS = ["00-welcome", "01-baseline", "02-patch1", "03-patch2", "04-patch3", "05-world-switch", "06-guest-view",
           "07-userspace", "08-upstream"]


def test_the_nine_names_of_the_api_are_kept_in_order() -> None:
    assert names()[:9] == NINE
    assert len(set(names())) == len(names())


def test_every_lesson_00_to_08_has_an_exercise_of_its_own() -> None:
    by_lesson = X.lessons()
    for lesson in LESSONS:
        own = [n for n in by_lesson.get(lesson, []) if n.startswith(f"nb{lesson[:2]}-")]
        assert own, f"no nbNN- exercise for {lesson}"
    assert set(by_lesson) <= set(LESSONS)


def test_exercises_have_titles_prompts_forms_and_hints() -> None:
    for e in all_exercises():
        assert isinstance(e, Exercise)
        assert e.prompt and e.title and e.form and len(e.hints) >= 2
        assert e.name in str(e) and e.prompt in str(e)


def test_check_by_name_grades_that_exercise() -> None:
    fb = X.check("reset-p2", "0xa")
    assert isinstance(fb, Feedback) and fb and fb.exercise == "reset-p2"
    fb = X.check("debugver-p3", "0xa")
    assert not fb and fb.exercise == "debugver-p3"


def test_get_ignores_case_and_spaces() -> None:
    assert get(" Reset-P2 ").name == "reset-p2"


def test_unknown_exercise_is_a_kvmdbg_error_and_a_key_error_with_suggestions() -> None:
    with pytest.raises(X.UnknownExerciseError) as info:
        get("reset-p3")
    err = info.value
    assert isinstance(err, KvmdbgError) and isinstance(err, KeyError)
    assert "Did you mean 'reset-p2'" in str(err) and "names()" in str(err)
    with pytest.raises(KeyError):
        get("nope")
    with pytest.raises(X.UnknownExerciseError):
        get(3)  # type: ignore[arg-type]


def test_feedback_is_truthy_only_when_correct_and_kind_agrees() -> None:
    assert bool(Feedback(True, "Correct.", "x")) and not Feedback(False, "No.", "x")
    with pytest.raises(ValueError):
        Feedback(True, "?", "x", "wrong")
    fb = Feedback(False, "No.", "reset-p2", "unanswered")
    assert "reset-p2" in str(fb) and "reset-p2" in fb._repr_html_()


def test_expected_answers_come_from_the_model() -> None:
    assert X.oslsr_after_reset("p2") == 0xA and X.oslsr_after_reset("upstream") == 0x8
    assert X.vhe_put_oslk("p2") == 1 and X.vhe_put_oslk("upstream") == 0
    assert X.nvhe_exit_oslk("p2") == 0
    assert X.debugver("p3") == 8 and X.debugver("baseline") == 6
    assert X.doublelock("p3") == 0xF and X.doublelock("baseline") == 0x0
    assert X.esr_oslar_x1() == 0x62280420  # BRIEF section 7
    assert X.trapped_msr_ec("upstream") == 0x18
    assert X.migration_errno("baseline", "p3") == 22 and X.migration_errno("baseline", "p2") == 0
    assert X.changed_id_errno("baseline") == 22
    assert X.set_oslsr_errno("upstream", 0x0) == 22 and X.set_oslsr_errno("p1", 0x0) == 0
    assert X.oslsr_write_ec("upstream") == 0x00
    assert X.read_after_lock("baseline") == 0x8 and X.read_after_lock("upstream") == 0xA
    assert X.in_reg_list("p1") and not X.in_reg_list("baseline")
    assert X.ttbr1_after_unlock("p2") == 0x1A  # BRIEF section 5: confirmed on real kernels
    assert X.mde_while_locked("upstream") == 0 and X.mde_while_locked("p2") == 1
    assert X.brk_taken("upstream")
    assert X.signature("upstream") != X.signature("p2")


def test_specific_feedback() -> None:
    assert "OSLK" in get("reset-p2").check(0x8).message
    assert "OSLM" in get("reset-p2").check(0x2).message
    assert "baseline" in get("debugver-p3").check(6).message
    assert "direction" in get("esr-oslar").check(0x62280421).message
    assert "Rt" in get("esr-oslar").check(0x62280400).message
    assert "IL" in get("esr-oslar").check("60280420").message
    assert "not one of the variants" in get("which-variant").check("p9").message
    assert "UNDEF" in get("nb06-trap-ec").check(0).message
    assert "ENOENT" in get("migration-errno").check("ENOENT").message


def test_program_grading_looks_at_the_accesses_the_program_made() -> None:
    ex = get("program-lock")
    assert "never writes OSLAR_EL1" in ex.check("mrs x2, oslsr_el1").message
    assert "bit 0" in ex.check("mov x1, #2\nmsr oslar_el1, x1\nmrs x2, oslsr_el1").message
    assert "read OSLSR_EL1 back" in ex.check("mov x1, #1\nmsr oslar_el1, x1\nmov x2, #0xa").message
    assert "xzr" in ex.check("mov x1, #1\nmsr oslar_el1, x1\nmrs xzr, oslsr_el1").message
    assert "clear again" in ex.check("mov x1, #1\nmsr oslar_el1, x1\nmsr oslar_el1, xzr\n"
                                     "mrs x2, oslsr_el1").message
    assert "does not assemble" in ex.check("frob").message
    assert "10000 instructions" in ex.check("loop:\n    b loop").message
    _, accesses = X.model.run_recorded("upstream", "mov x3, #1\nmsr oslar_el1, x3\nmrs x7, oslsr_el1")
    assert [(a.register, a.is_read, a.rt, a.value) for a in accesses] == [
        ("OSLAR_EL1", False, 3, 1), ("OSLSR_EL1", True, 7, 0xA)]


def test_importing_exercises_does_not_import_ipywidgets() -> None:
    code = ("import sys, kvmdbg, kvmdbg.teach.exercises as X; X.get('reset-p2').check('0xa'); "
            "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
