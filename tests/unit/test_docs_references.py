"""The docs cite tests and files as evidence: each cited one must exist.

A renamed test or moved manifest would otherwise leave a claim pointing at
nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `tests/e2e/test_x.py::test_y`, `manifests/base/x.yaml`, `webhook/x.py`, ...
CITED = re.compile(r"\b((?:tests|manifests|webhook|certs|charts|scripts)/[\w./-]*\w)(?:::(\w+))?")
# `test_a`, `test_b` after a `tests/...py::test_x` citation in the same parenthesis.
FOLLOWING = re.compile(r"(tests/[\w/]+\.py)::\w+(?:`?,\s*`(test_\w+)`)+")


def citations() -> list[tuple[str, str, str | None]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for path, name in CITED.findall(text):
            found.append((doc.name, path, name or None))
        for match in FOLLOWING.finditer(text):
            for name in re.findall(r"`(test_\w+)`", match.group(0)):
                found.append((doc.name, match.group(1), name))
    return found


def test_docs_cite_something() -> None:
    assert len(citations()) > 20


@pytest.mark.parametrize(("doc", "path", "name"), sorted(set(citations()), key=str))
def test_cited_file_and_test_exist(doc: str, path: str, name: str | None) -> None:
    target = ROOT / path
    assert target.exists(), f"{doc} cites {path}, which does not exist"
    if name is not None:
        tree = ast.parse(target.read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        constants = {
            t.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        assert name in defined | constants, f"{doc} cites {path}::{name}, not defined there"
