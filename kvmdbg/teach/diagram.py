"""Pictures of the machine, as inline SVG built from strings (no matplotlib, no widgets).

``machine_diagram(machine_or_snapshot, event=None)`` draws the state the OS Lock lab and the
notebooks talk about: KVM's saved host context, the physical PE, each vCPU context and the
guest's view, as boxes with their register values in hex and the debug fields decoded; which
exception level is running, host or guest, and where the host kernel runs (EL1 on nVHE, EL2 on
VHE); and, for the event(s) given, one numbered arrow per value a kernel function moved, from
where it came to where it went, labelled with the function (taken from the Event).

``iss_diagram(esr)`` draws an ESR_EL2 value as its bit fields: EC, IL and, for a trapped
MSR/MRS (EC 0x18), Op0, Op2, Op1, CRn, Rt, CRm and the direction bit, with the register the
encoding names.

Both return a :class:`Diagram`: ``.svg`` is the picture; a notebook cell that ends with one
shows it (``_repr_svg_`` / ``_repr_html_``), and ``save(path)`` writes ``.svg`` or ``.html``.
The SVG carries the class ``kvmdbg-diagram`` and needs nothing from the network.

Where each arrow starts is the model's reading of the step, documented in :func:`_source`:
a save copies the PE into a context, a restore copies a context onto the PE, a trapped
handler takes the value from the guest's MSR. A value that no recorded step changed but that
differs from ``before`` (for example the ``sys_regs[]`` slot patch 2's swapped
``vcpu_write_sys_reg()`` arguments overwrite, which the trace does not watch) is marked
changed and credited to the click's trap handler.
"""

from __future__ import annotations

import html
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvmdbg.arch.esr import EC
from kvmdbg.arch.registers import REGISTERS, Encoding, lookup_encoding
from kvmdbg.errors import KvmdbgError
from kvmdbg.trace import Event, Snapshot

if TYPE_CHECKING:
    from kvmdbg.machine import Machine

__all__ = ["Diagram", "Arrow", "machine_diagram", "iss_diagram", "BOXES", "decode_fields"]

# The boxes, left to right: save/restore arrows run between neighbours.
BOXES = ("host", "physical", "vcpu", "guest_view")
BOX_REGISTERS: Mapping[str, tuple[str, ...]] = {
    "host": ("OSLSR_EL1", "MDSCR_EL1"),
    "physical": ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1", "MDCR_EL2"),
    "vcpu": ("OSLSR_EL1", "MDSCR_EL1"),
    "guest_view": ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1"),
}
# vCPU context slots shown when the diagram is drawn from a Machine: the two that patch 2's
# swapped vcpu_write_sys_reg() arguments overwrite (TTBR1_EL1 on an unlock, ESR_EL1 on a lock).
EXTRA_VCPU_REGISTERS = ("TTBR1_EL1", "ESR_EL1")
_FIELDS_SHOWN: Mapping[str, tuple[str, ...]] = {
    "OSLSR_EL1": ("OSLK", "OSLM"),
    "OSDLR_EL1": ("DLK",),
    "MDSCR_EL1": ("MDE", "SS", "KDE"),
}
MAX_ARROWS = 8

# geometry
_W, _BOX_W, _GAP, _LEFT = 980, 200, 50, 15
_TOP = 112  # top of the boxes
_ROW_H = 36


def _row_h(reg: str) -> int:
    return 48 if reg == "MDCR_EL2" else _ROW_H  # MDCR_EL2's bit names take two lines


def _rows_h(regs: Sequence[str]) -> int:
    return sum(_row_h(r) for r in regs)
_COLORS = {"host": "#e8f0fb", "physical": "#fdf1dc", "vcpu": "#e6f4ea", "guest_view": "#f1e8f7"}
_RUN = "#2e7d32"
_CHANGED = "#ffc857"
_ARROW = "#c62828"


@dataclass(frozen=True, slots=True)
class Arrow:
    """One value moved by one kernel function: ``source`` box -> ``dest`` box (None: from KVM itself)."""

    number: int
    function: str
    step: int
    source: str | None
    dest: str
    register: str
    vcpu: int | None
    before: int | None
    after: int | None

    def __str__(self) -> str:
        def fmt(v: int | None) -> str:
            return "—" if v is None else f"{v:#x}"

        origin = _BOX_TITLES[self.source][0] if self.source else "KVM"
        return (f"({self.number}) [{self.step}] {self.function}: {self.register} "
                f"{origin} -> {_BOX_TITLES[self.dest][0]}, {fmt(self.before)} -> {fmt(self.after)}")


