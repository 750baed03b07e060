"""Supervision: a bug in one round of a long-running loop must not end the loop.

The one copy of "catch anything, log it with its traceback, go on" for every loop
that runs for the life of the process (watch sources, the ConfigMap publisher, the
reload controller, the identity learner, the audit, links): a loop that ended on a
bug would leave its part silently stale. Cancellation is never caught.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from webhook.kube.backoff import backoff_delay

log = logging.getLogger(__name__)

T = TypeVar("T")


async def guarded(
    work: Awaitable[T], *, event: str, failed: T, extra: Mapping[str, Any] | None = None
) -> T:
    """`work`'s result, or `failed` when it raised: logged as `event`, traceback included."""
    try:
        return await work
    except Exception:
        log.exception(event, extra=dict(extra or {}))
        return failed


async def supervise(
    once: Callable[[], Awaitable[None]],
    *,
    event: str,
    extra: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `once` again and again until `stop` (forever without one), backing off after
    each crash so a bug that recurs does not spin."""
    attempt = 0
    while stop is None or not stop.is_set():
        if await guarded(_done(once()), event=event, failed=False, extra=extra):
            attempt = 0
            continue
        await asyncio.sleep(backoff_delay(attempt))
        attempt += 1


async def _done(work: Awaitable[None]) -> bool:
    await work
    return True
