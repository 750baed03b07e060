"""`audit.Evictions`, the leader-only half of the audit: each round's finds evicted once,
none found before this leadership began."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from webhook.controllers.audit import Evictions, Found
from webhook.kube.rest import Rest


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}}


def test_a_new_leader_evicts_from_its_own_rounds_only_and_each_round_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evictions = Evictions(rest=Rest(client.ApiClient()))
    evicted: list[list[str]] = []

    async def main() -> None:
        round_evicted = asyncio.Event()

        def evict(pods: Found) -> None:
            evicted.append([p["metadata"]["name"] for p in pods])
            loop.call_soon_threadsafe(round_evicted.set)

        loop = asyncio.get_running_loop()
        monkeypatch.setattr(evictions, "_evict", evict)
        evictions.offer([pod("stale")])  # found while another replica led
        stop = asyncio.Event()
        task = asyncio.ensure_future(evictions.run(stop))
        await asyncio.sleep(0)
        evictions.offer([pod("fresh")])
        await asyncio.wait_for(round_evicted.wait(), timeout=10)
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    asyncio.run(main())
    assert evicted == [["fresh"]]
