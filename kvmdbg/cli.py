"""The ``kvmdbg`` command line.

Subcommands::

    kvmdbg lab        copy the notebooks into a folder of yours and start JupyterLab there
    kvmdbg app        start the OS Lock lab as a standalone Voila web app
    kvmdbg scenarios  list the built-in scenarios
    kvmdbg run        run one scenario under one variant and print its trace
    kvmdbg compare    run one scenario under every variant and print the comparison
    kvmdbg selftest   print the guest selftest's results under every variant
    kvmdbg export     run one scenario and write its trace as CSV, Parquet or JSON

Bad input never ends in a traceback: it prints one line ``kvmdbg: error: ...``
on stderr and exits with status 2. Everything the subcommands need is imported
inside them, so that ``kvmdbg --help`` is fast.

Environment variables:

``KVMDBG_LAB_SMOKE=1``
    ``kvmdbg lab`` starts JupyterLab on 127.0.0.1 on a free port, waits until
    ``/api/status`` answers 200 and the notebooks are listed, shuts it down
    and exits 0 (1 if it never became ready). Used by CI.
``KVMDBG_APP_SMOKE=1``
    the same for ``kvmdbg app`` (waits until the app page answers 200).
``KVMDBG_SMOKE_TIMEOUT``
    seconds to wait in a smoke run (default 180).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]

PROG = "kvmdbg"
EXPORT_FORMATS = ("csv", "parquet", "json")
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json"}
_NOTEBOOK_DIR = Path(__file__).resolve().parent / "notebooks"
_APP_NOTEBOOK = "app.ipynb"
_TRUE = {"1", "true", "yes", "on"}


class CliError(Exception):
    """An error the CLI reports as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see '{self.prog} --help')"
        sys.stderr.write(f"{PROG}: error: {_one_line(message)}{hint}\n")
        sys.exit(2)


class _VersionAction(argparse.Action):
    """``--version``, importing the package only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        print(f"{PROG} {_version()}")
        parser.exit(0)


# --------------------------------------------------------------------------- helpers


def _version() -> str:
    from kvmdbg import __version__

    return str(__version__)


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


_quiet = False


def _progress(message: str) -> None:
    """A progress line on stderr (suppressed by ``--quiet``)."""
    if not _quiet:
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stderr.flush()


def _error_message(exc: BaseException) -> str:
    """A readable one-line message for an exception we report instead of a traceback."""
    from_kvmdbg = type(exc).__module__.startswith("kvmdbg")
    if isinstance(exc, KeyError) and not from_kvmdbg and len(exc.args) == 1:
        text = str(exc.args[0])  # KeyError's str() adds quotes
    elif isinstance(exc, OSError) and exc.strerror and not from_kvmdbg:
        text = exc.strerror
        if exc.filename is not None:
            text += f": {os.fsdecode(exc.filename)!r}"
    else:
        text = str(exc) or type(exc).__name__
    return _one_line(text)


def _print_frame(df: Any) -> None:
    """Print a DataFrame in full (no elision), without a meaningless 0..n-1 index."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        print(df)
        return
    if df.empty:
        print("(no rows)")
        return
    plain_index = isinstance(df.index, pd.RangeIndex) and df.index.name is None
    if isinstance(df.columns, pd.MultiIndex):
        print(df.to_string(index=not plain_index))
        return
    formatters = {}
    for col in df.columns:  # text left-aligned, as it reads; numbers right-aligned
        width = max([len(str(col))] + [len(str(v)) for v in df[col]])
        text = df[col].dtype == object or str(df[col].dtype) in ("str", "string")
        formatters[col] = (lambda v, w=width: f"{v!s:<{w}}") if text else (lambda v, w=width: f"{v!s:>{w}}")
    print(df.to_string(index=not plain_index, formatters=formatters, justify="left"))


def _scenario_names() -> list[str]:
    from kvmdbg import scenarios

    return list(scenarios.names())


def _check_scenario(name: str) -> str:
    names = _scenario_names()
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise CliError(f"unknown scenario {name!r}{hint} (list them with 'kvmdbg scenarios')")


