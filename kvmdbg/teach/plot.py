"""Charts of registers, traces and comparisons; each function returns a Figure.

Figures are built without pyplot, so nothing accumulates in pyplot's figure
list and a widget can reuse one figure. Every chart has a white face and dark
text, so it reads the same in a light or a dark notebook theme; fonts are
11 pt or larger.

How a chart becomes a picture. A figure made without pyplot has no display
hook: IPython shows only its ``repr`` (``<Figure size ...>``) unless
``%matplotlib inline`` happens to be active. So every chart here is a
:class:`Chart`, a ``Figure`` subclass that carries its own rich display:
``_repr_png_`` renders it with the Agg canvas. Any front end that asks
IPython for a MIME bundle gets ``image/png`` (JupyterLab, Voila, VS Code,
nbclient/nbconvert and therefore static HTML exports), with or without
an inline backend, and ``fig.savefig(...)`` works as usual. Its plain-text
form says what the chart is and how to save it, for terminals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kvmdbg.arch.registers import SysReg, lookup
from kvmdbg.trace import LOCATIONS, Trace

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["Chart", "bitfield", "bitfields", "timeline", "timelines", "runner", "matrix", "selftest_grid",
           "timeline_data"]

FONT = 11
INK = "#1f1f1f"
FACE = "white"
PLAIN = "#f2f2f2"
RESERVED = "#d9d9d9"
CHANGED = "#ffc857"  # amber: legible with dark text, distinct from grey
PASS = "#8fd19e"
FAIL = "#f4a6a6"
MISSING = "#e0e0e0"
# A qualitative palette (light tints, dark text stays readable on each).
PALETTE = ("#a6cee3", "#b2df8a", "#fdbf6f", "#cab2d6", "#fb9a99", "#ffff99", "#80cdc1", "#dfc27d")
LANE_COLOURS = {"physical": "#1f4e9a", "vcpu": "#1b7837", "host": "#8c510a", "guest_view": "#762a83"}


class Chart(Figure):
    """A matplotlib ``Figure`` that displays itself as a PNG in any IPython front end."""

    def _repr_png_(self) -> bytes:
        return to_png(self)

    def __repr__(self) -> str:
        w, h = (int(round(v)) for v in self.get_size_inches() * self.dpi)
        title = ""
        for ax in self.axes:
            text = ax.get_title() or ax.get_title(loc="left")
            if text:
                title = text.split(";")[0]
                break
        what = f": {title}" if title else ""
        return f"<kvmdbg chart{what} ({w}x{h} px); display it in a notebook, or fig.savefig('chart.png')>"


def _figure(width: float, height: float, dpi: int = 100) -> Chart:
    return Chart(figsize=(width, height), dpi=dpi, facecolor=FACE)


def _style(ax: Axes) -> None:
    ax.set_facecolor(FACE)
    ax.tick_params(colors=INK, labelsize=FONT)
    for s in ax.spines.values():
        s.set_color(INK)


def _reg(reg: str | SysReg) -> SysReg:
    return reg if isinstance(reg, SysReg) else lookup(reg)


def _segments(r: SysReg) -> tuple[int, list[tuple[int, int, str | None, str]]]:
    """(top bit shown, segments msb..lsb as (msb, lsb, field name or None, label)), high bits first."""
    owner: dict[int, tuple[str, int, int]] = {}
    for f in r.fields:
        for i, b in enumerate(f.bits):
            owner[b] = (f.name, i, f.width)
    top = max(owner, default=3) + 1
    top = max(4, -(-top // 4) * 4)
    segs: list[tuple[int, int, str | None, str]] = []
    b = top - 1
    while b >= 0:
        o = owner.get(b)
        lsb = b
        if o is None:
            while lsb - 1 >= 0 and (lsb - 1) not in owner:
                lsb -= 1
            segs.append((b, lsb, None, "RES0" if b < 64 else ""))
        else:
            name = o[0]
            f = r.field(name)
            # extend down while the same field owns consecutive bits
            while lsb - 1 >= 0 and owner.get(lsb - 1, ("",))[0] == name and (lsb - 1) in f.bits:
                lsb -= 1
            label = name
            if not f.contiguous:
                lo = f.bits.index(lsb)
                hi = f.bits.index(b)
                label = f"{name}[{hi}]" if hi == lo else f"{name}[{hi}:{lo}]"
            segs.append((b, lsb, name, label))
        b = lsb - 1
    return top, segs


def _seg_value(r: SysReg, value: int, msb: int, lsb: int) -> int:
    return (value >> lsb) & ((1 << (msb - lsb + 1)) - 1)


def _draw_register(ax: Axes, r: SysReg, value: int | None, previous: int | None, title: str) -> None:
    top, segs = _segments(r)
    widths = []
    for msb, lsb, name, _ in segs:
        n = msb - lsb + 1
        widths.append(min(max(n * 0.6, 1.6), 3.0) if name else min(max(n * 0.3, 0.9), 1.6))
    total = sum(widths)
    x = 0.0
    ax.set_xlim(-0.1, total + 0.1)
    ax.set_ylim(-1.35, 1.9)
    ax.axis("off")
    for (msb, lsb, name, label), w in zip(segs, widths, strict=False):
        changed = False
        if name and value is not None and previous is not None:
            changed = r.get(value, name) != r.get(previous, name)
        colour = RESERVED if name is None else (CHANGED if changed else PLAIN)
        ax.add_patch(Rectangle((x, 0), w, 1, facecolor=colour, edgecolor=INK,
                               linewidth=2.4 if changed else 1.0, hatch="//" if name is None else None))
        bits = f"{msb}" if msb == lsb else f"{msb}:{lsb}"
        ax.text(x + w / 2, 1.08, bits, ha="center", va="bottom", fontsize=FONT, color=INK)
        ax.text(x + w / 2, 0.68 if name else 0.5, label, ha="center", va="center", fontsize=FONT, color=INK,
                fontweight="bold" if name else "normal",
                bbox=None if name else {"facecolor": RESERVED, "edgecolor": "none", "pad": 1})
        if name and value is not None:
            v = _seg_value(r, value, msb, lsb)
            txt = str(v) if msb == lsb else f"{v:#x}"
            ax.text(x + w / 2, 0.28, txt, ha="center", va="center", fontsize=FONT + 1, color=INK,
                    family="monospace")
        x += w
    ax.text(0, -0.45, title, ha="left", va="center", fontsize=FONT + 1, color=INK)
    if top < 64 and r.el <= 2:
        # A line of its own: beside the title it overlapped long titles on narrow registers.
        ax.text(0, -1.0, f"bits 63:{top} not shown (RES0 / not modelled)", ha="left", va="center",
                fontsize=FONT, color="#555555")


def _title(r: SysReg, value: int | None, previous: int | None, prefix: str = "") -> str:
    if value is None:
        return f"{prefix}{r.name}: no value (not kept / UNDEFINED here)"
    t = f"{prefix}{r.name} = {value:#x}"
    if previous is not None and previous != value:
        t += f"   (was {previous:#x}; changed fields highlighted)"
    return t


def bitfield(reg: str | SysReg, value: int | None, *, previous: int | None = None,
             ax: Axes | None = None) -> Figure:
    """An Arm ARM style diagram of ``reg`` = ``value``; fields that differ from ``previous`` highlighted."""
    r = _reg(reg)
    if ax is None:
        _, segs = _segments(r)
        fig = _figure(max(6.0, min(14.0, 1.1 * len(segs) + 2)), 2.4)
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    else:
        fig = ax.figure  # type: ignore[assignment]
    _draw_register(ax, r, value, previous, _title(r, value, previous))
    return fig


def bitfields(reg: str | SysReg, values: Mapping[str, int | None]) -> Figure:
    """One diagram per variant, stacked; fields that differ from the first variant are highlighted."""
    r = _reg(reg)
    if not values:
        raise ValueError("bitfields() needs at least one {variant: value} entry")
    items = list(values.items())
    ref = items[0][1]
    _, segs = _segments(r)
    fig = _figure(max(6.0, min(14.0, 1.1 * len(segs) + 2)), 2.3 * len(items))
    h = 1.0 / len(items)
    for i, (variant, v) in enumerate(items):
        ax = fig.add_axes((0.02, 1 - (i + 1) * h + 0.02 * h, 0.96, 0.94 * h))
        prev = ref if i else None
        _draw_register(ax, r, v, prev, _title(r, v, None, f"{variant}: ")
                       + ("" if i == 0 or v == ref else f"   (differs from {items[0][0]})"))
    return fig


# -- timelines -------------------------------------------------------------------


def _missing(v: Any) -> bool:
    """None, NaN or pandas' NA: a location that keeps no copy."""
    import pandas as pd

    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _cell(v: Any) -> int | None:
    return None if _missing(v) else int(v)


