"""Golden traces: every built-in scenario, under every variant, on nVHE and VHE, as readable text.

Each (scenario, variant, mode) runs on a fresh :class:`~kvmdbg.Machine` and its trace
DataFrame (``machine.trace.to_dataframe()``, the public contract; nothing here reads Trace
internals) is written as text, one file per scenario and variant holding both host modes:
``tests/golden/<scenario>/<variant>.txt``. A trace starts with its cells
(``location/register`` or ``location/register/vcpu``) and their values after the first
step, then lists every step as ``step N | phase | function | file``, its detail on the next
line, and each cell whose value changed at that step (``cell: old -> new``); the ``vcpu``
column belongs to a cell, not to a step, and a step after which the set or order of the
cells differs lists them all anew. Values are in hex, a missing value is ``-``; a text
field that could be misread (a ``|``, a newline, leading blanks, a lone ``-``) is written
as a JSON string. Every column of every row can be rebuilt from the text
(:func:`parse_trace`, checked against ``to_dataframe()``), so an unchanged text means an
unchanged trace. The text is written from plain Python values (int, str, None) taken out
of the DataFrame here, so it does not depend on pandas dtypes or on how a pandas version
formats numbers or missing values.

A mismatch means a trace changed: one function more or less, a different value after a
step, a reworded detail; the failure prints a unified diff of the first traces that differ,
named by scenario, variant and mode. If the change is deliberate, regenerate the files and
commit them together with the change (``git diff tests/golden`` then shows what changed)::

    KVMDBG_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py

With ``KVMDBG_REGEN_GOLDEN=1`` the test rewrites every file (and deletes the files of
scenarios or variants that no longer exist) instead of comparing, and passes. Without it, a
golden file whose scenario or variant no longer runs fails, and so does a scenario or
variant that has no file.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from kvmdbg import VARIANTS, Machine
from kvmdbg.teach import scenarios

pd = pytest.importorskip("pandas")

GOLDEN_DIR = Path(__file__).parent / "golden"
REGEN = os.environ.get("KVMDBG_REGEN_GOLDEN", "").strip().lower() in {"1", "true", "yes", "on"}
REGEN_HINT = "KVMDBG_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py"
COLUMNS = ("step", "phase", "function", "file", "vcpu", "location", "register", "value", "detail")
STEP_COLUMNS = ("phase", "function", "file", "detail")  # one value per step
MODES = (("nVHE", False), ("VHE", True))
FILE_HEADER = (
    "# Golden traces of scenario {scenario!r} under variant {variant!r}: nVHE, then VHE.\n"
    "# Written by tests/test_golden.py from Machine.trace.to_dataframe(); regenerate with\n"
    f"#   {REGEN_HINT}\n"
    "# Each trace: its cells (location/register[/vcpu]) with their values after the first step,\n"
    "# then every step as 'step N | phase | function | file', its detail on the next line, and\n"
    "# each cell whose value changed at that step ('cell: old -> new'). Values in hex, '-' missing.\n"
)
FIRST_STATE = "cells (location/register[/vcpu]) and their values after the first step:"
LAYOUT_CHANGED = "  the cells are now:"  # a step after which the set or order of cells differs
MAX_DIFFS = 3  # traces whose diff a failure prints
MAX_DIFF_LINES = 40  # lines shown of each such diff

Table = dict[str, list[Any]]  # column -> its cells, plain Python values (int, str or None), in row order
Cell = tuple[Any, Any, Any]  # (location, register, vcpu)
Traces = dict[tuple[str, str], dict[str, Table]]  # (scenario, variant) -> mode -> table
Texts = dict[tuple[str, str], str]  # (scenario, variant) -> the text of its golden file
Row = tuple[Any, ...]  # one row, in COLUMNS order

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_RAW_COMPONENT = r"[A-Za-z0-9_][A-Za-z0-9_.\[\]-]*"
_COMPONENT = rf"{_QUOTED}|{_RAW_COMPONENT}|-"
_CELL = rf"(?:{_COMPONENT})/(?:{_COMPONENT})(?:/-?\d+)?"
_VALUE = r"-|-?0x[0-9a-f]+"
_FIELD = rf'{_QUOTED}|[^|"][^|]*?'
_COMPONENT_RE = re.compile(_COMPONENT)
_RAW_COMPONENT_RE = re.compile(_RAW_COMPONENT)
_SECTION_RE = re.compile(r"== (?P<mode>\S+) \((?P<steps>\d+) steps, (?P<rows>\d+) rows\)")
_STEP_RE = re.compile(rf"step (?P<step>-?\d+) \| (?P<phase>{_FIELD}) \| (?P<function>{_FIELD}) \| (?P<file>{_FIELD})")
_CHANGE_RE = re.compile(rf"  (?P<cell>{_CELL}): (?P<old>{_VALUE}) -> (?P<new>{_VALUE})")
_STATE_RE = re.compile(rf"(?P<indent> +)(?P<cell>{_CELL}) = (?P<value>{_VALUE})")


# --------------------------------------------------------------------------- DataFrame -> plain values

def _plain(value: Any) -> Any:
    """A cell as a plain Python value (None, int or str), whatever pandas dtype held it."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | str):
        return value
    raise TypeError(f"a trace cell holds {value!r} ({type(value).__name__}); the golden text knows int and str")


