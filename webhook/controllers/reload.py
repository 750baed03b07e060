"""The reload controller: tells running validators when the peer set changes.

stellar-core reads its peers once, at start, and has no reload command, but a
running node accepts `connect?peer=HOST&port=PORT`. On every change of the peer
set the controller runs a *round*: for each Ready injected validator not yet
on the set's hash, by the pod's `stellar.org/reload-mode` (else the setting):

- `http`: ask `http://POD_IP:HTTP_PORT/peers`, then `connect` each peer the node
  lacks (needs `PUBLIC_HTTP_PORT=true` on the node);
- `exec`: the same commands through `stellar-core http-command` in the
  container, over the API's pods/exec (works with a localhost-only admin port);
- `rollout`: set the owning Deployment's or StatefulSet's pod template
  annotation `stellar.org/peers-hash`, once per change (a rolling restart);
- `none`: nothing.

A node brought up to date gets the pod annotation `stellar.org/peers-observed-hash`
and a `PeersReloaded` Event; a node that could not be gets `PeersReloadFailed`.

Rounds are rate-limited to one per `debounce_seconds`; changes during a round
collapse into one more round with the latest snapshot. A round with failures
is retried later with backoff. Only the leader runs rounds. The planning is
pure (`webhook.core.reload_plan`); this module's class does the I/O.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from webhook import names
from webhook.controllers.rollout import RETRY_BASE_SECONDS, RETRY_CAP_SECONDS, Rollout
from webhook.core import stellar_admin
from webhook.core.peers import Peer, PeerSet
from webhook.core.reload_plan import (
    PEERS_EXEC_COMMAND,
    NodeOutcome,
    NodePlan,
    Snapshot,
    exec_command,
    missing_peers,
    plan_round,
)
from webhook.core.stellar_admin import Outcome, Result
from webhook.kube.backoff import backoff_delay
from webhook.kube.events import event_body
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

ROUND_RETRY_BASE_SECONDS = 1.0
ROUND_RETRY_CAP_SECONDS = 60.0


class ReloadController:
    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        metrics: Metrics,
        is_leader: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self._rollout = Rollout(apps=client.AppsV1Api(api_client), retries=settings.reload_retries)
        self._metrics = metrics
        self._is_leader = is_leader
        self._latest: Snapshot | None = None
        self._pending = False
        self._wake = asyncio.Event()
        self._done: dict[str, str] = {}  # pod uid -> hash it was brought up to
        self._failed_rounds = 0

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
        """Run rounds until `stop` is set: one per debounce window, leader only."""
        last_start = -float("inf")
        retry_at: float | None = None
        while not stop.is_set():
            timeout = None if retry_at is None else max(0.0, retry_at - time.monotonic())
            await _wait_any(self._wake, stop, seconds=timeout)
            if stop.is_set():
                return
            self._wake.clear()
            if retry_at is not None and time.monotonic() >= retry_at:
                self._pending, retry_at = True, None
            if not self._pending or self._latest is None:
                continue
            if not self._is_leader():
                retry_at = time.monotonic() + 1.0  # look again; a new leader catches up
                continue
            wait = last_start + self._settings.debounce_seconds - time.monotonic()
            if wait > 0 and await _wait_any(stop, seconds=wait):
                return
            last_start = time.monotonic()
            snapshot, self._pending = self._latest, False
            try:
                behind = await _unless_stopped(self.reconcile(snapshot), stop)
            except Exception:  # a bug in one round must not end reloading for good
                log.exception("reload.round-crashed", extra={"hash": snapshot.peers.hash})
                behind = len(snapshot.validators)
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
        """One round over `snapshot`; returns how many nodes are still behind."""
        started = time.monotonic()
        plans = plan_round(snapshot, settings=self._settings)
        live = {p.uid for p in plans}
        self._done = {uid: h for uid, h in self._done.items() if uid in live}
        for plan in plans:
            if plan.current:
                self._done[plan.uid] = plan.hash
        todo = [p for p in plans if self._done.get(p.uid) != p.hash]
        semaphore = asyncio.Semaphore(self._settings.reload_concurrency)

        async def one(plan: NodePlan) -> NodeOutcome:
            async with semaphore:
                return await self._reload_node(plan, snapshot.peers)

        rollout = [p for p in todo if p.mode == "rollout" and not p.rolled_out]
        others = [p for p in todo if p not in rollout]
        outcomes = list(await asyncio.gather(*(one(p) for p in others)))
        outcomes += await self._rollout.run(rollout)
        await asyncio.gather(*(self._record(outcome) for outcome in outcomes))
        behind = sum(not outcome.result.ok for outcome in outcomes)
        self._metrics.nodes_behind.set(behind)
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

    # One node

    async def _reload_node(self, plan: NodePlan, peer_set: PeerSet) -> NodeOutcome:
        if plan.mode == "none":
            return NodeOutcome(plan, Result(Outcome.SUCCESS, "skipped"))
        if plan.mode == "rollout":  # created from the current template: nothing to tell it
            return NodeOutcome(plan, Result(Outcome.SUCCESS, "rolled-out"))
        listed, connected = await self._retrying(lambda: self._ask_peers(plan))
        if not listed.ok:
            return NodeOutcome(plan, listed)
        failures: list[Result] = []
        accepted = 0
        for peer in missing_peers(peer_set, connected, own_ip=plan.ip):
            result = await self._retrying(functools.partial(self._ask_connect, plan, peer))
            if result.ok:
                accepted += 1
            else:
                failures.append(result)
        if failures:
            return NodeOutcome(plan, failures[0], accepted)
        return NodeOutcome(plan, Result(Outcome.SUCCESS, "connected"), accepted)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Call again after a capped, jittered backoff while the answer is transient.

        The answer is a Result, or a tuple whose first item is one.
        """
        attempt = 0
        while True:
            answer = await call()
            result = answer[0] if isinstance(answer, tuple) else answer
            if not (isinstance(result, Result) and result.transient):
                return answer
            if attempt >= self._settings.reload_retries or self._pending:
                # A newer peer set waits: its round asks this node again, so
                # retrying here would only hold that round back.
                return answer
            await _wait_any(
                self._wake,
                seconds=backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS),
            )
            attempt += 1

    async def _ask_peers(self, plan: NodePlan) -> tuple[Result, set[str]]:
        limit = self._settings.reload_timeout_seconds
        if plan.mode == "http":
            return await stellar_admin.peers(ip=plan.ip, port=plan.http_port, time_limit=limit)
        output = await self._exec(plan, list(PEERS_EXEC_COMMAND))
        if isinstance(output, Result):
            return output, set()
        try:
            answer = stellar_admin.command_answer(output)
            return Result(Outcome.SUCCESS, "listed"), stellar_admin.parse_peers(answer)
        except stellar_admin.AnswerError as exc:
            return exc.result, set()

    async def _ask_connect(self, plan: NodePlan, peer: Peer) -> Result:
        limit = self._settings.reload_timeout_seconds
        if plan.mode == "http":
            return await stellar_admin.connect(
                ip=plan.ip,
                port=plan.http_port,
                peer_host=peer.ip,
                peer_port=peer.port,
                time_limit=limit,
            )
        output = await self._exec(plan, exec_command(host=peer.ip, port=peer.port))
        if isinstance(output, Result):
            return output
        answer = stellar_admin.command_answer(output)
        return stellar_admin.classify_connect(200, answer, host=peer.ip, port=peer.port)

    async def _exec(self, plan: NodePlan, command: list[str]) -> str | Result:
        """Run `command` in the node's container; its output, or why not."""

        def call() -> str:
            # `stream` swaps the client's request method while it runs: use a client of its own.
            with client.ApiClient(self._api_client.configuration) as own:
                api = client.CoreV1Api(own)
                output = stream(
                    api.connect_get_namespaced_pod_exec,
                    plan.name,
                    plan.namespace,
                    command=command,
                    container=plan.container,
                    stderr=True,
                    stdin=False,
                    stdout=True,
                    tty=False,
                    _request_timeout=self._settings.reload_timeout_seconds,
                )
                return str(output)

        try:
            return await asyncio.to_thread(call)
        except ApiException as exc:
            transient = exc.status in (None, 0, 429, 500, 502, 503, 504)
            return Result(Outcome.TRANSIENT if transient else Outcome.FAILED, f"exec-{exc.status}")
        except (OSError, TimeoutError) as exc:
            return stellar_admin.classify_error(exc)

    # Recording

    async def _record(self, outcome: NodeOutcome) -> None:
        """Metrics, the observed-hash annotation and an Event for one node's outcome."""
        plan, result = outcome.plan, outcome.result
        if plan.mode == "none":
            self._metrics.reloads_total.labels(mode=plan.mode, result="skipped").inc()
            self._done[plan.uid] = plan.hash
            return
        self._metrics.reloads_total.labels(
            mode=plan.mode, result="success" if result.ok else "failed"
        ).inc()
        if not result.ok:
            message = f"peer set {plan.hash}: {result.reason} {result.detail}".strip()
            log.warning(
                "reload.failed",
                extra={
                    "namespace": plan.namespace,
                    "pod": plan.name,
                    "mode": plan.mode,
                    "reason": result.reason,
                },
            )
            await self._event(plan, reason="PeersReloadFailed", kind="Warning", message=message)
            return
        if plan.mode != "rollout" or plan.rolled_out:
            # A pod whose workload is rolling out is replaced, not brought up to date.
            await self._annotate(plan)
        self._done[plan.uid] = plan.hash
        detail = f"{outcome.connected} connects" if plan.mode in ("http", "exec") else plan.mode
        message = f"peer set {plan.hash}: {result.reason} ({detail})"
        await self._event(plan, reason="PeersReloaded", kind="Normal", message=message)

    async def _annotate(self, plan: NodePlan) -> None:
        body = {"metadata": {"annotations": {names.OBSERVED_HASH_ANNOTATION: plan.hash}}}
        try:
            await asyncio.to_thread(
                self._core.patch_namespaced_pod, plan.name, plan.namespace, body
            )
        except ApiException as exc:
            log.warning("reload.annotate-failed", extra={"pod": plan.name, "status": exc.status})

    async def _event(self, plan: NodePlan, *, reason: str, kind: str, message: str) -> None:
        body = event_body(
            kind="Pod",
            name=plan.name,
            namespace=plan.namespace,
            uid=plan.uid,
            reason=reason,
            message=message[:1024],
            event_type=kind,
        )
        try:
            await asyncio.to_thread(self._core.create_namespaced_event, plan.namespace, body)
        except ApiException as exc:
            log.warning("reload.event-failed", extra={"pod": plan.name, "status": exc.status})


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None once `stop` is set first (the work is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def _wait_any(*events: asyncio.Event, seconds: float | None = None) -> bool:
    """Wait until one of `events` is set or `seconds` pass; True if one is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return any(e.is_set() for e in events)