def _timeline_rows(source: Any, register: str, vcpu: int, last: int | None
                   ) -> tuple[list[int], list[str], list[str], list[str], dict[str, list[int | None]]]:
    """(steps, functions, phases, files, {location: values}) from a Trace, Machine or trace DataFrame."""
    reg = lookup(register).name
    if hasattr(source, "trace") and isinstance(source.trace, Trace):
        source = source.trace
    steps: list[int] = []
    funcs: list[str] = []
    phases: list[str] = []
    files: list[str] = []
    lanes: dict[str, list[int | None]] = {loc: [] for loc in LOCATIONS}
    if isinstance(source, Trace):
        state_keys = {loc: (loc, reg, -1 if loc in ("physical", "host") else vcpu) for loc in LOCATIONS}
        pairs = []
        for e, state in source.states():
            pairs.append((e, {loc: state.get(k) for loc, k in state_keys.items()}))
        if last is not None:
            pairs = pairs[-last:] if last > 0 else []
        for e, vals in pairs:
            steps.append(e.step)
            funcs.append(e.function)
            phases.append(e.phase)
            files.append(e.file)
            for loc in LOCATIONS:
                lanes[loc].append(vals[loc])
        return steps, funcs, phases, files, lanes
    df = source
    needed = {"step", "function", "location", "register", "value"}
    if not hasattr(df, "columns") or not needed <= set(df.columns):
        raise TypeError("timeline() takes a Machine, a Trace or a DataFrame from trace.to_dataframe()")
    sub = df[df["register"] == reg]
    if "vcpu" in sub.columns:
        keep = sub["location"].isin(["physical", "host"]) | (sub["vcpu"] == vcpu).fillna(False)
        sub = sub[keep]
    order = sorted(set(int(s) for s in df["step"]))
    if last is not None:
        order = order[-last:] if last > 0 else []
    firsts = df.drop_duplicates("step").set_index("step")
    table: dict[tuple[int, str], int | None] = {}
    for s, loc, v in zip(sub["step"], sub["location"], sub["value"], strict=False):
        table[(int(s), loc)] = _cell(v)
    for s in order:
        steps.append(s)
        funcs.append(str(firsts["function"].get(s, "")))
        phases.append(str(firsts["phase"].get(s, "")) if "phase" in firsts else "")
        files.append(str(firsts["file"].get(s, "")) if "file" in firsts else "")
        for loc in LOCATIONS:
            lanes[loc].append(table.get((s, loc)))
    return steps, funcs, phases, files, lanes


