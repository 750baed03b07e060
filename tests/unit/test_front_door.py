"""The README is a user's front door: short, in a user's order, and every link in it resolves.

The development harness lives in docs/development.md; the README keeps only the
two commands (CI and readers look for them) and points there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) with a relative target (no scheme), an optional #anchor dropped.
LINK = re.compile(r"\]\((?![a-z]+:)([^)#\s]+)(?:#[^)]*)?\)")
MAX_README_BYTES = 10 * 1024


def headings(text: str) -> list[str]:
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]


def test_readme_is_at_most_10_kb() -> None:
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_readme_is_in_a_users_order() -> None:
    order = headings(README.read_text())
    wanted = ["How it works", "Quick start", "What a validator pod gets", "Operating it", "Docs"]
    assert [h for h in order if h in wanted] == wanted, order
    assert order[-1] == "Contributing", "the contributors' lines come last"


def test_readme_names_the_two_commands_and_where_the_harness_is() -> None:
    text = README.read_text()
    assert "`make demo` runs the main job" in text
    assert "`make test` runs the tests" in text
    assert "(docs/development.md)" in text
    development = (ROOT / "docs" / "development.md").read_text()
    for section in ("The two commands", "The real node", "Benchmarks and soak", "Layout"):
        assert section in headings(development), section


def test_readme_indexes_every_docs_page() -> None:
    linked = set(LINK.findall(README.read_text()))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"not in the README's docs index: {sorted(pages - linked)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [t for t in LINK.findall(page.read_text()) if not (page.parent / t).exists()]
    assert not broken, f"{page.name} links to missing files: {broken}"
