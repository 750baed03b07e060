"""SIGTERM drains: unready at once, still serving for the grace period, then stopped."""

from __future__ import annotations

import asyncio

import pytest

from webhook.cli.serve import _on_signal, drain
from webhook.settings import Settings, SettingsError


def test_the_first_signal_drains_and_stop_waits_for_the_grace_period() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        draining, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(drain(draining=draining, stop=stop, grace_seconds=0.5))
        _on_signal(draining, stop)
        await asyncio.sleep(0.1)
        unready_but_serving = draining.is_set() and not stop.is_set()
        await asyncio.wait_for(task, timeout=10)
        return unready_but_serving, stop.is_set(), task.done()

    serving_while_draining, stopped, done = asyncio.run(scenario())
    assert serving_while_draining
    assert stopped
    assert done


def test_a_second_signal_stops_at_once() -> None:
    async def scenario() -> bool:
        draining, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(drain(draining=draining, stop=stop, grace_seconds=3600))
        _on_signal(draining, stop)
        await asyncio.sleep(0.05)
        _on_signal(draining, stop)
        await asyncio.wait_for(task, timeout=10)
        return stop.is_set()

    assert asyncio.run(scenario())


@pytest.mark.parametrize("value", [-1.0, 301.0])
def test_a_grace_period_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(SettingsError, match="shutdown-grace-seconds"):
        Settings(shutdown_grace_seconds=value)
