"""The leader-only runnable that writes the `stellar-peers` ConfigMaps.

The watcher folds on every replica and offers each new fold here (`offer`,
never blocking); only the Lease holder runs `run`: started when the Lease is
won (it then writes the newest fold at once), cancelled when it is lost, so a
deposed leader stops writing mid-round. A round that failed is retried with
backoff; a newer fold replaces an older one not written yet, and a round whose
peer set a newer fold changed starts no more writes: the newest canonical
ConfigMap is written at once, then the mirrors of the newest set. While sets
keep coming faster than a round ends (a rolling update), rounds are paced
(`CHURN_ROUNDS` per `CHURN_WINDOW_SECONDS`) so the canonical one is not
rewritten for every fold.

`hold` (the link follower's first pass, on a new leader) keeps a fold back: the
follower's last fold has no remote entries (links are followed by the leader alone),
so a new leader writes nothing until the first fold made once every link answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from webhook.controllers.exposure import ExposureReport
from webhook.controllers.publisher import ConfigMapWriter
from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import wait_any
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing.watched import State
from webhook.kube.backoff import backoff_delay

log = logging.getLogger(__name__)

# While each round's set goes stale before its mirrors are written (a rolling
# update), rounds are paced: at most this many start in this window.
CHURN_ROUNDS = 2
CHURN_WINDOW_SECONDS = 4.0
# How often a held publisher looks again whether it may write (it also wakes on a fold).
HOLD_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Fold:
    """What the watcher folded: the peer set and the state it came from."""

    peers: PeerSet
    state: State
    enabled: frozenset[str]


class ConfigMapPublisher:
    def __init__(
        self,
        *,
        writer: ConfigMapWriter,
        exposure: ExposureReport,
        hold: Callable[[], bool] = lambda: False,
    ) -> None:
        self.writer = writer
        self.exposure = exposure
        self.hold = hold
        self._latest: Fold | None = None
        self._wake = asyncio.Event()
        self._starts: deque[float] = deque(maxlen=CHURN_ROUNDS)  # the last rounds' starts

    def offer(self, fold: Fold) -> None:
        """Keep only the newest fold; the run loop writes it. Never blocks."""
        self._latest = fold
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write each new fold until `stop` is set (leader only: cancelled on loss)."""
        written: Fold | None = None
        churn = False  # the last round's set went stale while it ran
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
            if self.hold():
                # Every fold offered so far lacks what is held back: wait for a newer one.
                written = fold
                self._wake.clear()
                await wait_any(self._wake, stop, seconds=HOLD_POLL_SECONDS)
                continue
            pause = self._pace() if churn else 0.0
            if pause > 0:
                if await wait_any(stop, seconds=pause):
                    return
                continue  # then the newest fold, whichever came in the pause
            retry_at = None
            self._starts.append(time.monotonic())
            superseded = self._superseded(fold)
            if await self._publish(fold, superseded):
                attempt = 0
            else:
                retry_at = time.monotonic() + backoff_delay(attempt)
                attempt += 1
            written, churn = fold, superseded()

    def _pace(self) -> float:
        """Seconds to wait before a round while sets keep coming: at most
        `CHURN_ROUNDS` rounds start in `CHURN_WINDOW_SECONDS`, so a rolling update
        costs a few canonical writes, not one per fold."""
        if len(self._starts) < CHURN_ROUNDS:
            return 0.0
        return max(0.0, self._starts[0] + CHURN_WINDOW_SECONDS - time.monotonic())

    async def _publish(self, fold: Fold, superseded: Callable[[], bool]) -> bool:
        """One round; False when some call failed (retried with backoff)."""
        return await guarded(
            self._round(fold, superseded),
            event="watcher.publish-failed",
            failed=False,
            extra={"hash": fold.peers.hash},
        )

    async def _round(self, fold: Fold, superseded: Callable[[], bool]) -> bool:
        await self.exposure.report(fold.state, enabled=fold.enabled)
        return await self.writer.reconcile(
            peers=fold.peers, state=fold.state, enabled=fold.enabled, superseded=superseded
        )

    def _superseded(self, fold: Fold) -> Callable[[], bool]:
        """Whether a newer fold with another peer set waits: writes of `fold` not yet
        started are stale then. A newer fold with the same set is no reason to stop."""
        judged: list[tuple[Fold, bool]] = []  # the newest fold compared, and the answer

        def superseded() -> bool:
            latest = self._latest
            if latest is None or latest is fold:
                return False
            if not judged or judged[0][0] is not latest:
                judged[:] = [(latest, latest.peers != fold.peers)]
            return judged[0][1]

        return superseded