@dataclass(frozen=True)
class Diagram:
    """An SVG picture; shows itself in a notebook and saves as ``.svg`` or ``.html``."""

    svg: str
    title: str = ""
    state: Mapping[tuple[str, str, int], int | None] = field(default_factory=dict)
    arrows: tuple[Arrow, ...] = ()
    running: str = ""
    changed: frozenset[tuple[str, str, int]] = frozenset()

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return f'<div class="kvmdbg-diagram">{self.svg}</div>'

    def save(self, path: str | Path) -> Path:
        """Write the picture: ``.svg`` as the SVG itself, ``.html`` as a page around it."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".svg":
            p.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + self.svg, encoding="utf-8")
        elif suffix in (".html", ".htm"):
            p.write_text(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                         f"</title></head><body>{self._repr_html_()}</body></html>\n", encoding="utf-8")
        else:
            raise KvmdbgError(f"cannot save a diagram as {p.name!r}: use a .svg or .html file name "
                              "(a browser opens both and can print them to PDF or PNG)")
        return p

    def __str__(self) -> str:
        lines = [self.title, f"running: {self.running}"] + [str(a) for a in self.arrows]
        return "\n".join(x for x in lines if x)


# --------------------------------------------------------------------------- decoding


def decode_fields(register: str, value: int | None) -> str:
    """The debug fields a learner needs, e.g. ``OSLK=1 OSLM=0b10``; MDCR_EL2 as the bits set."""
    if value is None:
        return ""
    reg = REGISTERS[register]
    if register == "MDCR_EL2":
        parts = []
        for f in reg.fields:
            v = f.extract(value)
            if f.name == "HPMN":
                parts.append(f"HPMN={v:#x}")
            elif v:
                parts.append(f.name if f.width == 1 else f"{f.name}={v:#x}")
        known = 0
        for f in reg.fields:
            known |= f.mask
        if value & ~known:
            parts.append(f"+{value & ~known:#x}")
        return " ".join(parts)
    names = _FIELDS_SHOWN.get(register)
    if names is None:
        return ""
    out = []
    for name in names:
        f = reg.field(name)
        v = f.extract(value)
        out.append(f"{name}={v:#0{f.width + 2}b}" if f.width > 1 else f"{name}={v}")
    return " ".join(out)


# --------------------------------------------------------------------------- state


def _read_state(source: Machine | Snapshot) -> tuple[dict[tuple[str, str, int], int | None], tuple[str, ...],
                                                      tuple[bool, ...], bool | None, str, bool]:
    """(values, where, loaded, vhe, variant, in_progress) from a Machine or a Snapshot."""
    if isinstance(source, Snapshot):
        values = dict(source.values)
        return values, tuple(source.where), tuple(source.loaded), None, "", False
    if not (hasattr(source, "snapshot") and hasattr(source, "kvm")):
        raise KvmdbgError(f"machine_diagram() draws a kvmdbg Machine or a Snapshot, not "
                          f"{type(source).__name__}; pass the Machine, or machine.snapshot()")
    snap = source.snapshot()
    values = dict(snap.values)
    for i in range(len(snap.where)):
        for reg in EXTRA_VCPU_REGISTERS:
            v = source.vcpu_reg(reg, i)
            if v is not None:
                values[("vcpu", reg, i)] = v
    return values, tuple(snap.where), tuple(snap.loaded), bool(source.vhe), str(source.variant), \
        bool(source.in_progress)


def _host_registers(source: Machine | Snapshot) -> frozenset[str] | None:
    """The registers KVM keeps a saved host copy of (None for a Snapshot, which does not say).

    Common state (MDSCR_EL1) always; the EL1 state and the EL1 hooks' registers (patch 2's
    OSLSR_EL1) only on nVHE, since VHE never saves the host's EL1 state.
    """
    if isinstance(source, Snapshot):
        return None
    defn = source.defn
    regs = set(defn.common_state)
    if not source.vhe:
        regs |= set(defn.el1_state) | {h.register for h in defn.el1_hooks}
    return frozenset(regs)


def _source(ev: Event, dest: str, changed_locs: set[str], host_kept: bool) -> str | None:
    """Where the value an event wrote into ``dest`` came from, in the model's reading of the step.

    - The PE: a restore on the way in (vcpu_load, entry) copies the vCPU context onto it; one on
      the way out (exit, vcpu_put) the host context (nothing, on VHE, where the host's EL1 state
      is never saved). A guest access that is not trapped writes it from the guest.
    - A context: a save (``__sysreg_save_*``, ``sysreg_save_*``, ``kvm_vcpu_put_sysregs_vhe``)
      copies the PE into it; a trap handler (phase "handle") stores what the guest's MSR wrote;
      anything else (reset, KVM_SET_ONE_REG, ``kvm_arm_setup_debug`` masking MDSCR_EL1) is KVM's
      own write, drawn from above (None).
    - The guest's view is derived: it follows the context or the PE the same step changed.
    """
    f, phase = ev.function, ev.phase
    if dest == "physical":
        if phase == "guest":
            return "guest_view"
        if phase in ("enter", "vcpu_load"):
            return "vcpu"
        if phase in ("exit", "vcpu_put") and host_kept:
            return "host"
        return None
    if dest in ("vcpu", "host"):
        if "save" in f or f == "kvm_vcpu_put_sysregs_vhe":
            return "physical"
        if phase == "handle" and f not in ("handle_exit", "kvm_handle_sys_reg", "kvm_incr_pc"):
            return "guest_view"
        return None
    for loc in ("vcpu", "physical"):
        if loc in changed_locs:
            return loc
    return None


def _state_before(machine: Machine, first: Event) -> dict[tuple[str, str, int], int | None] | None:
    """The watched state just before ``first`` ran, from the machine's trace (None if not there)."""
    trace = machine.trace
    if not len(trace) or trace[0].step > first.step:
        return None
    if trace[0].step == first.step:
        return dict(trace.base)
    state: dict[tuple[str, str, int], int | None] = {}
    for ev, now in trace.states():
        if ev.step >= first.step - 1:
            state = dict(now)
            break
    return state or None


