"""The ``kvmdbg`` command line: help, bad input (one line, exit 2), and the happy paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kvmdbg
from kvmdbg import cli

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("lab", "app", "scenarios", "run", "compare", "selftest", "export")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300):
    """Run ``python -m kvmdbg ARGS`` in a child process, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KVMDBG_")}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kvmdbg", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("kvmdbg: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def first_scenario() -> str:
    return list(kvmdbg.scenarios.names())[0]


# --------------------------------------------------------------------------- help


def test_top_level_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kvmdbg")
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name: str) -> None:
    result = run_cli(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: kvmdbg {name}")
    assert result.stderr == ""


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kvmdbg ")


# --------------------------------------------------------------------------- bad input (no model needed)


def test_no_subcommand() -> None:
    assert_one_line_error(run_cli(), "a command is required")


def test_unknown_subcommand() -> None:
    assert_one_line_error(run_cli("frobnicate"), "frobnicate")


def test_unknown_option() -> None:
    assert_one_line_error(run_cli("scenarios", "--bogus"), "--bogus")


def test_bad_format() -> None:
    assert_one_line_error(
        run_cli("export", "anything", "--variant", "p1", "--format", "xml", "-o", "x.xml"), "xml"
    )


def test_missing_variant() -> None:
    assert_one_line_error(run_cli("run", "anything"), "--variant")


def test_bad_port() -> None:
    assert_one_line_error(run_cli("lab", "--port", "eighty"), "eighty")


def test_export_format_cannot_be_guessed(tmp_path: Path) -> None:
    result = run_cli("export", "anything", "--variant", "p1", "-o", str(tmp_path / "trace.txt"))
    assert_one_line_error(result, "--format")
    assert not (tmp_path / "trace.txt").exists()


def test_export_into_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "trace.csv"
    assert_one_line_error(
        run_cli("export", "anything", "--variant", "p1", "-o", str(target)), "does not exist"
    )


def test_export_onto_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("export", "x", "-V", "p1", "-f", "csv", "-o", str(tmp_path)), "directory")


def test_lab_dir_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    assert_one_line_error(run_cli("lab", "--copy-only", "--dir", str(target)), "not a directory")


