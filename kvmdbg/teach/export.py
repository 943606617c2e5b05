"""Write a trace DataFrame to CSV, Parquet or JSON, and read it back exactly.

The frame is the long format of :meth:`kvmdbg.trace.Trace.to_dataframe`:
``step`` (int64), ``vcpu`` (Int64, <NA> for the PE and the host), ``value``
(UInt64, <NA> where a location keeps no copy) and text columns.

Nothing is lost on a failed export. The whole file is first encoded in memory,
then written to a temporary file in the target's folder and renamed over the
target only once it is complete (``os.replace``, atomic on POSIX), so a full
disk, a quota or an interrupted write leaves the earlier file as it was.
pyarrow is never given the user's path (its writer deletes the path it was
given when a write fails): it writes into an in-memory buffer.

What an existing target may be:

* a regular file: replaced atomically (its permission bits are kept);
* a symbolic link: followed. The file it points to is replaced atomically and
  the link itself stays a link to it, as a shell's ``>`` redirection would
  write through it; a dangling link creates the file it names;
* a character device, FIFO or socket: refused with :class:`ExportTargetError`
  unless ``force=True``. With ``force`` the completed bytes are written into it
  (``/dev/stdout``, a pipe read by another program); the node itself is never
  replaced or removed, and no sidecar is written;
* a directory: always refused.

Reading checks the columns and every value and raises
:class:`~kvmdbg.errors.TraceFormatError` instead of returning a wrong frame.
Each format carries a row count and a CRC-32:

* CSV: a plain CSV that ``pandas.read_csv("t.csv")`` reads by default (the
  header row is the column names). The format version, row count and CRC-32
  of the file's bytes live in a sidecar, ``t.csv.kvmdbg.json``, written next to
  it. :func:`read_trace` refuses a CSV whose sidecar does not match it. A CSV
  without a sidecar (copied alone, or written by another tool) is still read,
  with every column and value checked, but its completeness cannot be: that
  case emits :class:`TraceIntegrityWarning` so it is never silent. Files in the
  first CSV form (a ``# kvmdbg-trace v1 rows=N crc32=X`` first line) are
  still read and checked.
* JSON: one document with the rows, their count and CRC-32.
* Parquet: the row count and CRC-32 in the file's schema metadata (pyarrow
  writes no page checksums by default).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import tempfile
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvmdbg.errors import KvmdbgError, TraceFormatError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "FORMATS", "SIDECAR_SUFFIX", "ExportError", "ExportTargetError", "ExportTypeError",
           "ExportValueError", "TraceIntegrityWarning", "encode_trace", "format_for", "read_trace",
           "sidecar_path", "write_trace"]

COLUMNS = ("step", "phase", "function", "file", "vcpu", "location", "register", "value", "detail")
_TEXT = ("phase", "function", "file", "location", "register", "detail")
FORMATS = ("csv", "parquet", "json")
SIDECAR_SUFFIX = ".kvmdbg.json"
_MAGIC = "# kvmdbg-trace"  # the first CSV form's header line (read, never written)
_VERSION = 1  # JSON document version
_CSV_VERSION = 2  # 1 = header line inside the CSV, 2 = sidecar
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}
_CHUNK = 1 << 16


# --------------------------------------------------------------------------- errors


class ExportError(KvmdbgError, OSError):
    """A trace file that cannot be written or read: missing folder, no permission, disk full, ...

    An ``OSError`` (``errno`` and ``filename`` set where known) and a ``KvmdbgError``.
    """

    def __init__(self, message: str, err: int | None = None, filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(err, message)
        self.message = message
        self.filename = None if filename is None else os.fspath(filename)

    def __str__(self) -> str:  # OSError's str() would prefix "[Errno N]"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.errno, self.filename))


class ExportTargetError(ExportError):
    """An existing target that is not a regular file (a directory, device, FIFO or socket)."""


class ExportTypeError(KvmdbgError, TypeError):
    """Something that is not a trace DataFrame (or a path that is not a path)."""


class ExportValueError(KvmdbgError, ValueError):
    """A DataFrame without the trace columns, or a format that is unknown or contradicts the suffix."""


class TraceIntegrityWarning(UserWarning):
    """A trace read without its integrity check (a CSV without its sidecar)."""


# --------------------------------------------------------------------------- formats


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt`` if given, else from the suffix (csv by default).

    ``fmt`` that contradicts a known suffix (``t.csv`` as json) is refused: such a file would
    be read back as the wrong format by every tool that trusts the suffix.
    """
    by_suffix = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        return by_suffix or "csv"
    f = _known_format(fmt)
    if by_suffix is not None and by_suffix != f:
        raise ExportValueError(f"the format {f!r} contradicts the file name {os.fspath(path)!r} (a {by_suffix} "
                               f"suffix); rename the file to end in .{f} or pass fmt={by_suffix!r}")
    return f


