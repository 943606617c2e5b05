"""Graded exercises along the learning path.

The interface (a promise of shared/API.md; docs/exercises.md says more):

``names() -> list[str]``
    Every exercise name, in the order of the learning path.
``get(name) -> Exercise``
    A fresh exercise. An unknown name raises :class:`UnknownExerciseError`, which is both a
    :class:`~kvmdbg.errors.KvmdbgError` and a ``KeyError`` and suggests close names.
``check(name, answer) -> Feedback``
    ``get(name).check(answer)``: the form answer cells use, so that each cell grades its own
    exercise whatever order the cells ran in.
``Exercise.check(answer) -> Feedback``
    Truthy exactly when the answer is right and in an accepted form. A wrong value, a wrong
    type, an unreadable text and the untouched placeholders ``...``, ``None`` (or a blank
    string) are never truthy. ``Feedback.exercise`` names the exercise graded, also in its
    ``str`` and HTML; ``Feedback.kind`` is ``correct``, ``wrong``, ``unreadable`` or
    ``unanswered``; the message is specific and never contains the answer.
``Exercise.hint(n) -> str``
    Hint ``n`` (0 is the first; past the last, the last). An exercise displays in JupyterLab
    with its title, name, prompt, the answer form and its hints as collapsible sections.
``ask(name)``
    The inline check for the lessons: an ipywidgets box with a text field, a Check button,
    hint buttons and the feedback (see :mod:`kvmdbg.teach.exercises.widget`). ipywidgets is
    imported only when it is called.

Answer forms (the exact rules are in :mod:`kvmdbg.teach.exercises.answers`): *number*
(``10``, ``0xA``, ``'0xa'``, ``'0b1010'``, ``' 10 '``, NumPy integers; never ``bool``,
floats or words; text without a prefix is decimal), *hex register* (as number, but text
without a prefix is hex: ``'62280420'``), *bit* (a number, 0 or 1), *yes/no*
(``True``/``False``, ``'yes'``/``'no'``, ``'y'``/``'n'``, ``1``/``0``, and the question's own
words such as ``'taken'``), *errno* (``22``, ``-22``, ``'22'``, ``'EINVAL'``, ``'-einval'``;
0 for "succeeds"), *variant* (a name from ``VARIANTS``) and *program* (assembly text, graded
by running it and looking at the system-register accesses it made).

Every expected answer is computed from the model when it is checked
(:mod:`kvmdbg.teach.exercises.model`), so the exercises stay true as the model evolves.
To add an exercise, write a factory in :mod:`kvmdbg.teach.exercises.catalogue` and list it in
``FACTORIES``; add its row to the answer table in tests/test_exercise_table.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmdbg.teach.exercises.answers import AnswerFormError
from kvmdbg.teach.exercises.catalogue import FACTORIES, FORMS
from kvmdbg.teach.exercises.core import Exercise, Feedback, UnknownExerciseError
from kvmdbg.teach.exercises.model import (
    brk_taken,
    changed_id_errno,
    debugver,
    doublelock,
    esr_oslar_x1,
    in_reg_list,
    mde_while_locked,
    migration_errno,
    nvhe_exit_oslk,
    oslsr_after_reset,
    oslsr_write_ec,
    read_after_lock,
    set_oslsr_errno,
    signature,
    trapped_msr_ec,
    ttbr1_after_unlock,
    vhe_put_oslk,
)

if TYPE_CHECKING:
    from kvmdbg.teach.exercises.widget import AskWidget

__all__ = ["Feedback", "Exercise", "UnknownExerciseError", "AnswerFormError", "FORMS", "all_exercises", "get",
           "names", "check", "ask", "lessons",
           "oslsr_after_reset", "signature", "vhe_put_oslk", "debugver", "brk_taken", "esr_oslar_x1",
           "migration_errno", "oslsr_write_ec", "read_after_lock", "in_reg_list", "ttbr1_after_unlock",
           "doublelock", "nvhe_exit_oslk", "trapped_msr_ec", "changed_id_errno", "mde_while_locked",
           "set_oslsr_errno"]


def all_exercises() -> list[Exercise]:
    """Fresh exercise objects, in the order of the learning path."""
    return [f() for f in FACTORIES]


def names() -> list[str]:
    """Every exercise name, in order."""
    return [ex.name for ex in all_exercises()]


def get(name: str) -> Exercise:
    """The exercise called ``name`` (case and surrounding spaces do not matter)."""
    key = name.strip().lower() if isinstance(name, str) else name
    for factory in FACTORIES:
        ex = factory()
        if ex.name == key:
            return ex
    raise UnknownExerciseError(name, names())


def check(name: str, answer: Any) -> Feedback:
    """Grade ``answer`` against the exercise called ``name``."""
    return get(name).check(answer)


def lessons() -> dict[str, list[str]]:
    """Which exercises belong to which lesson notebook (``"01-baseline"`` -> names)."""
    out: dict[str, list[str]] = {}
    for ex in all_exercises():
        out.setdefault(ex.notebook, []).append(ex.name)
    return out


def ask(name: str) -> AskWidget:
    """The inline check widget for exercise ``name`` (imports ipywidgets now, not before)."""
    from kvmdbg.teach.exercises.widget import AskWidget

    return AskWidget(get(name))
