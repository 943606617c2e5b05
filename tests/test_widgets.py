"""The lab and its companions, driven without a browser: set values, click, read the model and HTML."""

from __future__ import annotations

import pytest

W = pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from kvmdbg import Machine  # noqa: E402
from kvmdbg.arch.registers import REGISTERS  # noqa: E402
from kvmdbg.teach import widgets  # noqa: E402
from kvmdbg.teach.widgets import lab  # noqa: E402

OSLK = REGISTERS["OSLSR_EL1"].field("OSLK")


def _cell(lab_: widgets.OSLockLab, reg: str, loc: str) -> str:
    """The rendered text of one table cell."""
    html = lab_.table.value
    row = html.split(f'<tr data-reg="{reg}">', 1)[1].split("</tr>", 1)[0]
    return row.split(f'data-loc="{loc}">', 1)[1].split("</td>", 1)[0]


def _classes(w: W.Widget) -> set[str]:
    out = set(getattr(w, "_dom_classes", ()))
    for c in getattr(w, "children", ()):
        out |= _classes(c)
    return out


def test_lab_is_a_widget_with_a_machine() -> None:
    import kvmdbg

    box = kvmdbg.lab("p2", vhe=True)
    assert isinstance(box, W.VBox)
    assert isinstance(box.machine, Machine)
    assert box.machine.variant == "p2" and box.machine.vhe
    assert {"kvmdbg-oslk", "kvmdbg-step", "kvmdbg-regtable", "kvmdbg-variant", "kvmdbg-vhe", "kvmdbg-read",
            "kvmdbg-function", "kvmdbg-run", "kvmdbg-put", "kvmdbg-reset", "kvmdbg-timeline",
            "kvmdbg-error"} <= _classes(box)
    assert bytes(box.chart.value).startswith(b"\x89PNG")
    assert box.error.value == ""


def test_oslk_toggle_writes_oslar_under_upstream() -> None:
    box = lab("upstream")
    box.oslk.value = True
    m = box.machine
    assert OSLK.extract(m.vcpu_reg("OSLSR_EL1")) == 1
    assert OSLK.extract(m.physical("OSLSR_EL1")) == 0  # upstream never touches the hardware lock
    assert _cell(box, "OSLSR_EL1", "vcpu") == hex(m.vcpu_reg("OSLSR_EL1"))
    assert ("OSLSR_EL1", "vcpu") in box.changed_cells()
    assert 'class="changed" data-loc="vcpu"' in box.table.value
    assert "OSLAR_EL1" in box.history.value
    box.oslk.value = False
    assert OSLK.extract(m.vcpu_reg("OSLSR_EL1")) == 0
    assert box.error.value == ""


def test_read_button_reports_what_the_guest_reads() -> None:
    box = lab("p2")
    box.read_button.click()
    assert hex(box.machine.guest_view("OSLSR_EL1")) in box.history.value
    assert "OSLK=1" in box.history.value


def test_step_advances_one_phase_and_names_the_function() -> None:
    box = lab("p2")
    m = box.machine
    n = len(m.trace)
    box.step_button.click()
    assert len(m.trace) == n + 1
    ev = m.trace[-1]
    assert ev.function in box.function.value and ev.file in box.function.value
    assert m.loaded()  # the first natural switch is vcpu_load
    assert "vcpu_load" in box.steps_list.value


def test_patch_note_is_shown() -> None:
    box = lab("p2")
    for _ in range(10):
        box.step_button.click()
        if box.machine.trace[-1].patch_note:
            break
    note = box.machine.trace[-1].patch_note
    assert note
    import html

    assert html.escape(note) in box.function.value


def test_run_put_load_reset() -> None:
    box = lab("p2", vhe=True)
    m = box.machine
    box.run_button.click()
    assert m.where() == "guest"
    box.run_button.click()
    assert m.where() == "host" and m.loaded()
    box.put_button.click()
    assert not m.loaded()
    # the VHE host leak: the PE keeps the guest's reset lock after vcpu_put
    assert _cell(box, "OSLSR_EL1", "physical") == hex(m.physical("OSLSR_EL1"))
    assert OSLK.extract(m.physical("OSLSR_EL1")) == 1
    assert box.put_button.description == "vcpu_load"
    box.put_button.click()
    assert m.loaded()
    box.reset_button.click()
    assert box.error.value == ""