def _known_format(fmt: object) -> str:
    if not isinstance(fmt, str):
        raise ExportTypeError(f"fmt must be a string, one of {', '.join(FORMATS)}, not {type(fmt).__name__}")
    f = fmt.strip().lower().lstrip(".")
    if f == "pq":
        f = "parquet"
    if f not in FORMATS:
        raise ExportValueError(f"unknown trace format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return f


def _path(path: object) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise ExportTypeError(f"path must be a file name (str or pathlib.Path), not {type(path).__name__}")
    p = Path(path)
    if not str(path).strip():
        raise ExportValueError("path is empty; give the name of the file to write")
    return p


def _read_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        return _known_format(fmt)
    by_suffix = _SUFFIXES.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    head = _read_bytes(path)[:64]
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(_MAGIC.encode()) or head.startswith(",".join(COLUMNS).encode()):
        return "csv"
    if head.lstrip().startswith(b"{"):
        return "json"
    raise TraceFormatError(f"{path}: not a kvmdbg trace (unknown extension and no CSV, JSON or Parquet "
                           f"signature); pass fmt= one of {', '.join(FORMATS)}")


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the integrity data of a CSV export lives: ``t.csv`` -> ``t.csv.kvmdbg.json``."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


# --------------------------------------------------------------------------- encoding


def _check_frame(df: object) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ExportTypeError(f"write_trace() takes a trace DataFrame, not {type(df).__name__}; "
                              "use machine.trace.to_dataframe()")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ExportValueError(f"not a trace DataFrame: missing column(s) {', '.join(missing)}; "
                               "use machine.trace.to_dataframe()")
    return df.loc[:, list(COLUMNS)]


def _plain(v: Any) -> Any:
    """A JSON-able cell: Python int/str, or None for a missing value."""
    import pandas as pd

    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and v != v:  # NaN
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def _rows(df: pd.DataFrame) -> list[list[Any]]:
    cols = [df[c].tolist() for c in COLUMNS]
    return [[_plain(v) for v in row] for row in zip(*cols, strict=False)]


def _crc(rows: list[list[object]]) -> int:
    """CRC-32 of the rows in their JSON spelling: the check of the JSON and Parquet forms."""
    return zlib.crc32(json.dumps(rows, separators=(",", ":")).encode())


def _encode(df: pd.DataFrame, fmt: str) -> tuple[bytes, dict[str, Any] | None]:
    """The file's bytes, and for CSV the sidecar document."""
    df = _check_frame(df)
    rows = _rows(df)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"kvmdbg-rows"] = str(len(rows)).encode()
        meta[b"kvmdbg-crc32"] = str(_crc(rows)).encode()
        sink = pa.BufferOutputStream()  # never a path: see the module docstring
        pq.write_table(table.replace_schema_metadata(meta), sink)
        return sink.getvalue().to_pybytes(), None
    if fmt == "json":
        doc = {"format": "kvmdbg-trace", "version": _VERSION, "columns": list(COLUMNS), "rows": len(rows),
               "crc32": _crc(rows), "data": rows}
        return json.dumps(doc, separators=(",", ":")).encode("utf-8"), None
    buf = io.StringIO()
    out = df.copy()
    for c in ("vcpu", "value"):
        out[c] = [("" if v is None else str(v)) for v in (r[COLUMNS.index(c)] for r in rows)]
    out.to_csv(buf, index=False, lineterminator="\n")
    data = buf.getvalue().encode("utf-8")
    side = {"format": "kvmdbg-trace-csv", "version": _CSV_VERSION, "columns": list(COLUMNS), "rows": len(rows),
            "bytes": len(data), "crc32": f"{zlib.crc32(data):08x}"}
    return data, side


def encode_trace(df: pd.DataFrame, fmt: str = "csv") -> bytes:
    """The bytes :func:`write_trace` would write (for stdout or a stream); CSV without its sidecar."""
    return _encode(df, _known_format(fmt))[0]


# --------------------------------------------------------------------------- writing safely


