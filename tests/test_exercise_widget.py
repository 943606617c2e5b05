"""ask(name): the inline check the lessons use, driven without a browser."""

from __future__ import annotations

import ipywidgets as W
import pytest
from test_exercise_table import TABLE  # pytest puts tests/ on sys.path

from kvmdbg.teach import exercises as X


def _classes(w: W.Widget) -> set[str]:
    out = set(getattr(w, "_dom_classes", ()))
    for c in getattr(w, "children", ()):
        out |= _classes(c)
    return out


def test_the_widget_shows_the_question_and_has_stable_classes() -> None:
    w = X.ask("reset-p2")
    assert isinstance(w, W.VBox)
    assert {"kvmdbg-ask", "kvmdbg-ask-input", "kvmdbg-ask-check", "kvmdbg-ask-feedback", "kvmdbg-ask-hint",
            "kvmdbg-ask-hints"} <= _classes(w)
    ex = X.get("reset-p2")
    assert "Reset value under patch 2" in w.question.value and "reset-p2" in w.question.value
    assert w.feedback.value == "" and w.last is None
    assert len(w.hint_buttons) == len(ex.hints)


@pytest.mark.parametrize("name", list(TABLE))
def test_typed_answers_are_graded_for_the_right_exercise(name: str) -> None:
    w = X.ask(name)
    typed_right = [a for a in TABLE[name]["right"] if isinstance(a, str)]
    typed_wrong = [a for a in TABLE[name]["wrong"] if isinstance(a, str)]
    assert typed_right, f"{name}: the table needs a string form of the right answer"
    for text in typed_right:
        w.answer.value = text
        w.check_button.click()
        assert w.last is not None and w.last.correct, f"{name}: typed {text!r} rejected: {w.last}"
        assert "kvmdbg-feedback-correct" in w.feedback.value and f'data-exercise="{name}"' in w.feedback.value
    for text in typed_wrong:
        w.answer.value = text
        w.check_button.click()
        assert w.last is not None and not w.last and "kvmdbg-feedback-correct" not in w.feedback.value


def test_an_empty_box_is_not_answered_yet() -> None:
    w = X.ask("brk-upstream")
    w.check_button.click()
    assert w.last is not None and not w.last and w.last.kind == "unanswered"
    w.answer.value = "   "
    assert w.check().kind == "unanswered"


def test_hint_buttons_reveal_hints_in_order() -> None:
    w = X.ask("esr-oslar")
    ex = X.get("esr-oslar")
    assert w.hints.value == ""
    w.hint_buttons[1].click()
    assert "Hint 2" in w.hints.value and "Hint 1" not in w.hints.value
    w.hint_buttons[0].click()
    assert w.hints.value.index("Hint 1") < w.hints.value.index("Hint 2")
    assert w.show_hint(0) == ex.hint(0)
