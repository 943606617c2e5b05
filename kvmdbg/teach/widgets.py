"""The OS Lock lab and its companions, as ipywidgets built over a Machine.

Each dashboard is a ``VBox`` subclass that owns its model (``.machine``) and
exposes its controls as attributes, so a test can drive it without a browser
(``lab.oslk.value = True``, ``lab.step_button.click()``) and read back the
model and the rendered HTML. Every control carries a stable CSS class
(``kvmdbg-...``). Errors inside callbacks are shown in the widget's error
box (class ``kvmdbg-error``), never lost. The timeline is one reused Figure
rendered to PNG into an ``Image`` widget; the machine diagram is inline SVG from
:mod:`kvmdbg.teach.diagram` in an ``HTML`` widget (class ``kvmdbg-diagram-view``), redrawn
on every click from the Machine and the events the click ran.
"""

from __future__ import annotations

import functools
import html
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from kvmdbg.arch.registers import REGISTERS
from kvmdbg.errors import GuestFault
from kvmdbg.machine import Machine
from kvmdbg.patches import VARIANT_DESCRIPTIONS, VARIANTS

if TYPE_CHECKING:
    from kvmdbg.teach.diagram import Diagram

__all__ = ["OSLockLab", "lab", "Surprise", "SURPRISES", "RUN_TARGET_FUNCTIONS",
           "ComparePanel", "compare_panel", "ProgramEditor", "program_editor",
           "TABLE_REGISTERS", "TABLE_LOCATIONS"]

TABLE_REGISTERS = ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1", "MDCR_EL2")
TABLE_LOCATIONS = ("physical", "vcpu", "host", "guest_view")
TIMELINE_STEPS = 40
TRACE_KEEP = 400
OSLK_FIELD = REGISTERS["OSLSR_EL1"].field("OSLK")

_CSS = """<style>
.kvmdbg-regtable table {border-collapse: collapse; font-family: monospace; font-size: 13px;
  color: #1f1f1f; background: #ffffff;}
.kvmdbg-regtable th, .kvmdbg-regtable td {border: 1px solid #888; padding: 2px 8px; text-align: right;}
.kvmdbg-regtable th {background: #e8e8e8;}
.kvmdbg-regtable td.changed {background: #ffc857; font-weight: bold;}
.kvmdbg-regtable td.none {color: #666;}
.kvmdbg-error {color: #b00020;}
.kvmdbg-function, .kvmdbg-function div, .kvmdbg-function td {line-height: 1.3;}
.kvmdbg-phases {max-height: 400px; overflow-y: auto; border: 1px solid #bbb;}
.kvmdbg-phases table {border-collapse: collapse; font-size: 12px; color: #1f1f1f; background: #fff; width: 100%;}
.kvmdbg-phases th, .kvmdbg-phases td {border-bottom: 1px solid #ddd; padding: 2px 6px; text-align: left;
  vertical-align: top;}
.kvmdbg-phases th {background: #e8e8e8; position: sticky; top: 0;}
.kvmdbg-phase.kvmdbg-surprise td {background: #ffe08a;}
.kvmdbg-file, .kvmdbg-changes {font-family: monospace; font-size: 11px; color: #444;}
.kvmdbg-changes {color: #8a4b00;}
.kvmdbg-note {font-size: 11px; color: #555;}
.kvmdbg-why {border-left: 5px solid #e0a000; background: #fff6d6; color: #1f1f1f; padding: 4px 8px;
  margin: 4px 0; font-size: 13px;}
.kvmdbg-phases-head {font-weight: bold; margin-top: 4px;}
.kvmdbg-result {font-family: monospace; font-size: 13px; color: #0d47a1;}
.kvmdbg-diagram-view {overflow-x: auto;}
</style>"""


def _hex(v: int | None) -> str:
    return "—" if v is None else f"{v:#x}"