def _describe_mode(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _os_error(e: OSError, doing: str, path: Path) -> ExportError:
    why = e.strerror or str(e)
    fix = {errno.ENOSPC: "free some space or choose another disk",
           errno.EDQUOT: "free some space or choose another disk",
           errno.EACCES: "choose a folder you may write to",
           errno.EPERM: "choose a folder you may write to",
           errno.EROFS: "choose a folder on a writable file system",
           errno.ENOENT: "create the folder first or choose another path"}.get(e.errno or 0, "")
    return ExportError(f"cannot {doing} {str(path)!r}: {why}{'; ' + fix if fix else ''}", e.errno, path)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write fewer); an OSError on failure."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view[:_CHUNK])
        view = view[n:]


def _target(p: Path, force: bool) -> tuple[Path, bool]:
    """The file to replace (a symlink resolved) and whether it is a special file to write into."""
    real = Path(os.path.realpath(p)) if p.is_symlink() else p
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _os_error(e, "write", p) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = _describe_mode(st.st_mode)
        shown = f"{str(p)!r}" + (f" (a link to {str(real)!r})" if real != p else "")
        if stat.S_ISDIR(st.st_mode):
            raise ExportTargetError(f"cannot write {shown}: it is a directory; give a file name inside it",
                                    errno.EISDIR, p)
        if not force:
            raise ExportTargetError(f"refusing to write {shown}: it is {what}, not a regular file; pass "
                                    "force=True (kvmdbg export --force) to write into it", None, p)
        return real, True
    parent = real.parent
    if not parent.is_dir():
        kind = "does not exist" if not parent.exists() else "is not a directory"
        raise ExportError(f"cannot write {str(p)!r}: the folder {str(parent)!r} {kind}; create it first or "
                          "choose another path", errno.ENOENT if kind == "does not exist" else errno.ENOTDIR, p)
    return real, False


def _replace_atomically(dest: Path, data: bytes, shown: Path) -> None:
    """Write ``data`` to a temporary file next to ``dest``, then rename it over ``dest``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as e:
        raise _os_error(e, "write", shown) from None
    try:
        try:
            old_mode = stat.S_IMODE(os.stat(dest).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            old_mode = 0o666 & ~umask
        try:
            _write_all(fd, data)
            os.fchmod(fd, old_mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, KvmdbgError):
            raise _os_error(e, "write", shown) from None
        raise


def _write_into(dest: Path, data: bytes, shown: Path) -> None:
    """``force``: write the completed bytes into a device or FIFO (never replacing the node)."""
    try:
        fd = os.open(dest, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _os_error(e, "open", shown) from None
    try:
        _write_all(fd, data)
    except OSError as e:
        raise _os_error(e, "write", shown) from None
    finally:
        os.close(fd)


def write_trace(df: pd.DataFrame, path: str | os.PathLike[str], fmt: str | None = None, *,
                force: bool = False) -> Path:
    """Write a trace DataFrame to ``path`` as ``fmt`` (csv, parquet or json; default from the suffix).

    The file appears complete or not at all: a failure leaves what was at ``path`` untouched
    and raises :class:`ExportError` (an ``OSError``). A CSV gets a sidecar ``path.kvmdbg.json``
    with its row count and CRC-32. Existing targets that are not regular files are refused
    unless ``force=True`` (see the module docstring for symlinks, devices and FIFOs).
    Returns ``path``.
    """
    if not isinstance(force, bool):
        raise ExportTypeError(f"force must be True or False, not {force!r}")
    p = _path(path)
    f = format_for(p, fmt)
    data, side = _encode(df, f)  # everything is encoded before any file is touched
    dest, special = _target(p, force)
    if special:
        _write_into(dest, data, p)
        return p
    if side is not None:
        side_dest, _ = _target(sidecar_path(dest), False)
        side["file"] = dest.name
        # data first: a crash between the two renames leaves a sidecar that does not match,
        # which read_trace() refuses, never a wrong frame read as good
        _replace_atomically(dest, data, p)
        _replace_atomically(side_dest, json.dumps(side, indent=1).encode() + b"\n", sidecar_path(p))
    else:
        _replace_atomically(dest, data, p)
    return p


# --------------------------------------------------------------------------- reading


def _read_bytes(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ExportError(f"no trace file at {str(p)!r}", errno.ENOENT, p) from None
    except IsADirectoryError:
        raise ExportError(f"cannot read {str(p)!r}: it is a directory", errno.EISDIR, p) from None
    except OSError as e:
        raise _os_error(e, "read", p) from None


def _bad(path: Path, fmt: str, why: str) -> TraceFormatError:
    return TraceFormatError(f"{path}: not a valid kvmdbg {fmt} trace: {why}. "
                            "Re-export it with kvmdbg.teach.export.write_trace().")


def _int_or_none(v: Any, col: str, signed: bool) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise ValueError(f"{col}: {v!r} is not an integer")
    i = int(v) if isinstance(v, (int, str)) else int(v) if float(v).is_integer() else None
    if i is None:
        raise ValueError(f"{col}: {v!r} is not an integer")
    lo, hi = (-(1 << 63), (1 << 63) - 1) if signed else (0, (1 << 64) - 1)
    if not lo <= i <= hi:
        raise ValueError(f"{col}: {i} is out of range")
    return i


def _build(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The canonical frame from plain Python columns; ValueError on a bad cell."""
    import pandas as pd

    steps = [_int_or_none(v, "step", True) for v in columns["step"]]
    if any(s is None for s in steps):
        raise ValueError("step: a row has no step number")
    vcpus = [_int_or_none(v, "vcpu", True) for v in columns["vcpu"]]
    values = [_int_or_none(v, "value", False) for v in columns["value"]]
    from kvmdbg.trace import Trace

    text_dtype = pd.Series(["x"]).dtype  # object on pandas 2, str on pandas 3: as to_dataframe makes
    frame_type = type(Trace().to_dataframe())  # the very class to_dataframe returns (a DataFrame)
    data: dict[str, Any] = {}
    for c in COLUMNS:
        if c == "step":
            data[c] = pd.Series(steps, dtype="int64")
        elif c == "vcpu":
            data[c] = pd.Series(pd.array(vcpus, dtype="Int64"))
        elif c == "value":
            data[c] = pd.Series(pd.array(values, dtype="UInt64"))
        else:
            col = columns[c]
            if any(not isinstance(v, str) for v in col):
                raise ValueError(f"{c}: a row has a missing or non-text value")
            data[c] = pd.Series(col, dtype=text_dtype)
    return frame_type(data, columns=list(COLUMNS))


