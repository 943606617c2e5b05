"""kvmdbg lab and kvmdbg app as a learner starts them: loopback only, a token that is required
and printed in the URL, no warnings, --allow-root only as root, and a user's Jupyter config
cannot turn the token off. Each test starts the real command (a few seconds each)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import voila  # noqa: F401 - the app extra (kvmdbg app); the README's test command installs .[test,app]

REPO = Path(__file__).resolve().parents[1]
URL = re.compile(r"is serving (http://\S+)")
pytestmark = pytest.mark.slow


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def status(url: str) -> int:
    """HTTP status of GET url, redirects not followed."""
    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=20) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def refused(url: str) -> bool:
    """403, or a redirect to the login page."""
    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=20):
            return False
    except urllib.error.HTTPError as e:
        return e.code == 403 or (e.code in (302, 303) and "/login" in (e.headers.get("Location") or ""))


@contextmanager
def started(tmp_path: Path, *args: str, config: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``kvmdbg ARGS --no-browser`` until it prints the URL it serves; SIGTERM at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVMDBG_", "JUPYTER_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    cfg = tmp_path / "user-jupyter-config"  # the user's own Jupyter config folder
    cfg.mkdir(exist_ok=True)
    for name, text in (config or {}).items():
        (cfg / name).write_text(text)
    env.update(JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), IPYTHONDIR=str(tmp_path / "ipython"))
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "kvmdbg", *args, "--no-browser"], stdout=fo, stderr=fe,
                                stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (m := URL.search(out.read_text())):
            assert proc.poll() is None, f"exited {proc.returncode}: {err.read_text()}"
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.2)
        yield m.group(1), proc
    finally:
        children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"servers left running after SIGTERM to kvmdbg: {alive}"


def listening(proc: subprocess.Popen) -> set[tuple[str, int]]:
    pids = {proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))}
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def kernels(proc: subprocess.Popen) -> int:
    """Running kernel processes under kvmdbg (standalone Voila has no /api/kernels listing).

    A culled kernel can be seen for a moment as a zombie, not yet reaped: it is not running.
    """
    count = 0
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "ipykernel_launcher" in " ".join(child.cmdline()):
                count += 1
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return count


def server_cmdline(proc: subprocess.Popen, module: str) -> list[str]:
    for child in psutil.Process(proc.pid).children(recursive=True):
        cmd = child.cmdline()
        if module in cmd:
            return cmd
    raise AssertionError(f"no {module} child process")


HOSTILE_SERVER_CONFIG = {
    "jupyter_server_config.py": "c.IdentityProvider.token = ''\nc.PasswordIdentityProvider.token = ''\n"
                                "c.ServerApp.token = ''\nc.ServerApp.ip = '0.0.0.0'\n",
    "jupyter_server_config.json": json.dumps({"IdentityProvider": {"token": ""}, "ServerApp": {"ip": "*"}}),
}


def test_lab_binds_loopback_requires_its_token_and_opens_the_welcome_notebook(tmp_path: Path) -> None:
    with started(tmp_path, "lab", "--dir", str(tmp_path / "nb")) as (url, proc):
        base, token = url.split("/lab/")[0], url.split("token=")[1]
        assert url.startswith("http://127.0.0.1:") and "/lab/tree/00-welcome.ipynb?token=" in url
        assert len(token) >= 24
        assert {ip for ip, _ in listening(proc)} == {"127.0.0.1"}
        assert status(f"{base}/api/kernels") == 403
        assert status(f"{base}/api/kernels?token=wrong") == 403
        assert status(f"{base}/api/kernels?token={token}") == 200
        assert status(url) == 200  # the printed URL works as it is
        cmd = server_cmdline(proc, "jupyterlab")
        assert ("--allow-root" in cmd) == (os.geteuid() == 0)
        assert not any(token in part for part in cmd), "the token must not be visible in ps"
    err = (tmp_path / "stderr").read_text()
    assert "DeprecationWarning" not in err and "is deprecated" not in err, err
    assert not (tmp_path / "nb" / "app.ipynb").exists()
    assert (tmp_path / "nb" / "00-welcome.ipynb").is_file()


def test_a_user_config_that_empties_the_token_does_not_open_the_lab(tmp_path: Path) -> None:
    with started(tmp_path, "lab", "--dir", str(tmp_path / "nb"), config=HOSTILE_SERVER_CONFIG) as (url, proc):
        base, token = url.split("/lab/")[0], url.split("token=")[1]
        assert {ip for ip, _ in listening(proc)} == {"127.0.0.1"}
        assert status(f"{base}/api/kernels") == 403
        assert status(f"{base}/api/kernels?token={token}") == 200


def test_lab_turns_off_the_news_prompt_without_touching_user_settings(tmp_path: Path) -> None:
    with started(tmp_path, "lab", "--dir", str(tmp_path / "nb")) as (url, proc):
        with urllib.request.urlopen(url, timeout=20) as resp:
            page = resp.read().decode()
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>\s*(\{.*?\})\s*</script>', page, re.S).group(1))
        assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
        assert config["news"] == {"disabled": True}
    assert not (tmp_path / "user-jupyter-config" / "lab").exists()  # no settings written for the user


def test_app_binds_loopback_requires_its_token_and_culls_idle_kernels(tmp_path: Path) -> None:
    hostile = {"voila.json": json.dumps({"Voila": {"token": "", "ip": "0.0.0.0"}})}
    with started(tmp_path, "app", config=hostile) as (url, proc):
        base, token = url.split("/?token=")[0], url.split("token=")[1]
        assert url.startswith("http://127.0.0.1:")
        assert {ip for ip, _ in listening(proc)} == {"127.0.0.1"}
        # Voila answers an unauthenticated GET with a redirect to its login page (tornado's
        # @authenticated with a login_url), never with the page or a kernel
        for path in ("/", "/api/kernels", "/api/kernels?token=wrong"):
            assert refused(f"{base}{path}"), path
        assert kernels(proc) == 0, "a refused request must not start a kernel"
        assert status(url) == 200  # the printed URL renders the app (and starts its kernel)
        assert kernels(proc) == 1
        cmd = server_cmdline(proc, "voila")
        assert "--allow-root" not in cmd and not any(token in part for part in cmd)
    err = (tmp_path / "stderr").read_text()
    assert "Culling kernels with idle durations > 60 seconds at 30 second intervals" in err
    assert "DeprecationWarning" not in err


def test_app_with_its_port_busy_says_so_or_serves_what_it_prints(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KVMDBG_")}
        env["PYTHONPATH"] = str(REPO)
        result = subprocess.run([sys.executable, "-m", "kvmdbg", "app", "--port", str(port), "--no-browser"],
                                capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 2
        assert f"port {port} on 127.0.0.1 is in use" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- Voila kernels in a real browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.mark.browser
def test_voila_culls_the_kernels_of_closed_pages(tmp_path: Path, chromium: Any) -> None:
    """Five page loads in Chromium, pages closed: at most one kernel left once the cull interval passed."""
    if os.environ.get("KVMDBG_SKIP_BROWSER") or not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (or KVMDBG_SKIP_BROWSER is set)")
    from kvmdbg.servers import CULL_IDLE_TIMEOUT, CULL_INTERVAL

    with started(tmp_path, "app") as (url, proc):
        browser = chromium.new_context()  # the session's one Chromium (tests/conftest.py)
        try:
            for _ in range(5):
                page = browser.new_page()
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                    "http://127.0.0.1") else route.abort())
                page.goto(url)
                page.wait_for_selector(".widget-button", timeout=60_000)  # the lab rendered: its kernel runs
                page.close()
        finally:
            browser.close()
        after_closing = kernels(proc)
        start = time.monotonic()
        limit = CULL_IDLE_TIMEOUT + CULL_INTERVAL + 20
        while kernels(proc) > 0 and time.monotonic() - start < limit:  # wait for all of them, to report it
            time.sleep(2)
        left, waited = kernels(proc), time.monotonic() - start
    print(f"voila kernels: {after_closing} right after 5 closed page loads, {left} after {waited:.0f} s")
    assert after_closing == 5, "each page load should have had its own kernel"
    assert left <= 1, f"{left} kernels still running {waited:.0f} s after the pages were closed"


@pytest.mark.browser
def test_lab_opens_the_welcome_notebook_without_the_news_prompt(tmp_path: Path, chromium: Any) -> None:
    if os.environ.get("KVMDBG_SKIP_BROWSER") or not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (or KVMDBG_SKIP_BROWSER is set)")

    with started(tmp_path, "lab", "--dir", str(tmp_path / "nb")) as (url, proc):
        browser = chromium.new_context()  # the session's one Chromium (tests/conftest.py)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                "http://127.0.0.1") else route.abort())
            page.goto(url)
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
            page.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=60_000)
            page.wait_for_timeout(3000)  # the prompt, when enabled, appears once the app is restored
            tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current").first.inner_text().strip()
            body = page.locator("body").inner_text()
        finally:
            browser.close()
    assert tab == "00-welcome.ipynb"
    assert "get notified about official Jupyter news" not in body
