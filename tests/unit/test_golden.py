"""Golden files: each `tests/golden/<case>.yaml` pod must inject into `<case>.injected.yaml`.

`pytest --update-golden` rewrites the expected files from the current code; review
the diff before committing it. The first line of an input says which decision it
is about (`# reason: validator-image`), so a blind update cannot hide a changed
decision. `__VERSION__` in an input stands for the running version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook import __version__
from webhook.cli import offline as documents
from webhook.core.injection import mutation
from webhook.settings import Settings

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SUFFIX = ".injected.yaml"
SETTINGS = Settings()


def cases() -> list[str]:
    return sorted(
        path.name.removesuffix(".yaml")
        for path in GOLDEN.glob("*.yaml")
        if not path.name.endswith(SUFFIX)
    )


def read_input(case: str) -> str:
    return (GOLDEN / f"{case}.yaml").read_text().replace("__VERSION__", __version__)


def input_pod(case: str) -> dict[str, Any]:
    pod: dict[str, Any] = yaml.safe_load(read_input(case))
    return pod


def expected_reason(case: str) -> str:
    first = read_input(case).splitlines()[0]
    assert first.startswith("# reason: "), f"{case}.yaml must start with '# reason: <reason>'"
    return first.removeprefix("# reason: ").strip()


@pytest.mark.parametrize("case", cases())
def test_golden_injects_as_expected(case: str, request: pytest.FixtureRequest) -> None:
    actual = documents.inject_text(read_input(case), settings=SETTINGS)
    expected = GOLDEN / f"{case}{SUFFIX}"
    if request.config.getoption("--update-golden", default=False):
        expected.write_text(actual)
    assert expected.exists(), f"{expected.name} is missing: run pytest --update-golden"
    assert actual == expected.read_text(), f"{case}: run pytest --update-golden and review"


@pytest.mark.parametrize("case", cases())
def test_golden_decision_is_the_one_the_case_is_about(case: str) -> None:
    decision = mutation.decide(input_pod(case), settings=SETTINGS)
    assert decision.reason == expected_reason(case)


@pytest.mark.parametrize("case", cases())
def test_golden_output_is_stable_under_reinjection(case: str) -> None:
    """Feeding an expected file back in changes nothing: injection is idempotent."""
    expected = (GOLDEN / f"{case}{SUFFIX}").read_text()
    assert documents.inject_text(expected, settings=SETTINGS) == expected


def test_golden_files_are_paired() -> None:
    inputs = set(cases())
    outputs = {p.name.removesuffix(SUFFIX) for p in GOLDEN.glob(f"*{SUFFIX}")}
    assert outputs - inputs == set(), "expected files without an input"
    assert inputs - outputs == set(), "inputs without an expected file: run --update-golden"


def test_golden_cases_cover_every_skip_and_inject_reason() -> None:
    reasons = {expected_reason(case) for case in cases()}
    assert {
        "validator-image",
        "validator-label",
        "not-a-validator",
        "opted-out",
        "already-injected",
    } <= reasons