def _running(where: tuple[str, ...], vhe: bool | None, events: Sequence[Event]) -> tuple[str, str, int]:
    """(side, text, EL) of what runs now: "guest"/"host", a sentence, and its exception level."""
    last = events[-1] if events else None
    running = [i for i, w in enumerate(where) if w == "guest"]  # one PE: at most one vCPU runs
    if running and (last is None or last.phase == "guest" or last.function == "__guest_enter"
                    or not last.file.startswith("arch/arm64/kvm/hyp/")):
        return "guest", f"the guest kernel, at EL1 (vCPU {running[0]} is in the guest)", 1
    in_hyp = last is not None and last.file.startswith("arch/arm64/kvm/hyp/")
    if vhe is None:
        return "host", "the host (VHE or nVHE not recorded in a Snapshot)", 0
    if vhe:
        what = "KVM's world switch in the host kernel" if in_hyp else "the host kernel"
        return "host", f"{what}, at EL2 (VHE: the host kernel runs at EL2)", 2
    if in_hyp:
        return "host", "KVM's hyp code, at EL2 (nVHE: the host kernel runs at EL1)", 2
    return "host", "the host kernel, at EL1 (nVHE: KVM's hyp code runs at EL2)", 1


_BOX_TITLES: Mapping[str, tuple[str, str]] = {
    "host": ("host context", "KVM's saved copy: host_ctxt"),
    "physical": ("physical PE", "the CPU's registers now"),
    "vcpu": ("vCPU context", "vcpu->arch.ctxt.sys_regs[]"),
    "guest_view": ("guest's view", "what MRS returns at guest EL1"),
}


# --------------------------------------------------------------------------- drawing


def _t(x: float, y: float, text: str, *, size: int = 12, weight: str = "normal", anchor: str = "start",
       fill: str = "#1f1f1f", family: str = "sans-serif", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" '
            f'fill="{fill}" font-family="{family}"{c}>{html.escape(text)}</text>')


def _hex(v: int | None) -> str:
    return "—" if v is None else f"{v:#x}"


