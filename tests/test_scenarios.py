"""Built-in scenarios, compare() and the selftest table, per variant and host mode (BRIEF.md section 5).

Every scenario test runs over every variant and both host modes; what it expects comes from the
one table of per-variant facts, tests/facts.py.
"""

from __future__ import annotations

import errno

import pytest
from facts import LOCKED, MODE_IDS, MODES, UNLOCKED, Facts, after_oslar, facts

import kvmdbg
from kvmdbg import VARIANTS, Machine, ScenarioError
from kvmdbg.teach import scenarios
from kvmdbg.teach.compare import selftest_explanations
from kvmdbg.teach.scenarios import SELFTEST_STAGES

STAGES = [name for name, _ in SELFTEST_STAGES]


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(params=MODES, ids=MODE_IDS)
def vhe(request) -> bool:
    return request.param


@pytest.fixture
def f(variant: str, vhe: bool) -> Facts:
    """The facts of this variant in this host mode (tests/facts.py)."""
    return facts(variant, vhe)


def run(name: str, variant: str, vhe: bool) -> dict:
    return scenarios.get(name)(Machine(variant, vhe=vhe, trace=False))


def letters(results) -> str:
    """A column of "pass"/"fail" as the table's letters: "PF..." ."""
    return "".join("P" if v == "pass" else "F" for v in results)


def test_registry() -> None:
    want = {"oslock-toggle", "reset-state", "vhe-host-leak", "vhe-lost-update", "vmm-breakpoint",
            "selftest-oslock", "doublelock", "migration"}
    assert want <= set(scenarios.names())
    s = scenarios.get("oslock-toggle")
    assert s.name == "oslock-toggle" and s.doc and callable(s.func)
    with pytest.raises(ScenarioError, match="oslock-toggle"):
        scenarios.get("oslock-togle")
    assert kvmdbg.scenarios is scenarios


def test_oslock_toggle(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("oslock-toggle", variant, vhe)
    locked, unlocked = after_oslar(f)
    assert obs["OSLSR after lock"] == locked
    assert obs["OSLSR after unlock"] == unlocked
    assert obs["physical OSLSR after lock"] == (locked if f.pe_follows_guest else UNLOCKED)


def test_reset_state(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("reset-state", variant, vhe)
    assert obs["GET_ONE_REG OSLSR_EL1"] == ("ENOENT" if f.oslsr_slot is None else f.oslsr_slot)
    assert obs["guest reads OSLSR_EL1"] == f.oslsr_reset
    assert obs["physical OSLSR before entry"] == UNLOCKED  # the host unlocked it at boot


def test_vhe_host_leak(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("vhe-host-leak", variant, vhe)
    assert obs["physical OSLSR while guest runs"] == (LOCKED if f.pe_follows_guest else UNLOCKED)
    assert obs["host runs locked"] is f.host_runs_locked


def test_vhe_lost_update(variant: str, vhe: bool, f: Facts) -> None:
    # p2/p3 lose it in both modes: trap_oslar_el1 as posted never updates the stored OSLSR.
    # p2-intended loses it on VHE only (BRIEF section 5, "VHE again, for the intended reading").
    obs = run("vhe-lost-update", variant, vhe)
    locked, unlocked = after_oslar(f)
    assert obs["unlock lost"] is f.unlock_lost
    assert obs["OSLSR before unlock"] == locked
    assert obs["OSLSR after put/load"] == (LOCKED if f.unlock_lost else unlocked)


def test_vmm_breakpoint(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("vmm-breakpoint", variant, vhe)
    assert obs["KVM_EXIT_DEBUG"] is f.vmm_breakpoint_fires
    assert obs["stop reason"] == ("KVM_EXIT_DEBUG" if f.vmm_breakpoint_fires else "end")
    assert obs["stopped at"] == (obs["breakpoint address"] if f.vmm_breakpoint_fires else None)


def test_doublelock(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("doublelock", variant, vhe)
    assert (obs["DebugVer field"], obs["DoubleLock field"]) == f.dfr0
    assert obs["OSDLR read back"] == 0 and obs["physical OSDLR_EL1"] == 0


def test_migration(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("migration", variant, vhe)
    if f.baseline_dfr0_errno is None:
        assert obs["refused count"] == 0
    else:
        assert obs["refused count"] == 1
        assert obs["refused ID_AA64DFR0_EL1"] == errno.errorcode[f.baseline_dfr0_errno]


def test_selftest_scenario(variant: str, vhe: bool, f: Facts) -> None:
    obs = run("selftest-oslock", variant, vhe)
    assert list(obs) == STAGES
    assert letters(obs.values()) == f.selftest


def test_selftest_table_and_explanations() -> None:
    table = kvmdbg.selftest_table()
    assert list(table.columns.names) == ["host mode", "variant"]
    assert list(table.index) == STAGES
    for mode, vhe in zip(MODE_IDS, MODES, strict=True):
        for variant in VARIANTS:
            assert letters(table[(mode, variant)]) == facts(variant, vhe).selftest, (mode, variant)
    why = selftest_explanations(table)
    assert len(why) == int((table == "fail").sum().sum())
    assert "trap_raz_wi" in why[("nVHE", "baseline", "7 OS Lock: BRK still taken")]
    assert "wrong order" in why[("VHE", "p2", "2 HW breakpoint")]
    assert not any("unexpected" in s for s in why.values())


def test_compare_frame() -> None:
    df = kvmdbg.compare("oslock-toggle", vhe=True)
    assert list(df.columns) == list(VARIANTS)
    assert list(df.index.names) == ["location", "register"]
    assert df.loc[("physical", "OSLSR_EL1"), "p2"] == 0xA
    assert df.loc[("scenario", "OSLSR after unlock"), "upstream"] == 0x8
    df2 = kvmdbg.compare(lambda m: {"x": m.guest_read("OSLSR_EL1")}, ["baseline", "upstream"])
    assert list(df2.columns) == ["baseline", "upstream"]
    with pytest.raises(ScenarioError):
        kvmdbg.compare("nope")


def test_the_readme_shows_the_selftest_table_the_code_produces():
    from pathlib import Path

    import kvmdbg
    from kvmdbg.teach.compare import selftest_markdown, selftest_summary_markdown

    readme = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
    shown = readme.split("<!-- selftest-table:begin -->\n")[1].split("\n<!-- selftest-table:end -->")[0]
    assert shown == selftest_markdown(kvmdbg.VARIANTS)
    run = readme.split("<!-- selftest-run:begin -->\n")[1].split("\n<!-- selftest-run:end -->")[0]
    assert run == selftest_summary_markdown()
