"""What a person sees in a DataFrame: register values in hex, integers kept underneath."""

from __future__ import annotations

import pandas as pd
import pytest

from kvmdbg import Machine, compare
from kvmdbg.frames import HexFrame, format_register_value


@pytest.fixture(scope="module")
def machine() -> Machine:
    m = Machine("p2")
    m.guest_write("OSLAR_EL1", 0)
    m.guest_read("OSLSR_EL1")
    return m


def test_the_trace_dataframe_keeps_integers_and_shows_hex(machine: Machine) -> None:
    df = machine.trace.to_dataframe()
    assert isinstance(df, pd.DataFrame) and isinstance(df, HexFrame)
    oslsr = df[(df["register"] == "OSLSR_EL1") & (df["location"] == "vcpu")]
    assert isinstance(oslsr, HexFrame)  # filtering keeps the display
    assert int(oslsr["value"].iloc[-1]) == 0xA  # the data are numbers
    shown = oslsr.to_string()
    assert "0xa OSLK" in shown and " 10\n" not in shown + "\n"
    assert "0xa OSLK" in oslsr._repr_html_()


def test_mdcr_el2_shows_the_debug_trap_bits_by_name(machine: Machine) -> None:
    df = machine.trace.to_dataframe()
    mdcr = df[df["register"] == "MDCR_EL2"]
    assert "TDOSA" in mdcr.to_string() and "544358" not in mdcr.to_string()
    assert format_register_value("MDCR_EL2", 0x84E66) == "0x84e66 TDA|TDOSA|TDRA"
    assert format_register_value("MDCR_EL2", 0x0) == "0x0"
    assert format_register_value("OSLSR_EL1", 0x8) == "0x8"


@pytest.mark.parametrize("value", [None, True, "ok", 1.5, pd.NA])
def test_values_that_are_not_register_values_are_left_alone(value: object) -> None:
    assert format_register_value("OSLSR_EL1", value) is value


def test_unknown_registers_are_left_alone() -> None:
    assert format_register_value("lock write", 8) == 8


def test_compare_displays_hex_and_keeps_counts_decimal() -> None:
    df = compare("migration", ["baseline", "p3"])
    assert isinstance(df, HexFrame)
    assert df.loc[("vcpu", "OSLSR_EL1"), "p3"] == 0xA  # raw integers in the data
    shown = df.display_frame()
    assert shown.loc[("vcpu", "OSLSR_EL1"), "p3"] == "0xa OSLK"
    saved = df.loc[("scenario", "saved"), "p3"]
    assert isinstance(saved, int) and shown.loc[("scenario", "saved"), "p3"] == saved  # a count: decimal
    toggle = compare("oslock-toggle", ["upstream"]).display_frame()
    assert toggle.loc[("scenario", "OSLSR after lock"), "upstream"] == "0xa"


def test_clear_keeps_the_dataframe_complete() -> None:
    m = Machine("p2")
    m.guest_write("OSLAR_EL1", 1)
    per_step = len(m.trace.to_dataframe()) // len(m.trace)
    m.trace.clear()
    m.guest_read("OSLSR_EL1")
    df = m.trace.to_dataframe()
    assert len(df) == len(m.trace) * per_step  # every watched value at every step, not only changes
    last = df[df["step"] == df["step"].max()]
    assert {r: int(v) for r, v, loc in zip(last["register"], last["value"], last["location"], strict=True)
            if loc == "vcpu" and not pd.isna(v)}["OSLSR_EL1"] == 0xA
