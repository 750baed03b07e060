"""Waiting for the cluster to reach a state: poll with a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Return the first truthy value of `condition()`, or fail after `timeout` seconds.

    Exceptions from `condition` count as "not yet", so a lookup of an object
    that does not exist yet can be polled directly; the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last_value = value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = (
                f"; last error: {last_error!r}" if last_error else f"; last value: {last_value!r}"
            )
            raise AssertionError(f"timed out after {timeout}s waiting for {message}{detail}")
        time.sleep(interval)
