#!/usr/bin/env python3
"""Make the README's screenshots from the real kit, in real Chromium.

    docs/img/lab.png      the OS Lock lab in JupyterLab (00-welcome.ipynb, Run All), after the guest
                          set OSLK under p2 and five steps of the following exit
    docs/img/compare.png  the compare panel of the Voila app (notebooks/app.ipynb): one scenario
                          under every variant as the matrix chart (the panel's table is hidden)

Usage (from the repository, with the test and app extras installed and Debian's chromium)::

    python scripts/screenshots.py [--out docs/img]

The servers run on 127.0.0.1 with a token, private Jupyter dirs and a temporary copy of notebooks/,
so nothing is written into the repository but the PNGs. Every request that is not local is blocked.
Each PNG must stay under 300 KB; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
MAX_BYTES = 300 * 1024
TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str | None, port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if url is None:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            else:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start within 90 s:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def _server(what: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, port: int,
            ready_url: str | None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            _wait(ready_url, port, proc, what, log)
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _home(tmp: Path) -> dict[str, str]:
    """Private Jupyter dirs and settings (no news toast, no autosave), a copy of notebooks/; the env."""
    for name in ("config", "runtime", "data", "ipython", "workspaces", "settings"):
        (tmp / name).mkdir()
    for rel, value in {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_DATA_DIR=str(tmp / "data"), IPYTHONDIR=str(tmp / "ipython"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("JUPYTER_PATH", None)
    return env


def _local_only(route: Any) -> None:
    if (urlparse(route.request.url).hostname or "") in ("127.0.0.1", "localhost", "::1"):
        route.continue_()
    else:
        route.abort()


def _page(browser: Any, width: int, height: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.route("**/*", _local_only)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _save(page_or_locator: Any, path: Path) -> None:
    page_or_locator.screenshot(path=str(path))
    size = path.stat().st_size
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({size // 1024} KB)")
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_BYTES}-byte budget")


def shoot_lab(browser: Any, expect: Any, tmp: Path, env: dict[str, str], out: Path) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={tmp / 'notebooks'}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           f"--LabApp.user_settings_dir={tmp / 'settings'}", "--LabApp.news_url="]
    base = f"http://127.0.0.1:{port}"
    with _server("JupyterLab", cmd, env, tmp, tmp / "lab.log", port, f"{base}/api/status?token={token}"):
        page = _page(browser, 1200, 900)
        page.goto(f"{base}/lab/tree/00-welcome.ipynb?token={token}")
        expect(page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle\s*$")).first).to_be_visible()
        page.locator("#jp-left-stack").wait_for(state="visible")  # then collapse the file browser
        page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
        page.locator("#jp-left-stack").wait_for(state="hidden")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        lab = page.locator(".kvmdbg-lab")
        expect(lab.locator(".kvmdbg-regtable table")).to_be_visible()
        lab.locator(".kvmdbg-oslk").click()
        expect(lab.locator(".kvmdbg-log")).to_contain_text("OSLAR_EL1, x0 (x0=1)")
        for _ in range(5):
            before = lab.locator(".kvmdbg-log").text_content()
            lab.locator(".kvmdbg-step").click()
            expect(lab.locator(".kvmdbg-log")).not_to_have_text(before or "")
        expect(lab.locator(".kvmdbg-function")).to_contain_text("__sysreg_restore_state_nvhe")
        page.mouse.click(5, 450)  # nothing focused: no blue focus ring on the step button
        # put the lab's cell at the top of the notebook's viewport
        lab.evaluate("el => el.closest('.jp-Cell').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        _save(page, out / "lab.png")
        page.context.close()


def shoot_compare(browser: Any, expect: Any, tmp: Path, env: dict[str, str], out: Path) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "voila", str(tmp / "notebooks" / "app.ipynb"), "--no-browser",
           "--Voila.ip=127.0.0.1", f"--port={port}", "--Voila.port_retries=0", f"--token={token}"]
    with _server("Voila", cmd, env, tmp / "notebooks", tmp / "voila.log", port, None):
        page = _page(browser, 1000, 2400)  # tall: the panel must fit without Voila's own scrolling
        page.goto(f"http://127.0.0.1:{port}/?token={token}", timeout=TIMEOUT_MS)
        panel = page.locator(".kvmdbg-compare")
        expect(panel.locator(".kvmdbg-comparetable table")).to_be_visible()
        expect(panel.locator("img.kvmdbg-matrix")).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=panel.locator("img.kvmdbg-matrix").element_handle())
        # the picture shows the scenario picker and the matrix; the table says the same in text
        panel.locator(".kvmdbg-comparetable").evaluate("el => { el.style.display = 'none'; }")
        page.wait_for_timeout(300)
        _save(panel, out / "compare.png")
        page.context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where to write (default: docs/img)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvmdbg-shots-") as t, sync_playwright() as pw:
        tmp = Path(t)
        env = _home(tmp)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            shoot_lab(browser, expect, tmp, env, out)
            shoot_compare(browser, expect, tmp, env, out)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
