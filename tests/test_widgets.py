"""The lab and its companions, driven without a browser: set values, click, read the model and HTML."""

from __future__ import annotations

import ipywidgets as W
import pytest

from kvmdbg import VARIANTS, Machine
from kvmdbg.arch.registers import REGISTERS
from kvmdbg.teach import widgets
from kvmdbg.teach.widgets import lab

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
    # what the guest read is the panel's first line, above the phases that produced it
    top = box.function.value.split("this click ran", 1)[0]
    assert f"MRS x0, OSLSR_EL1 -&gt; {box.machine.guest_view('OSLSR_EL1'):#x}" in top


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
    panel = widgets.compare_panel("oslock-toggle")
    assert panel.error.value == ""
    assert "<table" in panel.table.value and "upstream" in panel.table.value
    assert bytes(panel.chart.value).startswith(b"\x89PNG")
    panel.vhe.value = True
    assert panel.error.value == ""
    import kvmdbg

    # every variant, the five of API.md first (later ones, such as p2-intended, may follow)
    assert list(panel.frame.columns) == list(kvmdbg.VARIANTS)
    assert list(panel.frame.columns)[:5] == ["baseline", "p1", "p2", "p3", "upstream"]


def test_compare_panel_unknown_scenario_shows_error() -> None:
    panel = widgets.compare_panel("no-such-scenario")
    assert "Error" in panel.error.value


def test_program_editor_runs_and_lists() -> None:
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
@pytest.mark.parametrize("variant", VARIANTS)
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


# --------------------------------------------------------------------------- the lab explains itself


def _click(box: widgets.OSLockLab, action: str) -> list:
    """Do one control of the lab; return the events the model recorded for it."""
    m = box.machine
    start = m.trace[-1].step
    if action == "toggle":
        box.oslk.value = not box.oslk.value
    else:
        {"read": box.read_button, "step": box.step_button, "run": box.run_button, "put": box.put_button,
         "reset": box.reset_button}[action].click()
    assert box.error.value == "", box.error.value
    return [e for e in m.trace if e.step > start]


def _assert_panel_lists(box: widgets.OSLockLab, events: list) -> None:
    """Every phase of the click is in the panel with its function, file and changes in hex."""
    import html

    assert box.phases == events and events
    panel = box.function.value
    assert panel.count("<tr class='kvmdbg-phase") == len(events)
    for e in events:
        assert f"data-step='{e.step}'" in panel
        row = panel.split(f"data-step='{e.step}'>", 1)[1].split("</tr>", 1)[0]
        assert html.escape(e.function) in row and html.escape(e.file) in row and html.escape(e.detail) in row
        for (loc, reg, _), after in e.changes:
            assert f"{loc} {reg}: " in row and f"→ {hex(after) if after is not None else '—'}" in row
    n = len(events)
    assert f"this click ran {n} phase{'s' if n > 1 else ''}" in panel


def _assert_diagram_matches(box: widgets.OSLockLab) -> None:
    from tests.test_diagram import assert_matches_machine

    m = box.machine
    assert box.diagram is not None
    assert_matches_machine(box.diagram, m)
    assert box.diagram.svg in box.diagram_view.value and "kvmdbg-diagram" in box.diagram_view.value
    side = "guest kernel" if m.where() == "guest" and not m.in_progress else ""
    if side:
        assert side in box.diagram.running
    for a in box.diagram.arrows:
        assert a.function in {e.function for e in box.phases}
        key = (a.dest, a.register, -1 if a.vcpu is None else a.vcpu)
        assert box.diagram.state[key] == a.after


