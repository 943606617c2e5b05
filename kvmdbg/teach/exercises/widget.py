"""``ask(name)``: an inline check for a lesson, as a small ipywidgets box.

It shows the exercise's title, prompt and answer form, a text box, a **Check** button,
one button per hint, and the feedback. Stable CSS classes for browser tests:
``kvmdbg-ask`` (the box), ``kvmdbg-ask-input``, ``kvmdbg-ask-check``,
``kvmdbg-ask-hint`` (each hint button), ``kvmdbg-ask-hints`` (the hints shown) and
``kvmdbg-ask-feedback``. Tests drive it without a browser::

    w = ask("reset-p2")
    w.answer.value = "0xa"
    w.check_button.click()
    w.last        # the Feedback; w.feedback.value is its HTML

Text typed in the box arrives as a string, so every string form of the answer works.
This module imports ipywidgets; :func:`kvmdbg.teach.exercises.ask` imports it only when called.
"""

from __future__ import annotations

import html

import ipywidgets as W

from kvmdbg.teach.exercises.core import Exercise, Feedback

__all__ = ["AskWidget"]


class AskWidget(W.VBox):  # type: ignore[misc]  # ipywidgets ships without type stubs
    """One exercise as a widget: type an answer, press Check, read the feedback."""

    def __init__(self, exercise: Exercise) -> None:
        self.exercise = exercise
        self.last: Feedback | None = None
        e = html.escape
        form = f'<p class="kvmdbg-form"><i>Answer with:</i> {e(exercise.form)}</p>' if exercise.form else ""
        self.question = W.HTML(f'<div data-exercise="{e(exercise.name)}"><h4>{e(exercise.title)} '
                               f"<code>{e(exercise.name)}</code></h4><p>{e(exercise.prompt)}</p>{form}</div>")
        self.answer = W.Text(value="", placeholder="your answer", description="Answer:",
                             layout=W.Layout(width="32em"),
                             style={"description_width": "initial"}, continuous_update=True)
        self.answer.add_class("kvmdbg-ask-input")
        self.check_button = W.Button(description="Check", button_style="primary", icon="check")
        self.check_button.add_class("kvmdbg-ask-check")
        self.check_button.on_click(lambda _b: self.check())
        self.hint_buttons = []
        for i in range(len(exercise.hints)):
            b = W.Button(description=f"Hint {i + 1}")
            b.add_class("kvmdbg-ask-hint")
            b.on_click(lambda _b, n=i: self.show_hint(n))
            self.hint_buttons.append(b)
        self.hints = W.HTML("")
        self.hints.add_class("kvmdbg-ask-hints")
        self.shown_hints: list[int] = []
        self.feedback = W.HTML("")
        self.feedback.add_class("kvmdbg-ask-feedback")
        super().__init__([self.question, W.HBox([self.answer, self.check_button]), W.HBox(self.hint_buttons),
                          self.hints, self.feedback])
        self.add_class("kvmdbg-ask")

    def check(self) -> Feedback:
        """Grade what is in the box (an empty box is 'not answered yet') and show the feedback."""
        self.last = self.exercise.check(self.answer.value)
        self.feedback.value = self.last._repr_html_()
        return self.last

    def show_hint(self, n: int) -> str:
        """Reveal hint ``n`` (0-based) under the buttons; hints stay shown in order."""
        if n not in self.shown_hints:
            self.shown_hints = sorted([*self.shown_hints, n])
        self.hints.value = "".join(f"<p><b>Hint {k + 1}:</b> {html.escape(self.exercise.hint(k))}</p>"
                                   for k in self.shown_hints)
        return self.exercise.hint(n)
