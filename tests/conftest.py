"""Test-wide options. Unit tests run first; cluster tests live in tests/e2e."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.injected.yaml from the current injection code",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Pure tests first: they fail fast and need no control plane.
    items.sort(key=lambda item: 1 if "/e2e/" in str(item.path) else 0)