def timeline_data(source: Any, register: str = "OSLSR_EL1", vcpu: int = 0,
                  last: int | None = None) -> tuple[list[int], list[str], dict[str, list[int | None]]]:
    """(steps, functions, {location: values}) for ``register`` from a Trace, Machine or trace DataFrame."""
    steps, funcs, _, _, lanes = _timeline_rows(source, register, vcpu, last)
    return steps, funcs, lanes


# Who runs on the PE during a step, and at which EL. The model's events name the kernel function
# and its file; the code under arch/arm64/kvm/hyp/nvhe/ (and the shared hyp/include/ and entry.S
# code it runs) executes at EL2 on an nVHE host, while the host kernel itself runs at EL1. On a
# VHE host the kernel, KVM included, runs at EL2 throughout. The guest runs at EL1.
RUNNER_COLOURS = {"guest EL1": "#e7d4e8", "host EL1": "#f0f0f0", "hyp EL2": "#fee0b6", "host EL2": "#d9e6f5"}


def runner(phase: str, file: str, vhe: bool) -> str:
    """"guest EL1", "host EL1", "hyp EL2" (nVHE world-switch code) or "host EL2" (a VHE host)."""
    if phase == "guest":
        return "guest EL1"
    if vhe:
        return "host EL2"
    return "hyp EL2" if "/hyp/" in file else "host EL1"


