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


def test_check_port_takes_1_to_65535_only() -> None:
    from kvmdbg.servers import check_port

    assert check_port("1") == 1 and check_port(" 65535 ") == 65535
    for bad in ("-1", "0", "65536", "99999999", "eighty", "8.5", ""):
        with pytest.raises(ValueError, match="1 to 65535"):
            check_port(bad)


def test_choose_port_refuses_a_busy_port_and_otherwise_finds_a_free_one() -> None:
    import socket

    from kvmdbg.servers import choose_port, port_is_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            choose_port(port, 8866)
        other = choose_port(None, port)  # the preferred port is busy: any free one
        assert other != port and port_is_free(other)


def test_lab_launch_keeps_the_token_off_the_command_line_and_in_a_private_file(tmp_path: Path) -> None:
    import stat

    from kvmdbg.servers import ANNOUNCEMENTS_PLUGIN, lab_launch

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "00-welcome.ipynb").write_text("{}")
    private = tmp_path / "private"
    launch = lab_launch(tmp_path / "root", 8899, "s3cret-token", private, allow_root=False)
    assert not any("s3cret-token" in part for part in launch.cmd) and "--allow-root" not in launch.cmd
    assert launch.url == "http://127.0.0.1:8899/lab/tree/00-welcome.ipynb?token=s3cret-token"
    config_file = private / "kvmdbg_server_config.json"
    assert f"--config={config_file}" in launch.cmd
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    config = json.loads(config_file.read_text())
    assert config["IdentityProvider"]["token"] == config["PasswordIdentityProvider"]["token"] == "s3cret-token"
    assert config["ServerApp"]["ip"] == "127.0.0.1" and config["ServerApp"]["port_retries"] == 0
    page = json.loads((private / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {ANNOUNCEMENTS_PLUGIN: True}
    assert launch.env["JUPYTER_CONFIG_PATH"].split(":")[0] == str(private)
    assert "--allow-root" in lab_launch(tmp_path / "root", 8899, "t", private, allow_root=True).cmd


def test_app_launch_culls_idle_kernels_within_two_minutes(tmp_path: Path) -> None:
    from kvmdbg.servers import CULL_IDLE_TIMEOUT, CULL_INTERVAL, app_launch

    launch = app_launch(tmp_path / "app.ipynb", 8866, "tok", tmp_path / "private")
    config = json.loads((tmp_path / "private" / "voila.json").read_text())
    assert config["Voila"] == {"ip": "127.0.0.1", "port": 8866, "port_retries": 0, "open_browser": False,
                               "token": "tok"}
    assert config["MappingKernelManager"] == {"cull_idle_timeout": CULL_IDLE_TIMEOUT, "cull_interval": CULL_INTERVAL,
                                              "cull_connected": False}
    assert CULL_INTERVAL <= 120 and CULL_IDLE_TIMEOUT + CULL_INTERVAL <= 120
    assert launch.url == "http://127.0.0.1:8866/?token=tok" and "tok" not in " ".join(launch.cmd)
