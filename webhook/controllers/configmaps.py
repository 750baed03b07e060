"""The leader-only runnable that writes the `stellar-peers` ConfigMaps.

The watcher folds on every replica and offers each new fold here (`offer`,
never blocking); only the Lease holder runs `run`: started when the Lease is
won (it then writes the newest fold at once), cancelled when it is lost, so a
deposed leader stops writing mid-round. A round that failed is retried with
backoff; a newer fold replaces an older one not written yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from webhook.controllers.exposure import ExposureReport
from webhook.controllers.publisher import ConfigMapWriter
from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import wait_any
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing.watched import State
from webhook.kube.backoff import backoff_delay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    """What the watcher folded: the peer set and the state it came from."""

    peers: PeerSet
    state: State
    enabled: frozenset[str]


class ConfigMapPublisher:
    def __init__(self, *, writer: ConfigMapWriter, exposure: ExposureReport) -> None:
        self.writer = writer
        self.exposure = exposure
        self._latest: Fold | None = None
        self._wake = asyncio.Event()

    def offer(self, fold: Fold) -> None:
        """Keep only the newest fold; the run loop writes it. Never blocks."""
        self._latest = fold
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write each new fold until `stop` is set (leader only: cancelled on loss)."""
        written: Fold | None = None
        attempt = 0
        retry_at: float | None = None
        while not stop.is_set():
            fold = self._latest
            due = retry_at is not None and time.monotonic() >= retry_at
            if fold is None or (fold is written and not due):
                timeout = None if retry_at is None else max(0.0, retry_at - time.monotonic())
                self._wake.clear()
                await wait_any(self._wake, stop, seconds=timeout)
                continue
            retry_at = None
            if await self._publish(fold):
                attempt = 0
            else:
                retry_at = time.monotonic() + backoff_delay(attempt)
                attempt += 1
            written = fold

    async def _publish(self, fold: Fold) -> bool:
        """One round; False when some call failed (retried with backoff)."""
        return await guarded(
            self._round(fold),
            event="watcher.publish-failed",
            failed=False,
            extra={"hash": fold.peers.hash},
        )

    async def _round(self, fold: Fold) -> bool:
        await self.exposure.report(fold.state, enabled=fold.enabled)
        return await self.writer.reconcile(peers=fold.peers, state=fold.state, enabled=fold.enabled)
