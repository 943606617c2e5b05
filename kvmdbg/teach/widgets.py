"""The OS Lock lab and its companions, as ipywidgets built over a Machine.

Each dashboard is a ``VBox`` subclass that owns its model (``.machine``) and
exposes its controls as attributes, so a test can drive it without a browser
(``lab.oslk.value = True``, ``lab.step_button.click()``) and read back the
model and the rendered HTML. Every control carries a stable CSS class
(``kvmdbg-...``). Errors inside callbacks are shown in the widget's error
box (class ``kvmdbg-error``), never lost. The timeline is one reused Figure
rendered to PNG into an ``Image`` widget.
"""

from __future__ import annotations

import functools
import html
import time
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from kvmdbg.errors import GuestFault
from kvmdbg.machine import Machine
from kvmdbg.patches import VARIANT_DESCRIPTIONS, VARIANTS

__all__ = ["OSLockLab", "lab", "ComparePanel", "compare_panel", "ProgramEditor", "program_editor",
           "TABLE_REGISTERS", "TABLE_LOCATIONS"]

TABLE_REGISTERS = ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1", "MDCR_EL2")
TABLE_LOCATIONS = ("physical", "vcpu", "host", "guest_view")
TIMELINE_STEPS = 40
TRACE_KEEP = 400

_CSS = """<style>
.kvmdbg-regtable table {border-collapse: collapse; font-family: monospace; font-size: 13px;
  color: #1f1f1f; background: #ffffff;}
.kvmdbg-regtable th, .kvmdbg-regtable td {border: 1px solid #888; padding: 2px 8px; text-align: right;}
.kvmdbg-regtable th {background: #e8e8e8;}
.kvmdbg-regtable td.changed {background: #ffc857; font-weight: bold;}
.kvmdbg-regtable td.none {color: #666;}
.kvmdbg-error {color: #b00020;}
</style>"""


def _hex(v: int | None) -> str:
    return "—" if v is None else f"{v:#x}"


class _Dashboard(W.VBox):
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


