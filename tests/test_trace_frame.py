"""Trace.to_dataframe() is built column by column; it must hold exactly the rows of to_records()."""

from __future__ import annotations

import pytest

from kvmdbg import Machine
from kvmdbg.trace import Event, Trace

pd = pytest.importorskip("pandas")


def _from_records(trace: Trace) -> pd.DataFrame:
    """The frame as one row per record, the obvious (and memory-hungry) way."""
    from kvmdbg.frames import HexFrame

    columns = ["step", "phase", "function", "file", "vcpu", "location", "register", "value", "detail"]
    records = trace.to_records()
    df = HexFrame(records, columns=columns)
    df["value"] = pd.array([r["value"] for r in records], dtype="UInt64")
    df["vcpu"] = pd.array([r["vcpu"] for r in records], dtype="Int64")
    df["step"] = df["step"].astype("int64")
    return df


@pytest.mark.parametrize("trace", [True, 7])
@pytest.mark.parametrize("vhe", [False, True])
def test_the_frame_holds_the_rows_of_the_records(trace: bool | int, vhe: bool) -> None:
    m = Machine("p2", vhe=vhe, vcpus=2, trace=trace)
    m.guest_write("OSLAR_EL1", 1, vcpu=1)
    m.set_one_reg("OSLSR_EL1", (1 << 64) - 1)  # above 2**63: must survive as an unsigned integer
    m.vcpu_put(1)
    df = m.trace.to_dataframe()
    pd.testing.assert_frame_equal(df, _from_records(m.trace))
    assert df["value"].max() == (1 << 64) - 1 and df["vcpu"].isna().any()
    if vhe:
        assert df["value"].isna().any()  # a VHE host keeps no copy of its EL1 OSLSR_EL1


def test_keys_that_appear_late_and_values_that_go_missing() -> None:
    t = Trace()
    a, b = ("physical", "A", -1), ("vcpu", "B", 0)
    t.append(Event(1, "p", "f", "x.c", "one", None, ((a, 1),)))
    t.append(Event(2, "p", "g", "x.c", "two", 0, ((b, 5),)))
    t.append(Event(3, "p", "h", "x.c", "three", 0, ((a, None),)))
    t.append(Event(4, "p", "h", "x.c", "four", 0, ()))
    df = t.to_dataframe()
    pd.testing.assert_frame_equal(df, _from_records(t))
    assert list(df["step"]) == [1, 2, 2, 3, 3, 4, 4]
    t.clear()
    t.append(Event(5, "p", "k", "x.c", "five", 0, ((b, 6),)))
    pd.testing.assert_frame_equal(t.to_dataframe(), _from_records(t))
    assert len(Trace().to_dataframe()) == 0
