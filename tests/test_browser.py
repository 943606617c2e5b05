"""Real-browser tests: the OS Lock lab rendered by JupyterLab and by Voila in headless Chromium.

Each test starts from a page, clicks the lab's real buttons and checks the register table the page
shows against a ``kvmdbg.Machine`` driven with the same actions in this process. The servers run on
127.0.0.1 with a token, private Jupyter dirs and a temporary copy of ``notebooks/``; the repository's
notebooks are hashed before and after to prove nothing wrote into them.

Skipped when ``KVMDBG_SKIP_BROWSER=1`` or when ``/usr/bin/chromium`` is missing (``.ci/run`` installs
Debian's chromium). The ``playwright`` package (the test extra) and Voila (the app extra; the README's
test command installs ``.[test,app]``) are imported plainly: a missing one fails, it does not skip.
Playwright never downloads a browser here: it launches ``/usr/bin/chromium``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import voila  # noqa: F401 - the app extra, which voila_server launches
from playwright import sync_api

from kvmdbg.servers import LocalServer, free_port, lab_command, private_jupyter_home, voila_command

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SERVER_START_TIMEOUT = 60.0
UI_TIMEOUT_MS = 30_000

if os.environ.get("KVMDBG_SKIP_BROWSER", "").strip().lower() in {"1", "true", "yes", "on"}:
    pytest.skip("KVMDBG_SKIP_BROWSER is set: real-browser tests skipped", allow_module_level=True)
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium): real-browser tests skipped",
                allow_module_level=True)
expect = sync_api.expect

pytestmark = pytest.mark.browser

# --------------------------------------------------------------------------- the model's answer


def _hex(v: int | None) -> str:
    return "—" if v is None else f"{v:#x}"


def expected_table(machine: Any) -> dict[str, str]:
    """What the lab's table must show for ``machine``: "REG@location" -> the cell's text."""
    from kvmdbg.teach.widgets import TABLE_LOCATIONS, TABLE_REGISTERS

    readers = {"physical": machine.physical, "vcpu": machine.vcpu_reg, "host": machine.host_reg,
               "guest_view": machine.guest_view}
    out: dict[str, str] = {}
    for reg in TABLE_REGISTERS:
        for loc in TABLE_LOCATIONS:
            try:
                value = readers[loc](reg)
            except Exception:  # a register this PE lacks: the lab shows no value
                value = None
            out[f"{reg}@{loc}"] = _hex(value)
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k, v in after.items() if before[k] != v}


# --------------------------------------------------------------------------- reading the page

_READ_TABLE = """root => Object.fromEntries(Array.from(root.querySelectorAll('tr[data-reg] td')).map(
    td => [td.parentElement.dataset.reg + '@' + td.dataset.loc, [td.textContent.trim(), td.className]]))"""

_TABLE_IS = """([sel, want]) => {
    const root = document.querySelector(sel);
    if (!root) return false;
    const cells = root.querySelectorAll('tr[data-reg] td');
    if (cells.length !== Object.keys(want).length) return false;
    for (const td of cells) {
        if (want[td.parentElement.dataset.reg + '@' + td.dataset.loc] !== td.textContent.trim()) return false;
    }
    return true;
}"""


def read_table(page: Any, sel: str) -> dict[str, tuple[str, str]]:
    return page.locator(sel).evaluate(_READ_TABLE)


def wait_table(page: Any, sel: str, want: dict[str, str], what: str) -> dict[str, tuple[str, str]]:
    """Wait until the table under ``sel`` shows ``want``; fail with a cell-by-cell diff otherwise."""
    try:
        page.wait_for_function(_TABLE_IS, arg=[sel, want], timeout=UI_TIMEOUT_MS)
    except sync_api.TimeoutError:
        got = read_table(page, sel) if page.locator(sel).count() else {}
        diff = {k: (want[k], got.get(k, ("<missing>", ""))[0]) for k in want
                if got.get(k, ("", ""))[0] != want[k]}
        pytest.fail(f"{what}: the page's table never matched the model; (want, page) per cell: {diff}")
    return read_table(page, sel)


def highlighted(cells: dict[str, tuple[str, str]]) -> set[str]:
    return {k for k, (_, cls) in cells.items() if "changed" in cls.split()}


def wait_step(page: Any, scope: str, event: Any) -> None:
    """Wait until the lab's log shows ``event`` (its step number) and names its kernel function."""
    log = page.locator(f"{scope} .kvmdbg-log")
    expect(log).to_contain_text(f"[{event.step}] ")
    expect(page.locator(f"{scope} .kvmdbg-function")).to_contain_text(event.function)


_DIAGRAM = "svg.kvmdbg-diagram"


def diagram_html(page: Any, scope: str) -> str:
    return page.locator(f"{scope} .kvmdbg-diagram-view {_DIAGRAM}").evaluate("e => e.outerHTML")