def test_changing_variant_or_vhe_rebuilds_the_machine() -> None:
    box = lab("p2")
    old = box.machine
    box.variant.value = "baseline"
    assert box.machine is not old and box.machine.variant == "baseline" and not box.machine.vhe
    box.vhe.value = True
    assert box.machine.vhe and box.machine.variant == "baseline"
    assert "baseline" in box.info.value
    assert box.oslk.value is False


def test_errors_in_callbacks_are_shown_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    box = lab("p2")

    def boom() -> None:
        raise RuntimeError("model exploded <here>")

    monkeypatch.setattr(box.machine, "reset_vcpu", boom)
    box.reset_button.click()
    assert "model exploded &lt;here&gt;" in box.error.value
    assert isinstance(box.last_error, RuntimeError)
    box.step_button.click()  # the next good action clears the error
    assert box.error.value == ""


def test_clicks_redraw_into_the_same_widgets() -> None:
    # Click-to-redraw latency is measured by benchmarks/bench.py (a timed unit test would be
    # flaky on a shared 2-core machine); this checks that redraws reuse the widgets.
    box = lab("p2", vhe=True)
    children = list(box.children)
    for _ in range(45):
        box.step_button.click()
    assert list(box.children) == children
    assert box.error.value == ""


def test_no_figures_pile_up() -> None:
    import matplotlib.pyplot as plt

    box = lab("p2")
    before = plt.get_fignums()
    fig = box._timeline.figure
    for _ in range(5):
        box.step_button.click()
    assert box._timeline.figure is fig and len(fig.axes) == 1
    assert plt.get_fignums() == before


def test_compare_panel() -> None:
    pytest.importorskip("kvmdbg.teach.compare")
    panel = widgets.compare_panel("oslock-toggle")
    assert panel.error.value == ""
    assert "<table" in panel.table.value and "upstream" in panel.table.value
    assert bytes(panel.chart.value).startswith(b"\x89PNG")
    panel.vhe.value = True
    assert panel.error.value == ""
    assert list(panel.frame.columns) == ["baseline", "p1", "p2", "p3", "upstream"]


def test_compare_panel_unknown_scenario_shows_error() -> None:
    panel = widgets.compare_panel("no-such-scenario")
    assert "Error" in panel.error.value


def test_program_editor_runs_and_lists() -> None:
    pytest.importorskip("kvmdbg.run")
    ed = widgets.program_editor("upstream")
    ed.run_button.click()
    assert ed.error.value == "", ed.error.value
    assert "brk" in ed.output.value and "exits to the host (2)" in ed.output.value
    assert ed.result.regs["x2"] == 0xA


def test_program_editor_shows_assembly_errors() -> None:
    ed = widgets.program_editor("upstream")
    ed.source.value = "frobnicate x1"
    ed.run_button.click()
    assert "line 1" in ed.error.value


@pytest.mark.parametrize("vhe", [False, True], ids=["nVHE", "VHE"])
@pytest.mark.parametrize("variant", ["baseline", "p1", "p2", "p3", "upstream"])
def test_program_editor_lists_no_exit_for_an_access_undefined_at_el1(variant: str, vhe: bool) -> None:
    # MSR OSLSR_EL1 and MRS OSLAR_EL1 are UNDEFINED in the architecture: the guest takes the UNDEF
    # at its own EL1 in every variant, so nothing reaches EL2 (BRIEF.md section 5, patch 2).
    ed = widgets.ProgramEditor(variant, "mov x2, #1\nmsr oslsr_el1, x2\nmrs x3, oslar_el1\nmrs x4, oslsr_el1\n")
    ed.vhe.value = vhe
    ed.run_button.click()
    assert ed.error.value == "", ed.error.value
    res = ed.result
    assert [(e.kind, e.pc, e.esr) for e in res.exceptions] == [("undef", 0x80004, 0x2000000),
                                                               ("undef", 0x80008, 0x2000000)]
    # only the MRS OSLSR_EL1 traps (MDCR_EL2.TDOSA): ESR_EL2 EC 0x18, Op0=2 CRn=1 CRm=1 Op2=4 Rt=4, read
    assert [(x.reason, x.esr) for x in res.exits] == [("sysreg", 0x62280483)]
    out = ed.output.value
    assert "exits to the host (1)" in out and "esr=0x62280483" in out
    assert "0x62280442" not in out  # the MSR OSLSR_EL1 syndrome the editor used to list
    assert "pc=0x80004" in out and "esr=0x2000000" in out  # exceptions in hex
