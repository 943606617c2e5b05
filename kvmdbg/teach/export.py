"""Write a trace DataFrame to CSV, Parquet or JSON, and read it back exactly.

The frame is the long format of :meth:`kvmdbg.trace.Trace.to_dataframe`:
``step`` (int64), ``vcpu`` (Int64, <NA> for the PE and the host), ``value``
(UInt64, <NA> where a location keeps no copy) and text columns. Reading
checks the columns and every value and raises
:class:`~kvmdbg.errors.TraceFormatError` instead of returning a wrong frame:
a CSV or JSON file carries its row count and a CRC-32 of its data, so a
truncated or edited file is refused; Parquet has its own footer checks.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvmdbg.errors import TraceFormatError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "FORMATS", "write_trace", "read_trace"]

COLUMNS = ("step", "phase", "function", "file", "vcpu", "location", "register", "value", "detail")
_TEXT = ("phase", "function", "file", "location", "register", "detail")
FORMATS = ("csv", "parquet", "json")
_MAGIC = "# kvmdbg-trace"
_VERSION = 1
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}


def _fmt(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        f = str(fmt).lower().lstrip(".")
        if f not in FORMATS:
            raise ValueError(f"unknown trace format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return f
    by_suffix = _SUFFIXES.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    try:
        head = path.read_bytes()[:16]
    except OSError as e:
        raise TraceFormatError(f"cannot read {path}: {e.strerror}") from e
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(_MAGIC.encode()):
        return "csv"
    if head.lstrip().startswith(b"{"):
        return "json"
    raise TraceFormatError(f"{path}: not a kvmdbg trace (unknown extension and no CSV, JSON or Parquet "
                           f"signature); pass fmt= one of {', '.join(FORMATS)}")


def _check_frame(df: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"not a trace DataFrame: missing column(s) {', '.join(missing)}; "
                         "use machine.trace.to_dataframe()")


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


def write_trace(df: pd.DataFrame, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write a trace DataFrame to ``path`` as ``fmt`` (csv, parquet or json; default from the suffix)."""
    p = Path(path)
    f = _fmt(p, fmt) if fmt is not None or p.suffix.lower() in _SUFFIXES else "csv"
    _check_frame(df)
    df = df.loc[:, list(COLUMNS)]
    rows = _rows(df)
    if f == "parquet":
        # pyarrow writes no page checksums by default: carry the same row count and CRC-32 of
        # the data as the CSV and JSON forms, in the file's schema metadata.
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"kvmdbg-rows"] = str(len(rows)).encode()
        meta[b"kvmdbg-crc32"] = str(_crc(rows)).encode()
        pq.write_table(table.replace_schema_metadata(meta), p)
        return p
    if f == "json":
        doc = {"format": "kvmdbg-trace", "version": _VERSION, "columns": list(COLUMNS), "rows": len(rows),
               "crc32": _crc(rows), "data": rows}
        p.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        return p
    buf = io.StringIO()
    out = df.copy()
    for c in ("vcpu", "value"):
        out[c] = [("" if v is None else str(v)) for v in (r[COLUMNS.index(c)] for r in rows)]
    out.to_csv(buf, index=False, lineterminator="\n")
    body = buf.getvalue()
    header = f"{_MAGIC} v{_VERSION} rows={len(rows)} crc32={zlib.crc32(body.encode()):08x}\n"
    p.write_text(header + body, encoding="utf-8")
    return p


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
    text_dtype = pd.Series(["x"]).dtype  # object on pandas 2, str on pandas 3: as to_dataframe makes
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
    return pd.DataFrame(data, columns=list(COLUMNS))


def _read_csv(p: Path) -> pd.DataFrame:
    import csv

    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(p, "csv", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    first, sep, body = text.partition("\n")
    parts = first.split()
    if not first.startswith(_MAGIC) or len(parts) != 5:
        raise _bad(p, "csv", f"the first line should be '{_MAGIC} v1 rows=N crc32=X'")
    try:
        nrows = int(parts[3].removeprefix("rows="))
        crc = int(parts[4].removeprefix("crc32="), 16)
    except ValueError:
        raise _bad(p, "csv", "the header's row count or checksum is unreadable") from None
    if zlib.crc32(body.encode()) != crc:
        raise _bad(p, "csv", "the checksum does not match (the file is truncated or was edited)")
    reader = list(csv.reader(io.StringIO(body)))
    if not reader or tuple(reader[0]) != COLUMNS:
        raise _bad(p, "csv", f"the column header should be {','.join(COLUMNS)}")
    rows = reader[1:]
    if len(rows) != nrows:
        raise _bad(p, "csv", f"expected {nrows} rows, found {len(rows)}")
    if any(len(r) != len(COLUMNS) for r in rows):
        raise _bad(p, "csv", "a row has the wrong number of fields")
    return _build({c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)})


def _read_json(p: Path) -> pd.DataFrame:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
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


def _crc(rows: list[list[object]]) -> int:
    """CRC-32 of the rows in their JSON spelling: the integrity check of every format."""
    return zlib.crc32(json.dumps(rows, separators=(",", ":")).encode())


def _read_parquet(p: Path) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(p).metadata or {}
        df = pd.read_parquet(p)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise _bad(p, "parquet", f"{type(e).__name__}: {e}") from None
    if list(df.columns) != list(COLUMNS):
        raise _bad(p, "parquet", f"the columns should be {list(COLUMNS)}, not {list(df.columns)}")
    dtypes = (str(df["step"].dtype), str(df["vcpu"].dtype), str(df["value"].dtype))
    if dtypes != ("int64", "Int64", "UInt64"):
        raise _bad(p, "parquet", "step, vcpu and value must be int64, Int64 and UInt64")
    if b"kvmdbg-crc32" not in meta or b"kvmdbg-rows" not in meta:
        raise _bad(p, "parquet", "no kvmdbg row count and CRC-32 in its metadata: not written by write_trace()")
    cols = {c: [_plain(v) for v in df[c].tolist()] for c in COLUMNS}
    out = _build(cols)
    rows = _rows(out)
    if len(rows) != int(meta[b"kvmdbg-rows"]) or _crc(rows) != int(meta[b"kvmdbg-crc32"]):
        raise _bad(p, "parquet", "its data does not match the row count and CRC-32 it was written with")
    return out


def read_trace(path: str | os.PathLike[str], fmt: str | None = None) -> pd.DataFrame:
    """Read a trace written by :func:`write_trace`; TraceFormatError if it is damaged."""
    p = Path(path)
    f = _fmt(p, fmt)
    if not p.exists():
        raise FileNotFoundError(f"no trace file at {p}")
    reader = {"csv": _read_csv, "json": _read_json, "parquet": _read_parquet}[f]
    try:
        return reader(p)
    except TraceFormatError:
        raise
    except (ValueError, TypeError, OverflowError) as e:
        raise _bad(p, f, str(e)) from None
