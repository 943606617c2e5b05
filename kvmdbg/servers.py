"""Local JupyterLab and Voila servers: for smoke runs, real-browser tests and screenshots.

One place knows how to start a server on 127.0.0.1 with a token, isolated from the user's
Jupyter settings, wait until it answers, and stop it with SIGTERM (which shuts its kernels
down cleanly). Standard library only, so ``import kvmdbg`` stays light; nothing imports this
module but the CLI, the tests and ``scripts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["ServerError", "LocalServer", "free_port", "private_jupyter_home", "lab_command", "voila_command"]

# JupyterLab user settings that keep a scripted session quiet: no "news" toast over the
# page, and no autosave writing outputs back into a notebook under test.
_QUIET_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


class ServerError(RuntimeError):
    """A server that exited early or did not answer in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_jupyter_home(home: Path, notebooks: Path | None = None, pythonpath: Path | None = None) -> dict[str, str]:
    """Make private Jupyter dirs and quiet settings under ``home``; return the environment to use.

    With ``notebooks``, copy them to ``home/notebooks`` (files, also through a symlink), so a
    server never writes into the originals. With ``pythonpath``, kernels import kvmdbg from there.
    """
    for name in ("config", "runtime", "data", "ipython", "workspaces", "settings"):
        (home / name).mkdir(parents=True, exist_ok=True)
    for rel, value in _QUIET_SETTINGS.items():
        path = home / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    if notebooks is not None:
        shutil.copytree(notebooks, home / "notebooks", dirs_exist_ok=True)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"), IPYTHONDIR=str(home / "ipython"))
    env.pop("JUPYTER_PATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
    return env


def lab_command(port: int, token: str, root: Path, home: Path | None = None, *, allow_root: bool = True) -> list[str]:
    """JupyterLab on 127.0.0.1:port serving ``root``; with ``home``, its workspaces and settings there."""
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url="]
    if home is not None:
        cmd += [f"--LabApp.workspaces_dir={home / 'workspaces'}", f"--LabApp.user_settings_dir={home / 'settings'}"]
    if allow_root:
        cmd.append("--allow-root")
    return cmd


def voila_command(notebook: Path, port: int, token: str) -> list[str]:
    """Voila serving one notebook on 127.0.0.1:port (widgets only, no code)."""
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", "--Voila.ip=127.0.0.1",
            f"--port={port}", "--Voila.port_retries=0", f"--token={token}"]


class LocalServer:
    """A server process: ``with LocalServer(...) as s:`` starts it and waits until it is ready.

    Ready means ``ready_path`` answers HTTP 200 (the token appended), or, with
    ``ready_path=None``, that the port accepts connections. Leaving the block sends SIGTERM.
    """

    def __init__(self, what: str, cmd: list[str], *, port: int, token: str, log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 ready_path: str | None = "/api/status", timeout: float = 90.0) -> None:
        self.what, self.cmd, self.port, self.token, self.log = what, cmd, port, token, log
        self.env, self.cwd, self.ready_path, self.timeout = env, cwd, ready_path, timeout
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after: float | None = None

    def url(self, path: str) -> str:
        return f"{self.base}{path}{'&' if '?' in path else '?'}token={self.token}"

    def tail(self, n: int = 30) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in lines)

    def __enter__(self) -> LocalServer:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _wait(self) -> None:
        assert self.proc is not None
        start = time.monotonic()
        while time.monotonic() - start < self.timeout:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.what} exited with status {self.proc.returncode} before it was ready:\n"
                                  f"{self.tail()}")
            if self._answers():
                self.ready_after = time.monotonic() - start
                return
            time.sleep(0.2)
        where = self.base + (self.ready_path or "")
        raise ServerError(f"{self.what} did not answer {where} within {self.timeout:.0f} s:\n{self.tail()}")

    def _answers(self) -> bool:
        try:
            if self.ready_path is None:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            with urllib.request.urlopen(self.url(self.ready_path), timeout=10) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM (servers shut their kernels down), then SIGKILL after 30 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
