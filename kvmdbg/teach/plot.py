"""Charts of registers, traces and comparisons; each function returns a Figure.

Figures are built with :class:`matplotlib.figure.Figure` directly (never
pyplot), so nothing accumulates in pyplot's figure list and a widget can
reuse one figure. Every chart has a white face and dark text, so it reads
the same in a light or a dark notebook theme; fonts are 11 pt or larger.
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

__all__ = ["bitfield", "bitfields", "timeline", "matrix", "selftest_grid", "timeline_data"]

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


def _figure(width: float, height: float, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, facecolor=FACE)
    return fig


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
    ax.set_ylim(-0.9, 1.9)
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
        ax.text(total, -0.45, f"bits 63:{top} not shown (RES0 / not modelled)", ha="right", va="center",
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
        fig = _figure(max(6.0, min(14.0, 1.1 * len(segs) + 2)), 2.0)
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    else:
        fig = ax.figure  # type: ignore[assignment]
    _draw_register(ax, r, value, previous, _title(r, value, previous))
    return fig  # type: ignore[return-value]


def bitfields(reg: str | SysReg, values: Mapping[str, int | None]) -> Figure:
    """One diagram per variant, stacked; fields that differ from the first variant are highlighted."""
    r = _reg(reg)
    if not values:
        raise ValueError("bitfields() needs at least one {variant: value} entry")
    items = list(values.items())
    ref = items[0][1]
    _, segs = _segments(r)
    fig = _figure(max(6.0, min(14.0, 1.1 * len(segs) + 2)), 1.9 * len(items))
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


def timeline_data(source: Any, register: str = "OSLSR_EL1", vcpu: int = 0,
                  last: int | None = None) -> tuple[list[int], list[str], dict[str, list[int | None]]]:
    """(steps, functions, {location: values}) for ``register`` from a Trace, Machine or trace DataFrame."""
    reg = lookup(register).name
    if hasattr(source, "trace") and isinstance(source.trace, Trace):
        source = source.trace
    steps: list[int] = []
    funcs: list[str] = []
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
            for loc in LOCATIONS:
                lanes[loc].append(vals[loc])
        return steps, funcs, lanes
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
    first_fn = df.drop_duplicates("step").set_index("step")["function"]
    table: dict[tuple[int, str], int | None] = {}
    for s, loc, v in zip(sub["step"], sub["location"], sub["value"], strict=False):
        table[(int(s), loc)] = _cell(v)
    for s in order:
        steps.append(s)
        funcs.append(str(first_fn.get(s, "")))
        for loc in LOCATIONS:
            lanes[loc].append(table.get((s, loc)))
    return steps, funcs, lanes


def timeline(trace_or_df: Any, register: str = "OSLSR_EL1", field: str | None = "OSLK", vcpu: int = 0, *,
             last: int | None = None, ax: Axes | None = None, dpi: int = 100) -> Figure:
    """Steps on x, one lane per location, the field's value as a step line; gaps where no value is kept."""
    import math

    r = lookup(register)
    f = r.field(field) if field else None
    steps, funcs, lanes = timeline_data(trace_or_df, r.name, vcpu, last)
    maxv = (1 << f.width) - 1 if f else None
    if ax is None:
        fig = _figure(max(6.0, min(16.0, 0.24 * len(steps) + 3)), 6.0, dpi)
        ax = fig.add_axes((0.13, 0.5, 0.85, 0.43))
    else:
        fig = ax.figure  # type: ignore[assignment]
    _style(ax)
    xs = list(range(len(steps)))
    what = f"{r.name}.{f.name}" if f else r.name
    for lane, loc in enumerate(LOCATIONS):
        vals = lanes[loc]
        if f is not None:
            fv = [None if v is None else f.extract(v) for v in vals]
            top = maxv or 1
        else:
            fv = vals
            top = max([v for v in vals if v is not None] or [1]) or 1
        ys = [math.nan if v is None else lane * 1.5 + 0.9 * v / top for v in fv]
        colour = LANE_COLOURS[loc]
        ax.axhline(lane * 1.5, color="#bbbbbb", linewidth=0.8, zorder=0)
        if xs:
            ax.step(xs + [xs[-1] + 1], ys + ys[-1:], where="post", color=colour, linewidth=2.4)
        prev: object = object()
        for x, v in zip(xs, fv, strict=False):
            if v is None and prev is not None and xs:
                ax.text(x + 0.5, lane * 1.5 + 0.35, "—", ha="center", fontsize=FONT, color="#888888")
            elif v is not None and v != prev:
                ax.text(x + 0.1, lane * 1.5 + 0.95, str(v) if (f and f.width == 1) else f"{v:#x}",
                        fontsize=FONT, color=colour, va="bottom")
            prev = v
    ax.set_yticks([i * 1.5 + 0.45 for i in range(len(LOCATIONS))])
    ax.set_yticklabels(list(LOCATIONS), fontsize=FONT, color=INK)
    ax.set_ylim(-0.3, len(LOCATIONS) * 1.5)
    ax.set_xlim(-0.2, max(len(xs), 1) + 0.2)
    ax.set_xticks([x + 0.5 for x in xs])
    ax.set_xticklabels([f"{s} {_short(fn)}" for s, fn in zip(steps, funcs, strict=False)], rotation=90,
                       fontsize=FONT,
                       color=INK, family="monospace")
    ax.set_title(f"{what} over the world switch (vCPU {vcpu}); a gap = no copy kept", fontsize=FONT + 1,
                 color=INK)
    return fig  # type: ignore[return-value]


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
    kernel functions of those steps next to the chart.
    """

    def __init__(self, register: str = "OSLSR_EL1", field: str | None = "OSLK", vcpu: int = 0, *,
                 steps: int = 40, dpi: int = 72) -> None:
        self.register = lookup(register)
        self.field = self.register.field(field) if field else None
        self.vcpu = vcpu
        self.steps = steps
        self.dpi = dpi
        self.figure = _figure(8.0, 3.0, dpi)
        ax = self.ax = self.figure.add_axes((0.15, 0.16, 0.83, 0.72))
        _style(ax)
        self.lines = {}
        for lane, loc in enumerate(LOCATIONS):
            ax.axhline(lane * 1.5, color="#bbbbbb", linewidth=0.8, zorder=0)
            (self.lines[loc],) = ax.plot([], [], drawstyle="steps-post", color=LANE_COLOURS[loc],
                                         linewidth=2.4)
        ax.set_yticks([i * 1.5 + 0.45 for i in range(len(LOCATIONS))])
        ax.set_yticklabels(list(LOCATIONS), fontsize=FONT, color=INK)
        ax.set_ylim(-0.3, len(LOCATIONS) * 1.5)
        ax.set_xlim(0, steps)
        self.ticks = list(range(0, steps, 5))
        ax.set_xticks([x + 0.5 for x in self.ticks])
        what = f"{self.register.name}.{self.field.name}" if self.field else self.register.name
        self.title = ax.set_title(f"{what}, last {steps} steps (vCPU {vcpu}); gap = no copy kept",
                                  fontsize=FONT, color=INK)

    def update(self, source: Any) -> bytes:
        import math

        steps, funcs, lanes = timeline_data(source, self.register.name, self.vcpu, self.steps)
        self.last_steps, self.last_functions = steps, funcs
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