def _plain_column(values: list[Any]) -> list[Any]:
    kinds = set(map(type, values))
    if kinds <= {int, str}:
        return values
    if kinds <= {int, str, type(None), type(pd.NA)}:
        return [None if v is pd.NA else v for v in values]
    return [_plain(v) for v in values]


def table_of(df: pd.DataFrame) -> Table:
    """The trace DataFrame's columns, in row order, as plain values: no pandas dtype left."""
    return {c: _plain_column(df[c].tolist()) for c in COLUMNS}


# --------------------------------------------------------------------------- plain values <-> text

def _text(value: Any, unsafe: str = "") -> str:
    """A text field as it is when it reads back unambiguously, else as a JSON string; None is '-'."""
    if value is None:
        return "-"
    if not isinstance(value, str):
        raise TypeError(f"expected a string or a missing value, got {value!r}")
    if (value in ("", "-") or value != value.strip() or not value.isprintable() or value.startswith('"')
            or any(ch in value for ch in unsafe)):
        return json.dumps(value)
    return value


def _untext(field: str) -> Any:
    if field == "-":
        return None
    return json.loads(field) if field.startswith('"') else field


def _hex(value: Any) -> str:
    if value is None:
        return "-"
    if not isinstance(value, int):
        raise TypeError(f"a register value must be an integer, got {value!r}")
    return f"{value:#x}"


def _unhex(field: str) -> Any:
    return None if field == "-" else int(field, 16)


def _component(value: Any) -> str:
    if value is None:
        return "-"
    if not isinstance(value, str):
        raise TypeError(f"a location or register must be a string, got {value!r}")
    return value if _RAW_COMPONENT_RE.fullmatch(value) else json.dumps(value)


def cell_name(cell: Cell) -> str:
    """``location/register``, or ``location/register/vcpu`` for a cell of one vCPU."""
    location, register, vcpu = cell
    name = f"{_component(location)}/{_component(register)}"
    if vcpu is not None:
        if not isinstance(vcpu, int):
            raise TypeError(f"a vcpu must be an integer, got {vcpu!r}")
        name += f"/{vcpu}"
    return name


def _parse_cell(name: str) -> Cell:
    first = _COMPONENT_RE.match(name)
    assert first is not None and name[first.end()] == "/", name
    second = _COMPONENT_RE.match(name, first.end() + 1)
    assert second is not None, name
    rest = name[second.end():]
    return (_untext(first.group(0)), _untext(second.group(0)), int(rest[1:]) if rest else None)