class _Dashboard(W.VBox):  # type: ignore[misc]  # ipywidgets ships without type stubs
    """Shared plumbing: an error box and a decorator that routes exceptions into it."""

    def _init_errors(self) -> None:
        self.error = W.HTML(value="")
        self.error.add_class("kvmdbg-error")
        self.last_error: BaseException | None = None

    def _show_error(self, e: BaseException) -> None:
        self.last_error = e
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        self.error.value = f'<div class="kvmdbg-error"><b>Error:</b> {html.escape(tb)}</div>'

    def _guarded(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                self.error.value = ""
                self.last_error = None
                return fn(*args, **kwargs)
            except Exception as e:  # shown to the learner, kept for tests
                self._show_error(e)
                return None

        return wrapper


@dataclass(frozen=True)
class Surprise:
    """A step where a variant's code does something a reader would not expect, and why.

    ``matches(event, machine)`` is checked for every phase a click ran; a match is highlighted
    in the phase list and its ``why`` shown above it, so the explanation is never on a step the
    panel does not show.
    """

    name: str
    function: str
    why: str
    marker: str = ""  # a phrase of the step's detail that identifies the case
    when: Callable[[Any], bool] | None = None  # a condition on the Machine after the click

    def matches(self, event: Any, machine: Any) -> bool:
        if event.function != self.function or (self.marker and self.marker not in event.detail):
            return False
        return self.when is None or bool(self.when(machine))


def _vhe_host_keeps_guest_lock(m: Any) -> bool:
    return bool(m.vhe) and not m.loaded() and bool(OSLK_FIELD.extract(m.physical("OSLSR_EL1")))


# The markers are phrases of the details the patch handlers record (kvmdbg/patches/p2.py,
# upstream.py); tests/test_widgets.py checks each case appears after the click that causes it.
SURPRISES: tuple[Surprise, ...] = (
    Surprise(
        "swapped-arguments", "trap_oslar_el1",
        "Patch 2 as posted calls vcpu_write_sys_reg(vcpu, OSLSR_EL1, new), but the 5.15 prototype is "
        "vcpu_write_sys_reg(vcpu, u64 val, int reg): value and index are swapped. The handler stores "
        "OSLSR_EL1's enum index (26 = 0x1a) into sys_regs[new] (TTBR1_EL1 on an unlock, ESR_EL1 on a "
        "lock) and the stored OSLSR_EL1 never changes. That is why toggling OSLK changes nothing in the "
        "OSLSR_EL1 row: the write went to the vCPU context slot marked in the diagram. A Linux guest "
        "unlocking at boot (clear_os_lock) would lose its kernel page-table base in TTBR1_EL1.",
        marker="arguments are swapped"),
    Surprise(
        "mdscr-masking", "kvm_arm_setup_debug",
        "5.18 emulates the guest's OS Lock instead of writing it to the PE: while the guest's OSLK is "
        "set, kvm_arm_setup_debug clears MDSCR_EL1.MDE and MDSCR_EL1.SS in the value the guest runs "
        "with (its own value is kept aside and put back by kvm_arm_clear_debug), so breakpoints, "
        "watchpoints and software step are not taken. The PE's OS Lock stays 0, and the guest still "
        "reads its own MDSCR_EL1.",
        marker="guest OS Lock set"),
    Surprise(
        "vhe-host-keeps-guest-lock", "kvm_arch_vcpu_put",
        "VHE: vcpu_put saved the guest's EL1 state, but the host's EL1 state is never saved or "
        "restored on VHE, so the PE keeps the guest's OS Lock (OSLSR_EL1.OSLK = 1): the host now "
        "runs with breakpoints, watchpoints and software step blocked.",
        when=_vhe_host_keeps_guest_lock),
)

RUN_TARGETS_STATES = ("next entry/exit", "the guest", "the host")
# Functions a learner can run to: the world switch of both host modes, and two that stepping
# never reaches (vcpu_put needs KVM_RUN to return; a trap handler needs a guest access).
RUN_TARGET_FUNCTIONS = (
    "kvm_arch_vcpu_load", "kvm_arm_setup_debug", "__sysreg_save_state_nvhe", "__sysreg_restore_state_nvhe",
    "sysreg_save_host_state_vhe", "sysreg_restore_guest_state_vhe", "__activate_traps",
    "__debug_switch_to_guest", "__guest_enter", "__guest_exit", "fixup_guest_exit",
    "sysreg_save_guest_state_vhe", "__deactivate_traps",
    "sysreg_restore_host_state_vhe", "__debug_switch_to_host", "kvm_arm_clear_debug", "kvm_arch_vcpu_put",
    "trap_oslar_el1",
)
RUN_LIMIT = 200  # steps; a cycle is detected long before (one exit and entry is 12-14 steps)


class OSLockLab(_Dashboard):
    """The OS Lock lab: drive one Machine and watch OSLSR_EL1 in every location.

    Every click lists each phase it ran (``.phases``, rendered in ``.function``), highlights the
    steps in :data:`SURPRISES` with their explanation (``.surprises``), and redraws the machine
    diagram (``.diagram``, a :class:`kvmdbg.teach.diagram.Diagram`, in ``.diagram_view``).
    """

    def __init__(self, variant: str = "p2", *, vhe: bool = False) -> None:
        super().__init__()
        self.add_class("kvmdbg-lab")
        self._init_errors()
        self.machine = Machine(variant, vhe=vhe, trace=TRACE_KEEP)
        self.variant = W.Dropdown(options=list(VARIANTS), value=self.machine.variant, description="variant")
        self.vhe = W.Checkbox(value=bool(vhe), description="VHE", indent=False)
        fit = W.Layout(width="auto")  # buttons as wide as their labels
        self.oslk = W.ToggleButton(value=False, description="guest: OSLAR_EL1.OSLK = 0",
                                   tooltip="the guest writes OSLAR_EL1 with this value", layout=fit)
        self.read_button = W.Button(description="guest: read OSLSR_EL1", layout=fit)
        self.step_button = W.Button(description="step", tooltip="one phase of the next world switch", layout=fit)
        self.run_target = W.Dropdown(options=list(RUN_TARGETS_STATES) + list(RUN_TARGET_FUNCTIONS),
                                     value="next entry/exit", layout=W.Layout(width="260px"))
        self.run_button = W.Button(description="run to", tooltip="step until the chosen point", layout=fit)
        self.put_button = W.Button(description="vcpu_put", layout=fit)
        self.reset_button = W.Button(description="reset vCPU", layout=fit)
        self.info = W.HTML()
        self.status = W.HTML()
        self.function = W.HTML()
        self.table = W.HTML()
        self.history = W.HTML()
        self.diagram_view = W.HTML()
        self.chart = W.Image(format="png")
        for widget, css in ((self.variant, "kvmdbg-variant"), (self.vhe, "kvmdbg-vhe"),
                            (self.oslk, "kvmdbg-oslk"),
                            (self.read_button, "kvmdbg-read"), (self.step_button, "kvmdbg-step"),
                            (self.run_button, "kvmdbg-run"), (self.run_target, "kvmdbg-run-target"),
                            (self.put_button, "kvmdbg-put"),
                            (self.reset_button, "kvmdbg-reset"), (self.info, "kvmdbg-description"),
                            (self.status, "kvmdbg-status"), (self.function, "kvmdbg-function"),
                            (self.table, "kvmdbg-regtable"), (self.history, "kvmdbg-log"),
                            (self.diagram_view, "kvmdbg-diagram-view"), (self.chart, "kvmdbg-timeline")):
            widget.add_class(css)
        self._timeline: Any = None
        self.steps_list = W.HTML()
        self.steps_list.add_class("kvmdbg-steps")
        self._previous: dict[tuple[str, str], int | None] = {}
        self._log_lines: list[str] = []
        self.phases: list[Any] = []  # the events the last click ran
        self.surprises: list[tuple[Any, Surprise]] = []  # (event, surprise) among them
        self.diagram: Diagram | None = None
        self.notice = ""  # what the last click has to say above its phases (a run-to that cannot end)
        self._said: list[str] = []  # the log lines of the click in progress, shown above its phases
        self.last_render_seconds = 0.0
        self.variant.observe(self._guarded(self._on_config), names="value")
        self.vhe.observe(self._guarded(self._on_config), names="value")
        self.oslk.observe(self._clicked(self._on_oslk), names="value")
        self.read_button.on_click(self._clicked(self._on_read))
        self.step_button.on_click(self._clicked(self._on_step))
        self.run_button.on_click(self._clicked(self._on_run))
        self.put_button.on_click(self._clicked(self._on_put))
        self.reset_button.on_click(self._clicked(self._on_reset))
        self.children = (
            W.HTML(_CSS),
            W.HBox([self.variant, self.vhe]),
            self.info,
            W.HBox([self.oslk, self.read_button]),
            W.HBox([self.step_button, self.run_button, self.run_target, self.put_button, self.reset_button]),
            self.status, self.function, self.diagram_view, self.table, W.HBox([self.chart, self.steps_list]),
            self.history, self.error,
        )
        self._suspend = False
        self._guarded(self._refresh)(first=True)

    # -- model actions ---------------------------------------------------------------

    def _clicked(self, action: Callable[..., Any]) -> Callable[..., Any]:
        """An action, then a redraw that lists every phase the action ran; errors go to the error box."""

        def run(*args: Any) -> None:
            if self._suspend:
                return
            m = self.machine
            start = m.trace[-1].step if len(m.trace) else 0
            self.notice = ""
            self._said = []
            try:
                action(*args)
            finally:
                events = [e for e in m.trace if e.step > start] if m is self.machine else []
                self._refresh(events=events)

        return self._guarded(run)

    def _say(self, text: str) -> None:
        self._said.append(text)
        self._log_lines.append(html.escape(text))
        self._log_lines = self._log_lines[-8:]
        self.history.value = "<br>".join(self._log_lines)

    def _on_config(self, change: dict[str, Any]) -> None:
        if self._suspend:
            return
        self.machine = Machine(self.variant.value, vhe=self.vhe.value, trace=TRACE_KEEP)
        self._previous = {}
        self._log_lines = []
        self.diagram = None
        self._say(f"new machine: {self.machine.variant}, {'VHE' if self.machine.vhe else 'nVHE'}")
        self._suspend = True
        try:
            self.oslk.value = False
        finally:
            self._suspend = False
        self._refresh(first=True)

    def _on_oslk(self, change: dict[str, Any]) -> None:
        bit = int(bool(change["new"]))
        try:
            self.machine.guest_write("OSLAR_EL1", bit)
            self._say(f"guest: MSR OSLAR_EL1, x0 (x0={bit})")
        except GuestFault as e:
            self._say(f"guest: MSR OSLAR_EL1 faulted: {e.explanation}")

    def _on_read(self, _: Any = None) -> None:
        try:
            v = self.machine.guest_read("OSLSR_EL1")
            self._say(f"guest: MRS x0, OSLSR_EL1 -> {v:#x} ({REGISTERS['OSLSR_EL1'].describe(v)})")
        except GuestFault as e:
            self._say(f"guest: MRS OSLSR_EL1 faulted: {e.explanation}")

    def _on_step(self, _: Any = None) -> None:
        ev = self.machine.step()
        if ev is not None:
            self._say(str(ev))

    def _on_run(self, _: Any = None) -> None:
        m = self.machine
        target = self.run_target.value
        if target in RUN_TARGETS_STATES:
            where = {"the guest": "guest", "the host": "host"}.get(
                target, "host" if m.where() == "guest" else "guest")
            evs = m.run_to(where)
            self._say(f"ran {len(evs)} step(s): now in the {m.where()}")
            return
        said = self._run_to_function(target)
        if "never runs" in said:
            self.notice = said
        self._say(said)

    def _run_to_function(self, function: str) -> str:
        """Step until ``function`` runs; if the world switch cycles without it, stop and say why."""
        m = self.machine
        seen: set[Any] = set()
        steps = 0
        while steps < RUN_LIMIT:
            if not m.in_progress:  # a switch boundary: has the machine been in this state before?
                snap = m.snapshot()
                key = (tuple(sorted(snap.values.items())), snap.where, snap.loaded, m.next_switch())
                if key in seen:
                    return (f"run to {function}: it never runs by stepping from here. The world switch "
                            f"came back to the same state after {steps} step(s) without running it "
                            f"(stopped there). {_never_reached_hint(function, m.vhe)}")
                seen.add(key)
            ev = m.step()
            steps += 1
            if ev is not None and ev.function == function:
                return f"ran {steps} step(s) to [{ev.step}] {ev.function}"
        return f"run to {function}: not reached within {RUN_LIMIT} steps (stopped)"

    def _on_put(self, _: Any = None) -> None:
        m = self.machine
        if m.loaded():
            if m.where() == "guest":
                m.exit_guest()
            m.vcpu_put()
            self._say("vcpu_put: the vCPU leaves the PE")
        else:
            m.vcpu_load()
            self._say("vcpu_load: the vCPU is loaded on the PE")

    def _on_reset(self, _: Any = None) -> None:
        self.machine.reset_vcpu()
        self._say("KVM_ARM_VCPU_INIT: vCPU reset")

    # -- rendering ------------------------------------------------------------------------

    def values(self) -> dict[tuple[str, str], int | None]:
        """The table's cells: (register, location) -> value (None where not kept or not readable)."""
        m = self.machine
        out: dict[tuple[str, str], int | None] = {}
        for reg in TABLE_REGISTERS:
            for loc in TABLE_LOCATIONS:
                try:
                    if loc == "physical":
                        v: int | None = m.physical(reg)
                    elif loc == "vcpu":
                        v = m.vcpu_reg(reg)
                    elif loc == "host":
                        v = m.host_reg(reg)
                    else:
                        v = m.guest_view(reg)
                except Exception:  # a register this PE lacks: shown as no value
                    v = None
                out[(reg, loc)] = v
        return out

    def changed_cells(self) -> list[tuple[str, str]]:
        return list(self._changed)

    def _render_table(self, now: dict[tuple[str, str], int | None], first: bool) -> None:
        self._changed = [] if first else [k for k, v in now.items() if self._previous.get(k, v) != v]
        head = "".join(f"<th>{loc}</th>" for loc in TABLE_LOCATIONS)
        rows = [f"<table><tr><th>register</th>{head}</tr>"]
        for reg in TABLE_REGISTERS:
            cells = []
            for loc in TABLE_LOCATIONS:
                v = now[(reg, loc)]
                cls = "changed" if (reg, loc) in self._changed else ("none" if v is None else "")
                cells.append(f'<td class="{cls}" data-loc="{loc}">{_hex(v)}</td>')
            rows.append(f'<tr data-reg="{reg}"><th>{reg}</th>{"".join(cells)}</tr>')
        rows.append("</table>")
        self.table.value = "".join(rows)
        self._previous = now

    def _render_chart(self) -> None:
        from kvmdbg.teach import plot

        if self._timeline is None:
            self._timeline = plot.TimelineView("OSLSR_EL1", "OSLK", 0, steps=TIMELINE_STEPS, dpi=72)
        self.chart.value = self._timeline.update(self.machine)
        steps, funcs = self._timeline.last_steps[-10:], self._timeline.last_functions[-10:]
        self.steps_list.value = ("<b>recent steps</b><br>" + "<br>".join(
            f"<code>{s:>4} {html.escape(f)}</code>" for s, f in zip(steps, funcs, strict=False)))

    def _render_phases(self, events: list[Any], before: Mapping[Any, int | None], first: bool = False) -> None:
        """The panel: every phase the click ran, with what it changed in hex; surprises highlighted."""
        m = self.machine
        self.phases = list(events)
        self.surprises = [(e, s) for e in events for s in SURPRISES if s.matches(e, m)]
        if not events:
            self.function.value = "" if first else \
                "<div class='kvmdbg-phases-head'>this click ran no kernel step</div>"
            return
        surprising = {id(e) for e, _ in self.surprises}
        state = dict(before)
        rows = []
        for e in events:
            changes = []
            for key, after in e.changes:
                old = state.get(key)
                state[key] = after
                loc, reg, vcpu = key
                where = f"vCPU {vcpu} {loc}" if vcpu >= 0 and len(m.kvm.vcpus) > 1 else loc
                changes.append(f"{where} {reg}: {_hex(old)} → {_hex(after)}")
            cls = "kvmdbg-phase kvmdbg-surprise" if id(e) in surprising else "kvmdbg-phase"
            note = (f"<div class='kvmdbg-note'><i>patch note:</i> {html.escape(e.patch_note)}</div>"
                    if e.patch_note and (len(events) == 1 or id(e) in surprising) else "")
            changed = (f"<div class='kvmdbg-changes'>{html.escape('; '.join(changes))}</div>" if changes else "")
            rows.append(f"<tr class='{cls}' data-step='{e.step}'><td>{e.step}</td><td>{html.escape(e.phase)}</td>"
                        f"<td><b>{html.escape(e.function)}</b> <span class='kvmdbg-file'>"
                        f"{html.escape(e.file)}</span></td><td>{html.escape(e.detail)}{changed}{note}</td></tr>")
        said = "".join(f"<div class='kvmdbg-result'>{html.escape(t)}</div>" for t in self._said
                       if t != self.notice and t not in (str(e) for e in events))  # a step's row says it
        head = (f"this click ran {len(events)} phase{'s' if len(events) > 1 else ''} "
                f"(step{'s' if len(events) > 1 else ''} {events[0].step}"
                f"{'–' + str(events[-1].step) if len(events) > 1 else ''})")
        why = (f"<div class='kvmdbg-why kvmdbg-notice'>{html.escape(self.notice)}</div>" if self.notice else "")
        why += "".join(
            f"<div class='kvmdbg-why'><b>Look at step {e.step}, {html.escape(e.function)}:</b> "
            f"{html.escape(e.detail)}<br>{html.escape(s.why)}</div>" for e, s in self.surprises)
        self.function.value = (f"{said}{why}<div class='kvmdbg-phases-head'>{head}</div>"
                               f"<div class='kvmdbg-phases'><table><tr><th>step</th><th>phase</th>"
                               f"<th>kernel function, file</th><th>what it did, what changed</th></tr>"
                               f"{''.join(rows)}</table></div>")

    def _render_diagram(self, events: list[Any]) -> None:
        from kvmdbg.teach.diagram import machine_diagram

        self.diagram = machine_diagram(self.machine, events or None, before=self.diagram)
        self.diagram_view.value = self.diagram._repr_html_()

    def _refresh(self, first: bool = False, events: list[Any] | None = None) -> None:
        t0 = time.perf_counter()
        m = self.machine
        events = list(events or [])
        before = dict(self.diagram.state) if self.diagram is not None else {}
        self.info.value = (f"<b>{html.escape(m.variant)}</b> ({'VHE' if m.vhe else 'nVHE'}): "
                           f"{html.escape(VARIANT_DESCRIPTIONS.get(m.variant, ''))}")
        pending = f"; in the middle of {m.next_switch()}" if m.in_progress else ""
        loaded = "loaded" if m.loaded() else "not loaded"
        self.status.value = (f"vCPU 0 is in the <b>{m.where()}</b>, {loaded}"
                             f"{pending}. Next step starts/continues: <code>{m.next_switch()}</code>")
        self.put_button.description = "vcpu_put" if m.loaded() else "vcpu_load"
        self._render_phases([] if first else events, before, first)
        self.oslk.description = f"guest: OSLAR_EL1.OSLK = {int(self.oslk.value)}"
        self._render_table(self.values(), first)
        self._render_diagram([] if first else events)
        self._render_chart()
        self.last_render_seconds = time.perf_counter() - t0


def _never_reached_hint(function: str, vhe: bool) -> str:
    if function == "kvm_arch_vcpu_put":
        return "vcpu_put runs only when KVM_RUN returns to userspace: use the vcpu_put button."
    if function.startswith("trap_"):
        return "A trap handler runs only when the guest accesses its register: use the OSLK toggle or the read button."
    if function.endswith("_vhe") and not vhe:
        return f"{function} is part of the VHE world switch; this machine is nVHE (tick VHE)."
    if function.endswith("_nvhe") and vhe:
        return f"{function} is part of the nVHE world switch; this machine is VHE (untick VHE)."
    return "It is not part of the world switch this machine steps through."


def lab(variant: str = "p2", *, vhe: bool = False) -> OSLockLab:
    """The OS Lock lab for ``variant``; ``.machine`` is the Machine it drives."""
    return OSLockLab(variant, vhe=vhe)


class ComparePanel(_Dashboard):
    """One scenario under every variant: a table and a matrix chart."""

    def __init__(self, scenario: str = "oslock-toggle", *, vhe: bool = False) -> None:
        super().__init__()
        self.add_class("kvmdbg-compare")
        self._init_errors()
        try:
            from kvmdbg.teach import scenarios

            names = list(scenarios.names())
        except Exception:
            names = []
        if scenario not in names:
            names = [scenario, *names]
        self.scenario = W.Dropdown(options=names, value=scenario, description="scenario")
        self.vhe = W.Checkbox(value=bool(vhe), description="VHE", indent=False)
        self.table = W.HTML()
        self.chart = W.Image(format="png")
        self.frame: Any = None
        for widget, css in ((self.scenario, "kvmdbg-scenario"), (self.vhe, "kvmdbg-vhe"),
                            (self.table, "kvmdbg-comparetable"), (self.chart, "kvmdbg-matrix")):
            widget.add_class(css)
        self.scenario.observe(self._guarded(self._update), names="value")
        self.vhe.observe(self._guarded(self._update), names="value")
        self.children = (W.HBox([self.scenario, self.vhe]), self.table, self.chart, self.error)
        self._guarded(self._update)()

    def _update(self, _: Any = None) -> None:
        from kvmdbg.teach import plot
        from kvmdbg.teach.compare import compare

        df = compare(self.scenario.value, VARIANTS, vhe=self.vhe.value)
        self.frame = df
        shown = df.apply(lambda col: col.map(lambda v: "—" if v is None or v != v else
                                             (hex(int(v)) if not isinstance(v, str) else v)))
        self.table.value = shown.to_html(escape=True)
        self.chart.value = plot.to_png(plot.matrix(df), dpi=80)


def compare_panel(scenario: str = "oslock-toggle", *, vhe: bool = False) -> ComparePanel:
    return ComparePanel(scenario, vhe=vhe)


DEFAULT_PROGRAM = """\
    mov x1, #1
    msr oslar_el1, x1      // lock the OS Lock
    isb
    mrs x2, oslsr_el1      // read it back: 0xa when locked
    brk #0                 // BRK is never blocked by the OS Lock
"""


class ProgramEditor(_Dashboard):
    """Assemble a guest program, run it on a fresh Machine, list its exceptions and exits."""

    def __init__(self, variant: str = "upstream", source: str = DEFAULT_PROGRAM) -> None:
        super().__init__()
        self.add_class("kvmdbg-editor")
        self._init_errors()
        self.source = W.Textarea(value=source, rows=10, layout=W.Layout(width="60ch"))
        self.variant = W.Dropdown(options=list(VARIANTS), value=variant, description="variant")
        self.vhe = W.Checkbox(value=False, description="VHE", indent=False)
        self.run_button = W.Button(description="run")
        self.output = W.HTML()
        self.result: Any = None
        self.machine: Machine | None = None
        for widget, css in ((self.source, "kvmdbg-source"), (self.variant, "kvmdbg-variant"),
                            (self.vhe, "kvmdbg-vhe"), (self.run_button, "kvmdbg-run"),
                            (self.output, "kvmdbg-output")):
            widget.add_class(css)
        self.run_button.on_click(self._guarded(self._run))
        self.children = (self.source, W.HBox([self.variant, self.vhe, self.run_button]), self.output,
                         self.error)

    def _run(self, _: Any = None) -> None:
        from kvmdbg.arch.a64 import assemble

        self.output.value = ""
        program = assemble(self.source.value)
        m = Machine(self.variant.value, vhe=self.vhe.value)
        self.machine = m
        res = m.run(program)
        self.result = res
        lines = [f"<b>{html.escape(m.variant)}</b>: {len(program.words)} instruction(s)"]
        excs = list(getattr(res, "exceptions", []))
        lines.append(f"<b>exceptions ({len(excs)})</b>")
        for e in excs:
            lines.append("&nbsp;&nbsp;" + html.escape(_describe(e)))
        exits = list(getattr(res, "exits", []))
        lines.append(f"<b>exits to the host ({len(exits)})</b>")
        for x in exits:
            lines.append("&nbsp;&nbsp;" + html.escape(_describe(x)))
        regs = getattr(res, "regs", None)
        if regs:
            items = regs.items() if hasattr(regs, "items") else enumerate(regs)
            shown = [f"{k if isinstance(k, str) else f'x{k}'}={v:#x}" for k, v in items if v]
            lines.append("<b>registers</b> " + html.escape(", ".join(shown[:16]) or "all zero"))
        self.output.value = "<br>".join(lines)


def _describe(obj: Any) -> str:
    parts = []
    for name in ("kind", "reason", "pc", "esr", "el", "target_el"):
        if hasattr(obj, name):
            v = getattr(obj, name)
            parts.append(f"{name}={v:#x}" if isinstance(v, int) and name in ("pc", "esr") else f"{name}={v}")
    return ", ".join(parts) if parts else str(obj)


def program_editor(variant: str = "upstream") -> ProgramEditor:
    return ProgramEditor(variant)