def _scenario(name: str) -> Any:
    from kvmdbg import scenarios

    return scenarios.get(_check_scenario(name))


def _scenario_doc(scenario: Any) -> str:
    """The first line of a scenario's description (an object's ``.doc`` or a callable's docstring)."""
    for attr in ("doc", "summary", "description"):
        text = getattr(scenario, attr, None)
        if isinstance(text, str) and text.strip():
            break
    else:
        text = inspect.getdoc(scenario) or ""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _apply_scenario(scenario: Any, machine: Any) -> None:
    """Run a scenario on a machine: a callable taking a Machine, or an object with one."""
    if callable(scenario):
        scenario(machine)
        return
    for attr in ("run", "func", "fn", "body"):
        fn = getattr(scenario, attr, None)
        if callable(fn):
            fn(machine)
            return
    raise CliError(f"scenario {getattr(scenario, 'name', scenario)!r} cannot be run", code=1)


def _parse_variant(text: str, option: str = "--variant") -> str | frozenset[str]:
    """One of VARIANTS, or a set of patch names written ``p1,p3`` or ``p1+p3``.

    Checked with kvmdbg.patches (its PatchError says why a set is impossible); every problem is
    a CliError of one line that names the option and the value.
    """
    from kvmdbg import VARIANTS
    from kvmdbg.errors import PatchError
    from kvmdbg.patches import resolve

    value = text.strip().lower()
    if not value:
        raise CliError(f"{option} is empty; give a variant ({', '.join(VARIANTS)}) or a patch set such as p1,p3")
    if value in VARIANTS:
        return value
    if "," in value or "+" in value:
        parts = [part.strip() for part in value.replace("+", ",").split(",")]
        names = [part for part in parts if part]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise CliError(f"{option} {text!r}: {', '.join(doubled)} given twice; name each patch once")
        variant = frozenset(names)
        if not variant:
            raise CliError(f"{option} {text!r} names no patch; write a set such as p1,p3")
        try:
            resolve(variant)
        except PatchError as exc:
            raise CliError(f"{option} {text!r}: {_one_line(exc)}") from None
        return variant
    close = difflib.get_close_matches(value, list(VARIANTS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise CliError(
        f"{option}: unknown variant {text!r}{hint} (choose from {', '.join(VARIANTS)}, or a patch set such as p1,p3)"
    )


def _parse_variants(text: str) -> list[str | frozenset[str]]:
    """``--variants``: space-separated variants, each at most once (also under another name)."""
    items = text.split()
    if not items:
        raise CliError("--variants is empty; give variants separated by spaces, such as 'baseline p2 upstream', "
                       "or leave the option out to compare every variant")
    out: list[str | frozenset[str]] = []
    seen: dict[str, str] = {}
    for item in items:
        variant = _parse_variant(item, "--variants")
        label = _variant_label(variant)
        if label in seen:
            same = "given twice" if seen[label] == item else f"the same kernel as {seen[label]!r} ({label})"
            raise CliError(f"--variants: {item!r} is {same}; list each variant once")
        seen[label] = item
        out.append(variant)
    return out


def _variant_label(variant: str | frozenset[str]) -> str:
    """A name unique to the kernel: one of VARIANTS, or ``baseline+p3`` for a set that is none of them."""
    from kvmdbg import VARIANTS
    from kvmdbg.patches import resolve

    if isinstance(variant, str):
        return variant
    patches = resolve(variant).patches
    for name in VARIANTS:
        if resolve(name).patches == patches:
            return name
    return "+".join(("baseline", *patches))


def _mode(vhe: bool) -> str:
    return "VHE" if vhe else "nVHE"


def _trace_frame(name: str, variant_text: str, vhe: bool) -> Any:
    import kvmdbg

    scenario = _scenario(name)
    variant = _parse_variant(variant_text)
    machine = kvmdbg.Machine(variant, vhe=vhe)
    _progress(f"running scenario {name!r} on variant {_variant_label(variant)} ({_mode(vhe)})...")
    _apply_scenario(scenario, machine)
    return machine.trace.to_dataframe()


# --------------------------------------------------------------------------- subcommands


def cmd_scenarios(args: argparse.Namespace) -> int:
    from kvmdbg import scenarios

    names = _scenario_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        doc = _scenario_doc(scenarios.get(name))
        print(f"{name:<{width}}  {doc}".rstrip())
    return 0


def cmd_patches(args: argparse.Namespace) -> int:
    from kvmdbg.patches import PATCHES, REGISTRY

    print("Patches (each one file of kvmdbg/patches/, registered by itself):")
    width = max(len(n) for n in PATCHES)
    for name, patch in PATCHES.items():
        on = "" if patch.base == "baseline" else f", on {patch.base}"
        print(f"  {name:<{width}}  {patch.title} [{patch.series}{on}, {patch.date}] {patch.message_id}")
    print("\nVariants (one line each in kvmdbg.patches.REGISTRY):")
    width = max(len(v.name) for v in REGISTRY)
    for v in REGISTRY:
        print(f"  {v.name:<{width}}  = {' + '.join(('baseline',) + v.patches)}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from kvmdbg.patches import diff, resolve

    a, b = _parse_variant(args.a, "A"), _parse_variant(args.b, "B")
    lines = diff(resolve(a), resolve(b))
    _progress(f"what {_variant_label(b)} changes in KVM's tables, against {_variant_label(a)}: "
              f"{len(lines)} difference(s)")
    for line in lines:
        print(line)
    return 0


# --------------------------------------------------------------------------- register values on screen


def hex_value(register: str, value: object) -> str:
    """A register value as the prose writes it: ``0xA``, with the fields set where they help.

    One-bit fields that are set are listed by name, highest bit first (MDCR_EL2 ``0x706
    TDOSA|TDA|TDE|HPMN=0x6``); wider fields that are not zero as ``NAME=value`` (an enum's
    name where the architecture names the value, ``OSLM=IMPLEMENTED``). ID registers are shown
    as hex only: every field of theirs is set, so names would fill the table. ``-`` for a
    location that keeps no copy; a value that is not an integer is shown as it is.
    """
    import numbers

    if value is None or (not isinstance(value, (str, bool)) and _is_missing(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return str(value)
    v = int(value)
    text = f"0x{v:X}" if v >= 0 else f"-0x{-v:X}"
    if v <= 0:
        return text
    fields = _named_fields(register.split("[", 1)[0])
    if not fields:
        return text
    names = [f.name for f in sorted(fields, key=lambda f: -f.msb) if f.width == 1 and f.extract(v)]
    wide = [f"{f.name}={f.describe(f.extract(v))}" for f in fields if f.width > 1 and f.extract(v)]
    return f"{text} {'|'.join(names + wide)}" if names or wide else text


def _is_missing(value: object) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _named_fields(register: str) -> tuple[Any, ...]:
    from kvmdbg.arch.registers import REGISTERS

    reg = REGISTERS.get(register.upper())
    if reg is None or reg.name.startswith("ID_"):
        return ()
    return tuple(reg.fields)


def changes_frame(df: Any) -> Any:
    """Only what each step changed: one row per (step, cell) whose value differs from before.

    ``before`` is the value after the previous step (``-`` where there was none, as for the
    first step's initial values); values are formatted with :func:`hex_value`.
    """
    import pandas as pd

    rows: list[dict[str, object]] = []
    last: dict[tuple[object, str, str], object] = {}
    for rec in df.itertuples(index=False):
        vcpu = None if _is_missing(rec.vcpu) else int(rec.vcpu)
        key = (vcpu, str(rec.location), str(rec.register))
        value = None if _is_missing(rec.value) else int(rec.value)
        seen = key in last
        before = last.get(key)
        last[key] = value
        if seen and before == value:
            continue
        if not seen and value is None:
            continue  # a copy that does not exist yet: nothing to show
        where = str(rec.location) if vcpu is None else f"{rec.location}[vcpu{vcpu}]"
        rows.append({"step": int(rec.step), "phase": rec.phase, "function": rec.function, "where": where,
                     "register": rec.register, "before": hex_value(str(rec.register), before),
                     "after": hex_value(str(rec.register), value)})
    return pd.DataFrame(rows, columns=["step", "phase", "function", "where", "register", "before", "after"])


def _hex_frame(df: Any, register_of: Callable[[Any, Any], str]) -> Any:
    """A copy of ``df`` for printing, every integer cell through :func:`hex_value`."""
    out = df.astype(object).copy()
    for col in out.columns:
        out[col] = [_hex_value_or_count(register_of(idx, col), v) for idx, v in zip(out.index, out[col], strict=True)]
    return out


# --------------------------------------------------------------------------- subcommands (cont.)


def cmd_run(args: argparse.Namespace) -> int:
    df = _trace_frame(args.scenario, args.variant, args.vhe)
    if args.full:
        shown = df.astype({"value": object})
        shown["value"] = [hex_value(r, v) for r, v in zip(df["register"], df["value"], strict=True)]
        _print_frame(shown)
        return 0
    changes = changes_frame(df)
    _progress(f"{len(changes)} change(s) in {df['step'].nunique()} step(s); --full prints every value at every step")
    _print_frame(changes)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    import kvmdbg

    _check_scenario(args.scenario)
    variants = _parse_variants(args.variants) if args.variants is not None else list(kvmdbg.VARIANTS)
    start = time.monotonic()
    _progress(f"running scenario {args.scenario!r} under {len(variants)} variants ({_mode(args.vhe)})...")
    # one variant at a time, each column named by _variant_label: a name unique to its kernel
    columns = []
    for variant in variants:
        col = kvmdbg.compare(args.scenario, [variant], vhe=args.vhe)
        col.columns = [_variant_label(variant)]
        columns.append(col)
    df = pd.concat(columns, axis=1)
    _progress(f"done in {time.monotonic() - start:.1f} s")
    _print_frame(_hex_frame(df, _compare_row_register))
    return 0


def _compare_row_register(index: Any, column: Any) -> str:
    """The register a compare() row shows, for :func:`hex_value`.

    A scenario's own results are values (hex: OSLSR reads, addresses, fields) except the
    counts (``saved``, ``restored``, ``refused count``: how many registers), shown in decimal.
    """
    from kvmdbg.arch.registers import REGISTERS

    location, name = (str(index[0]), str(index[1])) if isinstance(index, tuple) else ("", str(index))
    if location != "scenario":
        return name
    if "count" in name.lower().split() or name.lower() in _COUNT_RESULTS:
        return "#count"
    return next((reg for reg in REGISTERS if reg.upper() == name.upper().split()[-1]), "-") if name else "-"


_COUNT_RESULTS = ("saved", "restored")


def _hex_value_or_count(register: str, value: object) -> str:
    return str(value) if register == "#count" and value is not None else hex_value(register, value)


def cmd_selftest(args: argparse.Namespace) -> int:
    import kvmdbg

    _progress("running the guest selftest under every variant...")
    start = time.monotonic()
    df = kvmdbg.selftest_table()
    _progress(f"done in {time.monotonic() - start:.1f} s")
    _print_frame(df)
    return 0


def _export_format(args: argparse.Namespace) -> str:
    """--format, checked against the file name; from the suffix if not given (csv for stdout)."""
    from kvmdbg.teach.export import ExportValueError, format_for

    if args.output == "-":
        return str(args.format or "csv")
    by_suffix = _SUFFIX_FORMATS.get(Path(args.output).suffix.lower())
    if args.format is None and by_suffix is None:
        choices = "|".join(EXPORT_FORMATS)
        raise CliError(f"cannot tell the format of {args.output!r} from its name; pass --format {choices}")
    try:
        return format_for(args.output, args.format)
    except ExportValueError:
        raise CliError(f"--format {args.format} contradicts the file name {args.output!r} (a {by_suffix} "
                       f"suffix); rename the file to end in .{args.format} or drop --format") from None


def _check_writable(path: Path, force: bool) -> None:
    """Fail early, before running anything, if ``path`` cannot be written."""
    import stat

    real = Path(os.path.realpath(path))
    try:
        mode = os.stat(real).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise CliError(f"cannot write {str(path)!r}: it is a directory; give a file name inside it")
    if mode is not None and not stat.S_ISREG(mode) and not force:
        raise CliError(f"refusing to write {str(path)!r}: it is not a regular file (a device, FIFO or socket); "
                       "pass --force to write into it")
    parent = real.parent
    if not parent.is_dir():
        raise CliError(f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist")
    if mode is not None and not stat.S_ISREG(mode):
        return
    if not os.access(parent, os.W_OK):
        raise CliError(f"cannot write {str(path)!r}: permission denied in {str(parent)!r}")


def cmd_export(args: argparse.Namespace) -> int:
    fmt = _export_format(args)
    to_stdout = args.output == "-"
    if to_stdout and fmt == "parquet" and sys.stdout.isatty():
        raise CliError("refusing to write Parquet (binary) to a terminal; redirect it (> t.parquet) or use -o FILE")
    path = Path(args.output)
    if not to_stdout:
        _check_writable(path, args.force)
    df = _trace_frame(args.scenario, args.variant, args.vhe)
    from kvmdbg.teach.export import encode_trace, write_trace

    if to_stdout:
        data = encode_trace(df, fmt)
        binary = getattr(sys.stdout, "buffer", None)  # None when stdout is a text stream only
        sys.stdout.flush()
        if binary is not None:
            binary.write(data)
            binary.flush()
        elif fmt == "parquet":
            raise CliError("this stdout takes text only; write Parquet to a file with -o FILE")
        else:
            sys.stdout.write(data.decode("utf-8"))
        _progress(f"wrote {len(df)} rows to stdout ({fmt}, {len(data)} bytes, no sidecar)")
        return 0
    write_trace(df, path, fmt, force=args.force)
    extra = " and its sidecar " + repr(path.name + ".kvmdbg.json") if fmt == "csv" and path.is_file() else ""
    _progress(f"wrote {len(df)} rows to {str(path)!r}{extra} ({fmt})")
    return 0


def _copy_notebooks(dest: Path) -> list[Path]:
    """Copy the shipped notebooks into ``dest``; never overwrite; return every notebook there."""
    if dest.exists() and not dest.is_dir():
        raise CliError(f"{str(dest)!r} exists and is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    # app.ipynb is what `kvmdbg app` serves from the installation, not a notebook to study
    found = sorted(_NOTEBOOK_DIR.glob("*.ipynb")) if _NOTEBOOK_DIR.is_dir() else []
    shipped = [p for p in found if p.name != _APP_NOTEBOOK]
    if not shipped:
        _progress(f"warning: this installation ships no notebooks (looked in {str(_NOTEBOOK_DIR)!r})")
    copied = kept = 0
    present: list[Path] = []
    for src in shipped:
        target = dest / src.name
        if target.exists():
            kept += 1  # the user's copy, maybe edited: leave it alone
        else:
            # copy the bytes only: the installed copy may be read-only, the user's must not be
            with src.open("rb") as fin, target.open("xb") as fout:
                fout.write(fin.read())
            copied += 1
        present.append(target)
    if shipped:
        _progress(
            f"{copied} notebook(s) copied into {str(dest)!r}, {kept} already there and left as they are"
        )
    return present


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _port_arg(text: str) -> int:
    """argparse type of --port: 1-65535, refused at once (one line, exit 2) otherwise."""
    from kvmdbg.servers import check_port

    try:
        return check_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--port ")) from None


def _token_required(url: str) -> str | None:
    """None if ``url`` without the token is refused, else what happened.

    Refused means 403, or (Voila's pages) a redirect to the login page; redirects are not
    followed, so the check itself never loads a page that starts a kernel.
    """
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as resp:
            return f"{url} answered {resp.status} without the token"
    except urllib.error.HTTPError as e:
        if e.code == 403 or (e.code in (302, 303) and "/login" in (e.headers.get("Location") or "")):
            return None
        return f"{url} answered {e.code} without the token (expected 403 or a redirect to the login page)"
    except OSError as e:
        return f"{url} did not answer ({e})"


def _serve(launch: Any, private: Path, *, smoke: bool, no_browser: bool, token_path: str,
           check: Callable[[str], str | None] | None = None) -> int:
    """Start a server, wait until it answers, check that it refuses requests without the token.

    Smoke mode (CI): run ``check`` and shut it down. Otherwise print the URL it serves (with the
    token), open it in a browser unless asked not to, and wait until the server ends or Ctrl-C.
    """
    from kvmdbg.servers import LocalServer, ServerError

    timeout = float(os.environ.get("KVMDBG_SMOKE_TIMEOUT", "180"))
    env = dict(launch.env)
    if smoke:
        env["JUPYTER_RUNTIME_DIR"] = str(private / "runtime")
    ready = launch.ready_path if not smoke or launch.ready_path else "/"  # smoke: Voila renders the app
    server = LocalServer(launch.what, launch.cmd, port=launch.port, token=launch.token,
                         log=private / "server.log" if smoke else None, env=env, ready_path=ready, timeout=timeout)
    label = "smoke test: " if smoke else ""
    _progress(f"{label}starting {launch.what} on {server.base} ...")
    import signal

    def stop(signum: int, frame: Any) -> None:  # SIGTERM/SIGHUP: stop the server too, never orphan it
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        signal.signal(sig, stop)
    try:
        with server:
            failure = _token_required(server.base + token_path)
            if failure is None and check is not None:
                failure = check(f"{server.base}/{{}}?token={launch.token}")
            if failure:
                sys.stderr.write(server.tail() + "\n")
                sys.stderr.write(f"{PROG}: error: {'smoke test failed: ' if smoke else ''}{failure}\n")
                return 1
            if smoke:
                _progress(f"smoke test passed: {launch.what} answered 200 after {server.ready_after:.1f} s, "
                          f"refused a request without the token, and was shut down")
                return 0
            print(f"{PROG}: {launch.what} is serving {launch.url}", flush=True)
            print(f"{PROG}: (only this computer can reach it; the token in the URL is the key; stop it with Ctrl-C)",
                  flush=True)
            if not no_browser:
                import webbrowser

                webbrowser.open(launch.url)
            assert server.proc is not None
            try:
                return int(server.proc.wait() or 0)
            except KeyboardInterrupt:
                _progress("stopping ...")
                return 0
    except ServerError as e:
        sys.stderr.write(f"{PROG}: error: {'smoke test failed: ' if smoke else ''}{_one_line(e)}\n")
        return 1


def _lab_contents_check(notebooks: list[Path], root: Path) -> Callable[[str], str | None]:
    """A smoke check: the Contents API lists every notebook in the working folder."""

    def check(url_template: str) -> str | None:
        import json
        import urllib.request

        with urllib.request.urlopen(url_template.format("api/contents"), timeout=10) as resp:
            listed = {item["name"] for item in json.load(resp).get("content", [])}
        missing = sorted(p.name for p in notebooks if p.parent == root and p.name not in listed)
        if missing:
            return f"JupyterLab does not list {', '.join(missing)} in {str(root)!r}"
        _progress(f"smoke test: JupyterLab lists {len(notebooks)} notebook(s) in {str(root)!r}")
        return None

    return check


def _private_dir() -> Any:
    """A folder only this user can read (mkdtemp makes it 0700), removed when the server ends."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix="kvmdbg-")


def cmd_lab(args: argparse.Namespace) -> int:
    import importlib.util

    root = Path(args.dir).expanduser().resolve()
    notebooks = _copy_notebooks(root)
    if args.copy_only:
        print(root)
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise CliError("JupyterLab is not installed in this Python; pip install 'jupyterlab>=4'", code=1)
    import secrets

    from kvmdbg.servers import ServerError, choose_port, lab_launch

    smoke = _env_true("KVMDBG_LAB_SMOKE")
    try:
        port = choose_port(args.port, 8888)
    except ServerError as e:
        raise CliError(str(e)) from None
    with _private_dir() as tmp:
        launch = lab_launch(root, port, secrets.token_urlsafe(24), Path(tmp), allow_root=_is_root())
        check = _lab_contents_check(notebooks, root) if smoke else None
        return _serve(launch, Path(tmp), smoke=smoke, no_browser=args.no_browser, token_path="/api/kernels",
                      check=check)


def cmd_app(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("voila") is None:
        raise CliError("Voila is not installed; install the app extra: pip install 'kvmdbg[app]'", code=1)
    notebook = _NOTEBOOK_DIR / _APP_NOTEBOOK
    if not notebook.is_file():
        raise CliError(f"this installation ships no app notebook ({str(notebook)!r} is missing)", code=1)
    import secrets

    from kvmdbg.servers import CULL_IDLE_TIMEOUT, CULL_INTERVAL, ServerError, app_launch, choose_port

    smoke = _env_true("KVMDBG_APP_SMOKE")
    try:
        port = choose_port(args.port, 8866)
    except ServerError as e:
        raise CliError(str(e)) from None
    _progress(f"each page load starts a kernel; a closed page's kernel is stopped after {CULL_IDLE_TIMEOUT} s "
              f"idle (checked every {CULL_INTERVAL} s)")
    with _private_dir() as tmp:
        launch = app_launch(notebook, port, secrets.token_urlsafe(24), Path(tmp))
        return _serve(launch, Path(tmp), smoke=smoke, no_browser=args.no_browser, token_path="/")


# --------------------------------------------------------------------------- parser


def _add_machine_options(p: argparse.ArgumentParser, *, variant: bool = True) -> None:
    """The options of every command that runs a scenario: its name, the variant, the host mode."""
    p.add_argument("scenario", help="a scenario name (see 'kvmdbg scenarios')")
    if variant:
        p.add_argument(
            "--variant",
            "-V",
            required=True,
            metavar="V",
            help="baseline, p1, p2, p3 or upstream (or a patch set such as p1,p3)",
        )
    p.add_argument("--vhe", action="store_true", help="model a VHE host (default: nVHE)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "kvmdbg: a JupyterLab teaching kit that models how Linux KVM/arm64 handles the "
            "debug OS Lock, across kernel variants from 5.15 (baseline) to 5.18 (upstream)."
        ),
        epilog="Run 'kvmdbg COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)
    # -q also after the subcommand (kvmdbg run ... -q); SUPPRESS keeps a -q given before it
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress lines on stderr")
    real_add_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return real_add_parser(name, parents=[quiet], **kwargs)  # type: ignore[list-item]

    sub.add_parser = add_parser  # type: ignore[method-assign, assignment]

    p = sub.add_parser(
        "lab",
        help="copy the notebooks into a folder of yours and start JupyterLab there",
        description=(
            "Copy the notebooks that come with kvmdbg into a working folder (only those not "
            "there yet: your edits are never overwritten, and the installed copies are never "
            "touched), then start JupyterLab on 127.0.0.1 in that folder with a random token, "
            "print the URL it serves (the welcome notebook, token included) and open it. A Jupyter "
            "config of yours cannot empty the token: kvmdbg lab reads its own server config instead "
            "of your jupyter_server_config. Ctrl-C stops it."
        ),
    )
    p.add_argument(
        "--dir", default="kvmdbg-notebooks", help="the working folder (default: ./kvmdbg-notebooks)"
    )
    p.add_argument("--port", type=_port_arg, default=None,
                   help="the port, 1-65535; it must be free (default: 8888 if free, else any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument(
        "--copy-only",
        action="store_true",
        help="only copy the notebooks, start nothing (for a JupyterHub or Binder that already runs one)",
    )
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser(
        "app",
        help="start the OS Lock lab as a standalone web app (Voila)",
        description=(
            "Serve the app notebook with Voila on 127.0.0.1 with a random token, and print the URL it "
            "serves (token included): widgets only, no code cells. Each page load starts a kernel; "
            "the kernel of a closed page is stopped after 60 s without activity (checked every 30 s). "
            "Ctrl-C stops it."
        ),
    )
    p.add_argument("--port", type=_port_arg, default=None,
                   help="the port, 1-65535; it must be free (default: 8866 if free, else any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser(
        "scenarios",
        help="list the built-in scenarios",
        description="List the built-in scenarios, one a line, with a one-line description.",
    )
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser(
        "patches",
        help="list the patches and the named variants built from them",
        description="List every patch (title, series, what it is written on, Message-Id) and every named variant.",
    )
    p.set_defaults(func=cmd_patches)

    p = sub.add_parser(
        "diff",
        help="print what one variant changes in KVM's tables against another",
        description=(
            "Print the differences between two variants' KVM definitions, one line per table entry, in the "
            "kernel's names: sys_reg_descs[] and cp14_regs[] entries, enum vcpu_sysreg, the world-switch "
            "steps, the replaced kernel functions and per-VM state. Example: kvmdbg diff p1 p2 shows what "
            "patch 2 touched."
        ),
    )
    p.add_argument("a", metavar="A", help="the variant to compare against, such as baseline or p1,p3")
    p.add_argument("b", metavar="B", help="the variant whose changes to print")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "run",
        help="run a scenario under one variant and print its trace",
        description=(
            "Run one built-in scenario on a fresh Machine and print what each step changed: the step, "
            "the kernel function it models, which copy of which register, and the value before and "
            "after (hex, with the fields set). --full prints every value after every step instead."
        ),
    )
    _add_machine_options(p)
    p.add_argument("--full", action="store_true", help="print the whole trace table (every cell after every step)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "compare",
        help="run a scenario under every variant and print the comparison",
        description=(
            "Run one built-in scenario under each variant and print one row per "
            "(location, register) and one column per variant."
        ),
    )
    p.add_argument(
        "--variants",
        default=None,
        metavar="'V1 V2 ...'",
        help="space-separated variants to compare, each once, such as 'baseline p2 p1,p3' (default: every variant)",
    )
    _add_machine_options(p, variant=False)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "selftest",
        help="print the guest selftest's results under every variant",
        description="Run the guest debug selftest under every variant and print the results table.",
    )
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser(
        "export",
        help="run a scenario and write its trace to a CSV, Parquet or JSON file",
        description="Run one built-in scenario under one variant and write its trace to a file.",
    )
    _add_machine_options(p)
    p.add_argument(
        "--format",
        "-f",
        choices=EXPORT_FORMATS,
        default=None,
        help="the file format (default: from the file name's suffix; csv for -o -); must agree with the suffix",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the file to write, replaced only once complete ('-' for stdout); a CSV gets a "
                        "sidecar FILE.kvmdbg.json with its row count and CRC-32")
    p.add_argument("--force", action="store_true",
                   help="write into an existing device or FIFO instead of refusing (never replaces it)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kvmdbg`` command; returns the exit status."""
    global _quiet
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet = bool(args.quiet)
    if getattr(args, "func", None) is None:
        parser.error("a command is required")
    from kvmdbg.errors import KvmdbgError

    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
        return exc.code
    except BrokenPipeError:
        # the reader went away (`kvmdbg run ... | head`): not an error worth a message
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0
    # KvmdbgError is what kvmdbg raises on purpose; ValueError and KeyError stay here only until
    # every module raises KvmdbgError subclasses (issue 12 item 4); OSError: the file system.
    except (KvmdbgError, ValueError, KeyError, OSError) as exc:
        sys.stderr.write(f"{PROG}: error: {_error_message(exc)}\n")
        return 2
    except ModuleNotFoundError as exc:
        sys.stderr.write(f"{PROG}: error: a required module is missing: {exc.name} ({_one_line(exc)})\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
