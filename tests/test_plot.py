"""Charts: each returns a Figure, nothing leaks into pyplot, text is legible."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from kvmdbg import Machine
from kvmdbg.teach import compare, plot


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text()]


def _assert_legible(fig: Figure) -> None:
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    png = plot.to_png(fig)
    assert png.startswith(b"\x89PNG")
    for t in _texts(fig):
        assert t.get_fontsize() >= 11, f"{t.get_text()!r} is {t.get_fontsize()} pt"


@pytest.fixture(scope="module")
def machine() -> Machine:
    m = Machine("p2", vhe=True)
    m.guest_write("OSLAR_EL1", 1)
    m.vcpu_put()
    return m


def test_import_kvmdbg_does_not_import_matplotlib() -> None:
    code = ("import sys, kvmdbg; kvmdbg.Machine('p2'); "
            "print('matplotlib' in sys.modules, 'ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_lazy_plot_attribute() -> None:
    import kvmdbg

    assert kvmdbg.plot is plot


def test_bitfield_labels_fields_bits_and_values() -> None:
    fig = plot.bitfield("OSLSR_EL1", 0xA, previous=0x8)
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in _texts(fig)]
    assert "OSLK" in texts and "OSLM[0]" in texts and "OSLM[1]" in texts and "1" in texts
    assert any("0xa" in t and "was 0x8" in t for t in texts)
    _assert_legible(fig)
    # the changed field (OSLK) is drawn with the highlight colour, the others are not
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    faces = [r.get_facecolor() for r in fig.axes[0].patches if isinstance(r, Rectangle)]
    assert faces.count(to_rgba(plot.CHANGED)) == 1


def test_bitfield_high_bits_on_the_left() -> None:
    fig = plot.bitfield("MDSCR_EL1", 1 << 15)
    pos = {t.get_text(): t.get_position()[0] for t in _texts(fig)}
    assert pos["MDE"] < pos["KDE"] < pos["SS"]


def test_bitfield_into_given_axes_and_none_value() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.bitfield("OSLSR_EL1", None, ax=ax) is fig


def test_bitfields_marks_differences_from_the_first() -> None:
    vals = {v: Machine(v, trace=False).guest_read("ID_AA64DFR0_EL1") for v in ("baseline", "p3")}
    fig = plot.bitfields("ID_AA64DFR0_EL1", vals)
    assert len(fig.axes) == 2
    assert any("differs from baseline" in t.get_text() for t in _texts(fig))
    _assert_legible(fig)
    with pytest.raises(ValueError):
        plot.bitfields("OSLSR_EL1", {})


@pytest.mark.parametrize("source", ["machine", "trace", "dataframe"])
def test_timeline_from_each_source(machine: Machine, source: str) -> None:
    src = {"machine": machine, "trace": machine.trace, "dataframe": machine.trace.to_dataframe()}[source]
    fig = plot.timeline(src, "OSLSR_EL1", "OSLK", last=40)
    ax = fig.axes[0]
    # Each lane carries its own 0/1 scale; the lane names stand beside it.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"] * 4
    names = {t.get_text() for t in ax.texts}
    assert {"physical", "vcpu", "host", "guest_view"} <= names
    # Only the steps where a copy changed are named: here vcpu_load putting the guest's lock on the PE.
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert 0 < len(labels) < 10 and any("sysreg_restore_el1_state" in s for s in labels)
    assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())
    # Who runs: a VHE host runs KVM at EL2, the guest at EL1, and the shading says so.
    assert "host EL2" in names and "VHE" in ax.get_title(loc="left")
    _assert_legible(fig)


def test_a_long_baseline_timeline_names_only_the_changes() -> None:
    m = Machine("baseline")
    m.guest_write("OSLAR_EL1", 1)
    m.guest_read("OSLSR_EL1")
    m.vcpu_put()
    fig = plot.timeline(m)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(m.trace) > 40 and len(labels) <= 6  # was one rotated label per step (46 of them)


@pytest.mark.parametrize("phase,file,vhe,who", [
    ("guest", "", False, "guest EL1"), ("guest", "", True, "guest EL1"),
    ("enter", "arch/arm64/kvm/hyp/nvhe/switch.c", False, "hyp EL2"),
    ("enter", "arch/arm64/kvm/hyp/entry.S", False, "hyp EL2"),
    ("enter", "arch/arm64/kvm/debug.c", False, "host EL1"),
    ("handle", "arch/arm64/kvm/sys_regs.c", True, "host EL2"),
    ("enter", "arch/arm64/kvm/hyp/vhe/switch.c", True, "host EL2"),
])
def test_runner_names_who_runs_at_which_el(phase: str, file: str, vhe: bool, who: str) -> None:
    assert plot.runner(phase, file, vhe) == who


def test_timelines_align_nvhe_and_vhe_phase_by_phase() -> None:
    ms = {}
    for label, vhe in (("nVHE", False), ("VHE", True)):
        m = Machine("p2", vhe=vhe)
        m.guest_write("OSLAR_EL1", 0)
        m.vcpu_put()
        ms[label] = m
    assert len(ms["nVHE"].trace) != len(ms["VHE"].trace)  # different step counts ...
    fig = plot.timelines(ms)
    a, b = fig.axes[:2]
    assert a.get_xlim() == b.get_xlim()  # ... on one phase axis
    assert [t.get_text() for t in b.get_xticklabels()][:4] == ["boot", "reset", "vcpu_load", "enter"]
    _assert_legible(fig)
    with pytest.raises(ValueError):
        plot.timelines({})


def test_every_chart_displays_itself_as_a_png(machine: Machine) -> None:
    from IPython.core.formatters import DisplayFormatter

    charts = [plot.bitfield("OSLSR_EL1", 0xA), plot.bitfields("OSLSR_EL1", {"a": 0x8, "b": 0xA}),
              plot.timeline(machine), plot.timelines({"one": machine}),
              plot.matrix(compare.compare("oslock-toggle", ["baseline", "p2"]))]
    for fig in charts:
        data, _ = DisplayFormatter().format(fig)
        assert data["image/png"].startswith(b"\x89PNG")
        assert not data["text/plain"].startswith("<Figure")
        assert "kvmdbg chart" in data["text/plain"]


def test_timeline_sources_agree(machine: Machine) -> None:
    a = plot.timeline_data(machine.trace, last=25)
    b = plot.timeline_data(machine.trace.to_dataframe(), last=25)
    assert a == b
    steps, funcs, lanes = a
    assert lanes["host"] == [None] * 25  # VHE: KVM keeps no host copy of OSLSR_EL1
    assert steps == sorted(steps) and len(funcs) == 25


def test_timeline_gap_for_none(machine: Machine) -> None:
    import math

    fig = plot.timeline(machine, last=10)
    from matplotlib.colors import to_rgba

    host_line = next(ln for ln in fig.axes[0].lines
                     if to_rgba(ln.get_color()) == to_rgba(plot.LANE_COLOURS["host"]))
    assert all(math.isnan(y) for y in host_line.get_ydata())


def test_timeline_rejects_other_input() -> None:
    with pytest.raises(TypeError):
        plot.timeline([1, 2, 3])


def test_timeline_view_is_reused(machine: Machine) -> None:
    # How fast a second update() is (once asserted here: < 0.5 s) is measured in benchmarks/.
    view = plot.TimelineView()
    view.update(machine)
    png = view.update(machine)
    assert png.startswith(b"\x89PNG")
    assert len(view.figure.axes) == 1


def test_matrix_marks_differences() -> None:
    idx = pd.MultiIndex.from_tuples([("physical", "OSLSR_EL1"), ("vcpu", "OSLSR_EL1")])
    df = pd.DataFrame({"baseline": [8, None], "p2": [10, 10], "upstream": [8, 8]}, index=idx, dtype=object)
    fig = plot.matrix(df)
    texts = [t.get_text() for t in _texts(fig)]
    assert "0xa ≠" in texts and "—" in texts and "0x8" in texts
    assert "physical OSLSR_EL1" in texts
    _assert_legible(fig)


def test_selftest_grid_wide_and_long() -> None:
    wide = pd.DataFrame({"baseline": ["pass", "fail"], "upstream": [True, None]}, index=["BRK", "bp"])
    fig = plot.selftest_grid(wide)
    texts = [t.get_text() for t in _texts(fig)]
    assert texts.count("✓ pass") == 2 and texts.count("✗ fail") == 1 and "n/a" in texts
    _assert_legible(fig)
    long = pd.DataFrame({"variant": ["p1", "p2"], "check": ["BRK", "BRK"], "passed": [True, False]})
    texts = [t.get_text() for t in _texts(plot.selftest_grid(long))]
    assert "✓ pass" in texts and "✗ fail" in texts


def test_with_the_real_compare_and_selftest() -> None:
    _assert_legible(plot.matrix(compare.compare("oslock-toggle")))
    _assert_legible(plot.selftest_grid(compare.selftest_table()))


def test_nothing_leaks_into_pyplot(machine: Machine) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot.bitfield("OSLSR_EL1", 0x8)
    plot.timeline(machine)
    assert plt.get_fignums() == before
