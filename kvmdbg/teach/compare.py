"""Side-by-side comparisons of the variants: ``compare`` and the selftest table.

``compare(scenario, variants, vhe=...)`` runs one scenario on a fresh
:class:`~kvmdbg.Machine` per variant and lines up the final snapshots (plus the
scenario's own observations, location ``"scenario"``). ``selftest_table()``
runs the re-expressed kernel selftest (``selftest-oslock``) under every variant
in both host modes; ``selftest_explanations()`` says why each failure happens.
pandas is imported only when these functions run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kvmdbg.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    DuplicateVariantError,
    ScenarioTypeError,
    check_flag,
)
from kvmdbg.patches import VARIANTS, variant_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare", "selftest_table", "selftest_stage_table", "selftest_run_table",
           "selftest_explanations", "selftest_markdown", "selftest_run_markdown"]


def _resolve(scenario: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    if isinstance(scenario, str):
        from kvmdbg.teach import scenarios

        return scenarios.get(scenario)
    if callable(scenario):
        try:
            inspect.signature(scenario).bind(object())
        except TypeError:
            raise ScenarioTypeError(
                f"scenario={scenario!r:.60} cannot be called with one Machine; a scenario is a built-in "
                "name or a callable such as lambda m: {'x': m.guest_read('OSLSR_EL1')}") from None
        except ValueError:  # no signature to inspect (some builtins): let the call decide
            pass
        return scenario
    raise ScenarioTypeError(f"scenario must be a built-in name (see kvmdbg.scenarios.names()) or a callable "
                            f"taking a Machine, not {type(scenario).__name__} ({scenario!r:.60})")


def _variant_list(variants: Any) -> list[tuple[str, Any]]:
    """(canonical name, variant) per requested kernel; a kernel asked for twice is refused.

    Two spellings of one kernel (``"p3"`` and ``{"p1", "p2", "p3"}``) would be one column, so
    compare() refuses them instead of dropping one in silence.
    """
    if isinstance(variants, str):
        variants = [variants]  # one variant name, not its characters
    if variants is None or not isinstance(variants, Iterable):
        raise ArgumentTypeError(f"variants must be a list of variants such as ['p2', 'upstream'], not "
                                f"{type(variants).__name__} ({variants!r:.60})")
    out: list[tuple[str, Any]] = []
    seen: dict[str, Any] = {}
    for v in variants:
        name = variant_name(v)
        if name in seen:
            raise DuplicateVariantError(
                f"variants lists the kernel {name!r} twice ({seen[name]!r} and {v!r}); each column is one "
                "kernel, so give each variant once")
        seen[name] = v
        out.append((name, v))
    if not out:
        raise ArgumentValueError("variants is empty: give at least one variant, such as ['p2']")
    return out


def compare(scenario: str | Callable[[Any], Any], variants: Iterable[Any] = VARIANTS, *,
            vhe: bool = False) -> pd.DataFrame:
    """One row per (location, register), one column per variant, from each final ``snapshot()``.

    Columns are named by :func:`kvmdbg.patches.variant_name`, unique to each kernel
    (``{"p3"}`` is ``"baseline+p3"``). The same kernel asked for twice, under any spelling,
    raises :class:`~kvmdbg.errors.DuplicateVariantError` before anything runs.
    """
    import pandas as pd

    from kvmdbg.machine import Machine

    func = _resolve(scenario)
    wanted = _variant_list(variants)
    vhe = check_flag(vhe, "vhe")
    columns: dict[str, dict[tuple[str, str], Any]] = {}
    for label, variant in wanted:
        machine = Machine(variant, vhe=vhe, trace=False)
        observed = func(machine)
        col: dict[tuple[str, str], Any] = {}
        for (location, register, vcpu), value in machine.snapshot().values.items():
            name = register if vcpu <= 0 else f"{register}[vcpu{vcpu}]"
            col[(location, name)] = value
        if isinstance(observed, dict):
            for key, value in observed.items():
                col[("scenario", str(key))] = value if not isinstance(value, dict) else repr(value)
        columns[label] = col
    keys: list[tuple[str, str]] = []
    for col in columns.values():
        keys += [k for k in col if k not in keys]
    index = pd.MultiIndex.from_tuples(keys, names=["location", "register"])
    data = {name: [col.get(k) for k in keys] for name, col in columns.items()}
    from kvmdbg.frames import HexFrame

    return HexFrame(data, index=index, dtype=object)


def selftest_run_table(variants: Iterable[str] = VARIANTS) -> pd.DataFrame:
    """What the real ``debug-exceptions`` run reports: it stops at its first failing GUEST_ASSERT.

    Rows: selftest stages, then "result" (``"PASS"`` or ``"FAIL at <stage>"``); columns
    (host mode, variant); stage values "pass", "fail" (the stage that aborted the run) or
    "not run". :func:`selftest_stage_table` shows what each stage would do on its own.
    """
    import pandas as pd

    from kvmdbg.machine import Machine
    from kvmdbg.teach.scenarios import SELFTEST_STAGES, run_selftest_as_the_kernel_does

    variants = list(variants)
    data: dict[tuple[str, str], list[str]] = {}
    for mode, vhe in (("nVHE", False), ("VHE", True)):
        for variant in variants:
            out = run_selftest_as_the_kernel_does(Machine(variant, vhe=vhe, trace=False))
            first = next((s for s, v in out.items() if v == "fail"), None)
            data[(mode, variant)] = [out[s] for s, _ in SELFTEST_STAGES] + [
                "PASS" if first is None else f"FAIL at {first}"]
    index = pd.Index([s for s, _ in SELFTEST_STAGES] + ["result"], name="stage")
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.MultiIndex.from_tuples(list(data), names=["host mode", "variant"])
    return frame


def selftest_stage_table(variants: Iterable[str] = VARIANTS) -> pd.DataFrame:
    """Each selftest stage on its own (every stage runs, whatever failed before it).

    Rows: selftest stages; columns (host mode, variant); values "pass"/"fail". The real test
    stops at the first failure: :func:`selftest_run_table` shows that.
    """
    import pandas as pd

    from kvmdbg.machine import Machine
    from kvmdbg.teach.scenarios import SELFTEST_STAGES, run_selftest

    variants = list(variants)
    data: dict[tuple[str, str], list[str]] = {}
    for mode, vhe in (("nVHE", False), ("VHE", True)):
        for variant in variants:
            out = run_selftest(Machine(variant, vhe=vhe, trace=False))
            data[(mode, variant)] = ["pass" if out[s][0] else "fail" for s, _ in SELFTEST_STAGES]
    frame = pd.DataFrame(data, index=pd.Index([s for s, _ in SELFTEST_STAGES], name="stage"))
    frame.columns = pd.MultiIndex.from_tuples(list(data), names=["host mode", "variant"])
    return frame


# The name the CLI and older notebooks use: the per-stage view.
selftest_table = selftest_stage_table


_WHY = {
    ("baseline", "lock"): (
        "enable_os_lock's GUEST_ASSERT(OSLSR_EL1 & 2) fails: in 5.15 KVM handles OSLAR_EL1 with "
        "trap_raz_wi (the write is dropped) and trap_oslsr_el1 returns the constant 0x8, so the guest "
        "can never see OSLK set (the real test would abort here with UCALL_ABORT)."),
    ("p1", "lock"): (
        "enable_os_lock's assertion fails as in baseline: patch 1 only stores OSLSR_EL1 (reset 0x8) "
        "in the vCPU context; OSLAR_EL1 is still trap_raz_wi, so the stored OSLK never becomes 1."),
    ("p2", "unlock"): (
        "the vCPU can never unlock: patch 2 resets OSLSR_EL1 to 0xA and writes the context's OSLK to "
        "the hardware OSLAR_EL1 on every entry (nVHE) or vcpu_load (VHE), while reset_debug_state's "
        "OSLAR_EL1=0 is lost because trap_oslar_el1 as posted passes value and register index to "
        "vcpu_write_sys_reg() in the wrong order. With the physical OS Lock set, the PE generates no "
        "breakpoint, watchpoint or step exception (BRK is unaffected)."),
    ("p2-intended", "VHE"): (
        "the guest's unlock does not reach the PE while the vCPU is loaded: on VHE the locked reset "
        "value (0xA) goes onto the PE at vcpu_load, and trap_oslar_el1 (as intended) updates only "
        "the in-memory OSLSR_EL1, because vcpu_write_sys_reg() writes OSLSR_EL1 to the CPU in no "
        "variant (5.15 __vcpu_write_sys_reg_to_cpu() does not list it). The PE keeps the lock for "
        "the rest of the run, and vcpu_put then saves the stale 0xA over the unlock."),
}


def selftest_explanations(table: pd.DataFrame | None = None) -> dict[tuple[str, str, str], str]:
    """One sentence per failing (host mode, variant, stage) of :func:`selftest_stage_table`."""
    if table is None:
        table = selftest_table()
    out: dict[tuple[str, str, str], str] = {}
    for (mode, variant) in table.columns:
        for stage, verdict in table[(mode, variant)].items():
            if verdict != "fail":
                continue
            number = int(str(stage).split()[0])
            base = "p2" if variant in ("p2", "p3") else variant
            if number >= 7 and base in ("baseline", "p1"):
                text = _WHY[(base, "lock")]
            elif variant == "p2-intended" and mode == "VHE":
                text = _WHY[("p2-intended", "VHE")]
            elif base == "p2":
                text = _WHY[("p2", "unlock")]
                if variant == "p3":
                    text += " (p3 adds only the ID register change.)"
            else:
                text = "unexpected failure: not explained by the sources; please report it."
            out[(mode, variant, str(stage))] = text
    return out


def selftest_run_markdown() -> str:
    """The real-run view (:func:`selftest_run_table`) as a Markdown table, one column per (mode, variant)."""
    table = selftest_run_table()
    cols = [f"{variant} ({mode})" for mode, variant in table.columns]
    lines = ["| stage | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for stage, row in table.iterrows():
        lines.append(f"| {stage} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def selftest_markdown(variants: Iterable[str] = VARIANTS[:5]) -> str:
    """The per-stage selftest results as a Markdown table (a VHE cell that differs is shown in brackets).

    Defaults to the five variants of API.md, the table the README showed before the real-run
    view; :func:`selftest_run_markdown` is the real-run view over every variant.
    """
    table = selftest_table(variants)
    nvhe, vhe = table["nVHE"], table["VHE"]
    same = nvhe.equals(vhe)
    lines = ["| stage | " + " | ".join(nvhe.columns) + " |", "|---" * (len(nvhe.columns) + 1) + "|"]
    for stage, row in nvhe.iterrows():
        cells = [v if same or v == vhe.loc[stage, c] else f"{v} (VHE: {vhe.loc[stage, c]})"
                 for c, v in row.items()]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def selftest_summary_markdown(variants: Iterable[str] = VARIANTS) -> str:
    """What the real selftest reports, one row per variant: its verdict on nVHE and on VHE."""
    table = selftest_run_table(variants)
    lines = ["| variant | nVHE | VHE |", "|---|---|---|"]
    for variant in table.columns.get_level_values("variant").unique():
        cells = [str(table.loc["result", (mode, variant)]) for mode in ("nVHE", "VHE")]
        lines.append(f"| `{variant}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
