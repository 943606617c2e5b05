"""kvmdbg.servers: the one place that starts local Jupyter/Voila servers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kvmdbg.servers import LocalServer, ServerError, free_port, lab_command, private_jupyter_home


def test_a_private_home_has_quiet_settings_a_copy_of_the_notebooks_and_its_own_dirs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.ipynb").write_text("{}")
    env = private_jupyter_home(tmp_path / "home", src, pythonpath=tmp_path / "repo")
    home = tmp_path / "home"
    assert (home / "notebooks" / "a.ipynb").read_text() == "{}"
    news = home / "settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert json.loads(news.read_text())["checkForUpdates"] is False
    autosave = home / "settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
    assert json.loads(autosave.read_text()) == {"autosave": False}
    assert env["JUPYTER_CONFIG_DIR"] == str(home / "config") and env["IPYTHONDIR"] == str(home / "ipython")
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path / "repo")


def test_lab_command_binds_to_localhost_with_a_token(tmp_path: Path) -> None:
    cmd = lab_command(8888, "t0k", tmp_path, tmp_path, allow_root=False)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--IdentityProvider.token=t0k" in cmd
    assert "--allow-root" not in cmd and f"--LabApp.user_settings_dir={tmp_path / 'settings'}" in cmd


def test_a_server_that_exits_early_is_reported_with_its_log(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "print('listening? no: bad config'); raise SystemExit(3)"]
    with pytest.raises(ServerError, match=r"exited with status 3(.|\n)*bad config"):
        with LocalServer("fake", cmd, port=free_port(), token="t", log=tmp_path / "log", timeout=20):
            pass


def test_a_server_is_ready_when_its_port_answers_and_is_stopped_on_exit(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with LocalServer("http.server", cmd, port=port, token="t", log=tmp_path / "log", ready_path="/",
                     timeout=30) as server:
        assert server.ready_after is not None and server.proc is not None and server.proc.poll() is None
    assert server.proc.poll() is not None
