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
    try:
        from kvmdbg import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - only while the package is half written
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("kvmdbg")
        except PackageNotFoundError:
            return "unknown"


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
    elif isinstance(exc, OSError) and exc.strerror:
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
    print(df.to_string(index=not plain_index))


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


def _parse_variant(text: str) -> str | frozenset[str]:
    """One of VARIANTS, or a set of patch names written ``p1,p3`` or ``p1+p3``."""
    from kvmdbg import VARIANTS

    value = text.strip().lower()
    if value in VARIANTS:
        return value
    for sep in (",", "+"):
        if sep in value:
            return frozenset(part.strip() for part in value.split(sep) if part.strip())
    close = difflib.get_close_matches(value, list(VARIANTS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise CliError(
        f"unknown variant {text!r}{hint} (choose from {', '.join(VARIANTS)}, or a patch set such as p1,p3)"
    )


def _variant_label(variant: str | frozenset[str]) -> str:
    return variant if isinstance(variant, str) else "+".join(sorted(variant))


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


def cmd_run(args: argparse.Namespace) -> int:
    df = _trace_frame(args.scenario, args.variant, args.vhe)
    _print_frame(df)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import kvmdbg

    _check_scenario(args.scenario)
    if args.variants:
        variants = tuple(_parse_variant(v) for v in args.variants.split())
    else:
        variants = tuple(kvmdbg.VARIANTS)
    start = time.monotonic()
    _progress(f"running scenario {args.scenario!r} under {len(variants)} variants ({_mode(args.vhe)})...")
    if args.variants:
        df = kvmdbg.compare(args.scenario, variants, vhe=args.vhe)
    else:
        df = kvmdbg.compare(args.scenario, vhe=args.vhe)
    _progress(f"done in {time.monotonic() - start:.1f} s")
    _print_frame(df)
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    import kvmdbg

    _progress("running the guest selftest under every variant...")
    start = time.monotonic()
    df = kvmdbg.selftest_table()
    _progress(f"done in {time.monotonic() - start:.1f} s")
    _print_frame(df)
    return 0


def _export_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    fmt = _SUFFIX_FORMATS.get(Path(args.output).suffix.lower())
    if fmt is None:
        choices = "|".join(EXPORT_FORMATS)
        raise CliError(f"cannot tell the format of {args.output!r} from its name; pass --format {choices}")
    return fmt


def _check_writable(path: Path) -> None:
    """Fail early, before running anything, if ``path`` cannot be written."""
    if path.is_dir():
        raise CliError(f"cannot write {str(path)!r}: it is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CliError(f"cannot write {str(path)!r}: permission denied")


def cmd_export(args: argparse.Namespace) -> int:
    fmt = _export_format(args)
    path = Path(args.output)
    _check_writable(path)
    df = _trace_frame(args.scenario, args.variant, args.vhe)
    from kvmdbg.teach.export import write_trace

    write_trace(df, path, fmt)
    _progress(f"wrote {len(df)} rows to {str(path)!r} ({fmt})")
    return 0


def _copy_notebooks(dest: Path) -> list[Path]:
    """Copy the shipped notebooks into ``dest``; never overwrite; return every notebook there."""
    if dest.exists() and not dest.is_dir():
        raise CliError(f"{str(dest)!r} exists and is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    shipped = sorted(_NOTEBOOK_DIR.glob("*.ipynb")) if _NOTEBOOK_DIR.is_dir() else []
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


def _free_port() -> int:
    from kvmdbg.servers import free_port

    return free_port()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _exec(cmd: list[str]) -> int:
    """Replace this process with ``cmd`` (POSIX), or run it and return its status."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(cmd[0], cmd)
    import subprocess

    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


def _smoke(
    what: str,
    cmd: list[str],
    port: int,
    token: str,
    path: str,
    check: Callable[[str], str | None] | None = None,
) -> int:
    """Start a server, wait until ``path`` answers 200, run ``check``, shut it down."""
    import tempfile

    from kvmdbg.servers import LocalServer, ServerError

    timeout = float(os.environ.get("KVMDBG_SMOKE_TIMEOUT", "180"))
    with tempfile.TemporaryDirectory(prefix="kvmdbg-smoke-") as tmp:
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(Path(tmp) / "runtime"))
        server = LocalServer(what, cmd, port=port, token=token, log=Path(tmp) / "server.log", env=env,
                             ready_path=path, timeout=timeout)
        _progress(f"smoke test: starting {what} on {server.base} ...")
        try:
            with server:
                failure = check(f"{server.base}/{{}}?token={token}") if check is not None else None
        except ServerError as e:
            sys.stderr.write(f"{PROG}: error: smoke test failed: {_one_line(e)}\n")
            return 1
        if failure:
            sys.stderr.write(server.tail() + "\n")
            sys.stderr.write(f"{PROG}: error: smoke test failed: {failure}\n")
            return 1
    _progress(f"smoke test passed: {what} answered 200 after {server.ready_after:.1f} s and was shut down")
    return 0


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


def cmd_lab(args: argparse.Namespace) -> int:
    import importlib.util

    root = Path(args.dir).expanduser().resolve()
    notebooks = _copy_notebooks(root)
    if args.copy_only:
        print(root)
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise CliError("JupyterLab is not installed in this Python; pip install 'jupyterlab>=4'", code=1)
    if _env_true("KVMDBG_LAB_SMOKE"):
        import secrets

        from kvmdbg.servers import lab_command

        port, token = args.port or _free_port(), secrets.token_hex(16)
        cmd = lab_command(port, token, root, allow_root=_is_root())
        return _smoke("JupyterLab", cmd, port, token, "/api/status", _lab_contents_check(notebooks, root))
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}"]
    if _is_root():
        cmd.append("--allow-root")
    if args.port:
        cmd.append(f"--ServerApp.port={args.port}")
    if args.no_browser:
        cmd.append("--no-browser")
    _progress(f"starting JupyterLab in {str(root)!r} (stop it with Ctrl-C)...")
    return _exec(cmd)


def cmd_app(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("voila") is None:
        raise CliError("Voila is not installed; install the app extra: pip install 'kvmdbg[app]'", code=1)
    notebook = _NOTEBOOK_DIR / _APP_NOTEBOOK
    if not notebook.is_file():
        raise CliError(f"this installation ships no app notebook ({str(notebook)!r} is missing)", code=1)
    if _env_true("KVMDBG_APP_SMOKE"):
        import secrets

        from kvmdbg.servers import voila_command

        port, token = args.port or _free_port(), secrets.token_hex(16)
        return _smoke("Voila", voila_command(notebook, port, token), port, token, "/")
    cmd = [sys.executable, "-m", "voila", str(notebook), "--Voila.ip=127.0.0.1"]
    cmd.append(f"--port={args.port or 8866}")
    if args.no_browser:
        cmd.append("--no-browser")
    _progress(f"starting the kvmdbg app on http://127.0.0.1:{args.port or 8866}/ (stop it with Ctrl-C)...")
    return _exec(cmd)


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
            "debug OS Lock, across five kernel variants (baseline, p1, p2, p3, upstream)."
        ),
        epilog="Run 'kvmdbg COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    p = sub.add_parser(
        "lab",
        help="copy the notebooks into a folder of yours and start JupyterLab there",
        description=(
            "Copy the notebooks that come with kvmdbg into a working folder (only those not "
            "there yet: your edits are never overwritten, and the installed copies are never "
            "touched), then start JupyterLab on 127.0.0.1 in that folder."
        ),
    )
    p.add_argument(
        "--dir", default="kvmdbg-notebooks", help="the working folder (default: ./kvmdbg-notebooks)"
    )
    p.add_argument("--port", type=int, default=None, help="the port (default: JupyterLab's choice)")
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
        description="Serve the app notebook with Voila on 127.0.0.1: widgets only, no code cells.",
    )
    p.add_argument("--port", type=int, default=None, help="the port (default: 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser(
        "scenarios",
        help="list the built-in scenarios",
        description="List the built-in scenarios, one a line, with a one-line description.",
    )
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser(
        "run",
        help="run a scenario under one variant and print its trace",
        description="Run one built-in scenario on a fresh Machine and print its trace as a table.",
    )
    _add_machine_options(p)
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
        help="space-separated variants to compare (default: all five)",
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
        help="the file format (default: from the file name's suffix)",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
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
    try:
        from kvmdbg.errors import KvmdbgError
    except ImportError:  # pragma: no cover - only while the package is half written
        KvmdbgError = ValueError  # type: ignore[misc,assignment]  # noqa: N806
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
