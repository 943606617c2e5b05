"""The environment check of notebook 00 reports versions and problems in words a learner can act on."""

from __future__ import annotations

import importlib.metadata

import pytest

from kvmdbg.teach import envcheck


def test_this_environment_passes() -> None:
    report = envcheck.check()
    assert report.ok, report.problems
    assert set(envcheck.REQUIREMENTS) <= set(report.versions)
    assert "Versions are fine" in report._repr_html_() and "green box" in report._repr_html_()


def test_a_missing_or_old_package_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version

    def fake(dist: str) -> str:
        if dist == "ipywidgets":
            raise importlib.metadata.PackageNotFoundError(dist)
        if dist == "matplotlib":
            return "3.5.1"
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", fake)
    report = envcheck.check()
    assert not report.ok
    assert any("ipywidgets is not installed: pip install 'ipywidgets>=8'" in p for p in report.problems)
    assert any("matplotlib 3.5.1 is older than 3.7" in p for p in report.problems)
    assert "✗" in report._repr_html_()