def _csv_rows(p: Path, body: str) -> list[list[str]]:
    reader = list(csv.reader(io.StringIO(body)))
    if not reader or tuple(reader[0]) != COLUMNS:
        raise _bad(p, "csv", f"the column header should be {','.join(COLUMNS)}")
    rows = reader[1:]
    if any(len(r) != len(COLUMNS) for r in rows):
        raise _bad(p, "csv", "a row has the wrong number of fields")
    return rows


def _read_sidecar(p: Path) -> dict[str, Any] | None:
    side = sidecar_path(p)
    if not side.exists() and p.is_symlink():  # written next to the file the link points to
        side = sidecar_path(os.path.realpath(p))
    if not side.exists():
        return None
    try:
        doc = json.loads(_read_bytes(side).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(p, "csv", f"its sidecar {side.name} is not readable JSON ({e})") from None
    ok = (isinstance(doc, dict) and doc.get("format") == "kvmdbg-trace-csv" and doc.get("version") == _CSV_VERSION
          and isinstance(doc.get("rows"), int) and isinstance(doc.get("crc32"), str)
          and isinstance(doc.get("bytes"), int))
    if not ok:
        raise _bad(p, "csv", f"its sidecar {side.name} is not a kvmdbg-trace-csv version {_CSV_VERSION} document")
    checked: dict[str, Any] = doc
    return checked


def _read_csv(p: Path) -> pd.DataFrame:
    raw = _read_bytes(p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(p, "csv", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    if text.startswith(_MAGIC):  # the first CSV form: metadata in a header line
        first, _, body = text.partition("\n")
        parts = first.split()
        if len(parts) != 5:
            raise _bad(p, "csv", f"the first line should be '{_MAGIC} v1 rows=N crc32=X'")
        try:
            nrows = int(parts[3].removeprefix("rows="))
            crc = int(parts[4].removeprefix("crc32="), 16)
        except ValueError:
            raise _bad(p, "csv", "the header's row count or checksum is unreadable") from None
        if zlib.crc32(body.encode()) != crc:
            raise _bad(p, "csv", "the checksum does not match (the file is truncated or was edited)")
    else:
        body = text
        side = _read_sidecar(p)
        if side is None:
            warnings.warn(f"{p}: no sidecar {sidecar_path(p).name}, so the trace's row count and checksum cannot "
                          "be checked (columns and values are); keep the sidecar next to the CSV",
                          TraceIntegrityWarning, stacklevel=3)
            nrows = None
        else:
            nrows = side["rows"]
            if len(raw) != side["bytes"] or f"{zlib.crc32(raw):08x}" != side["crc32"].lower():
                raise _bad(p, "csv", f"the checksum in {sidecar_path(p).name} does not match (the file is "
                                     "truncated or was edited)")
    rows = _csv_rows(p, body)
    if nrows is not None and len(rows) != nrows:
        raise _bad(p, "csv", f"expected {nrows} rows, found {len(rows)}")
    return _build({c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)})


def _read_json(p: Path) -> pd.DataFrame:
    try:
        doc = json.loads(_read_bytes(p).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(p, "json", f"unreadable JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != "kvmdbg-trace":
        raise _bad(p, "json", "no 'format': 'kvmdbg-trace' marker")
    if doc.get("columns") != list(COLUMNS):
        raise _bad(p, "json", f"the columns should be {list(COLUMNS)}")
    rows = doc.get("data")
    if not isinstance(rows, list) or len(rows) != doc.get("rows"):
        raise _bad(p, "json", "the row count does not match")
    if _crc(rows) != doc.get("crc32"):
        raise _bad(p, "json", "the checksum does not match (the data was edited)")
    if any(not isinstance(r, list) or len(r) != len(COLUMNS) for r in rows):
        raise _bad(p, "json", "a row has the wrong number of fields")
    return _build({c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)})


def _parquet_columns(p: Path, raw: bytes) -> tuple[dict[bytes, bytes], dict[str, list[Any]]]:
    """Schema metadata and plain Python columns, every value decoded here.

    Under pandas 3 with pyarrow, string columns decode lazily: a damaged page may raise only
    when the values are touched (``tolist()``), so they are materialised inside this function,
    inside the caller's ``try``.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pq.read_schema(pa.BufferReader(raw)).metadata or {}
    df = pd.read_parquet(io.BytesIO(raw))
    if list(df.columns) != list(COLUMNS):
        raise _bad(p, "parquet", f"the columns should be {list(COLUMNS)}, not {list(df.columns)}")
    dtypes = (str(df["step"].dtype), str(df["vcpu"].dtype), str(df["value"].dtype))
    if dtypes != ("int64", "Int64", "UInt64"):
        raise _bad(p, "parquet", "step, vcpu and value must be int64, Int64 and UInt64")
    return dict(meta), {c: [_plain(v) for v in df[c].tolist()] for c in COLUMNS}


def _read_parquet(p: Path) -> pd.DataFrame:
    import pyarrow as pa

    raw = _read_bytes(p)  # a missing or unreadable file is an ExportError, not a format error
    try:
        meta, cols = _parquet_columns(p, raw)
    except TraceFormatError:
        raise
    # pyarrow raises ArrowException (not a ValueError) and its subclasses, OSError, and
    # plain Python errors from decoding damaged pages: all of them mean "damaged file".
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError, OverflowError,
            UnicodeError, MemoryError) as e:
        raise _bad(p, "parquet", f"{type(e).__name__}: {e}") from None
    if b"kvmdbg-crc32" not in meta or b"kvmdbg-rows" not in meta:
        raise _bad(p, "parquet", "no kvmdbg row count and CRC-32 in its metadata: not written by write_trace()")
    out = _build(cols)
    rows = _rows(out)
    if len(rows) != int(meta[b"kvmdbg-rows"]) or _crc(rows) != int(meta[b"kvmdbg-crc32"]):
        raise _bad(p, "parquet", "its data does not match the row count and CRC-32 it was written with")
    return out


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {"csv": _read_csv, "json": _read_json,
                                                        "parquet": _read_parquet}


def read_trace(path: str | os.PathLike[str], fmt: str | None = None) -> pd.DataFrame:
    """Read a trace written by :func:`write_trace`; TraceFormatError if it is damaged.

    ``ExportError`` (an ``OSError``) if the file is missing or unreadable.
    """
    p = _path(path)
    f = _read_format(p, fmt)
    try:
        return _READERS[f](p)
    except (TraceFormatError, ExportError):
        raise
    except (ValueError, TypeError, OverflowError) as e:
        raise _bad(p, f, str(e)) from None
