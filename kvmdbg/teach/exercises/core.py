"""The exercise types: :class:`Exercise`, the :class:`Feedback` its ``check`` returns, and the error
for an unknown exercise name."""

from __future__ import annotations

import difflib
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kvmdbg.errors import KvmdbgError
from kvmdbg.teach.exercises.answers import AnswerFormError, is_placeholder

__all__ = ["Feedback", "Exercise", "UnknownExerciseError", "CORRECT", "WRONG", "UNREADABLE", "UNANSWERED"]

# Feedback kinds. Only CORRECT is truthy.
CORRECT, WRONG, UNREADABLE, UNANSWERED = "correct", "wrong", "unreadable", "unanswered"
_MARK = {CORRECT: "✓", WRONG: "✗", UNREADABLE: "?", UNANSWERED: "…"}
_COLOUR = {CORRECT: "#1b7837", WRONG: "#8c510a", UNREADABLE: "#8c510a", UNANSWERED: "#555555"}


@dataclass(frozen=True)
class Feedback:
    """The grade of one answer: truthy exactly when ``correct``; ``exercise`` names what was graded.

    ``kind`` is ``"correct"``, ``"wrong"`` (a readable answer that is not right), ``"unreadable"``
    (an answer in a form the exercise does not take) or ``"unanswered"`` (the placeholder is still
    there). ``message`` is specific and never contains the answer.
    """

    correct: bool
    message: str
    exercise: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", CORRECT if self.correct else WRONG)
        if self.correct != (self.kind == CORRECT):
            raise ValueError(f"Feedback kind {self.kind!r} does not agree with correct={self.correct}")

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        who = f"[{self.exercise}] " if self.exercise else ""
        return f"{_MARK.get(self.kind, '✗')} {who}{self.message}"

    def _repr_html_(self) -> str:
        who = f"<code>{html.escape(self.exercise)}</code>: " if self.exercise else ""
        return (f'<div class="kvmdbg-feedback kvmdbg-feedback-{self.kind}" data-exercise="{html.escape(self.exercise)}"'
                f' style="color:{_COLOUR.get(self.kind, "#8c510a")}"><b>{_MARK.get(self.kind, "✗")}</b> {who}'
                f"{html.escape(self.message)}</div>")


class UnknownExerciseError(KvmdbgError, KeyError):
    """An exercise name that does not exist; suggests close names."""

    def __init__(self, name: object, known: Iterable[str] = ()) -> None:
        known = list(known)
        self.name = name
        close = difflib.get_close_matches(str(name).strip().lower(), known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        self.message = (f"no exercise named {name!r}.{hint} The exercises are: {', '.join(known)} "
                        "(kvmdbg.teach.exercises.names() lists them).")
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError quotes its argument; we want prose.
        return self.message


@dataclass
class Exercise:
    """One graded question; ``check(answer)`` compares with what the model computes at check time.

    ``form`` says in words which answers are read (it is shown under the prompt); ``notebook``
    names the lesson the exercise belongs to ("" for the 09 collection only).
    """

    name: str
    title: str
    prompt: str
    hints: tuple[str, ...]
    _grade: Callable[[Any], tuple[bool, str]] = field(repr=False)
    form: str = ""
    notebook: str = ""
    data: Any = None

    def check(self, answer: Any) -> Feedback:
        """Grade ``answer``: truthy Feedback only for a right answer in an accepted form."""
        if is_placeholder(answer):
            return Feedback(False, "You have not answered yet: replace the placeholder (...) with your answer "
                                   f"({self.form or 'see the prompt'}) and run the cell again.",
                            self.name, UNANSWERED)
        try:
            ok, message = self._grade(answer)
        except AnswerFormError as e:
            return Feedback(False, f"I could not read that answer: {e} {self.hints[0] if self.hints else ''}"
                            .rstrip(), self.name, UNREADABLE)
        return Feedback(ok, message, self.name)

    def hint(self, n: int = 0) -> str:
        """Hint ``n`` (0 is the first); past the last one, the last one."""
        if not self.hints:
            return "This exercise has no hints."
        return self.hints[max(0, min(int(n), len(self.hints) - 1))]

    def __str__(self) -> str:
        lines = [f"{self.title} [{self.name}]", self.prompt]
        if self.form:
            lines.append(f"Answer with: {self.form}")
        lines += [f"Hint {i}: {h}" for i, h in enumerate(self.hints, 1)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        hints = "".join(f'<details class="kvmdbg-hint"><summary>Hint {i}</summary><p>{e(h)}</p></details>'
                        for i, h in enumerate(self.hints, 1))
        form = f'<p class="kvmdbg-form"><i>Answer with:</i> {e(self.form)}</p>' if self.form else ""
        return (f'<div class="kvmdbg-exercise" data-exercise="{e(self.name)}"><h4>{e(self.title)} '
                f'<code>{e(self.name)}</code></h4><p>{e(self.prompt)}</p>{form}{hints}</div>')