def check_diagram(page: Any, scope: str, machine: Any, what: str, previous: str | None = None) -> str:
    """The lab's machine diagram is a rendered <svg> of real size showing the model's values.

    With ``previous`` (the diagram's markup before a click), also that the click changed it.
    """
    svg = page.locator(f"{scope} .kvmdbg-diagram-view {_DIAGRAM}")
    expect(svg).to_be_visible()
    box = svg.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 250, f"{what}: diagram is {box}"
    want = {f"physical:{r}:-1": _hex(machine.physical(r)) for r in ("OSLSR_EL1", "MDSCR_EL1", "MDCR_EL2")}
    want |= {"vcpu:OSLSR_EL1:0": _hex(machine.vcpu_reg("OSLSR_EL1")),
             "guest_view:OSLSR_EL1:0": _hex(machine.guest_view("OSLSR_EL1"))}
    try:
        page.wait_for_function(
            """([sel, want, prev]) => {
                const svg = document.querySelector(sel);
                if (!svg || (prev !== null && svg.outerHTML === prev)) return false;
                return Object.entries(want).every(([k, v]) => {
                    const g = svg.querySelector(`g[data-key="${k}"]`);
                    return g && g.dataset.value === v;
                });
            }""", arg=[f"{scope} .kvmdbg-diagram-view {_DIAGRAM}", want, previous], timeout=UI_TIMEOUT_MS)
    except sync_api.TimeoutError:
        got = svg.evaluate("s => Object.fromEntries(Array.from(s.querySelectorAll('g[data-key]'))"
                           ".map(g => [g.dataset.key, g.dataset.value]))")
        pytest.fail(f"{what}: the diagram never showed the model's values (or never changed): want {want}, "
                    f"page {got}")
    return diagram_html(page, scope)


# --------------------------------------------------------------------------- servers


