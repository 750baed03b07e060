"""The one supervised loop: a crash is logged and the loop goes on; a stop ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from webhook.controllers import supervision
from webhook.controllers.supervision import guarded, supervise


async def crash() -> int:
    raise RuntimeError("a bug")


def test_guarded_logs_a_crash_with_its_traceback_and_answers_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        got = asyncio.run(guarded(crash(), event="part.crashed", failed=-1, extra={"hash": "h"}))
    assert got == -1
    [record] = caplog.records
    assert (record.message, record.exc_info is not None) == ("part.crashed", True)
    assert getattr(record, "hash", None) == "h"


def test_guarded_never_swallows_cancellation() -> None:
    async def cancelled() -> int:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(guarded(cancelled(), event="part.crashed", failed=0))


def test_supervise_runs_again_after_a_crash_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "backoff_delay", lambda attempt: 0.0)
    runs: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def once() -> None:
            runs.append(len(runs))
            if len(runs) == 1:
                raise RuntimeError("a bug in the first round")
            if len(runs) == 3:
                stop.set()

        await asyncio.wait_for(supervise(once, event="part.crashed", stop=stop), timeout=5)

    asyncio.run(main())
    assert runs == [0, 1, 2]