class OSLockLab(_Dashboard):
    """The OS Lock lab: drive one Machine and watch OSLSR_EL1 in every location."""

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
        self.run_button = W.Button(description="run to next entry/exit", layout=fit)
        self.put_button = W.Button(description="vcpu_put", layout=fit)
        self.reset_button = W.Button(description="reset vCPU", layout=fit)
        self.info = W.HTML()
        self.status = W.HTML()
        self.function = W.HTML()
        self.table = W.HTML()
        self.history = W.HTML()
        self.chart = W.Image(format="png")
        for widget, css in ((self.variant, "kvmdbg-variant"), (self.vhe, "kvmdbg-vhe"),
                            (self.oslk, "kvmdbg-oslk"),
                            (self.read_button, "kvmdbg-read"), (self.step_button, "kvmdbg-step"),
                            (self.run_button, "kvmdbg-run"), (self.put_button, "kvmdbg-put"),
                            (self.reset_button, "kvmdbg-reset"), (self.info, "kvmdbg-description"),
                            (self.status, "kvmdbg-status"), (self.function, "kvmdbg-function"),
                            (self.table, "kvmdbg-regtable"), (self.history, "kvmdbg-log"),
                            (self.chart, "kvmdbg-timeline")):
            widget.add_class(css)
        self._timeline: Any = None
        self.steps_list = W.HTML()
        self.steps_list.add_class("kvmdbg-steps")
        self._previous: dict[tuple[str, str], int | None] = {}
        self._log_lines: list[str] = []
        self.last_render_seconds = 0.0
        self.variant.observe(self._guarded(self._on_config), names="value")
        self.vhe.observe(self._guarded(self._on_config), names="value")
        self.oslk.observe(self._guarded(self._on_oslk), names="value")
        self.read_button.on_click(self._guarded(self._on_read))
        self.step_button.on_click(self._guarded(self._on_step))
        self.run_button.on_click(self._guarded(self._on_run))
        self.put_button.on_click(self._guarded(self._on_put))
        self.reset_button.on_click(self._guarded(self._on_reset))
        self.children = (
            W.HTML(_CSS),
            W.HBox([self.variant, self.vhe]),
            self.info,
            W.HBox([self.oslk, self.read_button]),
            W.HBox([self.step_button, self.run_button, self.put_button, self.reset_button]),
            self.status, self.function, self.table, W.HBox([self.chart, self.steps_list]), self.history,
            self.error,
        )
        self._suspend = False
        self._guarded(self._refresh)(first=True)

    # -- model actions ---------------------------------------------------------------

    def _say(self, text: str) -> None:
        self._log_lines.append(html.escape(text))
        self._log_lines = self._log_lines[-8:]
        self.history.value = "<br>".join(self._log_lines)

    def _on_config(self, change: dict[str, Any]) -> None:
        if self._suspend:
            return
        self.machine = Machine(self.variant.value, vhe=self.vhe.value, trace=TRACE_KEEP)
        self._previous = {}
        self._log_lines = []
        self._say(f"new machine: {self.machine.variant}, {'VHE' if self.machine.vhe else 'nVHE'}")
        self._suspend = True
        try:
            self.oslk.value = False
        finally:
            self._suspend = False
        self._refresh(first=True)

    def _on_oslk(self, change: dict[str, Any]) -> None:
        if self._suspend:
            return
        bit = int(bool(change["new"]))
        try:
            self.machine.guest_write("OSLAR_EL1", bit)
            self._say(f"guest: MSR OSLAR_EL1, x0 (x0={bit})")
        except GuestFault as e:
            self._say(f"guest: MSR OSLAR_EL1 faulted: {e.explanation}")
        self._refresh()

    def _on_read(self, _: Any = None) -> None:
        try:
            v = self.machine.guest_read("OSLSR_EL1")
            from kvmdbg.arch.registers import REGISTERS

            self._say(f"guest: MRS x0, OSLSR_EL1 -> {v:#x} ({REGISTERS['OSLSR_EL1'].describe(v)})")
        except GuestFault as e:
            self._say(f"guest: MRS OSLSR_EL1 faulted: {e.explanation}")
        self._refresh()

    def _on_step(self, _: Any = None) -> None:
        ev = self.machine.step()
        if ev is not None:
            self._say(str(ev))
        self._refresh()

    def _on_run(self, _: Any = None) -> None:
        m = self.machine
        target = "host" if m.where() == "guest" else "guest"
        evs = m.run_to(target)
        self._say(f"ran {len(evs)} step(s): now in the {m.where()}")
        self._refresh()

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
        self._refresh()

    def _on_reset(self, _: Any = None) -> None:
        self.machine.reset_vcpu()
        self._say("KVM_ARM_VCPU_INIT: vCPU reset")
        self._refresh()

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

    def _refresh(self, first: bool = False) -> None:
        t0 = time.perf_counter()
        m = self.machine
        self.info.value = (f"<b>{html.escape(m.variant)}</b> ({'VHE' if m.vhe else 'nVHE'}): "
                                  f"{html.escape(VARIANT_DESCRIPTIONS.get(m.variant, ''))}")
        pending = f"; in the middle of {m.next_switch()}" if m.in_progress else ""
        loaded = "loaded" if m.loaded() else "not loaded"
        self.status.value = (f"vCPU 0 is in the <b>{m.where()}</b>, {loaded}"
                             f"{pending}. Next step starts/continues: <code>{m.next_switch()}</code>")
        self.put_button.description = "vcpu_put" if m.loaded() else "vcpu_load"
        last = m.trace[-1] if len(m.trace) else None
        if last is None:
            self.function.value = ""
        else:
            note = (f"<br><i>patch note:</i> {html.escape(last.patch_note)}" if last.patch_note else "")
            self.function.value = (f"<b>{html.escape(last.function)}</b> "
                                   f"<span style='font-family:monospace'>({html.escape(last.file)})</span>"
                                   f"<br>{html.escape(last.detail)}{note}")
        self.oslk.description = f"guest: OSLAR_EL1.OSLK = {int(self.oslk.value)}"
        self._render_table(self.values(), first)
        self._render_chart()
        self.last_render_seconds = time.perf_counter() - t0


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