def _tree_hash(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.fixture(scope="session")
def repo_notebooks() -> Iterator[dict[str, str]]:
    """The repository's notebooks, hashed; checked again when the session ends."""
    before = _tree_hash(NOTEBOOKS)
    yield before
    assert _tree_hash(NOTEBOOKS) == before, "a browser test changed a notebook of the repository"


@pytest.fixture(scope="session")
def jupyter_home(tmp_path_factory: pytest.TempPathFactory, repo_notebooks: dict[str, str]) -> tuple[Path, dict]:
    """Private Jupyter dirs and quiet settings, a copy of notebooks/, and the servers' environment."""
    home = tmp_path_factory.mktemp("jupyter")
    return home, private_jupyter_home(home, NOTEBOOKS, pythonpath=ROOT)


@pytest.fixture(scope="session")
def lab_server(jupyter_home: tuple[Path, dict]) -> Iterator[LocalServer]:
    home, env = jupyter_home
    port, token = free_port(), secrets.token_hex(16)
    with LocalServer("JupyterLab", lab_command(port, token, home / "notebooks", home), port=port, token=token,
                     log=home / "lab.log", env=env, cwd=home, timeout=SERVER_START_TIMEOUT) as server:
        yield server


@pytest.fixture(scope="session")
def voila_server(jupyter_home: tuple[Path, dict]) -> Iterator[LocalServer]:
    home, env = jupyter_home
    app = home / "notebooks" / "app.ipynb"
    assert app.is_file(), "notebooks/app.ipynb is missing"
    port, token = free_port(), secrets.token_hex(16)
    with LocalServer("Voila", voila_command(app, port, token), port=port, token=token, log=home / "voila.log",
                     env=env, cwd=home / "notebooks", ready_path=None, timeout=SERVER_START_TIMEOUT) as server:
        yield server


@pytest.fixture
def page(local_context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    expect.set_options(timeout=UI_TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    context = local_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
        except Exception:  # a screenshot is a help for debugging, never a failure
            pass
        context.close()


# --------------------------------------------------------------------------- the tests


def test_lab_in_jupyterlab(page: Any, lab_server: LocalServer, repo_notebooks: dict[str, str]) -> None:
    """00-welcome in JupyterLab: Run All, then OSLK and step change the table as the model says."""
    from kvmdbg import Machine

    page.goto(f"{lab_server.base}/lab/tree/00-welcome.ipynb?token={lab_server.token}")
    # the toolbar says "idle" before the kernel exists: wait for the status bar's "| Idle"
    expect(page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle\s*$")).first).to_be_visible()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    scope = ".kvmdbg-lab"
    table = f"{scope} .kvmdbg-regtable"
    expect(page.locator(table).locator("table")).to_be_visible()
    machine = Machine("p2")  # the notebook's lab("p2"): nVHE
    start = expected_table(machine)
    shown = wait_table(page, table, start, "fresh p2 lab")
    assert highlighted(shown) == set()
    expect(page.locator(f"{scope} .kvmdbg-description")).to_contain_text("p2")
    expect(page.locator(f"{scope} .kvmdbg-description")).to_contain_text("nVHE")
    drawn = check_diagram(page, scope, machine, "fresh p2 lab")

    # the guest sets the OS Lock: under p2 the PE itself is locked while the guest runs
    page.locator(f"{scope} .kvmdbg-oslk").click()
    machine.guest_write("OSLAR_EL1", 1)
    locked = expected_table(machine)
    assert locked["OSLSR_EL1@physical"] == "0xa" and locked["OSLSR_EL1@vcpu"] == "0xa"
    shown = wait_table(page, table, locked, "after OSLK = 1")
    assert highlighted(shown) == changed(start, locked)
    expect(page.locator(f"{scope} .kvmdbg-oslk")).to_contain_text("OSLK = 1")
    expect(page.locator(f"{scope} .kvmdbg-log")).to_contain_text("MSR OSLAR_EL1, x0 (x0=1)")
    drawn = check_diagram(page, scope, machine, "after OSLK = 1", drawn)
    # p2's handler stored 0x1a into ESR_EL1 of the vCPU context: the panel says why, the diagram shows it
    expect(page.locator(f"{scope} .kvmdbg-why")).to_contain_text("value and index are swapped")
    expect(page.locator(f"{scope} .kvmdbg-diagram-view g[data-key='vcpu:ESR_EL1:0']")).to_have_attribute(
        "data-value", "0x1a")
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-locked.png"))

    # step through the exit one phase at a time until the host's state is back on the PE
    previous = locked
    for _ in range(5):
        page.locator(f"{scope} .kvmdbg-step").click()
        event = machine.step()
        assert event is not None
        wait_step(page, scope, event)
        now = expected_table(machine)
        shown = wait_table(page, table, now, f"after step {event.step} ({event.function})")
        assert highlighted(shown) == changed(previous, now)
        drawn = check_diagram(page, scope, machine, f"after step {event.step}", drawn)
        previous = now
    assert previous["OSLSR_EL1@physical"] == "0x8", "p2 puts the host's OSLK (0) back on the PE at exit"
    assert previous["OSLSR_EL1@vcpu"] == "0xa", "the guest's OSLK stays saved in the vCPU context"
    expect(page.locator(f"{scope} .kvmdbg-error")).to_have_text("")
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-stepped.png"))
    assert _tree_hash(NOTEBOOKS) == repo_notebooks


def test_app_in_voila(page: Any, voila_server: LocalServer, repo_notebooks: dict[str, str]) -> None:
    """The Voila app: switch to upstream, set OSLK, step; the table follows the model."""
    from kvmdbg import Machine

    page.goto(f"{voila_server.base}/?token={voila_server.token}", timeout=60_000)
    scope = ".kvmdbg-lab"
    table = f"{scope} .kvmdbg-regtable"
    wait_table(page, table, expected_table(Machine("p2")), "fresh p2 app")
    drawn = check_diagram(page, scope, Machine("p2"), "fresh p2 app")
    expect(page.locator(".kvmdbg-compare .kvmdbg-comparetable table")).to_be_visible()
    expect(page.locator(".kvmdbg-compare img.kvmdbg-matrix")).to_be_visible()
    assert page.locator(".jp-InputArea-editor, .cm-editor").count() == 0, "Voila must show no code"

    page.locator(f"{scope} .kvmdbg-variant select").select_option("upstream")
    machine = Machine("upstream")
    start = expected_table(machine)
    wait_table(page, table, start, "after switching to upstream")
    expect(page.locator(f"{scope} .kvmdbg-description")).to_contain_text("upstream")

    # upstream traps the guest's OSLAR_EL1 write and keeps OSLK in the vCPU context only
    page.locator(f"{scope} .kvmdbg-oslk").click()
    machine.guest_write("OSLAR_EL1", 1)
    locked = expected_table(machine)
    assert locked["OSLSR_EL1@physical"] == "0x8" and locked["OSLSR_EL1@guest_view"] == "0xa"
    shown = wait_table(page, table, locked, "upstream, after OSLK = 1")
    assert highlighted(shown) == changed(start, locked)
    drawn = check_diagram(page, scope, machine, "upstream, after OSLK = 1", drawn)

    page.locator(f"{scope} .kvmdbg-step").click()
    event = machine.step()
    assert event is not None
    wait_step(page, scope, event)
    wait_table(page, table, expected_table(machine), f"upstream, after step {event.step}")
    check_diagram(page, scope, machine, f"upstream, after step {event.step}", drawn)
    expect(page.locator(f"{scope} .kvmdbg-error")).to_have_text("")
    page.screenshot(path=str(ARTIFACTS / "voila-upstream.png"), full_page=True)
    assert _tree_hash(NOTEBOOKS) == repo_notebooks