def _is_vhe(source: Any, files: list[str]) -> bool:
    if hasattr(source, "vhe") and isinstance(source.vhe, bool):
        return source.vhe
    return any("/hyp/vhe/" in f for f in files)


def _runs(values: list[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of equal values as (value, first index, last index + 1)."""
    out: list[tuple[str, int, int]] = []
    for i, v in enumerate(values):
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1], i + 1)
        else:
            out.append((v, i, i + 1))
    return out


def _draw_timeline(ax: Axes, xs: list[float], x_end: float, lanes: dict[str, list[int | None]],
                   f: Any, runners: list[str], phases: list[str]) -> list[int]:
    """Lanes with a 0..top scale over shaded 'who runs' bands; returns the indexes where a lane changed."""
    import math

    from matplotlib.transforms import blended_transform_factory

    _style(ax)
    n_lanes = len(LOCATIONS)
    strip = n_lanes * 1.5  # the "who runs" strip sits above the lanes
    bounds = xs + [x_end]
    for who, a, b in _runs(runners):
        ax.axvspan(bounds[a], bounds[b], ymin=0, ymax=1, facecolor=RUNNER_COLOURS[who], edgecolor="none",
                   zorder=0)
        if bounds[b] - bounds[a] >= 1.6:
            ax.text((bounds[a] + bounds[b]) / 2, strip + 0.2, who, ha="center", va="center", fontsize=FONT,
                    color=INK)
    for _, a, _ in _runs(phases):
        ax.axvline(bounds[a], color="#999999", linewidth=0.6, linestyle=":", zorder=1)
    from matplotlib.patches import Patch

    present = [who for who in RUNNER_COLOURS if who in runners]
    ax.legend(handles=[Patch(facecolor=RUNNER_COLOURS[w], edgecolor="#999999", label=w) for w in present],
              loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(present) or 1, fontsize=FONT,
              frameon=False, title="shading: who runs on the PE", title_fontsize=FONT,
              borderaxespad=0.1)
    changed: list[int] = []
    top = ((1 << f.width) - 1) if f is not None else None
    for lane, loc in enumerate(LOCATIONS):
        vals = [None if v is None else (f.extract(v) if f is not None else v) for v in lanes[loc]]
        t = top or max([v for v in vals if v is not None] or [1]) or 1
        ys = [math.nan if v is None else lane * 1.5 + 0.9 * v / t for v in vals]
        colour = LANE_COLOURS[loc]
        ax.axhline(lane * 1.5, color="#bbbbbb", linewidth=0.8, zorder=1)
        if xs:
            ax.step(xs + [x_end], ys + ys[-1:], where="post", color=colour, linewidth=2.4, zorder=3)
        prev: object = object()
        for i, v in enumerate(vals):
            if v != prev and i > 0:
                changed.append(i)
            if v is not None and v != prev:
                ax.text(xs[i] + 0.08, lane * 1.5 + 0.95, str(v) if t == 1 else f"{v:#x}", fontsize=FONT,
                        color=colour, va="bottom", zorder=4)
            prev = v
        if xs and all(v is None for v in vals):
            ax.text((xs[0] + x_end) / 2, lane * 1.5 + 0.4, "no copy kept", ha="center", va="center",
                    fontsize=FONT, color="#666666", style="italic", zorder=4)
    # The scale: 0 and the field's top value at each lane; the lane's name further left.
    ticks = [y for lane in range(n_lanes) for y in (lane * 1.5, lane * 1.5 + 0.9)]
    top_label = "1" if (top or 1) == 1 else f"{top:#x}"
    ax.set_yticks(ticks)
    ax.set_yticklabels(["0", top_label] * n_lanes, fontsize=FONT, color=INK)
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for lane, loc in enumerate(LOCATIONS):
        ax.text(-0.035, lane * 1.5 + 0.45, loc, transform=trans, ha="right", va="center", fontsize=FONT,
                color=LANE_COLOURS[loc], fontweight="bold")
    ax.set_ylim(-0.3, strip + 0.45)
    ax.set_xlim(xs[0] if xs else 0, x_end)
    return sorted(set(changed))


def timeline(trace_or_df: Any, register: str = "OSLSR_EL1", field: str | None = "OSLK", vcpu: int = 0, *,
             last: int | None = None, ax: Axes | None = None, dpi: int = 100, vhe: bool | None = None) -> Figure:
    """Steps on x, one lane per location with a 0/1 (or 0..max) scale, shaded by who runs on the PE.

    Only the steps where a lane changes are labelled below the axis (step number and kernel
    function), so long traces stay readable; the bands above the lanes say whether the host, the
    nVHE hypervisor code or the guest was running, and at which EL. ``vhe`` defaults to the
    Machine's mode or, for a Trace or DataFrame, to whether any step ran VHE code.
    """
    r = lookup(register)
    f = r.field(field) if field else None
    steps, funcs, phases, files, lanes = _timeline_rows(trace_or_df, r.name, vcpu, last)
    mode = _is_vhe(trace_or_df, files) if vhe is None else vhe
    if ax is None:
        fig = _figure(max(9.0, min(15.0, 0.18 * len(steps) + 5)), 7.6, dpi)
        ax = fig.add_axes((0.14, 0.40, 0.84, 0.44))
    else:
        fig = ax.figure  # type: ignore[assignment]
    xs = [float(i) for i in range(len(steps))]
    runners = [runner(p, fl, mode) for p, fl in zip(phases, files, strict=False)]
    changed = _draw_timeline(ax, xs, float(len(steps)), lanes, f, runners, phases)
    ax.set_xticks([xs[i] for i in changed])
    ax.set_xticklabels([f"{steps[i]} {_short(funcs[i])}" for i in changed], rotation=90, fontsize=FONT,
                       color=INK, family="monospace")
    what = f"{r.name}.{f.name}" if f else r.name
    ax.set_title(f"{what} over the world switch (vCPU {vcpu}, {'VHE' if mode else 'nVHE'}); "
                 "the steps where a copy changed are named below", fontsize=FONT + 1, color=INK, loc="left",
                 pad=44)
    return fig


def _phase_positions(phases: list[str]) -> tuple[list[float], list[tuple[str, int, int]]]:
    """x of each step when every phase run gets width 1: run k covers [k, k+1)."""
    runs = _runs(phases)
    xs: list[float] = []
    for k, (_, a, b) in enumerate(runs):
        n = b - a
        xs += [k + j / n for j in range(n)]
    return xs, runs


def timelines(sources: Mapping[str, Any], register: str = "OSLSR_EL1", field: str | None = "OSLK",
              vcpu: int = 0, *, dpi: int = 100) -> Figure:
    """Several traces one above the other on a phase-aligned axis, e.g. ``{"nVHE": m1, "VHE": m2}``.

    Every run of one phase (boot, reset, vcpu_load, enter, guest, exit, handle, vcpu_put) gets
    the same width in every panel, whatever number of kernel functions it took, so the same
    scenario under two host modes or two variants lines up phase by phase.
    """
    if not sources:
        raise ValueError("timelines() needs at least one {label: Machine, Trace or DataFrame} entry")
    r = lookup(register)
    f = r.field(field) if field else None
    rows = {label: _timeline_rows(src, r.name, vcpu, None) for label, src in sources.items()}
    layouts = {label: _phase_positions(row[2]) for label, row in rows.items()}
    width = max(len(runs) for _, runs in layouts.values())
    height = 3.4 * len(rows) + 1.8
    fig = _figure(max(10.0, min(16.0, 0.45 * width + 4)), height, dpi)
    bottom, top = 1.2 / height, 1 - 0.5 / height
    h = (top - bottom) / len(rows)
    axes = []
    for i, (label, (steps, _funcs, phases, files, lanes)) in enumerate(rows.items()):
        ax = fig.add_axes((0.16, bottom + (len(rows) - 1 - i) * h + 0.06 * h, 0.82, 0.72 * h))
        axes.append(ax)
        xs, runs = layouts[label]
        mode = _is_vhe(sources[label], files)
        runners = [runner(p, fl, mode) for p, fl in zip(phases, files, strict=False)]
        _draw_timeline(ax, xs, float(width), lanes, f, runners, phases)
        ax.set_xlim(0, width)
        name = label if "vhe" in label.lower() else f"{label} ({'VHE' if mode else 'nVHE'})"
        ax.set_title(f"{name}: {len(steps)} kernel steps in {len(runs)} phases",
                     fontsize=FONT + 1, color=INK, loc="left")
        ax.set_xticks([k + 0.5 for k in range(len(runs))])
        ax.set_xticklabels([])
    longest = max(layouts.values(), key=lambda lay: len(lay[1]))[1]
    axes[-1].set_xticklabels([ph for ph, _, _ in longest], rotation=90, fontsize=FONT, color=INK)
    what = f"{r.name}.{f.name}" if f else r.name
    fig.suptitle(f"{what}, phase by phase (each phase run has the same width in every panel)",
                 fontsize=FONT + 1, color=INK, x=0.02, y=1 - 0.12 / height, ha="left", va="top")
    return fig


def _short(fn: str, n: int = 26) -> str:
    fn = fn.strip("_")
    return fn if len(fn) <= n else fn[: n - 1] + "…"


# -- matrices --------------------------------------------------------------------------


def matrix(compare_df: pd.DataFrame, *, reference: str | None = None) -> Figure:
    """One cell per (row, variant), coloured by value in its row; framed where it differs from reference."""
    df = compare_df
    cols = [str(c) for c in df.columns]
    if not cols:
        raise ValueError("matrix() needs a DataFrame with one column per variant")
    ref = reference if reference is not None else ("baseline" if "baseline" in cols else cols[0])
    ref_i = cols.index(ref)
    rows = [" ".join(str(p) for p in k) if isinstance(k, tuple) else str(k) for k in df.index]
    fig = _figure(max(6.0, 1.5 * len(cols) + 3.5), max(2.2, 0.42 * len(rows) + 1.4))
    ax = fig.add_axes((0.32, 0.04, 0.66, 0.82))
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.axis("off")
    values = df.to_numpy(dtype=object)
    for i in range(len(rows)):
        row = [_cell_any(v) for v in values[i]]
        distinct: list[Any] = []
        for v in row:
            if v is not None and v not in distinct:
                distinct.append(v)
        for j, v in enumerate(row):
            differs = j != ref_i and v != row[ref_i]
            colour = MISSING if v is None else PALETTE[distinct.index(v) % len(PALETTE)]
            ax.add_patch(Rectangle((j + 0.03, i + 0.06), 0.94, 0.88, facecolor=colour, edgecolor=INK,
                                   linewidth=2.6 if differs else 0.6))
            is_int = isinstance(v, int) and not isinstance(v, bool)
            text = "—" if v is None else (f"{v:#x}" if is_int else str(v))
            ax.text(j + 0.5, i + 0.5, text + (" ≠" if differs else ""), ha="center", va="center",
                    fontsize=FONT, color=INK, family="monospace", fontweight="bold" if differs else "normal")
        ax.text(-0.08, i + 0.5, rows[i], ha="right", va="center", fontsize=FONT, color=INK)
    for j, c in enumerate(cols):
        ax.text(j + 0.5, -0.15, c, ha="center", va="bottom", fontsize=FONT + 1, color=INK, fontweight="bold")
    fig.text(0.02, 0.97, f"thick frame and ≠: differs from {ref}; — : no value", fontsize=FONT, color=INK,
             va="top")
    return fig


def _cell_any(v: Any) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return v
    try:
        return _cell(v)
    except (TypeError, ValueError):
        return v


def _outcome(v: Any) -> bool | None:
    if _missing(v):
        return None
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("pass", "passed", "ok", "yes", "true", "✓"):
            return True
        if s in ("fail", "failed", "no", "false", "✗"):
            return False
        return None
    return bool(v)


def selftest_grid(df: pd.DataFrame) -> Figure:
    """Pass/fail grid: rows are checks, columns variants (or a long variant/check/passed frame)."""
    cols_lower = {str(c).lower(): c for c in df.columns}
    if "variant" in cols_lower and any(k in cols_lower for k in ("passed", "pass", "ok")):
        vcol = cols_lower["variant"]
        pcol = next(cols_lower[k] for k in ("passed", "pass", "ok") if k in cols_lower)
        ccol = next((cols_lower[k] for k in ("check", "test", "name") if k in cols_lower), None)
        if ccol is None:
            raise ValueError("selftest_grid(): a long frame needs a 'check' column")
        df = df.pivot_table(index=ccol, columns=vcol, values=pcol, aggfunc="first", sort=False)
    rows = [" ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in df.index]
    cols = ["\n".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    label_in = 0.1 * max((len(r) for r in rows), default=4) + 0.3
    width = max(6.0, 1.15 * len(cols) + label_in + 0.3)
    fig = _figure(width, max(2.0, 0.45 * len(rows) + 1.5))
    ax = fig.add_axes((label_in / width, 0.04, 1 - label_in / width - 0.02, 0.78))
    ax.set_xlim(0, max(len(cols), 1))
    ax.set_ylim(max(len(rows), 1), 0)
    ax.axis("off")
    values = df.to_numpy(dtype=object)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ok = _outcome(values[i][j])
            colour = MISSING if ok is None else (PASS if ok else FAIL)
            mark = "n/a" if ok is None else ("✓ pass" if ok else "✗ fail")
            ax.add_patch(Rectangle((j + 0.03, i + 0.06), 0.94, 0.88, facecolor=colour, edgecolor=INK,
                                   linewidth=0.8))
            ax.text(j + 0.5, i + 0.5, mark, ha="center", va="center", fontsize=FONT, color=INK)
        ax.text(-0.08, i + 0.5, rows[i], ha="right", va="center", fontsize=FONT, color=INK)
    for j, c in enumerate(cols):
        ax.text(j + 0.5, -0.15, c, ha="center", va="bottom", fontsize=FONT + 1, color=INK, fontweight="bold")
    return fig


def to_png(fig: Figure, dpi: int | None = None) -> bytes:
    """PNG bytes of a figure (for an ipywidgets Image)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor=fig.get_facecolor(),
                pil_kwargs={"compress_level": 1})
    return buf.getvalue()


__all__ += ["to_png"]


class TimelineView:
    """A reusable timeline figure for widgets: artists made once, only their data updated per redraw.

    ``update(source)`` redraws the last ``steps`` events and returns PNG bytes. To stay fast
    (one redraw well under 100 ms) the x axis carries step numbers only; a widget lists the
    kernel functions of those steps next to the chart. Each lane has a 0/1 (or 0..max) scale,
    and a shaded band behind the lanes marks who runs on the PE at each step (see
    :func:`runner`), with a legend of the shades.
    """

    def __init__(self, register: str = "OSLSR_EL1", field: str | None = "OSLK", vcpu: int = 0, *,
                 steps: int = 40, dpi: int = 72, vhe: bool | None = None) -> None:
        from matplotlib.colors import to_rgb
        from matplotlib.patches import Patch
        from matplotlib.transforms import blended_transform_factory

        self.register = lookup(register)
        self.field = self.register.field(field) if field else None
        self.vcpu = vcpu
        self.steps = steps
        self.dpi = dpi
        self.vhe = vhe
        self.figure = _figure(8.0, 3.4, dpi)
        ax = self.ax = self.figure.add_axes((0.17, 0.14, 0.81, 0.66))
        _style(ax)
        n = len(LOCATIONS)
        self._rgb = {who: to_rgb(c) for who, c in RUNNER_COLOURS.items()}
        # One image row behind the lanes, one pixel per step: recolouring it is one set_data call.
        self.band = ax.imshow([[to_rgb(FACE)] * steps], aspect="auto", interpolation="nearest",
                              extent=(0, steps, -0.3, n * 1.5), zorder=0)
        self.lines = {}
        for lane, loc in enumerate(LOCATIONS):
            ax.axhline(lane * 1.5, color="#bbbbbb", linewidth=0.8, zorder=1)
            (self.lines[loc],) = ax.plot([], [], drawstyle="steps-post", color=LANE_COLOURS[loc],
                                         linewidth=2.4, zorder=3)
        top = ((1 << self.field.width) - 1) if self.field else None
        ax.set_yticks([y for lane in range(n) for y in (lane * 1.5, lane * 1.5 + 0.9)])
        ax.set_yticklabels(["0", "1" if top in (None, 1) else f"{top:#x}"] * n, fontsize=FONT, color=INK)
        trans = blended_transform_factory(ax.transAxes, ax.transData)
        for lane, loc in enumerate(LOCATIONS):
            ax.text(-0.045, lane * 1.5 + 0.45, loc, transform=trans, ha="right", va="center", fontsize=FONT,
                    color=LANE_COLOURS[loc], fontweight="bold")
        ax.set_ylim(-0.3, n * 1.5)
        ax.set_xlim(0, steps)
        self.ticks = list(range(0, steps, 5))
        ax.set_xticks([x + 0.5 for x in self.ticks])
        ax.legend(handles=[Patch(facecolor=c, edgecolor="#999999", label=w) for w, c in RUNNER_COLOURS.items()],
                  loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, fontsize=FONT, frameon=False,
                  borderaxespad=0.1, handlelength=1.2, columnspacing=0.8)
        what = f"{self.register.name}.{self.field.name}" if self.field else self.register.name
        self.title = self.figure.text(0.01, 0.985, f"{what}, last {steps} steps (vCPU {vcpu}); "
                                      "gap = no copy kept; shade = who runs", fontsize=FONT, color=INK,
                                      va="top")

    def update(self, source: Any) -> bytes:
        import math

        steps, funcs, phases, files, lanes = _timeline_rows(source, self.register.name, self.vcpu, self.steps)
        self.last_steps, self.last_functions = steps, funcs
        mode = self.vhe if self.vhe is not None else _is_vhe(source, files)
        self.last_runners = [runner(p, fl, mode) for p, fl in zip(phases, files, strict=False)]
        row = [self._rgb[w] for w in self.last_runners] + [(1.0, 1.0, 1.0)] * (self.steps - len(steps))
        self.band.set_data([row])
        f = self.field
        top = ((1 << f.width) - 1) if f else None
        xs = list(range(len(steps)))
        for lane, loc in enumerate(LOCATIONS):
            vals = [None if v is None else (f.extract(v) if f else v) for v in lanes[loc]]
            t = top or max([v for v in vals if v is not None] or [1]) or 1
            ys = [math.nan if v is None else lane * 1.5 + 0.9 * v / t for v in vals]
            if xs:
                self.lines[loc].set_data(xs + [len(xs)], ys + ys[-1:])
            else:
                self.lines[loc].set_data([], [])
        self.ax.set_xticklabels([str(steps[x]) if x < len(steps) else "" for x in self.ticks], fontsize=FONT)
        return to_png(self.figure, self.dpi)
