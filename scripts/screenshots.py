#!/usr/bin/env python3
"""Make the README's and the review's screenshots from the real kit, in real Chromium.

    docs/img/lab.png      the OS Lock lab in JupyterLab (00-welcome.ipynb, Run All), after the guest
                          set OSLK under p2 and five steps of the following exit
    docs/img/compare.png  the compare panel of the Voila app (notebooks/app.ipynb): one scenario
                          under every variant as the matrix chart (the panel's table is hidden)
    docs/img/lab-*.png    the whole lab after each control, in order on one p2 nVHE machine:
                          lab-0-start, lab-1-toggle (OSLK = 1: p2's swapped-argument note),
                          lab-2-step, lab-3-read, lab-4-vcpu_put, lab-5-vcpu_load,
                          lab-6-run-to (run to kvm_arch_vcpu_put, which stepping never reaches),
                          lab-7-variant (switched to upstream), lab-8-upstream-toggle (MDSCR masking)
    docs/img/nb-*.png     every notebook (00-08, 09-exercises, 09-solutions) after Run All in
                          JupyterLab, in a tall window; not committed (regenerate after merging)

Usage (from the repository, with the test and app extras installed and Debian's chromium)::

    python scripts/screenshots.py [--out docs/img]

The servers run on 127.0.0.1 with a token, private Jupyter dirs and a temporary copy of notebooks/,
so nothing is written into the repository but the PNGs. Every request that is not local is blocked.
``--only readme``, ``--only lab`` or ``--only notebooks`` makes one group. lab.png and compare.png
must stay under 300 KB and each lab-*.png under 400 KB; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kvmdbg.servers import LocalServer, free_port, lab_command, private_jupyter_home, voila_command  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
MAX_BYTES = 300 * 1024
MAX_LAB_SHOT_BYTES = 400 * 1024  # the whole lab, phase list and diagram included, in one tall picture
MAX_NOTEBOOK_BYTES = 3 * 1024 * 1024  # notebook shots are tall and not committed
TIMEOUT_MS = 60_000
RUN_ALL_TIMEOUT_MS = 180_000
NOTEBOOKS = ("00-welcome", "01-baseline", "02-patch1", "03-patch2", "04-patch3", "05-world-switch",
             "06-guest-view", "07-userspace", "08-upstream", "09-exercises", "09-solutions")
IDLE = re.compile(r"\|\s*Idle\s*$")


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


def _save(page_or_locator: Any, path: Path, budget: int = MAX_BYTES) -> None:
    page_or_locator.screenshot(path=str(path))
    size = path.stat().st_size
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({size // 1024} KB)")
    if size > budget:
        raise SystemExit(f"{path} is {size} bytes, over the {budget}-byte budget")


def _open_and_run_all(page: Any, expect: Any, base: str, token: str, notebook: str) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, collapse the file browser, Run All."""
    # a workspace of its own: JupyterLab would otherwise reopen (and start kernels for) the
    # notebooks of earlier shots
    page.goto(f"{base}/lab/workspaces/shot-{notebook}/tree/{notebook}.ipynb?reset&token={token}")
    # the toolbar says "idle" before the kernel exists: wait for the status bar's "| Idle"
    expect(page.locator(".jp-StatusBar-TextItem", has_text=IDLE).first).to_be_visible()
    left = page.locator("#jp-left-stack")
    if left.is_visible():
        page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
        left.wait_for(state="hidden")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _wait_run_all_done(page: Any) -> None:
    """Until no cell of the open notebook is queued or running ("[*]") and the kernel is idle."""
    page.wait_for_function(
        r"""() => {
            const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) '
                                                                  + '.jp-InputPrompt'));
            const status = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))
                .map(e => e.textContent.trim());
            return prompts.length > 0 && prompts.every(p => !p.textContent.includes('*'))
                && status.some(t => /\|\s*Idle$/.test(t));
        }""", timeout=RUN_ALL_TIMEOUT_MS)


