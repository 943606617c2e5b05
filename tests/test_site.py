"""The static site of the course builds from the notebooks and shows every chart as an image."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
assert spec and spec.loader
build_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_site)

CHART_LESSONS = ["00-welcome", "01-baseline", "03-patch2", "04-patch3", "05-world-switch", "06-guest-view",
                 "08-upstream"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site.build(out, execute=True)
    return out


@pytest.mark.slow
def test_the_site_has_no_broken_links_or_missing_images(site: Path) -> None:
    assert build_site.check_site(site) == []
    assert {p.stem for p in site.glob("*.html")} >= set(build_site.ORDER) | {"index", "workshop-plan"}


@pytest.mark.slow
@pytest.mark.parametrize("stem", CHART_LESSONS)
def test_every_chart_lesson_page_shows_its_charts_as_pictures(site: Path, stem: str) -> None:
    text = (site / f"{stem}.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', text)) >= 1
    # a chart shown only as its text form (the repr ends with this advice)
    assert "display it in a notebook, or fig.savefig" not in text and "&lt;Figure size" not in text


def test_the_checker_finds_a_broken_link_and_a_figure_as_text(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text('<a href="missing.html">x</a><pre>&lt;Figure size 640x480 with 1 Axes&gt;</pre>'
                                     '<img src="nothing.png">')
    problems = build_site.check_site(tmp_path)
    assert len(problems) == 3


def test_building_leaves_the_callers_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    build_site.build(tmp_path / "site", execute=False)
    assert os.environ["PYTHONPATH"] == "/somewhere"
