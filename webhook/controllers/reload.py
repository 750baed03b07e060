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
pure (`plan_round`, `missing_peers`); this module's class does the I/O.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from webhook import names
from webhook.core import stellar_admin
from webhook.core.peers import Peer, PeerSet
from webhook.core.pod import named_port, pod_ip, target_container
from webhook.core.stellar_admin import Outcome, Result
from webhook.kube.backoff import backoff_delay
from webhook.kube.events import event_body
from webhook.metrics import Metrics
from webhook.settings import RELOAD_MODES, ReloadMode, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 2.0
ROUND_RETRY_BASE_SECONDS = 1.0
ROUND_RETRY_CAP_SECONDS = 60.0


class Snapshot(Protocol):
    """What the peer watcher hands over: the set, and the Ready injected validators."""

    @property
    def peers(self) -> PeerSet: ...

    @property
    def validators(self) -> Sequence[Mapping[str, Any]]: ...


@dataclass(frozen=True)
class NodePlan:
    """One validator to bring up to `hash`, and how."""

    namespace: str
    name: str
    uid: str
    ip: str  # from the pod's status, validated; the only host ever dialled
    http_port: int
    container: str
    mode: ReloadMode
    hash: str
    owner: tuple[str, str] | None  # (kind, name) of the controlling owner
    current: bool  # the pod's observed-hash annotation is `hash` already
    rolled_out: bool  # the pod was created from a template with `hash` (rollout mode)


# Planning (pure)


def reload_mode(annotations: Mapping[str, Any], *, default: ReloadMode) -> ReloadMode:
    """The pod's annotation when it names a mode, else the default."""
    wanted = str(annotations.get(names.RELOAD_MODE_ANNOTATION, "")).strip().lower()
    for mode in RELOAD_MODES:
        if wanted == mode:
            return mode  # type: ignore[return-value]
    return default


def controller_owner(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    for ref in metadata.get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None


def plan_round(snapshot: Snapshot, *, settings: Settings) -> list[NodePlan]:
    """One plan per validator with a valid IP and a target container, in snapshot order."""
    digest = snapshot.peers.hash
    plans = []
    for pod in snapshot.validators:
        metadata = pod.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        ip = pod_ip(pod)
        # The container the webhook injected, as the watcher reads it.
        container = target_container(pod)
        if ip is None or container is None:
            continue
        mode = reload_mode(annotations, default=settings.reload_mode)
        plans.append(
            NodePlan(
                namespace=str(metadata.get("namespace", "")),
                name=str(metadata.get("name", "")),
                uid=str(metadata.get("uid", "")),
                ip=ip,
                http_port=named_port(container, "http") or names.DEFAULT_HTTP_PORT,
                container=str(container.get("name", "")),
                mode=mode,
                hash=digest,
                owner=controller_owner(metadata),
                current=annotations.get(names.OBSERVED_HASH_ANNOTATION) == digest,
                rolled_out=annotations.get(names.PEERS_HASH_ANNOTATION) == digest,
            )
        )
    return plans


def missing_peers(peer_set: PeerSet, connected: Collection[str], *, own_ip: str) -> list[Peer]:
    """Peers of the set the node lacks: not itself, not connected, one per address."""
    seen: set[str] = set()
    missing = []
    for address, peer in peer_set.by_address:
        if peer.ip == own_ip or address in connected or address in seen:
            continue
        if not stellar_admin.is_peer_host(peer.ip):
            continue  # stellar-core would refuse it; it must never reach a URL or a command
        seen.add(address)
        missing.append(peer)
    return missing


def exec_command(*, host: str, port: int) -> list[str]:
    """`stellar-core http-command 'connect?peer=..&port=..'` as an exec argv (no shell)."""
    return ["stellar-core", "http-command", stellar_admin.connect_command(host=host, port=port)]


PEERS_EXEC_COMMAND = ("stellar-core", "http-command", "peers")


# The controller (I/O)


@dataclass(frozen=True)
class NodeOutcome:
    plan: NodePlan
    result: Result
    connected: int = 0  # connects sent and accepted


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
        self._apps = client.AppsV1Api(api_client)
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
        outcomes += await self._rollout(rollout)
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

    # Rollout

    async def _rollout(self, plans: list[NodePlan]) -> list[NodeOutcome]:
        """Patch each owning workload once, then report on every pod it owns."""
        by_workload: dict[tuple[str, str, str], list[NodePlan]] = {}
        outcomes = []
        for plan in plans:
            workload = await self._workload(plan)
            if workload is None:
                outcomes.append(NodeOutcome(plan, Result(Outcome.FAILED, "no-workload")))
            else:
                by_workload.setdefault(workload, []).append(plan)
        for (namespace, kind, name), owned in by_workload.items():
            result = await self._patch_template(
                namespace=namespace, kind=kind, name=name, digest=owned[0].hash
            )
            outcomes += [NodeOutcome(plan, result) for plan in owned]
        return outcomes

    async def _workload(self, plan: NodePlan) -> tuple[str, str, str] | None:
        """(namespace, kind, name) of the Deployment or StatefulSet that owns the pod."""
        if plan.owner is None:
            return None
        kind, name = plan.owner
        if kind == "StatefulSet":
            return plan.namespace, kind, name
        if kind != "ReplicaSet":
            return None
        try:
            replica_set = await self._read(
                self._apps.read_namespaced_replica_set, name, plan.namespace
            )
        except ApiException as exc:
            log.warning("reload.owner-unreadable", extra={"pod": plan.name, "status": exc.status})
            return None
        owner = controller_owner(replica_set.get("metadata") or {})
        if owner is None or owner[0] != "Deployment":
            return None
        return plan.namespace, "Deployment", owner[1]

    async def _patch_template(self, *, namespace: str, kind: str, name: str, digest: str) -> Result:
        """Set the template annotation to `digest` unless it is already; 409 -> read again."""
        apps = self._apps
        read, patch = (
            (apps.read_namespaced_deployment, apps.patch_namespaced_deployment)
            if kind == "Deployment"
            else (apps.read_namespaced_stateful_set, apps.patch_namespaced_stateful_set)
        )
        for attempt in range(self._settings.reload_retries + 1):
            try:
                workload = await self._read(read, name, namespace)
                template = (workload.get("spec") or {}).get("template") or {}
                annotations = (template.get("metadata") or {}).get("annotations") or {}
                if annotations.get(names.PEERS_HASH_ANNOTATION) == digest:
                    return Result(Outcome.SUCCESS, "rolled-out")
                version = (workload.get("metadata") or {}).get("resourceVersion")
                annotation = {names.PEERS_HASH_ANNOTATION: digest}
                body = {
                    "metadata": {"resourceVersion": version},  # a conflict answers 409
                    "spec": {"template": {"metadata": {"annotations": annotation}}},
                }
                await asyncio.to_thread(patch, name, namespace, body)
                log.info(
                    "reload.rollout",
                    extra={"namespace": namespace, "kind": kind, "name": name, "hash": digest},
                )
                return Result(Outcome.SUCCESS, "rolled-out")
            except ApiException as exc:
                if exc.status != 409 or attempt >= self._settings.reload_retries:
                    return Result(Outcome.FAILED, f"rollout-{exc.status}")
            await asyncio.sleep(
                backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
            )
        return Result(Outcome.FAILED, "rollout-conflict")

    @staticmethod
    async def _read(method: Callable[..., Any], name: str, namespace: str) -> dict[str, Any]:
        """GET one object as a plain dict, off the event loop."""
        response = await asyncio.to_thread(method, name, namespace, _preload_content=False)
        obj: dict[str, Any] = orjson.loads(response.data)
        return obj

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
