"""Test-wide options. Unit tests run first, then tests/e2e (the control plane), then tests/node."""

from __future__ import annotations

import pytest
from hypothesis import settings

# Property tests assert what the code returns, never how fast: a per-example deadline
# only fails them on a loaded machine (CI saw 448 ms on an example that takes 0.1 ms).
settings.register_profile("project", deadline=None)
settings.load_profile("project")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.injected.yaml from the current injection code",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Pure tests first: they fail fast and need no control plane; the real node last.
    def tier(item: pytest.Item) -> int:
        path = str(item.path)
        return 2 if "/node/" in path else 1 if "/e2e/" in path else 0

    items.sort(key=tier)
