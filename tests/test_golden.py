"""Golden trace hashes: every built-in scenario, under every variant, on nVHE and VHE.

Each (scenario, variant, mode) runs on a fresh :class:`~kvmdbg.Machine` and its trace
DataFrame (``machine.trace.to_dataframe()``) is hashed: SHA-256 over a CSV that this module
writes itself, with a fixed column order and every cell turned into a plain string here
(integers in decimal, missing values as the empty string), so that the hash does not depend
on how a pandas version formats numbers, nullable dtypes or missing values. The hashes live
in ``tests/golden/trace_hashes.json``, with the row and event counts to help read a change.

A mismatch means a trace changed: one function more or less, a different value after a
step, a reworded detail. If the change is deliberate, regenerate the file and commit it
together with the change::

    KVMDBG_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py

(with ``KVMDBG_REGEN_GOLDEN=1`` the test rewrites the file instead of comparing, and passes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from kvmdbg import VARIANTS, Machine
from kvmdbg.teach import scenarios

pd = pytest.importorskip("pandas")

GOLDEN = Path(__file__).parent / "golden" / "trace_hashes.json"
REGEN = os.environ.get("KVMDBG_REGEN_GOLDEN", "").strip().lower() in {"1", "true", "yes", "on"}
COLUMNS = ("step", "phase", "function", "file", "vcpu", "location", "register", "value", "detail")
MODES = (("nVHE", False), ("VHE", True))


def _cell(value: Any) -> str:
    """A cell as a plain string, whatever the pandas version made of it."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def trace_digest(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(COLUMNS)
    columns = [df[c].tolist() for c in COLUMNS]
    for row in zip(*columns, strict=True):
        writer.writerow([_cell(v) for v in row])
    return hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()


def key(scenario: str, variant: str, mode: str) -> str:
    return f"{scenario}/{variant}/{mode}"


def compute() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in scenarios.names():
        for variant in VARIANTS:
            for mode, vhe in MODES:
                m = Machine(variant, vhe=vhe)
                scenarios.get(name)(m)
                df = m.trace.to_dataframe()
                out[key(name, variant, mode)] = {"sha256": trace_digest(df), "rows": len(df), "events": len(m.trace)}
    return out


@pytest.fixture(scope="module")
def current() -> dict[str, dict[str, Any]]:
    return compute()


def test_the_digest_does_not_depend_on_dtypes() -> None:
    m = Machine("p2")
    m.guest_write("OSLAR_EL1", 1)
    df = m.trace.to_dataframe()
    as_objects = df.astype(object).where(df.notna(), None)
    assert trace_digest(df) == trace_digest(as_objects)
    assert trace_digest(df) == trace_digest(m.trace.to_dataframe())
    assert trace_digest(df) != trace_digest(df.iloc[:-1])


def test_traces_match_the_golden_hashes(current: dict[str, dict[str, Any]]) -> None:
    if REGEN:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(current.items())), indent=1) + "\n", encoding="utf-8")
        return
    assert GOLDEN.is_file(), f"{GOLDEN} is missing: generate it with KVMDBG_REGEN_GOLDEN=1 python -m pytest {__file__}"
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    problems = []
    for k in sorted(set(golden) | set(current)):
        scenario, variant, mode = k.split("/")
        where = f"(scenario={scenario!r}, variant={variant!r}, mode={mode})"
        if k not in current:
            problems.append(f"{where}: in the golden file but no longer run (scenario removed or renamed?)")
        elif k not in golden:
            problems.append(f"{where}: new, not in the golden file")
        elif golden[k]["sha256"] != current[k]["sha256"]:
            problems.append(f"{where}: trace changed (events {golden[k]['events']} -> {current[k]['events']}, "
                            f"rows {golden[k]['rows']} -> {current[k]['rows']})")
    assert not problems, (
        f"{len(problems)} trace(s) differ from {GOLDEN.name}:\n  " + "\n  ".join(problems)
        + "\nIf the change is deliberate, regenerate with: KVMDBG_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py"
    )
