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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["ServerError", "LocalServer", "Launch", "free_port", "port_is_free", "check_port", "choose_port",
           "private_jupyter_home", "lab_command", "voila_command", "lab_launch", "app_launch", "CULL_IDLE_TIMEOUT",
           "CULL_INTERVAL", "ANNOUNCEMENTS_PLUGIN"]

# Voila's kernels: one per page load, and Voila keeps it when the page is closed. The kernel
# manager culls a kernel that has had no activity for CULL_IDLE_TIMEOUT seconds and no open
# connection, checking every CULL_INTERVAL seconds; a learner whose page is open keeps theirs
# however long it idles (cull_connected=False). A closed page's kernel is gone within
# CULL_IDLE_TIMEOUT + CULL_INTERVAL seconds (90 s).
CULL_IDLE_TIMEOUT = 60
CULL_INTERVAL = 30
# The JupyterLab plugin that asks "Would you like to get notified about official Jupyter
# news?" over the first screen and checks for updates; kvmdbg lab turns it off.
ANNOUNCEMENTS_PLUGIN = "@jupyterlab/apputils-extension:announcements"
WELCOME = "00-welcome.ipynb"

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
    """Voila serving one notebook on 127.0.0.1:port (widgets only, no code), culling closed pages' kernels."""
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", "--Voila.ip=127.0.0.1",
            f"--port={port}", "--Voila.port_retries=0", f"--token={token}", *_cull_flags()]


def _cull_flags() -> list[str]:
    return [f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_TIMEOUT}",
            f"--MappingKernelManager.cull_interval={CULL_INTERVAL}", "--MappingKernelManager.cull_connected=False"]


# --------------------------------------------------------------------------- ports


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the servers bind (tornado sets SO_REUSEADDR): a port in TIME_WAIT is free for them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def check_port(text: str) -> int:
    """A TCP port given on the command line: an integer from 1 to 65535 (ValueError otherwise)."""
    try:
        port = int(str(text).strip(), 10)
    except ValueError:
        raise ValueError(f"--port {text!r} is not a number; give a port from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"--port {port} is out of range; give a port from 1 to 65535")
    return port


def choose_port(requested: int | None, preferred: int) -> int:
    """The port to serve on: ``requested`` if free (ServerError if not), else ``preferred`` or any free one.

    The server is then started with ``port_retries=0``, so it serves this port or fails: the
    URL kvmdbg prints is always the one served.
    """
    if requested is not None:
        if not port_is_free(requested):
            raise ServerError(f"port {requested} on 127.0.0.1 is in use; choose another with --port, or leave "
                              "--port out and kvmdbg picks a free one")
        return requested
    return preferred if port_is_free(preferred) else free_port()


# --------------------------------------------------------------------------- kvmdbg lab / kvmdbg app


@dataclass(frozen=True)
class Launch:
    """How to start one server for a user: command, environment, and the URL it will serve."""

    what: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    token: str
    url: str
    ready_path: str | None


def _private_file(path: Path, value: object) -> None:
    """Write JSON readable by the owner only (it may hold a token)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)


def lab_launch(root: Path, port: int, token: str, private: Path, *, allow_root: bool,
               open_notebook: str | None = WELCOME) -> Launch:
    """JupyterLab for a learner: 127.0.0.1 only, a token that no config can empty, no news prompt.

    ``private`` is a folder only this user can read (0700). It receives:

    * ``kvmdbg_server_config.json`` (0600), passed with ``--config``: the token, the address
      and the port. JupyterLab then reads this file instead of the user's
      ``jupyter_server_config.*``, so nothing there can empty the token or bind another
      address; the token is never on the command line, where ``ps`` would show it to other
      users of the machine.
    * ``labconfig/page_config.json``, found through ``JUPYTER_CONFIG_PATH``: it disables the
      announcements plugin (the news prompt and the update check). It is the lowest-priority
      page config, merged under the user's own: a user who enabled the plugin keeps it, and
      none of the user's settings files is touched.
    """
    config = {
        # notebook_shim (classic-notebook extension support, unused by the kit) reads the deprecated
        # ServerApp.token while it links, and Voila's package turns traitlets' DeprecationWarnings
        # on: every start printed "DeprecationWarning: ServerApp.token". Without the shim, none.
        "ServerApp": {"ip": "127.0.0.1", "port": port, "port_retries": 0, "root_dir": str(root),
                      "open_browser": False, "jpserver_extensions": {"notebook_shim": False}},
        "IdentityProvider": {"token": token},
        "PasswordIdentityProvider": {"token": token},
        "LabApp": {"news_url": None},
    }
    _private_file(private / "kvmdbg_server_config.json", config)
    _private_file(private / "labconfig" / "page_config.json", {"disabledExtensions": {ANNOUNCEMENTS_PLUGIN: True}})
    cmd = [sys.executable, "-m", "jupyterlab", f"--config={private / 'kvmdbg_server_config.json'}"]
    if allow_root:
        cmd.append("--allow-root")  # Jupyter refuses to start as root without it
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(private), os.environ.get("JUPYTER_CONFIG_PATH")]))
    env.pop("JUPYTER_TOKEN", None)
    path = f"/lab/tree/{open_notebook}" if open_notebook and (root / open_notebook).is_file() else "/lab"
    return Launch("JupyterLab", cmd, env, port, token, f"http://127.0.0.1:{port}{path}?token={token}", "/api/status")


def app_launch(notebook: Path, port: int, token: str, private: Path) -> Launch:
    """Voila serving the app: 127.0.0.1 only, a token, kernels of closed pages culled.

    The settings go into ``private/voila.json`` (0600), the only config file Voila reads
    (``--Voila.config_file_paths``), so no user config can remove the token.
    """
    config = {
        "Voila": {"ip": "127.0.0.1", "port": port, "port_retries": 0, "open_browser": False, "token": token},
        "MappingKernelManager": {"cull_idle_timeout": CULL_IDLE_TIMEOUT, "cull_interval": CULL_INTERVAL,
                                 "cull_connected": False},
    }
    _private_file(private / "voila.json", config)
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--Voila.config_file_paths={private}"]
    env = dict(os.environ)
    env.pop("JUPYTER_TOKEN", None)
    return Launch("Voila", cmd, env, port, token, f"http://127.0.0.1:{port}/?token={token}", None)


class LocalServer:
    """A server process: ``with LocalServer(...) as s:`` starts it and waits until it is ready.

    Ready means ``ready_path`` answers HTTP 200 (the token appended), or, with
    ``ready_path=None``, that the port accepts connections. Leaving the block sends SIGTERM.
    """

    def __init__(self, what: str, cmd: list[str], *, port: int, token: str, log: Path | None,
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
        if self.log is None:
            return "  | (its output went to the terminal)"
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in lines)

    def __enter__(self) -> LocalServer:
        if self.log is None:  # the user's terminal sees the server's own log
            self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL)
        else:
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
                return bool(resp.status == 200)
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