def _shut_down_kernels(base: str, token: str) -> None:
    """Delete every session of the server, so one notebook's kernel does not slow the next."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as r:
        sessions = json.load(r)
    for sess in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{sess['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()


_DIAGRAM = ".kvmdbg-lab .kvmdbg-diagram-view svg.kvmdbg-diagram"


def _lab_changed(lab: Any, expect: Any, before: str) -> None:
    """Until the lab's diagram differs from ``before`` (the click's round trip is complete)."""
    expect(lab.locator(".kvmdbg-diagram-view svg.kvmdbg-diagram")).to_be_visible()
    # the widget replaces its markup: look the diagram up again each time
    lab.page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel); "
                               "return e !== null && e.outerHTML !== old; }", arg=[_DIAGRAM, before])


def shoot_lab_controls(browser: Any, expect: Any, tmp: Path, env: dict[str, str], out: Path) -> None:
    """The whole lab after each control, on one machine (see the module docstring for the order)."""
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    with LocalServer("JupyterLab", lab_command(port, token, tmp / "notebooks", tmp), port=port, token=token,
                     log=tmp / "lab-controls.log", env=env, cwd=tmp):
        page = _page(browser, 1280, 2600)  # tall: the whole lab in one picture
        _open_and_run_all(page, expect, base, token, "00-welcome")
        lab = page.locator(".kvmdbg-lab")
        expect(lab.locator(".kvmdbg-diagram-view svg.kvmdbg-diagram")).to_be_visible()
        lab.evaluate("el => el.closest('.jp-Cell').scrollIntoView({block: 'start'})")
        diagram = lab.locator(".kvmdbg-diagram-view svg.kvmdbg-diagram")

        def shot(name: str) -> None:
            page.mouse.click(2, 2)  # nothing focused: no focus ring on the last button
            page.wait_for_timeout(300)
            _save(lab, out / f"lab-{name}.png", MAX_LAB_SHOT_BYTES)

        def click(selector: str) -> None:
            before = diagram.evaluate("e => e.outerHTML")
            lab.locator(selector).click()
            _lab_changed(lab, expect, before)

        shot("0-start")
        click(".kvmdbg-oslk")
        expect(lab.locator(".kvmdbg-why")).to_contain_text("value and index are swapped")
        shot("1-toggle")
        click(".kvmdbg-step")
        shot("2-step")
        click(".kvmdbg-read")
        shot("3-read")
        click(".kvmdbg-put")
        expect(lab.locator(".kvmdbg-put")).to_contain_text("vcpu_load")
        shot("4-vcpu_put")
        click(".kvmdbg-put")
        shot("5-vcpu_load")
        lab.locator(".kvmdbg-run-target select").select_option("kvm_arch_vcpu_put")
        click(".kvmdbg-run")
        expect(lab.locator(".kvmdbg-log")).to_contain_text("it never runs by stepping")
        shot("6-run-to")
        before = diagram.evaluate("e => e.outerHTML")
        lab.locator(".kvmdbg-variant select").select_option("upstream")
        _lab_changed(lab, expect, before)
        expect(lab.locator(".kvmdbg-description")).to_contain_text("upstream")
        shot("7-variant")
        click(".kvmdbg-oslk")
        expect(lab.locator(".kvmdbg-why")).to_contain_text("MDSCR_EL1.MDE")
        shot("8-upstream-toggle")
        page.context.close()


def shoot_notebooks(browser: Any, expect: Any, tmp: Path, env: dict[str, str], out: Path) -> None:
    """Every notebook after Run All in JupyterLab, one at a time, its kernel shut down after."""
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    with LocalServer("JupyterLab", lab_command(port, token, tmp / "notebooks", tmp), port=port, token=token,
                     log=tmp / "lab-notebooks.log", env=env, cwd=tmp):
        for name in NOTEBOOKS:
            page = _page(browser, 1280, 3000)
            _open_and_run_all(page, expect, base, token, name)
            _wait_run_all_done(page)
            page.wait_for_timeout(1500)  # images and widgets finish rendering
            # back to the top: the picture starts at the notebook's title
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer, "
                         ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.evaluate(
                "el => el.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            _save(page, out / f"nb-{name}.png", MAX_NOTEBOOK_BYTES)
            page.context.close()
            _shut_down_kernels(base, token)


def shoot_lab(browser: Any, expect: Any, tmp: Path, env: dict[str, str], out: Path) -> None:
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    with LocalServer("JupyterLab", lab_command(port, token, tmp / "notebooks", tmp), port=port, token=token,
                     log=tmp / "lab.log", env=env, cwd=tmp):
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
    port, token = free_port(), secrets.token_hex(16)
    with LocalServer("Voila", voila_command(tmp / "notebooks" / "app.ipynb", port, token), port=port, token=token,
                     log=tmp / "voila.log", env=env, cwd=tmp / "notebooks", ready_path=None):
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
    parser.add_argument("--only", choices=("readme", "lab", "notebooks"), help="make one group only")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvmdbg-shots-") as t, sync_playwright() as pw:
        tmp = Path(t)
        env = private_jupyter_home(tmp, ROOT / "notebooks", pythonpath=ROOT)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            if args.only in (None, "readme"):
                shoot_lab(browser, expect, tmp, env, out)
                shoot_compare(browser, expect, tmp, env, out)
            if args.only in (None, "lab"):
                shoot_lab_controls(browser, expect, tmp, env, out)
            if args.only in (None, "notebooks"):
                shoot_notebooks(browser, expect, tmp, env, out)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
