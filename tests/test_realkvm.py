"""The model against real KVM/arm64 kernels: replay realkvm/recording.json.

The recording was made by realkvm/regenerate.py (real 5.15, 5.15 + v1 1-3 and
a 5.19 kernel, each booted VHE and nVHE under qemu-system-aarch64, driven by
our own VMM realkvm/vmm.c).  Every recorded step is performed on a fresh
kvmdbg.Machine per scenario and compared cell by cell; one test per
(variant, host mode, scenario), so a failure names the cell.

KNOWN_DIFFERENCES lists the scenarios where the model and the real kernel
differ today, each with the bullet of issue 11 ("Why") that describes the
difference.  The marks are strict: once a fix makes a scenario agree, its
test fails until the row is deleted here, so the table cannot go stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# realkvm/ is a top-level folder of the repository, not part of the installed package.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from realkvm import replay, table  # noqa: E402

RECORDING = replay.load()

# Reasons name the "Why" bullet of issue 11 (or what this harness found) that a row stands for.
# Every difference the harness found has been fixed in the model; the table is empty, and a
# row added here must say why the model deliberately differs.
# (variant, mode, scenario) -> reason.  Delete a row when a fix makes it agree.
KNOWN_DIFFERENCES: dict[tuple[str, str, str], str] = {
}


def _cases():
    for run in RECORDING["runs"]:
        for scenario, rows in replay.scenarios(run).items():
            key = (run["variant"], run["mode"], scenario)
            marks = ()
            if key in KNOWN_DIFFERENCES:
                marks = (pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[key]),)
            yield pytest.param(*key, rows, id="-".join(key), marks=marks)


@pytest.mark.parametrize(("variant", "mode", "scenario", "rows"), list(_cases()))
def test_model_matches_real_kernel(variant, mode, scenario, rows):
    cells = replay.replay_scenario(variant, mode, scenario, rows)
    differ = [f"{c.step}: real {c.observed}, model {c.model}" for c in cells if not c.agrees]
    assert not differ, f"{variant}/{mode}/{scenario} differs:\n" + "\n".join(differ)


def test_known_differences_name_recorded_scenarios():
    recorded = {(r["variant"], r["mode"], s) for r in RECORDING["runs"] for s in replay.scenarios(r)}
    assert set(KNOWN_DIFFERENCES) <= recorded, set(KNOWN_DIFFERENCES) - recorded


def test_recording_covers_the_issue():
    """Done-when of issue 11: baseline, p1, p2, p3 and a 5.18+ kernel, nVHE and VHE, >= 12 scenarios."""
    runs = {(r["variant"], r["mode"]): r for r in RECORDING["runs"]}
    for variant in ("baseline", "p1", "p2", "p3", "upstream"):
        for mode, proof in (("vhe", "VHE mode initialized"), ("nvhe", "Hyp mode initialized")):
            run = runs[(variant, mode)]
            assert proof in run["mode_proof"]
            assert len(replay.scenarios(run)) >= 12
            release = run["kernel_release"]
            major, minor = (int(x) for x in release.split(".")[:2])
            if variant == "upstream":
                assert (major, minor) >= (5, 18), release
            else:
                assert (major, minor) == (5, 15), release
    needed = {"reset_values", "lock_unlock", "osdlr", "id_aa64dfr0", "reg_list", "exits_reentries",
              "corrupt_unlock", "corrupt_lock", "host_oslock", "undef_forms", "mdscr_lock",
              "vcpu_reinit", "planted_oslsr_0", "planted_oslsr_a", "planted_slot_oslsr",
              "planted_slot_csselr"}
    for run in RECORDING["runs"]:
        assert needed <= set(replay.scenarios(run)), (run["variant"], run["mode"])


def test_recording_shows_the_p2_corruption():
    """The recorded fact the kit teaches: after OSLAR 0 the guest reads TTBR1_EL1 = 0x1a, after 1 ESR_EL1."""
    for run in RECORDING["runs"]:
        rows = {(r["scenario"], r["step"].split(".", 1)[1]): r["value"] for r in run["rows"]}
        hit_ttbr1 = rows[("corrupt_unlock", "guest_read.TTBR1_EL1")] == "0x1a"
        hit_esr = rows[("corrupt_lock", "guest_read.ESR_EL1")] == "0x1a"
        assert hit_ttbr1 == hit_esr == (run["variant"] in ("p2", "p3")), (run["variant"], run["mode"])


def test_fidelity_table_counts_every_cell():
    md = table.markdown(RECORDING)
    total = sum(len(r["rows"]) for r in RECORDING["runs"])
    assert f"**{total}**" in md
    for run in RECORDING["runs"]:
        assert f"| {run['variant']} | {run['mode']} | {run['kernel_release']} |" in md


def test_replay_catches_a_wrong_recorded_value():
    """The comparison can fail: a recorded value changed by hand no longer agrees."""
    run = next(r for r in RECORDING["runs"] if (r["variant"], r["mode"]) == ("p2", "vhe"))
    rows = [dict(r) for r in replay.scenarios(run)["host_oslock"]]
    after_run = next(r for r in rows if r["step"].endswith("host_oslsr.after_run"))
    assert after_run["value"] == "0xa"  # the VHE host leak, as recorded
    after_run["value"] = "0x8"
    cells = replay.replay_scenario("p2", "vhe", "host_oslock", rows)
    assert [c.step for c in cells if not c.agrees] == [after_run["step"]]


def test_replay_rejects_an_unknown_step():
    m = replay.kvmdbg.Machine("baseline")
    with pytest.raises(ValueError, match="unknown op"):
        replay.model_value(m, "00.teleport.OSLSR_EL1")


def test_the_readmes_show_the_fidelity_table_the_recording_gives():
    for path in (Path(_ROOT) / "README.md", Path(_ROOT) / "realkvm" / "README.md"):
        text = path.read_text()
        shown = text.split("<!-- fidelity-table:begin -->\n")[1].split("\n<!-- fidelity-table:end -->")[0]
        assert shown == table.markdown(), f"{path}: regenerate with PYTHONPATH=. python -m realkvm.table"
