"""Notebook 09 as a learner uses it: Run All, then answer the cells in any order.

Each answer cell names its exercise, so its output must be graded against that exercise
whatever ran before it. The solutions notebook must show every solution passing.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import nbclient
import nbformat
import pytest
from test_exercise_table import TABLE  # pytest puts tests/ on sys.path

from kvmdbg.teach import exercises as X

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "notebooks" / "09-exercises.ipynb"
SOLUTIONS = ROOT / "notebooks" / "09-solutions.ipynb"
_GRADED = re.compile(r'class="kvmdbg-feedback kvmdbg-feedback-(\w+)" data-exercise="([^"]+)"')


def _role(cell: dict, role: str) -> str | None:
    meta = cell.get("metadata", {}).get("kvmdbg", {})
    return meta.get("exercise") if meta.get("role") == role else None


def _graded(cell: dict) -> list[tuple[str, str]]:
    """(kind, exercise) of every Feedback the cell displayed."""
    out = []
    for o in cell.get("outputs", []):
        assert o.get("output_type") != "error", "".join(o.get("traceback", []))
        out += _GRADED.findall(o.get("data", {}).get("text/html", ""))
    return out


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel imports this checkout even when kvmdbg is not installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def test_each_exercise_has_its_own_question_and_answer_cell() -> None:
    nb = nbformat.read(EXERCISES, as_version=4)
    questions = [(i, _role(c, "question")) for i, c in enumerate(nb.cells) if _role(c, "question")]
    answers = [(i, _role(c, "answer")) for i, c in enumerate(nb.cells) if _role(c, "answer")]
    assert [n for _, n in questions] == [n for _, n in answers] == X.names()
    for (qi, name), (ai, _) in zip(questions, answers, strict=True):
        assert nb.cells[qi].source == f'get("{name}")'
        assert ai == qi + 1, f"{name}: the answer cell must follow its question"
        src = nb.cells[ai].source
        assert src.startswith(f'check("{name}", ...)'), src  # the cell names its exercise; `...` is the placeholder
        assert "None" not in src and "ex." not in src


@pytest.mark.slow
def test_run_all_then_answer_out_of_order(kernel_env: None) -> None:
    nb = nbformat.read(EXERCISES, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXERCISES.parent)}})
    answer_cells = [(i, _role(c, "answer")) for i, c in enumerate(nb.cells) if _role(c, "answer")]
    with client.setup_kernel():
        # Run All, as a learner does first: every answer cell is still a placeholder.
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        for i, name in answer_cells:
            assert _graded(nb.cells[i]) == [("unanswered", name)], f"{name}: {nb.cells[i].outputs}"
        # Then answer in a shuffled order, right and wrong alternately, re-running some cells.
        order = answer_cells[:] + answer_cells[::3]
        random.Random(9).shuffle(order)
        expected: dict[int, tuple[str, str]] = {}
        for k, (i, name) in enumerate(order):
            right = k % 2 == 0
            pool = TABLE[name]["right" if right else "wrong"]
            typed = next(a for a in pool if type(a) in (str, int, bool))  # literals a cell can hold
            nb.cells[i].source = f"check({name!r}, {typed!r})"
            client.execute_cell(nb.cells[i], i)
            got = _graded(nb.cells[i])
            assert got == [("correct" if right else "wrong", name)], f"{name} answered {typed!r}: {got}"
            expected[i] = got[0]
        # Every cell still shows the grade of its own exercise, whatever ran after it.
        for i, grade in expected.items():
            assert _graded(nb.cells[i]) == [grade]


@pytest.mark.slow
def test_the_solutions_show_every_form_passing(kernel_env: None) -> None:
    nb = nbformat.read(SOLUTIONS, as_version=4)
    solutions = {_role(c, "solution"): c for c in nb.cells if _role(c, "solution")}
    assert list(solutions) == X.names()
    for name, cell in solutions.items():
        assert cell.source.count(f'check("{name}",') >= 2, f"{name}: show more than one accepted form"
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(SOLUTIONS.parent)}}).execute()
    for name, cell in solutions.items():
        graded = _graded(cell)
        assert graded and graded == [("correct", name)] * cell.source.count("check("), f"{name}: {graded}"
