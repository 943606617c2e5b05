"""Test-wide settings: hypothesis runs deterministically by default.

Two hypothesis profiles (select one with ``HYPOTHESIS_PROFILE``):

- ``default``: derandomized, no example database. The same commit always generates the
  same examples, so CI cannot go red or green by chance; each failure that a search ever
  found is kept as an explicit ``@example`` next to its test.
- ``explore``: random search with ten times each test's ``max_examples`` and a local
  example database (``.hypothesis/``). Run it by hand, or as CI's non-blocking step:
  ``HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest -m "not browser" -k "hypothesis or fuzz or propert"``
  and turn whatever it finds into an ``@example``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)

EXPLORE_FACTOR = 10


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``explore``, give every hypothesis test ten times its examples."""
    if PROFILE != "explore":
        return
    for item in items:
        test = getattr(item, "obj", None)
        if getattr(test, "hypothesis", None) is None:
            continue
        for fn in (test, test.hypothesis.inner_test):
            own = getattr(fn, "_hypothesis_internal_use_settings", None)
            if own is not None:
                fn._hypothesis_internal_use_settings = settings(own, derandomize=False,
                                                                max_examples=own.max_examples * EXPLORE_FACTOR)


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis profile: {PROFILE} (set HYPOTHESIS_PROFILE=explore for a random search)"


# -- one Chromium for every real-browser test -------------------------------------------------
# Playwright's sync API runs an event loop while it is open, so a second sync_playwright() in
# the same process fails ("Sync API inside the asyncio loop"). Every browser test therefore
# takes this one session-wide browser.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium():  # type: ignore[no-untyped-def]
    """A headless Debian Chromium driven by Playwright, shared by the whole session."""
    if os.environ.get("KVMDBG_SKIP_BROWSER", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.skip("KVMDBG_SKIP_BROWSER is set: real-browser tests skipped")
    if not os.path.isfile(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium): real-browser tests skipped")
    from playwright.sync_api import sync_playwright  # the test extra; imported here so other tests need no browser

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _local_only(route):  # type: ignore[no-untyped-def]
    """Let requests to this machine through; abort every other one (fonts from a CDN, news, ...)."""
    from urllib.parse import urlparse

    host = urlparse(route.request.url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def local_context(chromium):  # type: ignore[no-untyped-def]
    """Make browser contexts of the shared Chromium that reach only this machine; closed after the test."""
    made = []

    def new(**kwargs):  # type: ignore[no-untyped-def]
        context = chromium.new_context(**kwargs)
        context.route("**/*", _local_only)
        made.append(context)
        return context

    yield new
    for context in made:
        try:
            context.close()  # a test may have closed it already
        except Exception:  # noqa: BLE001 - closing twice is not a test failure
            pass
