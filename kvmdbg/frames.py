"""DataFrames that show register values in hex, and keep the integers underneath.

``Trace.to_dataframe()`` and ``compare()`` return a :class:`HexFrame`: an ordinary
``pandas.DataFrame`` (every pandas operation works, and ``df["value"]`` holds the
raw integers) whose *display* (its text repr in a terminal, its HTML table in a
notebook) writes each register value the way the lessons do: ``0xa``, and for the
registers that are mostly single-bit flags, the names of the bits set
(``0x84e66 TDA|TDOSA|TDRA|...``). Which cells are register values is read from the
frame itself: a ``register`` column beside a ``value`` column (the trace), or a
``register`` level in the row index (``compare()``); a row whose register the
model does not know (a scenario's own observation such as an errno) is left as
it is. pandas is imported by this module, so only code that already builds a
DataFrame imports it.

pandas documents subclassing through ``_constructor``; results of slicing and
filtering stay HexFrames, so a filtered trace still displays in hex.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kvmdbg.arch.registers import REGISTERS, SysReg

__all__ = ["HexFrame", "format_register_value", "FLAG_REGISTERS"]

# For these registers the display names the bits that are set, among the ones the lessons
# teach (BRIEF.md section 3); the hex value still shows every bit.
FLAG_REGISTERS: dict[str, tuple[str, ...]] = {
    "MDCR_EL2": ("TDE", "TDA", "TDOSA", "TDRA"),
    "MDSCR_EL1": ("SS", "TDCC", "KDE", "MDE"),
    "OSLSR_EL1": ("OSLK",),
    "OSDLR_EL1": ("DLK",),
    "DBGPRCR_EL1": ("CORENPDRQ",),
}

# A scenario's own observations (compare()'s "scenario" rows) are addresses and register
# values, shown in hex, except those whose name says they count something or are an errno.
_DECIMAL_WORDS = ("count", "saved", "restored", "errno", "number", "steps")


def _observation(key: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or any(w in key.lower() for w in _DECIMAL_WORDS):
        return value
    return f"{value:#x}"


def format_register_value(register: str, value: Any) -> Any:
    """``0xa`` for a register value (bit names for flag registers); anything else unchanged."""
    if value is None or isinstance(value, bool) or isinstance(value, str):
        return value
    try:
        if pd.isna(value):
            return value
        v = int(value)
    except (TypeError, ValueError):
        return value
    if v != value:  # a float with a fraction: not a register value
        return value
    r: SysReg | None = REGISTERS.get(str(register).split("[")[0].upper())
    if r is None:
        return value
    text = f"{v:#x}"
    names = [n for n in FLAG_REGISTERS.get(r.name, ()) if r.get(v, n)]
    if names:
        text += " " + "|".join(names)
    return text


class HexFrame(pd.DataFrame):  # type: ignore[misc]  # pandas ships without type stubs here
    """A DataFrame whose display shows register values in hex; the data stay integers."""

    @property
    def _constructor(self) -> type[HexFrame]:
        return HexFrame

    def display_frame(self) -> pd.DataFrame:
        """A plain DataFrame of strings, as this frame is shown (for printing or exporting a view)."""
        plain = pd.DataFrame(self)
        if "register" in plain.columns and "value" in plain.columns:
            shown = plain.copy()
            shown["value"] = [format_register_value(r, v) for r, v in zip(plain["register"], plain["value"],
                                                                           strict=True)]
            return shown
        if isinstance(plain.index, pd.MultiIndex) and "register" in (plain.index.names or []):
            regs = plain.index.get_level_values("register")
        elif plain.index.name == "register":
            regs = plain.index
        else:
            return plain
        rows = []
        for reg, row in zip(regs, plain.to_numpy(dtype=object), strict=True):
            known = str(reg).split("[")[0].upper() in REGISTERS
            rows.append([format_register_value(reg, v) if known else _observation(str(reg), v) for v in row])
        return pd.DataFrame(rows, index=plain.index, columns=plain.columns, dtype=object)

    def __repr__(self) -> str:
        return repr(self.display_frame())

    def _repr_html_(self) -> str | None:
        html: str | None = self.display_frame()._repr_html_()
        return html

    def to_string(self, *args: Any, **kwargs: Any) -> str:
        text: str = self.display_frame().to_string(*args, **kwargs)
        return text

