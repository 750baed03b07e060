"""The `stellar-peers` ConfigMaps: the canonical one and a mirror per enabled namespace.

Owns a publish *round*: which ConfigMaps to create, update or delete (`plan`,
pure), the canonical one first, then the mirrors eight at a time, each write on
a thread of its own (`webhook.controllers.configmap_write` carries out one).
Writes are compare-then-write: a ConfigMap whose data and hash annotation
already match is never touched. A round whose set a newer one has made stale
starts no more writes (`superseded`): the newer set's round writes its canonical
at once, then its mirrors. Which keys go where follows their sizes
(`webhook.core.publishing.publish_size`): mirrors without `peers.json` past 512 KiB, the
canonical one with it gzipped past 1 MiB, each change said in an Event; a set
that does not fit even then is not written: the last good one stays.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client

from webhook.controllers.configmap_notices import ConfigMapNotices
from webhook.controllers.configmap_write import ConfigMapWrites
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing.publish import content_digest, render
from webhook.core.publishing.publish_plan import Step, canonical_ref, plan, with_own_writes
from webhook.core.publishing.publish_size import Layout, Mode, configmap_bodies, layout, notice
from webhook.core.publishing.watched import State
from webhook.kube.rest import Rest
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8
# A round waits this long for one write; one still hanging then finishes alone.
ROUND_WAIT_SECONDS = 2.0

SKIPPED = -1  # a step a newer set made stale: not started, not failed


def _never() -> bool:
    return False


class ConfigMapWriter:
    def __init__(
        self, *, settings: Settings, api_client: client.ApiClient, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        rest = Rest(api_client)
        self._notices = ConfigMapNotices(settings=settings, rest=rest, metrics=metrics)
        self._writes = ConfigMapWrites(
            settings=settings, rest=rest, metrics=metrics, notices=self._notices
        )
        self._last_good: tuple[PeerSet, Layout] | None = None
        self._mode: Mode = "full"  # the layout last published, to say when it changes
        # Writes of their own threads: a hung one never takes a thread others need.
        self._executor = ThreadPoolExecutor(WRITE_CONCURRENCY * 2, thread_name_prefix="cm-write")
        self._in_flight: dict[str, asyncio.Future[int | None]] = {}  # namespace -> its write
        self._last_written: dict[str, float] = {}  # namespace -> when a step there last ran

    def fit(self, peers: PeerSet) -> tuple[tuple[PeerSet, Layout] | None, str]:
        """The set to publish with its layout (`peers` if it fits, else the last good
        one) and a warning, if new."""
        shaped = layout(render(peers))
        if shaped.canonical is not None:
            self._last_good = (peers, shaped)
            return self._last_good, ""
        keeping = self._last_good[0].hash if self._last_good else None
        warning = self._notices.too_large(peers, shaped, keeping=keeping)
        return self._last_good, warning

    async def reconcile(
        self,
        *,
        peers: PeerSet,
        state: State,
        enabled: Iterable[str],
        superseded: Callable[[], bool] = _never,
    ) -> bool:
        """Bring every `stellar-peers` ConfigMap in line; False when some call failed.

        Once `superseded()` says a newer set waits, no further write starts (those
        under way finish): the caller's next round publishes the newer set.
        """
        fitted, warning = self.fit(peers)
        if warning:
            await asyncio.to_thread(
                functools.partial(
                    self._notices.canonical_event,
                    reason="PeerSetTooLarge",
                    message=warning,
                    event_type="Warning",
                )
            )
        if fitted is None:
            return True
        published, shaped = fitted
        canonical = canonical_ref(self.settings)
        bodies = configmap_bodies(published, shaped, canonical=canonical)
        digests = {kind: content_digest(body) for kind, body in bodies.items()}
        enabled = frozenset(enabled)
        steps = self._steps(state, digests=digests, enabled=enabled)
        self._last_written = {
            ns: at
            for ns, at in self._last_written.items()
            if ns in enabled or ns == self.settings.namespace
        }
        started = time.monotonic()
        results = await self._carry_out(steps, bodies, digests, superseded=superseded)
        if steps:
            log.info(
                "configmap.round",
                extra={
                    "hash": published.hash,
                    "steps": len(steps),
                    "skipped": results.count(SKIPPED),
                    "bytes": sum(r for r in results if r is not None and r > 0),
                    "mode": shaped.mode,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
        said = notice(self._mode, shaped, canonical=canonical)
        self._mode = shaped.mode
        if said is not None:
            await asyncio.to_thread(self._notices.layout_changed, said, shaped)
        return all(r is not None for r in results)

    def _steps(
        self, state: State, *, digests: Mapping[str, str], enabled: Iterable[str]
    ) -> list[Step]:
        """The plan, from the watched state with our own writes it does not show yet."""
        state, applied = with_own_writes(state, dict(self._writes.written))
        for namespace in set(self._writes.written) - applied:  # the watch caught up there
            self._writes.written.pop(namespace, None)
        return plan(
            state,
            desired_digest=digests["canonical"],
            mirror_digest=digests["mirror"],
            system_namespace=self.settings.namespace,
            enabled=enabled,
            canonical=canonical_ref(self.settings),
        )

    async def _carry_out(
        self,
        steps: list[Step],
        bodies: Mapping[str, dict[str, Any]],
        digests: Mapping[str, str],
        *,
        superseded: Callable[[], bool],
    ) -> list[int | None]:
        """Each step's bytes sent (None: failed; `SKIPPED`: made stale before it started):
        the canonical ConfigMap first, then the mirrors `WRITE_CONCURRENCY` at a time."""
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def run(step: Step) -> int | None:
            if step.namespace in self._in_flight:
                return None  # the previous write there is still hanging: a later round
            async with gate:
                if superseded():
                    return SKIPPED
                kind = self._writes.kind(step.namespace)
                call = functools.partial(self._writes.carry_out, step, bodies[kind], digests[kind])
                self._last_written[step.namespace] = time.monotonic()
                return await self._bounded(
                    step.namespace, loop.run_in_executor(self._executor, call)
                )

        # The canonical ConfigMap first: it is what the reload controller's hash
        # and operators look at, and with a hundred mirrors it would otherwise
        # wait behind them all.
        first = [step for step in steps if step.namespace == self.settings.namespace]
        # The mirrors written longest ago first: when newer sets keep cutting rounds
        # short, none is left behind round after round.
        rest = sorted(
            (step for step in steps if step.namespace != self.settings.namespace),
            key=lambda step: self._last_written.get(step.namespace, 0.0),
        )
        try:
            results = [await run(step) for step in first]
            results += await asyncio.gather(*(run(step) for step in rest))
        except asyncio.CancelledError:  # leadership lost: nothing of ours goes on writing
            for task in self._in_flight.values():
                task.cancel()
            raise
        return results

    async def _bounded(self, namespace: str, write: asyncio.Future[int | None]) -> int | None:
        """The write's result, but one still hanging `ROUND_WAIT_SECONDS` after it
        started is left to finish on its own thread (bounded by the call timeout) and
        its namespace skipped until then, so one hung write never holds up the other
        ConfigMaps' rounds. The clock starts at the write, not in the queue for the
        gate: with a hundred mirrors, eight at a time, most of them wait there longer."""
        self._in_flight[namespace] = write
        write.add_done_callback(lambda _: self._in_flight.pop(namespace, None))
        done, _ = await asyncio.wait({write}, timeout=ROUND_WAIT_SECONDS)
        if not done:
            log.warning("configmap.write-slow", extra={"namespace": namespace})
            return None
        return write.result()