def _steps(table: Table) -> list[tuple[tuple[Any, ...], list[Cell], list[Any]]]:
    """The rows grouped into steps (runs of one step number): (step and its fields, cells, values)."""
    step = table["step"]
    n = len(step)
    starts = [i for i in range(n) if i == 0 or step[i] != step[i - 1]] + [n]
    out = []
    for a, b in zip(starts, starts[1:], strict=False):
        fields = [step[a]]
        for c in STEP_COLUMNS:
            column = table[c][a:b]
            if column.count(column[0]) != len(column):
                other = next(v for v in column if v != column[0])
                raise ValueError(f"step {step[a]}: its rows differ in {c} ({column[0]!r} and {other!r}); "
                                 "the golden text holds one phase, function, file and detail per step")
            fields.append(column[0])
        cells = list(zip(table["location"][a:b], table["register"][a:b], table["vcpu"][a:b], strict=True))
        if len(set(cells)) != len(cells):
            twice = next(c for c in cells if cells.count(c) > 1)
            raise ValueError(f"step {step[a]}: cell {cell_name(twice)} appears twice")
        out.append((tuple(fields), cells, table["value"][a:b]))
    return out


def format_trace(mode: str, table: Table) -> list[str]:
    """One trace as lines: its cells and their first values, then each step and what it changed."""
    steps = _steps(table)
    lines = [f"== {mode} ({len(steps)} steps, {len(table['step'])} rows)"]
    names: dict[Cell, str] = {}
    fields_text: dict[Any, str] = {}

    def name(cell: Cell) -> str:
        if cell not in names:
            names[cell] = cell_name(cell)
        return names[cell]

    def field(value: Any) -> str:
        if value not in fields_text:
            fields_text[value] = _text(value, "|")
        return fields_text[value]

    previous: tuple[list[Cell], list[Any]] | None = None
    for (step, phase, function, file, detail), cells, values in steps:
        if not isinstance(step, int):
            raise TypeError(f"a step must be an integer, got {step!r}")
        if previous is None:
            lines.append(FIRST_STATE)
            lines += [f"  {name(c)} = {_hex(v)}" for c, v in zip(cells, values, strict=True)]
        lines.append(f"step {step} | {field(phase)} | {field(function)} | {field(file)}")
        lines.append(f"  {_text(detail)}")
        if previous is None:
            pass
        elif cells != previous[0]:
            lines.append(LAYOUT_CHANGED)
            lines += [f"    {name(c)} = {_hex(v)}" for c, v in zip(cells, values, strict=True)]
        else:
            lines += [f"  {name(c)}: {_hex(old)} -> {_hex(v)}"
                      for c, v, old in zip(cells, values, previous[1], strict=True) if v != old]
        previous = (cells, values)
    return lines


def parse_trace(lines: list[str]) -> tuple[str, Table]:
    """The mode and the long table of one trace written by :func:`format_trace`: every column of every row."""
    def fail(i: int, what: str) -> ValueError:
        line = lines[i] if i < len(lines) else "<end of trace>"
        return ValueError(f"line {i + 1} of the trace: {what}: {line!r}")

    def state_block(i: int, indent: str) -> tuple[int, list[Cell], list[Any]]:
        cells, values = [], []
        while i < len(lines) and (m := _STATE_RE.fullmatch(lines[i])) and m["indent"] == indent:
            cells.append(_parse_cell(m["cell"]))
            values.append(_unhex(m["value"]))
            i += 1
        return i, cells, values

    head = _SECTION_RE.fullmatch(lines[0]) if lines else None
    if head is None:
        raise fail(0, "expected '== MODE (N steps, M rows)'")
    table: Table = {c: [] for c in COLUMNS}
    cells: list[Cell] = []
    values: list[Any] = []
    i, steps = 1, 0
    if i < len(lines):
        if lines[i] != FIRST_STATE:
            raise fail(i, f"expected {FIRST_STATE!r}")
        i, cells, values = state_block(i + 1, "  ")
    position = {c: k for k, c in enumerate(cells)}
    while i < len(lines):
        m = _STEP_RE.fullmatch(lines[i])
        if m is None or i + 1 >= len(lines) or not lines[i + 1].startswith("  "):
            raise fail(i, "expected 'step N | phase | function | file' and a detail line")
        fields = {"step": int(m["step"]), "phase": _untext(m["phase"]), "function": _untext(m["function"]),
                  "file": _untext(m["file"]), "detail": _untext(lines[i + 1][2:])}
        i += 2
        if steps and i < len(lines) and lines[i] == LAYOUT_CHANGED:
            i, cells, values = state_block(i + 1, "    ")
            position = {c: k for k, c in enumerate(cells)}
        while steps and i < len(lines) and (change := _CHANGE_RE.fullmatch(lines[i])):
            k = position.get(_parse_cell(change["cell"]))
            if k is None or values[k] != _unhex(change["old"]):
                raise fail(i, "a change from a value that the cell does not hold")
            values[k] = _unhex(change["new"])
            i += 1
        for c, v in fields.items():
            table[c] += [v] * len(cells)
        table["location"] += [c[0] for c in cells]
        table["register"] += [c[1] for c in cells]
        table["vcpu"] += [c[2] for c in cells]
        table["value"] += values
        steps += 1
    if (steps, len(table["step"])) != (int(head["steps"]), int(head["rows"])):
        raise ValueError(f"{lines[0]!r}: the text holds {steps} steps and {len(table['step'])} rows")
    return head["mode"], table


