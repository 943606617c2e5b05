"""Every lesson is a lesson: objectives and a time, a prediction checked before the reveal, key points.

The structure (docs/workshop/plan.md says the same to instructors):
- the first cell has ``*Time: about N minutes.*`` and a ``## You will be able to`` list;
- at least one ``## Predict, then run`` cell, followed by a code cell that calls ``ask("<exercise>")``
  on an exercise that exists, before the rest of the lesson;
- the last cell is ``## Key points`` with at least two points and a link to the next notebook;
- the glossary and the cheat sheet are linked from the top.
And the two-hour plan: its core minutes add up to at most 120 with the optional part marked, and every
lesson's own time is the plan's.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("0[0-8]-*.ipynb"))
PLAN = ROOT / "docs" / "workshop" / "plan.md"
TIME = re.compile(r"\*Time: about (\d+) minutes\.\*")


def _minutes(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    m = TIME.search(nb.cells[0].source)
    assert m, f"{path.name}: the first cell gives no time"
    return int(m.group(1))


def _plan_rows() -> dict[str, tuple[int, str]]:
    rows = {}
    for line in PLAN.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"\d\d", cells[0]) and cells[2].isdigit():
            rows[cells[0]] = (int(cells[2]), cells[3])
    return rows


def test_there_are_nine_lessons() -> None:
    assert [p.stem[:2] for p in LESSONS] == [f"{i:02d}" for i in range(9)]


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_structure(path: Path) -> None:
    from kvmdbg.teach.exercises import names

    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source
    assert first.startswith("# "), f"{path.name}: no title"
    assert "## You will be able to" in first
    objectives = first.split("## You will be able to", 1)[1]
    assert len(re.findall(r"^\* ", objectives, flags=re.M)) >= 2, f"{path.name}: fewer than two objectives"
    assert "(glossary.ipynb)" in first and "(cheatsheet.ipynb)" in first
    assert 5 <= _minutes(path) <= 25

    predicts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Predict, then run" in c.source]
    assert predicts, f"{path.name}: no prediction question"
    for i in predicts:
        ask = nb.cells[i + 1]
        m = re.search(r'ask\("([^"]+)"\)', ask.source)
        assert ask.cell_type == "code" and m, f"{path.name}: cell {i + 1} does not ask the prediction"
        assert m.group(1) in names(), f"{path.name}: no exercise {m.group(1)!r}"
        assert i + 2 < len(nb.cells) - 1, f"{path.name}: nothing is revealed after the prediction"

    last = nb.cells[-1].source
    assert last.startswith("## Key points")
    assert len(re.findall(r"^\* ", last, flags=re.M)) >= 2
    assert re.search(r"Next: \[.+\]\((0\d-[\w-]+)\.ipynb\)", last)
    target = re.search(r"\((0\d-[\w-]+\.ipynb)\)", last.split("Next:")[1]).group(1)
    assert (ROOT / "notebooks" / target).is_file()


def test_the_two_hour_plan_adds_up_and_matches_the_lessons() -> None:
    rows = _plan_rows()
    core = sum(m for m, kind in rows.values() if kind == "core")
    optional = [n for n, (_, kind) in rows.items() if "optional" in kind]
    assert core <= 120 and optional, "the plan needs at most 120 core minutes and a marked optional part"
    assert core + sum(rows[n][0] for n in optional) <= 120
    assert f"**{core}**" in PLAN.read_text(), "the plan's stated core total is not the sum of its rows"
    for path in LESSONS:
        assert rows[path.stem[:2]][0] == _minutes(path), f"{path.name}: its time differs from the plan's"


def test_the_instructor_notes_cover_every_lesson() -> None:
    notes = (ROOT / "docs" / "workshop" / "instructor-notes.md").read_text()
    for path in LESSONS:
        assert f"## {path.stem[:2]} ·" in notes
