"""Build the course as a static site: every notebook executed, with its charts, as HTML pages.

    .venv/bin/python scripts/build_site.py [--out docs/site] [--no-execute]

Why nbconvert and not Jupyter Book: nbconvert (with nbclient) is already installed with
JupyterLab, runs offline, and turns an executed notebook into one self-contained HTML page
(charts embedded as PNG data). Jupyter Book 2 fetches its theme from the network at build
time, which these machines cannot reach. The site is:

- ``index.html``: the learning path, the workshop plan and instructor notes, the references;
- one page per notebook (links between notebooks rewritten to the pages);
- ``workshop-plan.html`` and ``instructor-notes.html`` from docs/workshop/.

After building, :func:`check_site` verifies that every local link resolves, every image has
data, and no page shows a figure as text (``<Figure size ...>``). Widgets are shown as their
text form: the lab needs a kernel, so the pages say so.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ORDER = ["00-welcome", "01-baseline", "02-patch1", "03-patch2", "04-patch3", "05-world-switch", "06-guest-view",
         "07-userspace", "08-upstream", "09-exercises", "09-solutions", "glossary", "cheatsheet"]
DOCS = {"workshop-plan": ROOT / "docs" / "workshop" / "plan.md",
        "instructor-notes": ROOT / "docs" / "workshop" / "instructor-notes.md"}
STYLE = """<style>
body {font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #1f1f1f;}
table {border-collapse: collapse;} td, th {border: 1px solid #bbb; padding: 2px 6px;}
code {background: #f2f2f2;} nav {margin-bottom: 1.5em;} .note {background: #fff7e0; padding: 0.5em 1em;}
</style>"""


def _link_fix(text: str) -> str:
    """Links between notebooks and docs point to the site's pages."""
    text = re.sub(r'href="(?:\./)?([\w-]+)\.ipynb(#[\w-]*)?"', lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"',
                  text)
    text = re.sub(r'href="(?:\.\./)*notebooks/([\w-]+)\.ipynb"', r'href="\1.html"', text)
    text = text.replace('href="instructor-notes.md"', 'href="instructor-notes.html"')
    text = text.replace('href="plan.md"', 'href="workshop-plan.html"')
    return text


def _title(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source.splitlines()[0] if nb.cells else path.stem
    return first.lstrip("# ").strip()


def _page(title: str, body: str) -> str:
    nav = '<nav><a href="index.html">kvmdbg course</a></nav>'
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>"
            f"<body>{nav}{body}</body></html>")


def build(out: Path, execute: bool = True) -> list[Path]:
    """Write the site into ``out``; returns the pages written."""
    out.mkdir(parents=True, exist_ok=True)
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env_path]))  # for the kernels
    try:
        return _build(out, execute)
    finally:  # leave the caller's environment as it was (the tests call build() in-process)
        if env_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_path


def _build(out: Path, execute: bool) -> list[Path]:
    import mistune
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="classic")
    exporter.embed_images = True
    written: list[Path] = []
    for stem in ORDER:
        path = NOTEBOOKS / f"{stem}.ipynb"
        nb = nbformat.read(path, as_version=4)
        if execute:
            client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                             resources={"metadata": {"path": str(NOTEBOOKS)}})
            client.execute()
        body, _ = exporter.from_notebook_node(nb)
        target = out / f"{stem}.html"
        target.write_text(_link_fix(body), encoding="utf-8")
        written.append(target)
    md = mistune.create_markdown(plugins=["table"])
    for name, src in DOCS.items():
        target = out / f"{name}.html"
        target.write_text(_link_fix(_page(name.replace("-", " "), str(md(src.read_text())))), encoding="utf-8")
        written.append(target)
    items = "".join(f'<li><a href="{s}.html">{html.escape(_title(NOTEBOOKS / (s + ".ipynb")))}</a></li>'
                    for s in ORDER)
    index = (f"<h1>kvmdbg: the debug OS Lock under KVM/arm64</h1>"
             f"<p class='note'>Static pages of the course, executed when the site was built. The lab and the "
             f"inline checks need a running kernel: <code>kvmdbg lab</code> (README).</p>"
             f"<h2>Lessons and references</h2><ol start='0'>{items}</ol>"
             f"<h2>For instructors</h2><ul><li><a href='workshop-plan.html'>The two-hour plan</a></li>"
             f"<li><a href='instructor-notes.html'>Instructor notes</a></li></ul>")
    (out / "index.html").write_text(_page("kvmdbg course", index), encoding="utf-8")
    written.append(out / "index.html")
    return written


def check_site(out: Path) -> list[str]:
    """Problems found in the built site: broken local links, images without data, figures as text."""
    problems: list[str] = []
    for page in sorted(out.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        for href in re.findall(r'href="([^"#:]+?\.html)(?:#[^"]*)?"', text):
            if not (out / href).is_file():
                problems.append(f"{page.name}: link to missing page {href}")
        for src in re.findall(r'<img[^>]*\ssrc="([^"]*)"', text):
            if not (src.startswith("data:image/") and len(src) > 200) and not (out / src).is_file():
                problems.append(f"{page.name}: image without data ({src[:40]})")
        if "&lt;Figure size" in text or "<Figure size" in text:
            problems.append(f"{page.name}: a figure shown as text")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "site")
    ap.add_argument("--no-execute", action="store_true", help="convert the notebooks as committed (no outputs)")
    args = ap.parse_args(argv)
    pages = build(args.out, execute=not args.no_execute)
    problems = check_site(args.out)
    for p in problems:
        print("site:", p, file=sys.stderr)
    print(f"{len(pages)} pages in {args.out}; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
