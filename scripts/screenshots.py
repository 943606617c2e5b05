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
import re
import secrets
import sys
import tempfile
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
TIMEOUT_MS = 60_000


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
            shoot_lab(browser, expect, tmp, env, out)
            shoot_compare(browser, expect, tmp, env, out)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
