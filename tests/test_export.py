"""Trace export: exact round trips, and damaged files refused with TraceFormatError."""

from __future__ import annotations

from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from kvmdbg import Machine  # noqa: E402
from kvmdbg.errors import TraceFormatError  # noqa: E402
from kvmdbg.teach.export import FORMATS, read_trace, write_trace  # noqa: E402


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    m = Machine("p2", vhe=True)
    m.guest_write("OSLAR_EL1", 1)
    m.guest_read("OSLSR_EL1")
    m.vcpu_put()
    return m.trace.to_dataframe()


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_exact(frame: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    path = write_trace(frame, tmp_path / f"t.{fmt}", fmt)
    back = read_trace(path, fmt)
    pd.testing.assert_frame_equal(frame, back)
    assert str(back["step"].dtype) == "int64"
    assert str(back["vcpu"].dtype) == "Int64"
    assert str(back["value"].dtype) == "UInt64"
    assert back["value"].isna().any() and back["vcpu"].isna().any()  # missing values survive


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_from_suffix_and_from_content(frame: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    write_trace(frame, tmp_path / f"t.{fmt}")
    pd.testing.assert_frame_equal(frame, read_trace(tmp_path / f"t.{fmt}"))
    odd = tmp_path / "trace.dat"
    write_trace(frame, odd, fmt)
    pd.testing.assert_frame_equal(frame, read_trace(odd))


def test_full_64_bit_values_and_empty_text(tmp_path: Path) -> None:
    df = pd.DataFrame({
        "step": pd.Series([1, 2], dtype="int64"), "phase": ["a", "b"], "function": ["f", "g"],
        "file": ["x.c", ""], "vcpu": pd.array([None, 3], dtype="Int64"), "location": ["physical", "vcpu"],
        "register": ["R", "R"], "value": pd.array([(1 << 64) - 1, None], dtype="UInt64"),
        "detail": ["has, a comma and \"quotes\"\nand a newline", ""],
    })
    df = df.astype({c: pd.Series(["x"]).dtype for c in ("phase", "function", "file", "location", "register",
                                                          "detail")})
    for fmt in FORMATS:
        pd.testing.assert_frame_equal(df, read_trace(write_trace(df, tmp_path / f"v.{fmt}", fmt)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file_is_refused(frame: pd.DataFrame, tmp_path: Path, fmt: str, cut: float) -> None:
    data = write_trace(frame, tmp_path / f"t.{fmt}", fmt).read_bytes()
    bad = tmp_path / f"cut.{fmt}"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(TraceFormatError, match="not a valid kvmdbg"):
        read_trace(bad)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_edited_value_is_refused(frame: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    path = write_trace(frame, tmp_path / f"t.{fmt}", fmt)
    text = path.read_text()
    path.write_text(text.replace("physical", "phys1cal", 1))
    with pytest.raises(TraceFormatError, match="checksum"):
        read_trace(path)


def test_corrupted_parquet_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_trace(frame, tmp_path / "t.parquet", "parquet")
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError):
        read_trace(path)


def test_parquet_with_wrong_columns_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    frame.drop(columns=["detail"]).to_parquet(path)
    with pytest.raises(TraceFormatError, match="columns"):
        read_trace(path)
    frame.assign(value=frame["value"].astype("float64")).to_parquet(path)
    with pytest.raises(TraceFormatError):
        read_trace(path)


def test_garbage_and_unknown_format(tmp_path: Path, frame: pd.DataFrame) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01hello")
    with pytest.raises(TraceFormatError, match="not a kvmdbg trace"):
        read_trace(junk)
    with pytest.raises(ValueError, match="unknown trace format"):
        write_trace(frame, tmp_path / "t.xlsx", "xlsx")
    with pytest.raises(ValueError, match="missing column"):
        write_trace(frame.drop(columns=["value"]), tmp_path / "t.csv")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(TraceFormatError, match="format"):
        read_trace(other)
