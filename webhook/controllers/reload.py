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
module's class runs the rounds, `webhook.stellar.admin` does the asking
and `webhook.controllers.reload_report` the annotations and Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from webhook.controllers.reload_report import ReloadReporter
from webhook.controllers.rollout import RETRY_BASE_SECONDS, RETRY_CAP_SECONDS, Rollout
from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import unless_stopped, wait_any
from webhook.core import admin_protocol
from webhook.core.admin_protocol import Outcome, Result
from webhook.core.peerset import networks
from webhook.core.peerset.peers import PeerSet
from webhook.core.reload import connection
from webhook.core.reload.connection import PeersSeen
from webhook.core.reload.reload_plan import (
    NodeOutcome,
    NodePlan,
    Observation,
    Snapshot,
    handed,
    missing_peers,
    plan_round,
)
from webhook.kube.backoff import backoff_delay
from webhook.kube.rest import Rest
from webhook.metrics import Metrics
from webhook.settings import Settings
from webhook.stellar import admin

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
        self._api_client = api_client
        rest = Rest(api_client)
        self._rollout = Rollout(rest=rest, retries=settings.reload_retries)
        self._metrics = metrics
        self._latest: Snapshot | None = None
        self._pending = False
        self._wake = asyncio.Event()
        self._done: dict[str, str] = {}  # pod uid -> hash it was brought up to
        self._failed_rounds = 0
        # pod uid -> (hash, rounds a node that says why was asked for it)
        self._attempts: dict[str, tuple[str, int]] = {}
        self._states: dict[str, dict[str, int]] = {}  # pod uid -> peers by connection state
        # pod IP -> (pod uid, its node's info.network): asked once per pod, kept while it lives
        self._networks: dict[str, tuple[str, str]] = {}
        # pod uid -> peers its node accepted a `connect` for: stellar-core keeps them in its
        # peer database and re-dials them itself, so telling it again only costs requests
        self._told: dict[str, set[str]] = {}
        self._peer_ports: dict[str, int] = {}  # pod IP -> its peer port, this round
        self._latest_peers = PeerSet(())  # the set of this round, with each peer's network
        self._semaphore = asyncio.Semaphore(settings.reload_concurrency)
        self._report = ReloadReporter(rest=rest)

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
        self._latest_peers = snapshot.peers
        live = {p.uid for p in plans}
        self._done = {uid: h for uid, h in self._done.items() if uid in live}
        self._attempts = {uid: a for uid, a in self._attempts.items() if uid in live}
        self._states = {uid: s for uid, s in self._states.items() if uid in live}
        self._report.forget(lambda uid: uid in live)
        self._peer_ports = {p.ip: p.peer_port for p in plans if p.peer_port is not None}
        self._told = {uid: t for uid, t in self._told.items() if uid in live}
        uid_at = {p.ip: p.uid for p in plans}
        self._networks = {ip: n for ip, n in self._networks.items() if uid_at.get(ip) == n[0]}
        for plan in plans:
            if plan.current:
                self._done[plan.uid] = plan.hash
        todo = [p for p in plans if self._done.get(p.uid) != p.hash and not self._gave_up(p)]
        self._semaphore = asyncio.Semaphore(self._settings.reload_concurrency)
        rollout = [p for p in todo if p.mode == "rollout" and not p.rolled_out]
        others = [p for p in todo if p not in rollout]
        seen = list(await asyncio.gather(*(self._observe(p, snapshot.peers) for p in others)))
        outcomes = [self._judge(observation) for observation in seen]
        outcomes += await self._rollout.run(rollout)
        await asyncio.gather(*(self._record(outcome) for outcome in outcomes))
        behind = sum(not o.result.ok and not self._gave_up(o.plan) for o in outcomes)
        self._metrics.nodes_behind.set(sum(self._done.get(p.uid) != p.hash for p in plans))
        for state in connection.STATES:
            total = sum(counts[state] for counts in self._states.values())
            self._metrics.peer_connections.labels(state=state).set(total)
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

    def _gave_up(self, plan: NodePlan) -> bool:
        asked_for, rounds = self._attempts.get(plan.uid, ("", 0))
        return asked_for == plan.hash and rounds >= connection.GIVE_UP_ROUNDS

    # One node

    async def _observe(self, plan: NodePlan, peer_set: PeerSet) -> Observation:
        """Ask `peers`, `connect` each missing peer, wait for them; `info` if some stay out."""
        if plan.mode == "none":
            return Observation(plan, Result(Outcome.SUCCESS, "skipped"))
        if plan.mode == "rollout":  # created from the current template: nothing to tell it
            return Observation(plan, Result(Outcome.SUCCESS, "rolled-out"))
        expected = missing_peers(handed(peer_set, plan), set(), own_ip=plan.ip)
        listed, peers_seen = await self._peers(plan)
        if peers_seen is None:
            return Observation(plan, listed)
        connects: dict[str, Result] = {}
        told = self._told.setdefault(plan.uid, set())
        for peer in expected:
            if peer.peer_string in peers_seen.authenticated or peer.peer_string in told:
                continue
            command = admin_protocol.connect_command(host=peer.ip, port=peer.port)
            verdict, body = await self._retrying(plan, command)
            result = verdict or admin_protocol.classify_connect(
                200, body, host=peer.ip, port=peer.port
            )
            if result.transient:  # the admin port stopped answering: the whole node is later
                return Observation(plan, result, asked=sum(r.ok for r in connects.values()))
            connects[peer.peer_string] = result
            if result.ok:
                told.add(peer.peer_string)
        wanted = tuple(sorted(p.peer_string for p in expected))
        deadline = time.monotonic() + self._settings.reload_connect_wait_seconds
        pause = 0.1
        read_since = False  # a `peers` answer read after the connects
        # Wait for the peers just asked for, until the node's word explains every one
        # still out (slots full, another network, ...): waiting longer changes nothing.
        # Never judged on the answer from before the connects, nor while a peer just told
        # is still dialing: one preferred by key evicts another from full slots.
        while connects:
            settled = self._verdict(plan, wanted, peers_seen, connects)["settled"]
            if read_since and settled and not peers_seen.pending & connects.keys():
                break
            if time.monotonic() + pause > deadline or self._pending:
                break  # a newer peer set's round asks again at once
            await wait_any(self._wake, seconds=pause)
            pause = min(1.0, pause * 2)
            again, newer = await self._peers(plan)
            if newer is None:
                return Observation(plan, again, asked=sum(r.ok for r in connects.values()))
            peers_seen, read_since = newer, True
        if not set(wanted) <= peers_seen.authenticated and plan.ip not in self._networks:
            await self._learn_network(plan)
        return Observation(
            plan,
            Result(Outcome.SUCCESS, "listed"),
            seen=peers_seen,
            expected=wanted,
            connects=connects,
            asked=sum(r.ok for r in connects.values()),
        )

    async def _peers(self, plan: NodePlan) -> tuple[Result, PeersSeen | None]:
        verdict, body = await self._retrying(plan, "peers")
        if verdict is not None:
            return verdict, None
        try:
            return Result(Outcome.SUCCESS, "listed"), connection.read_peers(body)
        except admin_protocol.AnswerError as exc:
            return exc.result, None

    async def _learn_network(self, plan: NodePlan) -> None:
        verdict, body = await self._retrying(plan, "info")
        if verdict is None:
            # An odd `info` tells no network; the verdict goes without.
            with contextlib.suppress(admin_protocol.AnswerError):
                self._networks[plan.ip] = (plan.uid, admin_protocol.parse_info(body).network)

    def _verdict(
        self,
        plan: NodePlan,
        expected: tuple[str, ...],
        seen: PeersSeen,
        connects: Mapping[str, Result],
    ) -> dict[str, Any]:
        """`connection.verdict` with every node's network known so far."""
        # By name: what a node reported wins over the set's (a label may disagree).
        by_peer = {p.peer_string: p.network for p in self._latest_peers.peers if p.network}
        by_peer |= {
            f"{ip}:{port}": admin_protocol.network_name(self._networks[ip][1])
            for ip, port in self._peer_ports.items()
            if ip in self._networks
        }
        own = self._networks.get(plan.ip)
        return connection.verdict(
            expected=expected,
            seen=seen,
            connects=connects,
            network=admin_protocol.network_name(own[1]) if own else _known(plan.network),
            peer_networks=by_peer,
            node_limits=plan.limits,
        )

    def _judge(self, seen: Observation) -> NodeOutcome:
        """The node's verdict, with every node's network learned this round."""
        plan = seen.plan
        if seen.seen is None:
            return NodeOutcome(plan, seen.result, seen.asked)
        node_verdict = self._verdict(plan, seen.expected, seen.seen, seen.connects)
        if node_verdict["settled"]:
            result = Result(Outcome.SUCCESS, "connected", connection.summary(node_verdict))
        else:
            pending = "pending" in node_verdict["missing"].values()
            outcome = Outcome.TRANSIENT if pending else Outcome.FAILED
            result = Result(outcome, "peers-missing", connection.summary(node_verdict))
        return NodeOutcome(plan, result, seen.asked, node_verdict)

    async def _retrying(self, plan: NodePlan, command: str) -> admin.Answer:
        """Ask again after a capped, jittered backoff while the answer is transient."""
        attempt = 0
        while True:
            async with self._semaphore:
                answer = await admin.ask(
                    plan,
                    command,
                    api_client=self._api_client,
                    time_limit=self._settings.reload_timeout_seconds,
                )
            result = answer[0]
            if result is None or not result.transient:
                return answer
            if attempt >= self._settings.reload_retries or self._pending:
                # A newer peer set waits: its round asks this node again, so
                # retrying here would only hold that round back.
                return answer
            await wait_any(
                self._wake,
                seconds=backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS),
            )
            attempt += 1

    # Recording

    async def _record(self, outcome: NodeOutcome) -> None:
        """Metrics, the pod's annotations and an aggregated Event for one node's outcome."""
        plan, result, node_verdict = outcome.plan, outcome.result, outcome.verdict
        if plan.mode == "none":
            self._metrics.reloads_total.labels(mode=plan.mode, result="skipped").inc()
            self._done[plan.uid] = plan.hash
            return
        self._metrics.reloads_total.labels(
            mode=plan.mode, result="success" if result.ok else "failed"
        ).inc()
        if node_verdict is not None:
            self._states[plan.uid] = connection.state_counts(node_verdict)
        if not result.ok:
            if connection.says_why(result, node_verdict):
                rounds = self._attempts.get(plan.uid, (plan.hash, 0))
                count = rounds[1] + 1 if rounds[0] == plan.hash else 1
                self._attempts[plan.uid] = (plan.hash, count)
            log.warning(
                "reload.failed",
                extra={
                    "namespace": plan.namespace,
                    "pod": plan.name,
                    "mode": plan.mode,
                    "reason": result.reason,
                    "gave_up": self._gave_up(plan),
                },
            )
            if node_verdict is not None:
                await self._report.annotate(plan, node_verdict, settled=False)
                reasons = sorted(set(node_verdict["missing"].values()))
                message = f"peer set {plan.hash}: {result.detail}"
                for reason in reasons:
                    await self._report.event(plan, "PeersNotConnected", reason, "Warning", message)
                return
            message = f"peer set {plan.hash}: {result.reason} {result.detail}".strip()
            await self._report.event(plan, "PeersReloadFailed", result.reason, "Warning", message)
            return
        if plan.mode != "rollout" or plan.rolled_out:
            # A pod whose workload is rolling out is replaced, not brought up to date.
            await self._report.annotate(plan, node_verdict, settled=True)
        self._done[plan.uid] = plan.hash
        self._attempts.pop(plan.uid, None)
        detail = f"{outcome.connected} connects" if plan.mode in ("http", "exec") else plan.mode
        if result.detail:
            detail += f"; {result.detail}"
        message = f"peer set {plan.hash}: {result.reason} ({detail})"
        await self._report.event(plan, "PeersReloaded", "", "Normal", message)


def _known(network: str) -> str:
    """A network name that says something ("" for the `unknown` set)."""
    return "" if network == networks.UNKNOWN else network
