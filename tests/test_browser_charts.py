"""Real-browser check of what a learner sees first: the charts of notebooks 00 and 05 are pictures.

JupyterLab in headless Chromium runs each notebook with "Run All Cells"; the first chart cell must
render an ``<img>`` of non-trivial size, and no output may read ``<Figure size ...>``. Same skips and
isolation as tests/test_browser.py (private Jupyter dirs, a copy of notebooks/, loopback only).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from kvmdbg.servers import LocalServer, free_port, lab_command, private_jupyter_home

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

if os.environ.get("KVMDBG_SKIP_BROWSER", "").strip().lower() in {"1", "true", "yes", "on"}:
    pytest.skip("KVMDBG_SKIP_BROWSER is set: real-browser tests skipped", allow_module_level=True)
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium): real-browser tests skipped",
                allow_module_level=True)
expect = sync_api.expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    home = tmp_path_factory.mktemp("jupyter-charts")
    env = private_jupyter_home(home, NOTEBOOKS, pythonpath=ROOT)
    env.pop("MPLBACKEND", None)  # what a learner has: no backend chosen
    port, token = free_port(), secrets.token_hex(16)
    with LocalServer("JupyterLab", lab_command(port, token, home / "notebooks", home), port=port, token=token,
                     log=home / "lab.log", env=env, cwd=home, timeout=60.0) as server:
        yield server


@pytest.mark.parametrize("notebook", ["00-welcome", "05-world-switch"])
def test_first_chart_is_a_picture_in_jupyterlab(notebook: str, lab: LocalServer, local_context: Any) -> None:
    expect.set_options(timeout=60_000)
    context = local_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        # a workspace of its own, so JupyterLab restores no tab of an earlier test
        page.goto(f"{lab.base}/lab/workspaces/charts-{notebook}/tree/{notebook}.ipynb?token={lab.token}")
        select = page.locator(".jp-Dialog button", has_text=re.compile(r"^Select$"))
        page.wait_for_timeout(500)
        if select.count():  # a kernel picker, if this JupyterLab asks: take the notebook's own kernel
            select.first.click()
        expect(page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle\s*$")).first).to_be_visible()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        img = page.locator(".jp-OutputArea-output img").first
        expect(img).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
        width, height = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert width >= 400 and height >= 150, f"the first chart of {notebook} is only {width}x{height} px"
        box = img.bounding_box()
        assert box is not None and box["width"] >= 300, f"the chart is drawn {box} on the page"
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        assert not any(t.strip().startswith("<Figure") for t in outputs), "a figure shown as text"
        ARTIFACTS.mkdir(exist_ok=True)
        img.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"chart-{notebook}.png"))
    finally:
        context.close()