def _wrap(text: str, width: int) -> list[str]:
    """Words into lines of at most ``width`` characters (a box is about 30 monospace characters wide)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _box_x(loc: str) -> int:
    return _LEFT + BOXES.index(loc) * (_BOX_W + _GAP)


def _events(event: Event | Iterable[Event] | None) -> list[Event]:
    if event is None:
        return []
    if isinstance(event, Event):
        return [event]
    evs = list(event)
    bad = [e for e in evs if not isinstance(e, Event)]
    if bad:
        raise KvmdbgError(f"machine_diagram(event=...) takes a kvmdbg Event or a list of them, not "
                          f"{type(bad[0]).__name__}")
    return evs


def machine_diagram(source: Machine | Snapshot, event: Event | Iterable[Event] | None = None, *,
                    before: Diagram | Snapshot | Mapping[tuple[str, str, int], int | None] | None = None,
                    title: str | None = None) -> Diagram:
    """The machine state as boxes, with an arrow per value the given event(s) moved.

    ``source`` is a :class:`~kvmdbg.Machine` (the diagram then also shows its variant, VHE or
    nVHE, and the vCPU context's TTBR1_EL1 and ESR_EL1) or a :class:`~kvmdbg.trace.Snapshot`.
    ``event`` is one Event or the events of one action (all the phases a lab click ran);
    ``before`` a previous Diagram or Snapshot, whose differing values are marked changed.
    """
    values, where, loaded, vhe, variant, in_progress = _read_state(source)
    host_regs = _host_registers(source)
    events = _events(event)
    nr = max(1, len(where))
    prior: Mapping[tuple[str, str, int], int | None] | None
    if isinstance(before, Diagram):
        prior = before.state
    elif isinstance(before, Snapshot):
        prior = before.values
    else:
        prior = before
    host_kept = any(values.get(("host", r, -1)) is not None for r in BOX_REGISTERS["host"])
    if not host_kept and vhe is False:
        host_kept = True  # nVHE always keeps a host context; it may just not be saved yet

    if prior is None and events and not isinstance(source, Snapshot):
        prior = _state_before(source, events[0])

    # -- arrows: the net effect of the events. Each value that ends different from where it
    # started gets one arrow, credited to the last function that wrote it (a click that runs a
    # whole exit and entry moves the PE's OSLSR_EL1 there and back: no net change, no arrow).
    last_writer: dict[tuple[str, str, int], tuple[Event, int | None, set[str]]] = {}
    for ev in events:
        locs = {k[0] for k, _ in ev.changes}
        for key, after in ev.changes:
            if key[0] in BOX_REGISTERS and key[1] in BOX_REGISTERS[key[0]]:
                last_writer[key] = (ev, after, locs)
    found: list[tuple[int, Event, tuple[str, str, int], str | None, int | None, int | None]] = []
    for key, (ev, after, locs) in last_writer.items():
        old = None if prior is None else prior.get(key)
        if prior is not None and key in prior and old == after:
            continue
        found.append((ev.step, ev, key, _source(ev, key[0], locs, host_kept), old, after))
    if prior is not None:
        # Values no recorded step reports (the vCPU slots patch 2's swapped arguments overwrite):
        # credited to the click's trap handler, whose MSR they came from.
        handler = next((e for e in reversed(events) if e.phase == "handle"
                        and e.function not in ("handle_exit", "kvm_handle_sys_reg", "kvm_incr_pc")), None)
        for key, v in values.items():
            if key in prior and prior[key] != v and key not in last_writer and handler is not None:
                found.append((handler.step, handler, key, "guest_view", prior[key], v))
    found.sort(key=lambda f: (f[0], BOXES.index(f[2][0]) if f[2][0] in BOXES else 9))
    changed = {f[2] for f in found}
    if prior is not None:
        changed |= {k for k, v in values.items() if k in prior and prior[k] != v}
    arrows = [Arrow(n + 1, ev.function, step, src, key[0], key[1], None if key[2] < 0 else key[2], old, after)
              for n, (step, ev, key, src, old, after) in enumerate(found[:MAX_ARROWS])]

    side, running, el = _running(where, vhe, events)
    mode = "" if vhe is None else ("VHE" if vhe else "nVHE")
    head = " · ".join(x for x in (variant, mode) if x)
    title = title if title is not None else f"kvmdbg machine{': ' + head if head else ''}"

    # -- layout: rows per box; vCPU boxes stacked
    vcpu_rows = [r for r in BOX_REGISTERS["vcpu"]] + [r for r in EXTRA_VCPU_REGISTERS
                                                       if any(("vcpu", r, i) in values for i in range(nr))]
    box_h = {loc: 34 + _rows_h(BOX_REGISTERS[loc]) + 8 for loc in ("host", "physical")}
    per_vcpu_h = 34 + _rows_h(vcpu_rows) + 8
    per_view_h = 34 + _rows_h(BOX_REGISTERS["guest_view"]) + 8
    stack_h = max(per_vcpu_h, per_view_h)
    boxes_bottom = _TOP + max(box_h["host"], box_h["physical"], nr * (stack_h + 12) - 12)
    legend_top = boxes_bottom + 22
    height = legend_top + 18 * max(1, len(arrows)) + 30
    row_y: dict[tuple[str, str, int], float] = {}
    parts: list[str] = []
    a = parts.append
    a(f'<svg xmlns="http://www.w3.org/2000/svg" class="kvmdbg-diagram" width="{_W}" height="{height}" '
      f'viewBox="0 0 {_W} {height}" role="img" aria-label="{html.escape(title)}">')
    a(f'<title>{html.escape(title)}</title>')
    a('<defs><marker id="kvmdbg-arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
      f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{_ARROW}"/></marker></defs>')
    a(f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>')
    a(_t(_LEFT, 22, title, size=15, weight="bold"))
    a(_t(_LEFT, 42, f"running now: {running}", size=13, fill=_RUN if side == "guest" else "#0d47a1",
         cls="kvmdbg-running"))
    state = "; ".join(f"vCPU {i} is in the {w}, {'loaded' if i < len(loaded) and loaded[i] else 'not loaded'}"
                      for i, w in enumerate(where)) + ("; a world switch is in progress" if in_progress else "")
    a(_t(_LEFT, 60, state, size=12, fill="#444"))
    parts.extend(_el_ladder(vhe, side, el))

    # -- boxes
    def draw_box(loc: str, x: float, y: float, regs: Sequence[str], vcpu: int, h: float, sub: str) -> None:
        name, _ = _BOX_TITLES[loc]
        head_text = f"{name} {vcpu}" if loc in ("vcpu", "guest_view") and nr > 1 else name
        active = (loc == "guest_view" and side == "guest") or (loc == "physical")
        a(f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{h}" rx="6" fill="{_COLORS[loc]}" '
          f'stroke="{_RUN if active and loc == "guest_view" else "#777"}" '
          f'stroke-width="{2 if active and loc == "guest_view" else 1}" data-box="{loc}"/>')
        a(_t(x + 8, y + 16, head_text, size=13, weight="bold"))
        a(_t(x + 8, y + 29, sub, size=10, fill="#555"))
        for k, reg in enumerate(regs):
            key = (loc, reg, -1 if loc in ("host", "physical") else vcpu)
            ry = y + 34 + _rows_h(regs[:k])
            rh = _row_h(reg)
            row_y[key] = ry + rh / 2
            v = values.get(key)
            mark = ' data-changed="1"' if key in changed else ""
            a(f'<g data-key="{loc}:{reg}:{key[2]}" data-value="{_hex(v)}"{mark}>')
            if key in changed:
                a(f'<rect x="{x + 3}" y="{ry + 1}" width="{_BOX_W - 6}" height="{rh - 2}" rx="3" '
                  f'fill="{_CHANGED}"/>')
            a(_t(x + 8, ry + 14, reg, size=11, family="monospace"))
            # A 64-bit value such as KVM's reset_unknown pattern would run into the register's name
            # at the usual size: draw long values smaller so both stay readable.
            text = _hex(v)
            a(_t(x + _BOX_W - 8, ry + 14, text, size=12 if len(text) <= 10 else 9, weight="bold", anchor="end",
                 family="monospace", cls="kvmdbg-value"))
            fields = decode_fields(reg, v) if reg in REGISTERS else ""
            if loc == "host" and v is None:
                fields = ("not saved yet" if host_regs is not None and reg in host_regs
                          else "not kept (VHE)" if vhe else "not kept" if host_regs is not None
                          else "not kept, or not saved yet")
            elif loc == "vcpu" and v is None:
                fields = "no slot in this variant"
            elif loc == "guest_view" and v is None:
                fields = "the read UNDEFs"
            for n, line in enumerate(_wrap(fields, 30)):
                a(_t(x + 8, ry + 28 + 12 * n, line, size=10, fill="#333", family="monospace"))
            a("</g>")

    hx = _box_x("host")
    draw_box("host", hx, _TOP, BOX_REGISTERS["host"], -1, box_h["host"],
             "KVM's saved copy (host_ctxt)" if host_kept or vhe is None else "VHE: only common state kept")
    draw_box("physical", _box_x("physical"), _TOP, BOX_REGISTERS["physical"], -1, box_h["physical"],
             "the CPU's registers now")
    for i in range(nr):
        y = _TOP + i * (stack_h + 12)
        draw_box("vcpu", _box_x("vcpu"), y, vcpu_rows, i, stack_h, _BOX_TITLES["vcpu"][1])
        draw_box("guest_view", _box_x("guest_view"), y, BOX_REGISTERS["guest_view"], i, stack_h,
                 _BOX_TITLES["guest_view"][1])

    # -- arrows
    for arr in arrows:
        dkey = (arr.dest, arr.register, -1 if arr.vcpu is None else arr.vcpu)
        if dkey not in row_y:
            continue
        dy: float = row_y[dkey]
        dx0 = _box_x(arr.dest)
        sx: float
        sy: float
        if arr.source is None:
            sx, sy = dx0 + _BOX_W / 2 + 20 * (arr.number % 3), _TOP - 14
            ex, ey = dx0 + _BOX_W / 2 + 20 * (arr.number % 3), dy - 12
            path = f"M{sx:.0f},{sy:.0f} L{ex:.0f},{ey:.0f}"
            lx: float
            ly: float
            lx, ly = sx + 10, sy + 4
        else:
            skey = (arr.source, arr.register, -1 if arr.source in ("host", "physical") else (arr.vcpu or 0))
            # from the same register's row, or (a box without that row) from the box's title
            box_top = _TOP + (0 if arr.source in ("host", "physical") else skey[2] * (stack_h + 12))
            sy = row_y.get(skey, box_top + 20)
            s_left = BOXES.index(arr.source) < BOXES.index(arr.dest)
            if (arr.dest, arr.register) in {(b.source, b.register) for b in arrows}:
                shift = -5 if s_left else 5  # a value moved back along the same rows: keep both apart
                sy, dy = sy + shift, dy + shift
            sx = _box_x(arr.source) + (_BOX_W if s_left else 0)
            ex = dx0 + (0 if s_left else _BOX_W)
            bend = 30 + 8 * (arr.number % 4)
            if abs(BOXES.index(arr.source) - BOXES.index(arr.dest)) == 1:
                c1x, c2x = sx + (bend if s_left else -bend), ex - (bend if s_left else -bend)
                path = f"M{sx:.0f},{sy:.0f} C{c1x:.0f},{sy:.0f} {c2x:.0f},{dy:.0f} {ex:.0f},{dy:.0f}"
                lx, ly = (sx + ex) / 2, (sy + dy) / 2 - 4
            else:  # not neighbours: over the top of the boxes in between
                top = _TOP - 22 - 6 * (arr.number % 3)
                path = f"M{sx:.0f},{sy:.0f} C{sx:.0f},{top:.0f} {ex:.0f},{top:.0f} {ex:.0f},{dy:.0f}"
                lx, ly = (sx + ex) / 2, top + 10
        a(f'<path d="{path}" fill="none" stroke="{_ARROW}" stroke-width="2" marker-end="url(#kvmdbg-arrowhead)" '
          f'data-arrow="{arr.number}" data-function="{html.escape(arr.function)}"/>')
        a(f'<circle cx="{lx:.0f}" cy="{ly:.0f}" r="8" fill="#ffffff" stroke="{_ARROW}"/>')
        a(_t(lx, ly + 4, str(arr.number), size=10, weight="bold", anchor="middle", fill=_ARROW))

    # -- legend: what each arrow is
    if arrows:
        a(_t(_LEFT, legend_top, "what moved:", size=12, weight="bold"))
        for k, arr in enumerate(arrows):
            origin = ("the guest's MSR" if arr.source == "guest_view" else _BOX_TITLES[arr.source][0]) \
                if arr.source else "KVM itself"
            text = (f"({arr.number}) {arr.function} [step {arr.step}]: {arr.register} from {origin} "
                    f"to {_BOX_TITLES[arr.dest][0]}: {_hex(arr.before)} → {_hex(arr.after)}")
            a(_t(_LEFT + 90, legend_top + 18 * k, text, size=12, family="monospace", cls="kvmdbg-arrow-label"))
    else:
        if len(events) > 1:
            what = (f"no value ended different after these {len(events)} steps "
                    "(what one step changed, a later one put back)")
        elif events:
            what = f"step {events[0].step}, {events[0].function}: no value shown here changed"
        else:
            what = "no step yet: the state as it is"
        a(_t(_LEFT, legend_top, what, size=12, fill="#444"))
    a("</svg>")
    return Diagram("".join(parts), title, values, tuple(arrows), running, frozenset(changed))


def _el_ladder(vhe: bool | None, side: str, el: int) -> list[str]:
    """A small grid, top right: who runs at EL2 and EL1 on each side; the running cell filled."""
    x0, y0, cw, ch = _W - 360, 6, 170, 22
    if vhe is None:
        host2, host1 = "KVM (hyp or host)", "host kernel (nVHE)"
    elif vhe:
        host2, host1 = "host kernel + KVM", "(unused: VHE)"
    else:
        host2, host1 = "KVM hyp code", "host kernel"
    cells = [(0, 0, "EL2", host2, side == "host" and el == 2), (0, 1, "EL2", "(no guest EL2)", False),
             (1, 0, "EL1", host1, side == "host" and el == 1), (1, 1, "EL1", "guest kernel", side == "guest")]
    out = [_t(x0 + cw // 2, y0 + 12, "host side", size=11, anchor="middle", fill="#555"),
           _t(x0 + cw + cw // 2, y0 + 12, "guest side", size=11, anchor="middle", fill="#555")]
    for r, c, el_name, who, on in cells:
        x, y = x0 + c * cw, y0 + 16 + r * ch
        running_attr = ' data-running="1"' if on else ""
        out.append(f'<rect x="{x}" y="{y}" width="{cw - 4}" height="{ch - 3}" rx="3" '
                   f'fill="{_RUN if on else "#f3f3f3"}" stroke="#999" data-el="{el_name}:{c}"{running_attr}/>')
        out.append(_t(x + 6, y + 14, f"{el_name} {who}", size=11, fill="#ffffff" if on else "#333"))
    return out


# --------------------------------------------------------------------------- ESR


_ISS_SYSREG = (  # (name, msb, lsb) for EC 0x18
    ("Op0", 21, 20), ("Op2", 19, 17), ("Op1", 16, 14), ("CRn", 13, 10), ("Rt", 9, 5), ("CRm", 4, 1),
    ("Dir", 0, 0),
)


def iss_diagram(esr: Any) -> Diagram:
    """An ESR_ELx value as its fields: EC, IL, and for EC 0x18 the system-register ISS, named."""
    if isinstance(esr, bool):
        raise KvmdbgError("iss_diagram() needs an ESR value such as 0x62280420, not a bool")
    try:
        value = operator.index(esr)
    except TypeError:
        raise KvmdbgError(f"iss_diagram() needs an integer ESR value such as 0x62280420, not {esr!r}") from None
    if not 0 <= value < 1 << 32:
        raise KvmdbgError(f"ESR {value:#x} does not fit the 32 bits this diagram draws (EC 31:26, IL 25, ISS 24:0)")
    ec, il = (value >> 26) & 0x3F, (value >> 25) & 1
    try:
        ec_name = EC(ec).name
    except ValueError:
        ec_name = "not modelled"
    fields: list[tuple[str, int, int]] = [("EC", 31, 26), ("IL", 25, 25)]
    if ec == EC.SYS64:
        fields += [("RES0", 24, 22)] + list(_ISS_SYSREG)
    else:
        fields += [("ISS", 24, 0)]
    bit_w, x0, y0 = 28, 26, 70
    width, height = x0 * 2 + 32 * bit_w, 300
    title = f"ESR {value:#010x}: EC {ec:#04x} ({ec_name})"
    parts: list[str] = []
    a = parts.append
    a(f'<svg xmlns="http://www.w3.org/2000/svg" class="kvmdbg-diagram kvmdbg-iss" width="{width}" '
      f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">')
    a(f"<title>{html.escape(title)}</title>")
    a(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    a(_t(x0, 26, title, size=15, weight="bold"))
    for bit in range(32):
        x = x0 + (31 - bit) * bit_w
        a(_t(x + bit_w / 2, y0 - 6, str(bit), size=9, anchor="middle", fill="#666"))
        a(f'<rect x="{x}" y="{y0}" width="{bit_w}" height="26" fill="#fafafa" stroke="#ccc"/>')
        a(_t(x + bit_w / 2, y0 + 17, str((value >> bit) & 1), size=12, anchor="middle", family="monospace"))
    palette = ["#fde2e4", "#e2ece9", "#fff1e6", "#dfe7fd", "#f0efeb", "#e8dff5", "#d8f3dc", "#fcf6bd", "#cddafd",
               "#ffd6a5"]
    decoded: dict[str, int] = {}
    for k, (name, msb, lsb) in enumerate(fields):
        fv = (value >> lsb) & ((1 << (msb - lsb + 1)) - 1)
        decoded[name] = fv
        x = x0 + (31 - msb) * bit_w
        w = (msb - lsb + 1) * bit_w
        a(f'<rect x="{x}" y="{y0 + 30}" width="{w}" height="52" fill="{palette[k % len(palette)]}" '
          f'stroke="#888" data-field="{name}"/>')
        a(_t(x + w / 2, y0 + 46, name, size=12 if w > 30 else 10, weight="bold", anchor="middle"))
        rng = f"{msb}:{lsb}" if msb != lsb else f"{msb}"
        a(_t(x + w / 2, y0 + 60, rng, size=9, anchor="middle", fill="#555"))
        a(_t(x + w / 2, y0 + 76, f"{fv:#x}", size=12 if w > 30 else 10, anchor="middle", family="monospace",
             cls="kvmdbg-field-value"))
    lines = [f"EC {ec:#04x}: {_EC_TEXT.get(ec, ec_name)}",
             f"IL {il}: {'32-bit instruction' if il else '16-bit instruction (or IL not valid for this EC)'}"]
    if ec == EC.SYS64:
        enc = Encoding(decoded["Op0"], decoded["Op1"], decoded["CRn"], decoded["CRm"], decoded["Op2"])
        reg = lookup_encoding(enc)
        name = reg.name if reg is not None else f"{enc.generic_name()} (no name in the model)"
        lines.append(f"Op0={enc.op0:#x} Op1={enc.op1:#x} CRn={enc.crn:#x} CRm={enc.crm:#x} Op2={enc.op2:#x}"
                     f"  ->  {name}")
        rt = decoded["Rt"]
        lines.append(f"Rt={rt:#x}: general register {'xzr' if rt == 31 else f'x{rt}'}")
        xt = "xzr" if rt == 31 else f"x{rt}"
        lines.append(f"Dir={decoded['Dir']}: " + (f"read: MRS {xt}, {name}" if decoded["Dir"]
                                                  else f"write: MSR {name}, {xt}"))
        if decoded["RES0"]:
            lines.append(f"bits 24:22 = {decoded['RES0']:#x}: RES0 for EC 0x18, so this is not a valid syndrome")
    else:
        lines.append(f"ISS {decoded['ISS']:#x}: this diagram decodes the ISS of EC 0x18 (MSR/MRS) only")
    for k, line in enumerate(lines):
        a(_t(x0, y0 + 112 + 22 * k, line, size=13, family="monospace", cls="kvmdbg-iss-line"))
    a("</svg>")
    return Diagram("".join(parts), title, {}, (), "", frozenset())


_EC_TEXT = {
    0x00: "unknown reason (what an UNDEF looks like)",
    0x05: "trapped MCR/MRC p14 (AArch32)",
    0x15: "SVC from AArch64",
    0x16: "HVC from AArch64",
    0x18: "trapped MSR/MRS/system instruction (AArch64)",
    0x30: "breakpoint from a lower EL",
    0x31: "breakpoint from the same EL",
    0x32: "software step from a lower EL",
    0x33: "software step from the same EL",
    0x34: "watchpoint from a lower EL",
    0x35: "watchpoint from the same EL",
    0x3C: "BRK instruction (AArch64)",
}
