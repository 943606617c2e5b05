"""Trace export: exact round trips, damaged files refused, and nothing lost on a failed write."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import warnings
import zlib
from pathlib import Path

import pandas as pd
import pytest

from kvmdbg import Machine
from kvmdbg.errors import KvmdbgError, TraceFormatError
from kvmdbg.teach import export
from kvmdbg.teach.export import (
    COLUMNS,
    FORMATS,
    ExportError,
    ExportTargetError,
    ExportTypeError,
    ExportValueError,
    TraceIntegrityWarning,
    encode_trace,
    read_trace,
    sidecar_path,
    write_trace,
)
from kvmdbg.trace import Trace


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
    df = type(Trace().to_dataframe())(df)  # read_trace gives the class to_dataframe gives
    for fmt in FORMATS:
        pd.testing.assert_frame_equal(df, read_trace(write_trace(df, tmp_path / f"v.{fmt}", fmt)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file_is_refused(frame: pd.DataFrame, tmp_path: Path, fmt: str, cut: float) -> None:
    bad = write_trace(frame, tmp_path / f"t.{fmt}", fmt)  # a CSV keeps its sidecar next to it
    data = bad.read_bytes()
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
    with pytest.raises(ExportValueError, match="unknown trace format"):
        write_trace(frame, tmp_path / "t.xlsx", "xlsx")
    with pytest.raises(ExportValueError, match="missing column"):
        write_trace(frame.drop(columns=["value"]), tmp_path / "t.csv")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(TraceFormatError, match="format"):
        read_trace(other)


# --------------------------------------------------------------------------- CSV that fits pandas habits


def test_pandas_read_csv_reads_the_export_by_default(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_trace(frame, tmp_path / "t.csv")
    plain = pd.read_csv(path)
    assert list(plain.columns) == list(COLUMNS)
    assert len(plain) == len(frame)
    assert plain["step"].tolist() == frame["step"].tolist()
    assert plain["register"].tolist() == frame["register"].tolist()
    known = frame["value"].notna()
    assert plain["value"][known].astype("uint64").tolist() == frame["value"][known].astype("uint64").tolist()


def test_the_csv_sidecar_carries_version_row_count_and_crc(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_trace(frame, tmp_path / "t.csv")
    side = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path).name == "t.csv.kvmdbg.json"
    assert side["format"] == "kvmdbg-trace-csv" and side["version"] == 2 and side["file"] == "t.csv"
    assert side["rows"] == len(frame)
    assert side["crc32"] == f"{zlib.crc32(path.read_bytes()):08x}"


def test_a_csv_without_its_sidecar_is_read_with_a_warning(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_trace(frame, tmp_path / "t.csv")
    sidecar_path(path).unlink()
    with pytest.warns(TraceIntegrityWarning, match="no sidecar"):
        back = read_trace(path)
    pd.testing.assert_frame_equal(frame, back)


def test_a_csv_that_does_not_match_its_sidecar_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_trace(frame, tmp_path / "t.csv")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # a whole row gone: still a well-formed CSV
    with pytest.raises(TraceFormatError, match="checksum"):
        read_trace(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(TraceFormatError, match="sidecar"):
        read_trace(path)


def test_the_first_csv_form_with_a_header_line_is_still_read_and_checked(frame: pd.DataFrame, tmp_path: Path) -> None:
    body = write_trace(frame, tmp_path / "new.csv").read_bytes()
    old = tmp_path / "old.csv"
    old.write_bytes(f"# kvmdbg-trace v1 rows={len(frame)} crc32={zlib.crc32(body):08x}\n".encode() + body)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(frame, read_trace(old))
    old.write_bytes(old.read_bytes()[:-10])
    with pytest.raises(TraceFormatError, match="checksum"):
        read_trace(old)


# --------------------------------------------------------------------------- a failed export loses nothing


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_failing_halfway_leaves_the_earlier_file(frame: pd.DataFrame, tmp_path: Path, fmt: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_trace(frame.head(5), tmp_path / f"t.{fmt}")
    before = path.read_bytes()
    before_side = sidecar_path(path).read_bytes() if fmt == "csv" else None
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:  # the disk fills up in the middle of the file
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.os, "write", half_then_full)
    with pytest.raises(ExportError, match="No space left") as info:
        write_trace(frame, path)
    assert isinstance(info.value, OSError) and isinstance(info.value, KvmdbgError)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before
    if before_side is not None:
        assert sidecar_path(path).read_bytes() == before_side
    assert _leftovers(tmp_path) == []
    pd.testing.assert_frame_equal(read_trace(path), frame.head(5))


def test_a_failing_parquet_writer_never_deletes_the_target(frame: pd.DataFrame, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    path = write_trace(frame.head(5), tmp_path / "t.parquet")
    before = path.read_bytes()
    real = pq.write_table

    def fails_midway(table, where, *args, **kwargs):  # noqa: ANN001 - pyarrow's signature
        real(table.slice(0, 1), where, *args, **kwargs)  # some bytes out, then an error, as on a full disk
        if isinstance(where, (str, os.PathLike)):
            os.unlink(where)  # what pyarrow does with a path it was given when a write fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", fails_midway)
    with pytest.raises(OSError):
        write_trace(frame, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_dev_full_is_refused_and_with_force_fails_cleanly_leaving_the_device(frame: pd.DataFrame) -> None:
    dev = Path("/dev/full")
    rdev = dev.stat().st_rdev
    with pytest.raises(ExportTargetError, match="character device.*force=True"):
        write_trace(frame, dev, "csv")
    with pytest.raises(ExportError, match="No space left") as info:
        write_trace(frame, dev, "parquet", force=True)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    st = os.lstat(dev)  # the device node is still there, the same device
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev
    assert not Path("/dev/full.kvmdbg.json").exists()


def test_a_fifo_is_refused_at_once_and_written_into_with_force(frame: pd.DataFrame, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ExportTargetError, match="FIFO"):
        write_trace(frame, fifo)  # no reader: must not block
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_trace(frame, fifo, force=True)
    reader.join(10)
    assert got == [encode_trace(frame, "json")]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_followed_and_kept(frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    real = write_trace(frame.head(3), tmp_path / "data" / "real.csv")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_trace(frame, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    pd.testing.assert_frame_equal(read_trace(real), frame)
    pd.testing.assert_frame_equal(read_trace(link), frame)  # the sidecar is found next to the real file
    before = real.read_bytes()
    monkeypatch.setattr(export, "_write_all", lambda fd, data: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    with pytest.raises(ExportError):
        write_trace(frame.head(1), link)
    assert link.is_symlink() and real.read_bytes() == before
    assert _leftovers(tmp_path / "data") == []


def test_a_dangling_symlink_creates_the_file_it_names(frame: pd.DataFrame, tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "new.json")
    write_trace(frame, link)
    assert link.is_symlink() and (tmp_path / "new.json").is_file()
    pd.testing.assert_frame_equal(read_trace(link), frame)


def test_a_replaced_file_keeps_its_permissions(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_trace(frame, tmp_path / "t.json")
    path.chmod(0o640)
    write_trace(frame.head(2), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_bad_targets_and_inputs_raise_kvmdbg_errors_of_the_expected_builtin_type(frame: pd.DataFrame,
                                                                                 tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist") as info:
        write_trace(frame, tmp_path / "no" / "such" / "t.csv")
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOENT
    with pytest.raises(ExportTargetError, match="directory") as info:
        write_trace(frame, tmp_path, "csv", force=True)  # never, even with force
    assert isinstance(info.value, OSError)
    locked = Path("/sys/kernel") if os.geteuid() == 0 else tmp_path / "ro"
    if os.geteuid() != 0:
        locked.mkdir()
        locked.chmod(0o500)
    with pytest.raises(ExportError, match="ermission denied") as info:
        write_trace(frame, locked / "t.csv")
    assert isinstance(info.value, OSError) and info.value.errno == errno.EACCES
    for not_a_frame in (None, [1, 2], {"step": [1]}, frame["value"]):
        with pytest.raises(ExportTypeError, match="DataFrame") as tinfo:
            write_trace(not_a_frame, tmp_path / "x.csv")  # type: ignore[arg-type]
        assert isinstance(tinfo.value, TypeError) and isinstance(tinfo.value, KvmdbgError)
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(ExportValueError, match="contradicts"):
        write_trace(frame, tmp_path / "t.csv", "json")
    with pytest.raises(ExportTypeError):
        write_trace(frame, tmp_path / "t.csv", force="yes")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="no trace file") as info:
        read_trace(tmp_path / "missing.csv")
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize("flips", [[(415, 128)], [(262137, 128)]])
def test_parquet_files_that_once_leaked_an_arrow_exception_are_refused(frame: pd.DataFrame, tmp_path: Path,
                                                                        flips: list[tuple[int, int]]) -> None:
    # found by hypothesis in tests/test_fuzz.py (pandas 3, pyarrow 26: strings decode lazily)
    m = Machine("p2", vhe=True)
    m.guest_write("OSLAR_EL1", 1)
    m.vcpu_put()
    original = m.trace.to_dataframe()
    path = write_trace(original, tmp_path / "t.parquet")
    raw = bytearray(path.read_bytes())
    for pos, mask in flips:
        raw[pos % len(raw)] ^= mask
    path.write_bytes(bytes(raw))
    try:
        back = read_trace(path)
    except TraceFormatError:
        return
    pd.testing.assert_frame_equal(back, original)


def test_parquet_string_pages_with_a_flipped_high_bit_are_refused_or_equal(frame: pd.DataFrame,
                                                                            tmp_path: Path) -> None:
    raw = write_trace(frame, tmp_path / "t.parquet").read_bytes()
    bad = tmp_path / "bad.parquet"
    for pos in range(4, len(raw) - 8, 13):
        damaged = bytearray(raw)
        damaged[pos] ^= 0x80
        bad.write_bytes(bytes(damaged))
        try:
            back = read_trace(bad)
        except TraceFormatError:
            continue
        pd.testing.assert_frame_equal(back, frame, obj=f"parquet with byte {pos} flipped")
