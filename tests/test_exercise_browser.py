"""Real browser: an exercise's hints and the ask() widget as a learner sees them in JupyterLab.

The notebook is generated into a private folder (nothing of the repository is served). Skipped
like tests/test_browser.py: ``KVMDBG_SKIP_BROWSER=1`` or no ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright import sync_api

from kvmdbg.servers import LocalServer, free_port, lab_command, private_jupyter_home

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

if os.environ.get("KVMDBG_SKIP_BROWSER", "").strip().lower() in {"1", "true", "yes", "on"}:
    pytest.skip("KVMDBG_SKIP_BROWSER is set: real-browser tests skipped", allow_module_level=True)
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: real-browser tests skipped", allow_module_level=True)
expect = sync_api.expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    home = tmp_path_factory.mktemp("jupyter-ask")
    env = private_jupyter_home(home, pythonpath=ROOT)
    folder = home / "notebooks"
    folder.mkdir()
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("from kvmdbg.teach.exercises import ask, check, get"),
        v4.new_code_cell('get("esr-oslar")'),
        v4.new_code_cell('check("esr-oslar", ...)'),
        v4.new_code_cell('ask("nb03-ttbr1-p2")'),
    ], metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nbformat.write(nb, folder / "ask.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    with LocalServer("JupyterLab", lab_command(port, token, folder, home), port=port, token=token,
                     log=home / "lab.log", env=env, cwd=home, timeout=60) as server:
        yield server


def test_hints_and_the_ask_widget_work_in_jupyterlab(lab: LocalServer, local_context: Any) -> None:
    from kvmdbg.teach.exercises import get

    expect.set_options(timeout=30_000)
    # the session's one Chromium (tests/conftest.py); a context of its own
    context = local_context(viewport={"width": 1280, "height": 1100})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{lab.base}/lab/tree/ask.ipynb?token={lab.token}")
        expect(page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle\s*$")).first).to_be_visible()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

        # the exercise shows its hints as collapsible sections, and opening one shows the text
        ex = get("esr-oslar")
        hint = page.locator(".kvmdbg-exercise details.kvmdbg-hint").first
        expect(hint.locator("summary")).to_have_text("Hint 1")
        expect(hint.locator("p")).to_be_hidden()
        hint.locator("summary").click()
        expect(hint.locator("p")).to_be_visible()
        expect(hint.locator("p")).to_contain_text(ex.hints[0][:30])
        # the untouched answer cell is a reminder naming its exercise
        expect(page.locator(".kvmdbg-feedback-unanswered[data-exercise='esr-oslar']")).to_be_visible()

        # the widget: type, check, read the feedback; then open a hint
        box = page.locator(".kvmdbg-ask")
        expect(box).to_contain_text("nb03-ttbr1-p2")
        field = box.locator(".kvmdbg-ask-input input")
        field.fill("0x8")
        box.locator(".kvmdbg-ask-check").click()
        feedback = box.locator(".kvmdbg-ask-feedback")
        expect(feedback).to_contain_text("✗")
        expect(feedback).to_contain_text("nb03-ttbr1-p2")
        field.fill("0x1a")
        box.locator(".kvmdbg-ask-check").click()
        expect(feedback.locator(".kvmdbg-feedback-correct")).to_be_visible()
        box.locator(".kvmdbg-ask-hint").first.click()
        expect(box.locator(".kvmdbg-ask-hints")).to_contain_text(get("nb03-ttbr1-p2").hints[0][:30])
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "exercise-ask-jupyterlab.png"), full_page=True)
    finally:
        context.close()