# --------------------------------------------------------------------------- golden files

def golden_path(golden_dir: Path, scenario: str, variant: str) -> Path:
    return golden_dir / scenario / f"{variant}.txt"


def render_file(scenario: str, variant: str, by_mode: dict[str, Table]) -> str:
    parts = [FILE_HEADER.format(scenario=scenario, variant=variant)]
    parts += ["\n".join(format_trace(mode, by_mode[mode])) + "\n" for mode, _ in MODES]
    return "\n".join(parts)


def render_all(traces: Traces) -> Texts:
    return {key: render_file(*key, by_mode) for key, by_mode in sorted(traces.items())}


def split_file(text: str) -> dict[str, list[str]]:
    """A golden file's traces, by mode: the lines of each (its header comment left out)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:].split(" ", 1)[0], [])
        if current is not None and line:
            current.append(line)
    return sections


def write_golden(golden_dir: Path, texts: Texts) -> None:
    """Write every file afresh; delete the files of scenarios or variants that no longer run."""
    for path in golden_dir.glob("*/*.txt"):
        path.unlink()
    for (scenario, variant), text in sorted(texts.items()):
        path = golden_path(golden_dir, scenario, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in sorted(golden_dir.iterdir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _in_file(diff: list[str], golden: list[str], old_start: int, new_start: int) -> list[str]:
    """A trace's diff with line numbers counted in the whole files, and each hunk header followed by
    the golden step the hunk starts in (as git names the function)."""
    out = []
    for line in diff:
        if m := re.fullmatch(r"@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", line):
            old, new = int(m[1]), int(m[3])
            step = next((g for g in reversed(golden[:max(old - 1, 0) + 1]) if g.startswith("step ")), None)
            line = f"@@ -{old + old_start}{m[2] or ''} +{new + new_start}{m[4] or ''} @@" + (f" {step}" if step else "")
        out.append(line)
    return out


def _start(text: str, mode: str) -> int:
    """How many lines of a golden file come before its trace for this mode (0 if it has none)."""
    return next((i for i, line in enumerate(text.splitlines()) if line.startswith(f"== {mode} ")), 0)


def trace_diffs(label: str, scenario: str, variant: str, golden: str, current: str) -> list[tuple[str, list[str]]]:
    """(scenario/variant/mode, unified diff golden -> current) for each trace of one file that differs."""
    golden_traces, current_traces = split_file(golden), split_file(current)
    out = []
    for mode in [m for m, _ in MODES] + sorted(set(golden_traces) - {m for m, _ in MODES}):
        old, new = golden_traces.get(mode, []), current_traces.get(mode, [])
        if old != new:
            diff = difflib.unified_diff(old, new, fromfile=f"{label} [{mode}] (golden)",
                                        tofile=f"{scenario}/{variant}/{mode} (now)", lineterm="", n=2)
            out.append((f"{scenario}/{variant}/{mode}",
                        _in_file(list(diff), old, _start(golden, mode), _start(current, mode))))
    if not out and golden != current:  # only the header comment or the blank lines differ
        diff = difflib.unified_diff(golden.splitlines(), current.splitlines(), fromfile=f"{label} (golden)",
                                    tofile=f"{scenario}/{variant} (now)", lineterm="", n=2)
        out.append((f"{scenario}/{variant} (file header)", list(diff)))
    return out


def check_golden(golden_dir: Path, texts: Texts) -> str | None:
    """None if every golden file holds the text of its traces, else a report: problems, then the first diffs."""
    expected = {golden_path(golden_dir, s, v): (s, v) for s, v in texts}
    on_disk = set(golden_dir.glob("*/*.txt"))
    problems: list[str] = []
    diffs: list[str] = []
    for path in sorted(on_disk | set(expected)):
        label = str(path.relative_to(golden_dir.parent.parent))
        if path not in expected:
            problems.append(f"{label}: golden traces of scenario {path.parent.name!r} under variant "
                            f"{path.stem!r}, which no longer run (scenario or variant removed or renamed?)")
            continue
        scenario, variant = expected[path]
        if path not in on_disk:
            problems.append(f"{label}: scenario {scenario!r} under variant {variant!r} runs but has no golden file")
            continue
        current = texts[scenario, variant]
        for what, diff in trace_diffs(label, scenario, variant, path.read_text(encoding="utf-8"), current):
            body = diff[2:]
            removed = sum(1 for d in body if d.startswith("-"))
            added = sum(1 for d in body if d.startswith("+"))
            problems.append(f"{what}: trace changed ({removed} line(s) removed, {added} added)")
            if len(diffs) < MAX_DIFFS:
                shown = diff[:MAX_DIFF_LINES]
                if len(diff) > len(shown):
                    shown.append(f"... {len(diff) - len(shown)} more lines: regenerate, then git diff tests/golden")
                diffs.append("\n".join(shown))
    if not problems:
        return None
    return (f"{len(problems)} golden trace problem(s) in {golden_dir}:\n  " + "\n  ".join(problems)
            + "".join(f"\n\n{d}" for d in diffs)
            + f"\n\nIf the change is deliberate, regenerate with {REGEN_HINT} and review git diff tests/golden")


# --------------------------------------------------------------------------- the tests

def run_trace(scenario: str, variant: str, vhe: bool) -> pd.DataFrame:
    m = Machine(variant, vhe=vhe)
    scenarios.get(scenario)(m)
    return m.trace.to_dataframe()


@pytest.fixture(scope="module")
def traces() -> Traces:
    """Every (scenario, variant): its traces by mode."""
    out: Traces = {}
    for scenario in scenarios.names():
        for variant in VARIANTS:
            out[scenario, variant] = {mode: table_of(run_trace(scenario, variant, vhe)) for mode, vhe in MODES}
    return out


@pytest.fixture(scope="module")
def texts(traces: Traces) -> Texts:
    """The golden file text of every (scenario, variant). Rewrites the files under KVMDBG_REGEN_GOLDEN."""
    out = render_all(traces)
    if REGEN:
        write_golden(GOLDEN_DIR, out)
    return out


def _small_trace() -> pd.DataFrame:
    m = Machine("p2")
    m.guest_write("OSLAR_EL1", 1)
    m.guest_write("OSLAR_EL1", 0)
    return m.trace.to_dataframe()


def test_traces_match_the_golden_texts(texts: Texts) -> None:
    if REGEN:
        return
    report = check_golden(GOLDEN_DIR, texts)
    if report is not None:
        pytest.fail(report, pytrace=False)


def test_every_trace_reads_back_from_its_text(traces: Traces, texts: Texts) -> None:
    """The whole long table of every trace comes back from its file's text."""
    for (scenario, variant), by_mode in traces.items():
        sections = split_file(texts[scenario, variant])
        assert list(sections) == [m for m, _ in MODES]
        for mode, table in by_mode.items():
            assert parse_trace(sections[mode]) == (mode, table), f"{scenario}/{variant}/{mode}"