@pytest.mark.parametrize("vhe", [False, True], ids=["nVHE", "VHE"])
@pytest.mark.parametrize("variant", ["baseline", "p2", "upstream"])
def test_every_control_lists_each_phase_and_redraws_the_diagram(variant: str, vhe: bool) -> None:
    box = lab(variant, vhe=vhe)
    for action in ("toggle", "step", "step", "read", "run", "toggle", "put", "put", "step", "run", "run",
                   "reset"):
        events = _click(box, action)
        _assert_panel_lists(box, events)
        _assert_diagram_matches(box)
        if action == "step":
            assert len(events) == 1
            assert {(a.dest, a.register) for a in box.diagram.arrows} == {
                (loc, reg) for (loc, reg, _), _v in events[0].changes
                if reg in ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1", "MDCR_EL2")}
    assert box.diagram.title.endswith(f"{variant} · {'VHE' if vhe else 'nVHE'}")


def test_a_toggle_mid_switch_lists_all_its_phases() -> None:
    box = lab("p2")
    for _ in range(3):
        _click(box, "step")  # in the middle of the entry
    assert box.machine.in_progress
    events = _click(box, "toggle")
    assert len(events) > 15  # the rest of the entry, the trap, the exit, the handler, the entry
    _assert_panel_lists(box, events)
    assert {"__guest_enter", "__guest_exit", "trap_oslar_el1", "kvm_incr_pc"} <= {e.function for e in events}


def test_p2_toggle_explains_why_nothing_visible_changes() -> None:
    box = lab("p2")
    events = _click(box, "toggle")  # the guest locks: OSLAR_EL1 = 1
    (handler,) = [e for e in events if e.function == "trap_oslar_el1"]
    assert [(e, s.name) for e, s in box.surprises] == [(handler, "swapped-arguments")]
    panel = box.function.value
    assert f"<tr class='kvmdbg-phase kvmdbg-surprise' data-step='{handler.step}'>" in panel
    assert "Look at step" in panel.split("this click ran")[0]  # the explanation comes first
    assert "value and index are swapped" in panel and "26 = 0x1a" in panel
    # the stored OSLSR is unchanged; ESR_EL1 in the vCPU context took the 0x1a
    assert ("OSLSR_EL1", "vcpu") not in box.changed_cells()
    (arrow,) = [a for a in box.diagram.arrows if a.register == "ESR_EL1"]
    assert (arrow.function, arrow.after) == ("trap_oslar_el1", 0x1A)
    events = _click(box, "toggle")  # unlock: TTBR1_EL1
    assert [s.name for _, s in box.surprises] == ["swapped-arguments"]
    assert [(a.function, a.register, a.after) for a in box.diagram.arrows] == [("trap_oslar_el1", "TTBR1_EL1", 0x1A)]
    _click(box, "step")  # a step that is no surprise clears the note
    assert box.surprises == [] and "Look at step" not in box.function.value


def test_upstream_toggle_surfaces_the_mdscr_masking() -> None:
    box = lab("upstream")
    box.machine.guest_write("MDSCR_EL1", 0x8000)  # the guest enables breakpoints (MDE)
    events = _click(box, "toggle")
    setup = [e for e in events if e.function == "kvm_arm_setup_debug" and "guest OS Lock set" in e.detail]
    assert setup and [(e, s.name) for e, s in box.surprises] == [(setup[-1], "mdscr-masking")]
    assert "clears MDSCR_EL1.MDE and MDSCR_EL1.SS" in box.function.value
    assert f"kvmdbg-surprise' data-step='{setup[-1].step}'" in box.function.value
    m = box.machine
    assert m.physical("MDSCR_EL1") & 0x8000 == 0 and m.guest_view("MDSCR_EL1") == 0x8000
    _assert_diagram_matches(box)
    box2 = lab("p2")
    _click(box2, "toggle")
    assert "mdscr-masking" not in [s.name for _, s in box2.surprises]


def test_vhe_vcpu_put_under_p2_says_the_host_keeps_the_guest_lock() -> None:
    box = lab("p2", vhe=True)
    _click(box, "run")
    _click(box, "put")
    assert not box.machine.loaded()
    assert [s.name for _, s in box.surprises] == ["vhe-host-keeps-guest-lock"]
    base = lab("baseline", vhe=True)
    _click(base, "run")
    _click(base, "put")
    assert base.surprises == []


@pytest.mark.parametrize("target, hint", [
    ("kvm_arch_vcpu_put", "use the vcpu_put button"),
    ("trap_oslar_el1", "use the OSLK toggle"),
    ("sysreg_save_host_state_vhe", "this machine is nVHE"),
])
def test_run_to_a_function_stepping_never_reaches_says_so(target: str, hint: str) -> None:
    box = lab("p2")
    _click(box, "run")  # in the guest
    before = box.machine.snapshot()
    box.run_target.value = target
    events = _click(box, "run")
    last = box.history.value.split("<br>")[-1]
    assert f"run to {target}: it never runs by stepping from here" in last and hint in last
    assert "it never runs by stepping" in box.function.value.split("kvmdbg-notice'>", 1)[1].split("</div>")[0]
    assert 0 < len(events) < 40  # stopped after one cycle, not after the safety limit
    after = box.machine.snapshot()
    assert after.values == before.values and after.where == before.where  # back where it started
    _assert_panel_lists(box, events)


def test_run_to_a_function_on_the_way_stops_there() -> None:
    box = lab("p2", vhe=True)
    box.run_target.value = "sysreg_restore_guest_state_vhe"
    events = _click(box, "run")
    assert events[-1].function == "sysreg_restore_guest_state_vhe" and box.machine.in_progress
    assert f"to [{events[-1].step}] sysreg_restore_guest_state_vhe" in box.history.value
    box.run_target.value = "the host"
    _click(box, "run")
    assert box.machine.where() == "host" and not box.machine.in_progress


def test_variant_change_redraws_the_diagram() -> None:
    box = lab("p2")
    _click(box, "toggle")
    box.variant.value = "upstream"
    assert box.diagram is not None and "upstream · nVHE" in box.diagram.title
    assert box.diagram.arrows == () and box.phases == []
    _assert_diagram_matches(box)
    box.vhe.value = True
    assert "upstream · VHE" in box.diagram.title
