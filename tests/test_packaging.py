"""Packaging checks: one source of truth for the commands, the dependencies and the version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = {"jupyterlab", "ipywidgets", "matplotlib", "pandas", "pyarrow"}
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _split(requirement: str) -> tuple[str, str]:
    """'pandas>=2.0' -> ('pandas', '>=2.0'), names normalised as PEP 503 does."""
    match = _REQ.match(requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def _command(name: str) -> str:
    lines = [ln for ln in (REPO / ".ci" / name).read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(lines) == 1, f".ci/{name} must hold exactly one line, has {len(lines)}"
    return lines[0].strip()


@pytest.mark.parametrize("name", ["test-command", "launch-command"])
def test_readme_quotes_the_ci_commands_verbatim(name: str) -> None:
    command = _command(name)
    readme_lines = [ln.strip() for ln in (REPO / "README.md").read_text(encoding="utf-8").splitlines()]
    assert command in readme_lines, f"README.md must contain the line from .ci/{name} exactly:\n{command}"


def test_ci_runs_the_readme_commands() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in script
    assert '"$(cat .ci/test-command)"' in script and 'bash -c "$TEST_COMMAND"' in script
    assert (
        '"$(cat .ci/launch-command)"' in script and 'KVMDBG_LAB_SMOKE=1 bash -c "$LAUNCH_COMMAND"' in script
    )
    # the tests run last, so that pytest's summary closes the log
    assert script.rstrip().splitlines()[-1].strip() == 'bash -c "$TEST_COMMAND"'


def test_test_command_installs_extras_and_runs_pytest() -> None:
    command = _command("test-command")
    assert ".[test,app]" in command and "-m pytest" in command
    assert "kvmdbg lab" in _command("launch-command")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(REPO / ".ci" / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_environment_yml_matches_pyproject() -> None:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with JupyterLab (via jupyter_events)
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    project = _pyproject()["project"]

    assert env["name"] == "kvmdbg"
    assert env["channels"] == ["conda-forge"]
    conda = dict(_split(d) for d in env["dependencies"] if isinstance(d, str))
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    pypi = dict(_split(d) for d in project["dependencies"])

    assert set(pypi) == CORE, "pyproject's core dependencies changed: update CORE, environment.yml and README"
    for name, bound in pypi.items():
        assert name in conda, f"environment.yml lacks {name}"
        assert conda[name] == bound, f"{name}: pyproject says {bound!r}, environment.yml says {conda[name]!r}"
    extra = set(conda) - set(pypi) - {"python", "pip"}
    assert not extra, f"environment.yml has dependencies pyproject.toml lacks: {sorted(extra)}"
    assert conda["python"] == project["requires-python"] == ">=3.11"
    assert "pip" in conda
    assert pip_sections == [["."]], "environment.yml must pip-install the package itself (and only that)"


def test_optional_extras() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    test = dict(_split(d) for d in extras["test"])
    for name in (
        "pytest",
        "hypothesis",
        "pytest-benchmark",
        "nbclient",
        "nbformat",
        "ipykernel",
        "capstone",
        "ruff",
        "mypy",
        "playwright",
    ):
        assert name in test, f"the test extra lacks {name}"
    assert "voila" in dict(_split(d) for d in extras["app"])
    # Unicorn is the benchmarks' peer, not a test oracle: it lives in the bench extra only.
    assert "unicorn" in dict(_split(d) for d in extras["bench"])
    assert "unicorn" not in test, "unicorn belongs to the bench extra (benchmarks/bench.py), not the test extra"
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^#\s+unicorn\b.*peer", text, re.M), "pyproject.toml's comments should say why unicorn is there"


def test_entry_point_and_package_data() -> None:
    data = _pyproject()
    assert data["project"]["scripts"] == {"kvmdbg": "kvmdbg.cli:main"}
    setuptools_cfg = data["tool"]["setuptools"]
    assert setuptools_cfg["packages"]["find"]["include"] == ["kvmdbg*"]
    assert any("*.ipynb" in globs for globs in setuptools_cfg["package-data"].values())
    for dep in data["project"]["dependencies"]:
        name = _split(dep)[0]
        assert re.search(rf"^#\s+{re.escape(name)}\b", (REPO / "pyproject.toml").read_text(), re.M), (
            f"pyproject.toml's comment block should say why {name} is a dependency"
        )


def test_version_is_defined_once() -> None:
    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "kvmdbg.__version__"}

    init = REPO / "kvmdbg" / "__init__.py"
    assert init.is_file(), "kvmdbg/__init__.py must define __version__"
    assignment = re.compile(r"^\s*__version__\s*[:=]", re.M)
    defining = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "kvmdbg").rglob("*.py")
        if assignment.search(p.read_text(encoding="utf-8"))
    ]
    assert defining == ["kvmdbg/__init__.py"], f"__version__ is assigned in {defining}"
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', init.read_text(encoding="utf-8"), re.M)
    assert match, 'write __version__ = "X.Y.Z" as a plain string literal'
    version = match.group(1)
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", version)
    assert f"## [{version}]" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), (
        f"CHANGELOG.md has no entry for {version}"
    )


def test_license_is_mit() -> None:
    assert _pyproject()["project"]["license"] == "MIT"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "The kvmdbg authors" in text


def test_python_m_kvmdbg_help() -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    result = subprocess.run(
        [sys.executable, "-m", "kvmdbg", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kvmdbg")
    assert "Traceback" not in result.stderr


def test_help_does_not_import_the_heavy_stack() -> None:
    """`kvmdbg --help` stays fast: no matplotlib, ipywidgets or Jupyter server imported."""
    code = (
        "import sys, contextlib, io\n"
        "from kvmdbg.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('matplotlib', 'ipywidgets', 'jupyterlab', 'jupyter_server', 'voila')"
        " if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"kvmdbg --help imported {result.stdout.strip()}"
