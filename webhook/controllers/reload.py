"""The reload controller: tells running validators when the peer set changes.

stellar-core reads its peers once, at start, and has no reload command, but a
running node accepts `connect?peer=HOST&port=PORT`. On every change of the peer
set the controller runs a *round*: for each running injected validator (Ready or
not: a validator often turns Ready only once it has met its peers) not yet on
the set's hash, by the pod's `stellar.org/reload-mode` (else the setting):

- `http`: ask `http://POD_IP:HTTP_PORT/peers`, then `connect` each peer the node
  lacks (needs `PUBLIC_HTTP_PORT=true` on the node);
- `exec`: the same commands through `stellar-core http-command` in the
  container, over the API's pods/exec (works with a localhost-only admin port);
- `rollout`: set the owning Deployment's or StatefulSet's pod template
  annotation `stellar.org/peers-hash`, once per change (a rolling restart);
- `none`: nothing.

`Connect to:` only means "asked": after the connects the round reads `peers` again
(bounded, and no longer than it takes the node's answer to explain every peer still
out) and `webhook.core.reload.connection` judges which expected peers are not
authenticated and why. A node is told each peer once in its pod's life: stellar-core
keeps a peer it was told in its database and re-dials it by itself, and a node with
full slots would refuse the same peers again every round. Its network (`info`) is
asked once per pod too. Only a node whose missing peers its limits explain gets
`stellar.org/peers-observed-hash`; every node gets `stellar.org/peers-connection-status`
and aggregated Events (`PeersReloaded`, `PeersReloadFailed`, `PeersNotConnected`: one
per node and reason, counted). A node that says why is asked `GIVE_UP_ROUNDS` rounds
per peer set.

Rounds are rate-limited to one per `debounce_seconds`; changes during a round
collapse into one more round with the latest snapshot. A round with failures
is retried later with backoff. Only the leader runs rounds. The planning and the
judging are pure (`webhook.core.reload.reload_plan`, `webhook.core.reload.connection`); this
module's class runs the rounds, `webhook.controllers.reload_node` talks to each
node (through `webhook.stellar.admin`), `webhook.core.reload.reload_state` keeps
what is remembered of each node (one record per pod, pruned in one place) and
`webhook.controllers.reload_report` writes the annotations and Events.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kubernetes import client

from webhook.controllers.reload_node import NodeDialog
from webhook.controllers.reload_report import ReloadReporter
from webhook.controllers.rollout import Rollout
from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import unless_stopped, wait_any
from webhook.core.reload.reload_plan import NodeOutcome, NodePlan, Snapshot, plan_round
from webhook.core.reload.reload_state import ReloadState
from webhook.kube.backoff import backoff_delay
from webhook.kube.rest import Rest
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

ROUND_RETRY_BASE_SECONDS = 1.0
ROUND_RETRY_CAP_SECONDS = 60.0


class ReloadController:
    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        rest = Rest(api_client)
        self._rollout = Rollout(rest=rest, retries=settings.reload_retries)
        self._metrics = metrics
        self._latest: Snapshot | None = None
        self._pending = False
        self._wake = asyncio.Event()
        self._failed_rounds = 0
        self._state = ReloadState()
        self._nodes = NodeDialog(
            settings=settings,
            api_client=api_client,
            state=self._state,
            wake=self._wake,
            pending=lambda: self._pending,
        )
        self._report = ReloadReporter(rest=rest, metrics=metrics)

    # Input

    def notify(self, snapshot: Snapshot) -> None:
        """Keep only the latest snapshot; the run loop picks it up. Never blocks."""
        self._latest = snapshot
        self._pending = True
        self._wake.set()

    async def on_change(self, snapshot: Snapshot) -> None:
        self.notify(snapshot)

    # The loop

    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until `stop` is set: one per debounce window, leader only.

        A leader-only runnable (`webhook.kube.leader.start`): started on election
        and cancelled on loss;
        a new start catches up at once with the latest snapshot.
        """
        last_start = -float("inf")
        self._pending = self._latest is not None
        self._wake.set()
        retry_at: float | None = None
        while not stop.is_set():
            timeout = None if retry_at is None else max(0.0, retry_at - time.monotonic())
            await wait_any(self._wake, stop, seconds=timeout)
            if stop.is_set():
                return
            self._wake.clear()
            if retry_at is not None and time.monotonic() >= retry_at:
                self._pending, retry_at = True, None
            if not self._pending or self._latest is None:
                continue
            wait = last_start + self._settings.debounce_seconds - time.monotonic()
            if wait > 0 and await wait_any(stop, seconds=wait):
                return
            last_start = time.monotonic()
            snapshot, self._pending = self._latest, False
            behind = await guarded(
                unless_stopped(self.reconcile(snapshot), stop),
                event="reload.round-crashed",
                failed=len(snapshot.validators),
                extra={"hash": snapshot.peers.hash},
            )
            if behind is None:
                return
            if behind:
                self._failed_rounds += 1
                retry_at = time.monotonic() + backoff_delay(
                    self._failed_rounds - 1,
                    base=ROUND_RETRY_BASE_SECONDS,
                    cap=ROUND_RETRY_CAP_SECONDS,
                )
            else:
                self._failed_rounds, retry_at = 0, None

    async def reconcile(self, snapshot: Snapshot) -> int:
        """One round over `snapshot`; returns how many nodes are behind and still asked."""
        started = time.monotonic()
        plans = plan_round(snapshot, settings=self._settings)
        live = self._state.begin(plans, snapshot.peers)
        self._report.forget(live.__contains__)  # the Event counts of pods gone, alike
        todo = [p for p in plans if not self._state.is_done(p) and not self._state.gave_up(p)]
        self._nodes.new_round()
        rollout = [p for p in todo if p.mode == "rollout" and not p.rolled_out]
        others = [p for p in todo if p not in rollout]
        seen = await asyncio.gather(*(self._nodes.observe(p, snapshot.peers) for p in others))
        outcomes = [self._state.judge(observation) for observation in seen]
        outcomes += await self._rollout.run(rollout)
        await asyncio.gather(*(self._record(outcome) for outcome in outcomes))
        behind = sum(not o.result.ok and not self._state.gave_up(o.plan) for o in outcomes)
        self._measure(plans)
        self._metrics.reload_duration_seconds.observe(time.monotonic() - started)
        log.info(
            "reload.round",
            extra={
                "hash": snapshot.peers.hash,
                "nodes": len(todo),
                "behind": behind,
                "seconds": round(time.monotonic() - started, 4),
            },
        )
        return behind

    def _measure(self, plans: list[NodePlan]) -> None:
        self._metrics.nodes_behind.set(self._state.behind(plans))
        for state, total in self._state.connection_totals().items():
            self._metrics.peer_connections.labels(state=state).set(total)

    async def _record(self, outcome: NodeOutcome) -> None:
        """Remember the node's outcome and report it (annotations, Events, metrics)."""
        self._state.judged(outcome)
        await self._report.report(outcome, gave_up=self._state.gave_up(outcome.plan))
        self._state.reported(outcome)
        if outcome.result.ok and outcome.plan.mode != "none":
            await self._report.reloaded(outcome)
