"""The metrics the docs name are the ones `webhook/metrics.py` exports, with their labels;
the Events they list are ones the code emits.

docs/operations.md has the one full table; the README and the other pages name
metrics in passing, and each one named must exist with the labels written.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import Counter

from webhook.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
TABLE_DOC = ROOT / "docs" / "operations.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `stellar_x` or `stellar_x{a,b}`: a metric in code font (module names are never alone in one).
NAMED = re.compile(r"`(stellar_[a-z_]+)(?:\{([a-z_,]+)\})?`")


def exported() -> dict[str, tuple[str, ...]]:
    """Each exported metric name (a Counter gets `_total`) and its label names."""
    found: dict[str, tuple[str, ...]] = {}
    for collector in vars(Metrics()).values():
        if not hasattr(collector, "_labelnames"):
            continue  # the registry
        name = collector._name + ("_total" if isinstance(collector, Counter) else "")
        found[name] = tuple(collector._labelnames)
    return found


def documented_table() -> dict[str, tuple[str, ...]]:
    text = TABLE_DOC.read_text()
    section = text.split("### Metrics\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `stellar_")]
    table: dict[str, tuple[str, ...]] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = cells[0].strip("`")
        assert name not in table, f"{name} documented twice"
        table[name] = tuple(re.findall(r"`([a-z_]+)`", cells[1]))
    return table


def test_the_metrics_table_is_what_the_code_exports() -> None:
    code, docs = exported(), documented_table()
    assert len(code) > 15
    assert set(docs) == set(code), (
        f"undocumented: {sorted(set(code) - set(docs))}, "
        f"not exported: {sorted(set(docs) - set(code))}"
    )
    wrong = {n: (docs[n], code[n]) for n in code if docs[n] != code[n]}
    assert not wrong, f"labels (docs, code): {wrong}"


def test_every_metric_named_in_the_docs_exists_with_those_labels() -> None:
    code = exported()
    named = [(page.name, m) for page in PAGES for m in NAMED.findall(page.read_text())]
    assert any(page == "README.md" for page, _ in named)
    for page, (name, labels) in named:
        assert name in code, f"{page} names {name}, which webhook/metrics.py does not export"
        if labels:
            assert tuple(labels.split(",")) == code[name], f"{page}: {name}{{{labels}}}"


def test_every_event_in_the_table_is_one_the_code_emits() -> None:
    text = TABLE_DOC.read_text()
    section = text.split("### Events\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    reasons = [r for row in rows for r in re.findall(r"`([A-Z]\w+)`", row.split("|")[1])]
    assert len(reasons) > 10
    source = "".join(p.read_text() for p in (ROOT / "webhook").rglob("*.py"))
    missing = [r for r in reasons if f'"{r}"' not in source]
    assert not missing, f"docs/operations.md lists Events the code never emits: {missing}"
