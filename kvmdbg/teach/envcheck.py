"""The environment check that opens notebook 00: versions, widgets and charts.

``check()`` returns an :class:`EnvReport`; displayed in a notebook it shows a table of
the versions the kit relies on, a small chart (a picture, if charts render) and a small
widget (a green box, if widgets render), each with what to do when it does not show.
The kernel cannot see what the browser renders, so the last two are for the learner's
eyes: the report says exactly what they should see.
"""

from __future__ import annotations

import html
import importlib.metadata
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EnvReport", "check", "REQUIREMENTS"]

# distribution name -> (minimum version, what it is for); kept in step with pyproject.toml
REQUIREMENTS: dict[str, tuple[str, str]] = {
    "jupyterlab": ("4", "the notebooks' front end"),
    "ipywidgets": ("8", "the lab, the panels and the inline checks"),
    "matplotlib": ("3.7", "the charts"),
    "pandas": ("2.0", "traces and comparisons"),
}


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


@dataclass
class EnvReport:
    """What was found; ``ok`` is False when a requirement is missing or too old."""

    python: str
    versions: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"Python {self.python}"] + [f"{k} {v or 'MISSING'}" for k, v in self.versions.items()]
        lines += [f"PROBLEM: {p}" for p in self.problems] or ["all requirements met"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v or 'missing')}</td>"
            f"<td>{html.escape(REQUIREMENTS[k][1]) if k in REQUIREMENTS else ''}</td></tr>"
            for k, v in self.versions.items())
        verdict = ('<p style="color:#1b7837"><b>✓ Versions are fine.</b></p>' if self.ok else
                   '<p style="color:#b00020"><b>✗ ' + "<br>".join(html.escape(p) for p in self.problems) + "</b></p>")
        return (f"<div class='kvmdbg-envcheck'><p>Python {html.escape(self.python)}</p>"
                f"<table><tr><th>package</th><th>version</th><th>for</th></tr>{rows}</table>{verdict}"
                "<p>Below you should see <b>a small chart</b> (the four fields of OSLSR_EL1 as boxes) and "
                "<b>a green box</b> saying that widgets work. If the chart shows as text such as "
                "<code>&lt;kvmdbg chart ...&gt;</code>, your front end does not display images: open the "
                "notebook in JupyterLab. If the green box is missing or you see <code>VBox(...)</code> as "
                "text, widgets are not rendering: run <code>pip install -U ipywidgets jupyterlab</code> in "
                "the kit's environment, restart JupyterLab and reload the page.</p></div>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display({"text/html": self._repr_html_(), "text/plain": str(self)}, raw=True)  # type: ignore[no-untyped-call]
        display(_sample_chart())  # type: ignore[no-untyped-call]
        display(_sample_widget())  # type: ignore[no-untyped-call]


def _sample_chart() -> Any:
    from kvmdbg.teach.plot import bitfield

    return bitfield("OSLSR_EL1", 0x8)


def _sample_widget() -> Any:
    import ipywidgets as W

    box = W.HTML('<div style="background:#8fd19e;color:#1f1f1f;padding:6px 10px;border-radius:4px">'
                 "✓ Widgets work: this green box is an ipywidgets widget.</div>")
    box.add_class("kvmdbg-envcheck-widget")
    return box


def check() -> EnvReport:
    """Collect versions and problems (no side effects; display the result to see the samples)."""
    report = EnvReport(python=sys.version.split()[0])
    if sys.version_info < (3, 11):  # noqa: UP036 - the kit may be imported by an older Python by mistake
        report.problems.append(f"Python {report.python} is too old: kvmdbg needs 3.11 or newer.")
    for dist, (minimum, _) in REQUIREMENTS.items():
        try:
            version: str | None = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        report.versions[dist] = version
        if version is None:
            report.problems.append(f"{dist} is not installed: pip install '{dist}>={minimum}'.")
        elif _version_tuple(version) < _version_tuple(minimum):
            report.problems.append(f"{dist} {version} is older than {minimum}: pip install -U '{dist}>={minimum}'.")
    try:
        report.versions["kvmdbg"] = importlib.metadata.version("kvmdbg")
    except importlib.metadata.PackageNotFoundError:
        import kvmdbg

        report.versions["kvmdbg"] = f"{kvmdbg.__version__} (not installed; imported from {kvmdbg.__file__})"
    return report