# --------------------------------------------------------------------------- lab and app (no model needed)


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the installed kvmdbg/notebooks folder: read-only notebooks."""
    src = tmp_path / "installed"
    src.mkdir()
    for name in ("00-welcome.ipynb", "01-baseline.ipynb", "app.ipynb"):
        (src / name).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
        (src / name).chmod(0o444)
    (src / "notes.txt").write_text("not a notebook")
    monkeypatch.setattr(cli, "_NOTEBOOK_DIR", src)
    return src


def test_lab_copies_only_missing_notebooks(shipped: Path, tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "01-baseline.ipynb").write_text("my edits")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shipped.iterdir()}

    assert cli.main(["lab", "--copy-only", "--dir", str(work)]) == 0
    assert capsys.readouterr().out.strip() == str(work.resolve())

    # app.ipynb is served by `kvmdbg app` from the installation: not copied for the student
    assert sorted(p.name for p in work.iterdir()) == ["00-welcome.ipynb", "01-baseline.ipynb"]
    assert (work / "01-baseline.ipynb").read_text() == "my edits"  # never overwritten
    assert (work / "00-welcome.ipynb").read_bytes() == (shipped / "00-welcome.ipynb").read_bytes()
    assert os.access(work / "00-welcome.ipynb", os.W_OK) or os.geteuid() == 0
    assert (work / "00-welcome.ipynb").stat().st_mode & 0o200, "the user's copy must be writable"
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shipped.iterdir()}
    assert after == before  # the installed copies are untouched

    # a second run copies nothing and changes nothing
    (work / "00-welcome.ipynb").write_text("edited too")
    assert cli.main(["lab", "--copy-only", "--dir", str(work)]) == 0
    assert (work / "00-welcome.ipynb").read_text() == "edited too"


def test_lab_creates_the_working_folder(shipped: Path, tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    assert cli.main(["-q", "lab", "--copy-only", "--dir", str(work)]) == 0
    assert (work / "00-welcome.ipynb").is_file() and not (work / "app.ipynb").exists()


def test_app_without_app_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(cli, "_NOTEBOOK_DIR", tmp_path)
    assert cli.main(["app"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("kvmdbg: error: ")


@pytest.mark.slow
def test_lab_smoke_starts_and_stops_jupyterlab(tmp_path: Path) -> None:
    result = run_cli("lab", "--dir", str(tmp_path / "nb"), env={"KVMDBG_LAB_SMOKE": "1"})
    assert result.returncode == 0, result.stderr
    assert "smoke test passed" in result.stderr


@pytest.mark.slow
def test_app_smoke_serves_the_app_with_voila() -> None:
    import voila  # noqa: F401 - the app extra; the README's test command installs .[test,app]

    result = run_cli("app", env={"KVMDBG_APP_SMOKE": "1"})
    assert result.returncode == 0, result.stderr
    assert "smoke test passed: Voila answered 200" in result.stderr
    assert "refused a request without the token" in result.stderr


# --------------------------------------------------------------------------- with the model


def test_scenarios_lists_every_builtin() -> None:
    result = run_cli("scenarios")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == list(kvmdbg.scenarios.names())


def test_unknown_scenario() -> None:
    for args in (("run", "no-such-scenario", "--variant", "p1"), ("compare", "no-such-scenario")):
        assert_one_line_error(run_cli(*args), "no-such-scenario")


def test_unknown_variant() -> None:
    assert_one_line_error(run_cli("run", first_scenario(), "--variant", "p9"), "p9")


def test_impossible_patch_set() -> None:
    assert_one_line_error(run_cli("run", first_scenario(), "--variant", "p2,p3"))


@pytest.mark.parametrize("vhe", [False, True])
def test_run_prints_the_trace(vhe: bool) -> None:
    args = ["run", first_scenario(), "--variant", "p2"] + (["--vhe"] if vhe else [])
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["step", "phase", "function", "where", "register", "before",
                                                     "after"]
    result = run_cli(*args, "--full")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    for column in ("step", "phase", "function", "location", "register", "value"):
        assert column in header


def test_quiet_run_prints_nothing_on_stderr() -> None:
    result = run_cli("-q", "run", first_scenario(), "--variant", "baseline")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_compare_has_a_column_per_variant() -> None:
    result = run_cli("compare", first_scenario())
    assert result.returncode == 0, result.stderr
    header = "\n".join(result.stdout.splitlines()[:2])
    for variant in kvmdbg.VARIANTS:
        assert variant in header
    assert f"{len(kvmdbg.VARIANTS)} variants" in result.stderr  # progress line


def test_selftest() -> None:
    result = run_cli("selftest")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export(fmt: str, tmp_path: Path) -> None:
    target = tmp_path / f"trace.{fmt}"
    result = run_cli("export", first_scenario(), "--variant", "p3", "--format", fmt, "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.is_file() and target.stat().st_size > 0
    # the format can also come from the suffix
    inferred = tmp_path / f"again.{fmt}"
    result = run_cli("-q", "export", first_scenario(), "--variant", "p3", "-o", str(inferred))
    assert result.returncode == 0, result.stderr
    assert inferred.is_file()


# --------------------------------------------------------------------------- ports, variants, output


@pytest.mark.parametrize("command", ["lab", "app"])
@pytest.mark.parametrize("port", ["-1", "0", "65536", "99999999", "80.5", "eighty", ""])
def test_a_bad_port_is_refused_at_once(command: str, port: str) -> None:
    result = run_cli(command, "--port", port, "--no-browser", timeout=30)
    line = assert_one_line_error(result, "--port")
    assert "1 to 65535" in line


@pytest.mark.parametrize("value, fragment", [
    ("p2,upstream", "cannot be mixed"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("p3 p3", "given twice"),
    ("p2 p1,p2", "the same kernel as 'p2'"),
    ("p2,", "needs p1"),
    ("p9", "unknown variant 'p9'"),
    ("p1,p9", "unknown patch"),
    ("p1,p1", "given twice"),
    (",", "names no patch"),
])
def test_every_bad_variants_value_is_one_line_in_our_words(value: str, fragment: str) -> None:
    line = assert_one_line_error(run_cli("compare", "oslock-toggle", "--variants", value), fragment)
    assert "frozenset" not in line and "{'" not in line  # no Python syntax


def test_a_patch_set_is_labelled_by_its_kernel_not_by_a_variant_name() -> None:
    result = run_cli("compare", "oslock-toggle", "--variants", "p3 p3,")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["p3", "baseline+p3"]
    result = run_cli("run", "oslock-toggle", "-V", "p3,")
    assert "variant baseline+p3" in result.stderr


def test_run_shows_only_the_changes_in_hex_and_full_on_request() -> None:
    result = run_cli("run", "oslock-toggle", "-V", "p2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["step", "phase", "function", "where", "register", "before", "after"]
    assert len(lines) < 60 and max(map(len, lines)) < 200
    assert "0xA OSLK|OSLM=IMPLEMENTED" in result.stdout  # OSLSR_EL1 locked, by field
    assert "0x84E66 TTRF|TPMS|TDRA|TDOSA|TDA|TPM|TPMCR|HPMN=0x6" in result.stdout  # MDCR_EL2 by bits set
    assert " 10 " not in result.stdout and "544358" not in result.stdout
    full = run_cli("-q", "run", "oslock-toggle", "-V", "p2", "--full")
    assert full.returncode == 0 and len(full.stdout.splitlines()) > 5 * len(lines)
    assert "0xA OSLK|OSLM=IMPLEMENTED" in full.stdout


def test_compare_prints_register_values_in_hex_and_counts_in_decimal() -> None:
    result = run_cli("-q", "compare", "migration")
    assert result.returncode == 0, result.stderr
    assert "0x8 OSLM=IMPLEMENTED" in result.stdout
    saved = next(line for line in result.stdout.splitlines() if " saved " in f" {line} ")
    assert "0x" not in saved


def test_quiet_is_accepted_after_the_subcommand_too() -> None:
    for args in (("run", "oslock-toggle", "-V", "p1", "-q"), ("compare", "oslock-toggle", "--quiet"),
                 ("selftest", "-q"), ("scenarios", "-q")):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", args


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_to_stdout(fmt: str, tmp_path: Path) -> None:
    import io

    import pandas as pd

    from kvmdbg.teach.export import encode_trace, read_trace

    result = subprocess.run([sys.executable, "-m", "kvmdbg", "-q", "export", "oslock-toggle", "-V", "p2", "-f", fmt,
                             "-o", "-"], capture_output=True, cwd=REPO, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    path = tmp_path / f"t.{fmt}"
    written = run_cli("-q", "export", "oslock-toggle", "-V", "p2", "-o", str(path))
    assert written.returncode == 0, written.stderr
    expected = read_trace(path)
    assert result.stdout == encode_trace(expected, fmt)
    if fmt == "csv":
        pd.testing.assert_series_equal(pd.read_csv(io.BytesIO(result.stdout))["step"], expected["step"])


def test_csv_on_stdout_is_the_default_for_dash() -> None:
    result = run_cli("-q", "export", "oslock-toggle", "-V", "p2", "-o", "-")
    assert result.returncode == 0 and result.stdout.startswith("step,phase,function,")


@pytest.mark.parametrize("fmt, name", [("json", "t.csv"), ("csv", "t.parquet"), ("parquet", "t.json")])
def test_format_and_suffix_that_disagree_are_refused(fmt: str, name: str, tmp_path: Path) -> None:
    result = run_cli("export", "oslock-toggle", "-V", "p2", "--format", fmt, "-o", str(tmp_path / name))
    assert_one_line_error(result, "contradicts", name)
    assert not (tmp_path / name).exists()


def test_export_writes_a_csv_that_pandas_reads_and_keeps_the_earlier_file_on_refusal(tmp_path: Path) -> None:
    import pandas as pd

    target = tmp_path / "t.csv"
    assert run_cli("-q", "export", "oslock-toggle", "-V", "p2", "-o", str(target)).returncode == 0
    assert list(pd.read_csv(target).columns)[:3] == ["step", "phase", "function"]
    assert (tmp_path / "t.csv.kvmdbg.json").is_file()
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert_one_line_error(run_cli("export", "oslock-toggle", "-V", "p2", "-o", str(fifo)), "--force")
    assert os.path.exists(fifo) and not (tmp_path / "pipe.csv.kvmdbg.json").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_export_to_a_full_device_fails_cleanly_and_keeps_the_device() -> None:
    before = os.stat("/dev/full").st_rdev
    assert_one_line_error(run_cli("export", "oslock-toggle", "-V", "p2", "-f", "csv", "-o", "/dev/full"), "--force")
    line = assert_one_line_error(run_cli("-q", "export", "oslock-toggle", "-V", "p2", "-f", "parquet", "-o",
                                         "/dev/full", "--force"), "No space left")
    assert line.count("/dev/full") == 1
    import stat

    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode) and os.stat("/dev/full").st_rdev == before


# --------------------------------------------------------------------------- JupyterHub (docs/jupyterhub.md)

HUB_DOC = REPO / "docs" / "jupyterhub.md"
HUB_COMMAND = 'kvmdbg -q lab --copy-only --dir "$HOME/kvmdbg-notebooks"'


def test_the_documented_jupyterhub_copy_command_works(tmp_path: Path) -> None:
    import json
    import re

    doc = HUB_DOC.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", doc, re.S)
    assert HUB_COMMAND in [b.strip() for b in blocks], "docs/jupyterhub.md must show the copy command"
    assert doc.count("kvmdbg -q lab --copy-only --dir") >= 3  # the command, the z2jh hook, Spawner.cmd
    home = tmp_path / "home"
    home.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KVMDBG_")}, "HOME": str(home),
           "PYTHONPATH": str(REPO)}
    script = HUB_COMMAND.replace("kvmdbg ", f"{sys.executable} -m kvmdbg ", 1)
    for _ in range(2):  # at every start: the second run copies nothing and keeps edits
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(home / "kvmdbg-notebooks") and result.stderr == ""
        (home / "kvmdbg-notebooks" / "00-welcome.ipynb").write_text("edited")
    names = sorted(p.name for p in (home / "kvmdbg-notebooks").iterdir())
    assert names[0] == "00-welcome.ipynb" and "app.ipynb" not in names and len(names) >= 10
    assert (home / "kvmdbg-notebooks" / "00-welcome.ipynb").read_text() == "edited"
    overrides = re.search(r"printf '%s\\n' '(\{.*?\})'", doc).group(1)
    assert json.loads(overrides) == {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                                                      "checkForUpdates": False}}
