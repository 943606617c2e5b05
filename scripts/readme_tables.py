"""Rewrite the README's generated blocks (the selftest tables) from the code.

    python scripts/readme_tables.py

tests/test_scenarios.py checks that the README shows exactly what this writes, so run it
after adding a variant or changing the selftest.
"""

from __future__ import annotations

import re
from pathlib import Path

import kvmdbg
from kvmdbg.teach.compare import selftest_markdown, selftest_summary_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def _replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- {name}:begin/end --> block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    text = _replace(text, "selftest-table", selftest_markdown(kvmdbg.VARIANTS))
    text = _replace(text, "selftest-run", selftest_summary_markdown())
    README.write_text(text, encoding="utf-8")
    print(f"rewrote the selftest blocks of {README}")


if __name__ == "__main__":
    main()
