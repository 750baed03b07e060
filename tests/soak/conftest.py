"""Slow tests run by scripts/soak.sh only: files here are named soak_*.py, which the
default `pytest` run does not collect. The cluster fixtures are the e2e ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures, found by name)
    admreg,
    apps,
    cluster,
    coordination,
    core,
    kubelet,
    namespace,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.cluster)
