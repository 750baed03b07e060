"""`leader.start`, the one place runnables start: without an elector every runnable runs."""

from __future__ import annotations

import asyncio

from webhook.kube.leader import Runnable, start


def test_without_an_elector_leader_only_runnables_run_too_and_stop_with_stop() -> None:
    ran: list[str] = []
    both = asyncio.Event()

    def part(name: str) -> Runnable:
        async def run(stop: asyncio.Event) -> None:
            ran.append(name)
            if len(ran) == 2:
                both.set()
            await stop.wait()

        return Runnable(name, run, leader_only=name == "leader-only")

    async def main() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(p)
            for p in start([part("every"), part("leader-only")], leader=None, stop=stop)
        ]
        await asyncio.wait_for(both.wait(), timeout=5)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)

    asyncio.run(main())
    assert sorted(ran) == ["every", "leader-only"]