_NAMES, _MID = scenarios.names(), len(VARIANTS) // 2
SAMPLES = sorted({(_NAMES[0], VARIANTS[0], "nVHE"), (_NAMES[0], VARIANTS[-1], "VHE"),
                  (_NAMES[len(_NAMES) // 2], VARIANTS[_MID], "VHE"), (_NAMES[-1], VARIANTS[_MID], "nVHE")})


@pytest.mark.parametrize(("scenario", "variant", "mode"), SAMPLES, ids=["/".join(s) for s in SAMPLES])
def test_a_golden_text_rebuilds_the_dataframe(scenario: str, variant: str, mode: str) -> None:
    """The long table rebuilt from a committed golden file equals to_dataframe(), cell for cell and dtype for dtype."""
    if REGEN:
        pytest.skip("regenerating the golden files")
    df = pd.DataFrame(run_trace(scenario, variant, dict(MODES)[mode]))
    path = golden_path(GOLDEN_DIR, scenario, variant)
    assert path.is_file(), f"{path} is missing: generate it with {REGEN_HINT}"
    read_mode, table = parse_trace(split_file(path.read_text(encoding="utf-8"))[mode])
    assert read_mode == mode
    rebuilt = pd.DataFrame({c: pd.array(table[c], dtype=df[c].dtype) for c in COLUMNS})
    pd.testing.assert_frame_equal(rebuilt, df)


def test_the_text_does_not_depend_on_dtypes() -> None:
    df = _small_trace()
    text = format_trace("nVHE", table_of(df))
    as_objects = df.astype(object).where(df.notna(), None)
    as_floats = df.astype({"vcpu": "float64", "step": "float64"})
    as_strings = df.astype({c: "string" for c in ("phase", "function", "file", "location", "register", "detail")})
    as_strings_objects = df.astype({c: object for c in ("phase", "function", "file", "location", "register", "detail")})
    for other in (as_objects, as_floats, as_strings, as_strings_objects, pd.DataFrame(df), _small_trace()):
        assert format_trace("nVHE", table_of(other)) == text
    assert format_trace("nVHE", table_of(df.iloc[:-1])) != text


def test_every_column_of_every_row_reaches_the_text() -> None:
    """Change any one column of one row (a whole step for the per-step columns): the text changes."""
    df = pd.DataFrame(_small_trace())
    text = format_trace("nVHE", table_of(df))
    middle = len(df) // 2
    same_step = df.index[df["step"] == df["step"].iloc[middle]]
    for column in COLUMNS:
        changed = df.copy()
        rows = same_step if column in STEP_COLUMNS or column == "step" else [middle]
        old = changed.loc[middle, column]
        if column in ("vcpu", "value"):
            changed.loc[rows, column] = 1 if pd.isna(old) else pd.NA
        elif column == "step":
            changed.loc[rows, column] = old + 1000
        else:
            changed.loc[rows, column] = f"{old}x"
        assert format_trace("nVHE", table_of(changed)) != text, column
    swapped = df.copy()
    swapped.iloc[[same_step[0], same_step[1]]] = swapped.iloc[[same_step[1], same_step[0]]].to_numpy()
    assert format_trace("nVHE", table_of(swapped)) != text, "the order of the rows"
    one_detail = df.copy()
    one_detail.loc[middle, "detail"] = "another detail"
    with pytest.raises(ValueError, match="differ in detail"):
        format_trace("nVHE", table_of(one_detail))


def test_the_text_reads_back_whatever_the_trace_holds() -> None:
    """Awkward strings, missing cells, 64-bit values and cells that come and go all survive the text."""
    def row(step: int, phase: Any, function: Any, file: Any, detail: Any, cells: list[tuple[Any, ...]]) -> list[Row]:
        return [(step, phase, function, file, vcpu, location, register, value, detail)
                for location, register, vcpu, value in cells]

    base = [("physical", "OSLSR_EL1", None, 0xA), ("host", "MDSCR_EL1", None, None),
            ("vcpu", "OSLSR_EL1", 0, 2**64 - 1)]
    rows = (row(1, "boot", "cold reset", "(the architecture: PE cold reset)", "plain", base)
            + row(2, "a | b", "-", "", "physical/OSLSR_EL1: 0x0 -> 0x1", base[:2] + [("vcpu", "OSLSR_EL1", 0, 0)])
            + row(3, None, '"quoted"', " x", "the cells are now:", base[:2] + [("vcpu", "OSLSR_EL1", 0, 0)])
            + row(4, "p", "f", "a/b.c", "line one\nline two", [("guest view", "a/b: c = d", 3, 5),
                                                                 (None, "-", -1, None), ("vcpu", "OSLSR_EL1", 0, 0)])
            + row(1, "boot", "again", "x", None, [("vcpu", "OSLSR_EL1", 0, 1), ("guest view", "a/b: c = d", 3, 5)])
            + row(7, "p", "f", "file", "  leading and trailing blanks ", [("vcpu", "OSLSR_EL1", 0, 1),
                                                                          ("guest view", "a/b: c = d", 3, 5)]))
    table: Table = {c: [r[k] for r in rows] for k, c in enumerate(COLUMNS)}
    lines = format_trace("VHE", table)
    assert parse_trace(lines) == ("VHE", table)
    assert lines.count(LAYOUT_CHANGED) == 3  # two changes of the cells, and a detail that reads like one
    empty: Table = {c: [] for c in COLUMNS}
    assert parse_trace(format_trace("nVHE", empty)) == ("nVHE", empty)


def test_a_failure_names_the_trace_and_shows_its_diff(tmp_path: Path) -> None:
    df = _small_trace()
    traces: Traces = {("toggle", "p2"): {mode: table_of(df) for mode, _ in MODES},
                      ("toggle", "p3"): {mode: table_of(df) for mode, _ in MODES}}
    write_golden(tmp_path, render_all(traces))
    assert check_golden(tmp_path, render_all(traces)) is None

    changed = table_of(df)
    changed["value"] = [None if v is None else v ^ 1 for v in changed["value"]]
    gone = tmp_path / "toggle" / "p3.txt"
    gone.unlink()
    (tmp_path / "removed-scenario").mkdir()
    (tmp_path / "removed-scenario" / "p2.txt").write_text("old\n", encoding="utf-8")
    now = {("toggle", "p2"): {"nVHE": traces["toggle", "p2"]["nVHE"], "VHE": changed},
           ("toggle", "p3"): traces["toggle", "p3"]}
    report = check_golden(tmp_path, render_all(now))
    assert report is not None
    assert "removed-scenario/p2.txt: golden traces of scenario 'removed-scenario' under variant 'p2', " \
           "which no longer run" in report
    assert "toggle/p3.txt: scenario 'toggle' under variant 'p3' runs but has no golden file" in report
    assert "toggle/p2/VHE: trace changed" in report and "toggle/p2/nVHE" not in report
    label = f"{tmp_path.parent.name}/{tmp_path.name}/toggle/p2.txt"
    assert f"--- {label} [VHE] (golden)\n+++ toggle/p2/VHE (now)\n@@ " in report
    assert re.search(r"^-  physical/OSLSR_EL1 = 0xa$", report, re.M)
    assert re.search(r"^\+  physical/OSLSR_EL1 = 0xb$", report, re.M)
    # The hunk's line numbers are those of the golden file: its first removed line is there.
    golden_lines = (tmp_path / "toggle" / "p2.txt").read_text(encoding="utf-8").splitlines()
    hunk = report.split(f"--- {label} [VHE] (golden)\n", 1)[1].splitlines()[1:]
    line = int(re.match(r"@@ -(\d+)", hunk[0])[1])  # type: ignore[index]
    for h in hunk[1:]:
        if h.startswith("-"):
            assert golden_lines[line - 1] == h[1:]
            break
        line += 1
    else:
        raise AssertionError("no removed line in the diff")
    assert REGEN_HINT in report

    write_golden(tmp_path, render_all(traces))
    assert not (tmp_path / "removed-scenario").exists()
    assert check_golden(tmp_path, render_all(traces)) is None
