"""The README's fidelity table, built from realkvm/recording.json.

    PYTHONPATH=. python -m realkvm.table        # prints markdown

Every recorded cell (variant x host mode x scenario x step) is replayed
through the model (realkvm.replay) and counted as agreeing or not.
"""

from __future__ import annotations

from collections import defaultdict

from realkvm import replay


def summary(recording: dict | None = None) -> dict[tuple[str, str], dict]:
    """Per (variant, mode): kernel, scenarios, cells, agreeing cells, and the
    scenarios that have a differing cell."""
    rec = replay.load() if recording is None else recording
    kernels = {(r["variant"], r["mode"]): r["kernel_release"] for r in rec["runs"]}
    out: dict[tuple[str, str], dict] = {}
    for cell in replay.all_cells(rec):
        key = (cell.variant, cell.mode)
        s = out.setdefault(key, {"kernel": kernels[key], "scenarios": set(), "cells": 0,
                                 "agree": 0, "differ": set()})
        s["scenarios"].add(cell.scenario)
        s["cells"] += 1
        s["agree"] += cell.agrees
        if not cell.agrees:
            s["differ"].add(cell.scenario)
    return out


def per_scenario(recording: dict | None = None) -> dict[str, dict[tuple[str, str], tuple[int, int]]]:
    """scenario -> (variant, mode) -> (agreeing cells, cells)."""
    rec = replay.load() if recording is None else recording
    out: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(dict)
    for cell in replay.all_cells(rec):
        a = out[cell.scenario].setdefault((cell.variant, cell.mode), [0, 0])
        a[0] += cell.agrees
        a[1] += 1
    return {s: {k: (v[0], v[1]) for k, v in d.items()} for s, d in out.items()}


def markdown(recording: dict | None = None) -> str:
    rec = replay.load() if recording is None else recording
    s = summary(rec)
    lines = ["| variant | host mode | kernel | scenarios | cells | agree | agreement | scenarios with a difference |",
             "|---|---|---|---|---|---|---|---|"]
    total = agree = 0
    for (variant, mode), d in s.items():
        total += d["cells"]
        agree += d["agree"]
        differ = ", ".join(sorted(d["differ"])) or "none"
        lines.append(f"| {variant} | {mode} | {d['kernel']} | {len(d['scenarios'])} | {d['cells']} | "
                     f"{d['agree']} | {100 * d['agree'] / d['cells']:.0f}% | {differ} |")
    lines.append(f"| **all** | | | | **{total}** | **{agree}** | **{100 * agree / max(total, 1):.0f}%** | |")
    lines.append("")
    ps = per_scenario(rec)
    cols = list(s)
    lines.append("| scenario | " + " | ".join(f"{v} {m}" for v, m in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for scenario, d in ps.items():
        cells = []
        for key in cols:
            a, n = d.get(key, (0, 0))
            cells.append(f"{a}/{n}" if a == n else f"**{a}/{n}**")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
