"""Retry delays: one backoff rule for watches, publishing and reload rounds."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rand: Callable[[], float] = random.random
) -> float:
    """Exponential from `base`, capped at `cap`, with jitter so replicas do not retry in step
    (`rand`, the jitter's source, is a seam that tests fix)."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 16))
    return ceiling * (0.5 + rand() / 2)
