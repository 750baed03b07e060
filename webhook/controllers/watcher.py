"""The peer watcher: folds watch streams into one state and publishes the peer set.

Owns the watch loops (injected pods; namespaces matching the selector;
`stellar-peers` ConfigMaps; the StellarNode CRD and, while it exists,
StellarNodes with their pods and Services), the debounce that turns a burst
of events into one reconcile, and the hand-over to the ConfigMap writer (on
the leader only) and to `on_change` listeners (on every replica).

Watch loops only trim objects and queue events; the publish loop folds the
queue into one state with `watched.fold_all` once per debounce window (one copy
of the state per burst, not per event), computes the peer set from it, and
hands it on. The state is replaced, never mutated, so a reconcile always
reads a consistent picture. Nothing is written before every source has
listed once: a half-listed cluster would publish a half peer set.

A source that cannot list (refused by RBAC at once, any other failure after a
few attempts) is reported as unavailable (log with what to do, metric,
`/readyz` detail) and no longer holds the rest back: the watcher turns ready,
the audit runs and StellarNode peers are published without what that source
would add. While a base source (pods, namespaces, ConfigMaps) is unavailable
no ConfigMap is written at all: without it the set would be wrong, and the
last good one stays. Its list keeps retrying; once it lists, it is back.

Once the sources have listed, the watcher runs the audit (`controllers.audit`),
and waits for the identity learner's first pass before it publishes anything.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from webhook.controllers.audit import AUDIT_INTERVAL_SECONDS, UninjectedAudit
from webhook.controllers.availability import Availability
from webhook.controllers.configmaps import Fold
from webhook.controllers.identity import IdentityLearner
from webhook.controllers.links import LinkWatcher
from webhook.controllers.sources import (
    BASE_SOURCES,
    CRD_NAME,
    HOLDING_SOURCES,
    NODE_SOURCES,
    Source,
    base_sources,
    crd_source,
    node_sources,
)
from webhook.controllers.supervision import guarded, supervise
from webhook.core.peerset.peers import PeerSet, dialable_static_peers
from webhook.core.publishing.watched import (
    State,
    enabled_namespaces,
    fold_all,
    peer_set,
    trim,
    validators,
)
from webhook.kube.rest import Rest
from webhook.kube.watch import watch_events
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

# Threads for open watch streams: each holds one while it waits for a line.
WATCH_THREADS = 12


@dataclass(frozen=True)
class Snapshot:
    """What listeners get: the peer set and the trimmed running injected validator pods."""

    peers: PeerSet
    validators: tuple[Mapping[str, Any], ...] = ()

    @property
    def hash(self) -> str:
        return self.peers.hash


OnChange = Callable[[Snapshot], Awaitable[None]]


class PeerWatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        metrics: Metrics,
        is_leader: Callable[[], bool],
        on_fold: Callable[[Fold], None],
        on_change: OnChange | None = None,
        audit_interval_seconds: float = AUDIT_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.is_leader = is_leader
        self.on_change = on_change
        self.on_fold = on_fold
        self._rest = Rest(api_client)
        self.static, ipv6 = dialable_static_peers(settings.static_peers)
        for name in ipv6:
            log.warning(
                "static-peer.ipv6-left-out",
                extra={
                    "peer": name,
                    "hint": "stellar-core dials IPv4 and DNS names only: "
                    "give this peer's IPv4 address or a name with an A record",
                },
            )
        self.snapshot = Snapshot(peers=PeerSet(peers=()))
        self._state: State = {}
        self._inbox: list[Mapping[str, Any]] = []  # events not folded into the state yet
        self._pending = set(BASE_SOURCES)  # sources not listed yet
        self._ready = False
        self._dirty = asyncio.Event()
        self._listed_all = asyncio.Event()
        self._folded_once = asyncio.Event()  # the listed objects are in the state
        self._node_tasks: list[asyncio.Task[None]] = []
        self._crd_absent_logged = False
        self.availability = Availability(metrics=metrics, holding=HOLDING_SOURCES)
        self._held_logged = False
        self._executor: ThreadPoolExecutor | None = None
        self._learned = False  # the learner knows more than the last snapshot showed
        self.identity = IdentityLearner(
            settings=settings, api_client=api_client, on_learned=self._relearn
        )
        self.audit = UninjectedAudit(
            settings=settings,
            rest=self._rest,
            metrics=metrics,
            is_leader=is_leader,
            interval_seconds=audit_interval_seconds,
        )
        self.links = LinkWatcher(
            settings=settings,
            api_client=api_client,
            metrics=metrics,
            is_leader=is_leader,
            on_change=self._relearn,
        )
        self._base = base_sources(api_client, settings)
        self._crds = crd_source(api_client)
        self._nodes = node_sources(api_client)

    @property
    def ready(self) -> bool:
        """True once every source has listed or been reported unavailable."""
        return self._ready

    def detail(self) -> dict[str, str]:
        """For `/readyz`: each source that cannot list, and why."""
        return dict(self.availability.unavailable)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and publish until `stop` is set, then close every stream."""
        self._executor = ThreadPoolExecutor(WATCH_THREADS, thread_name_prefix="peer-watch")
        tasks = [asyncio.create_task(self._follow(source)) for source in self._base]
        tasks.append(asyncio.create_task(self._follow_crd()))
        tasks.append(asyncio.create_task(self._publish_loop()))
        tasks.append(asyncio.create_task(self._audit_after_listing()))
        tasks.append(asyncio.create_task(self.identity.run(stop)))
        tasks.append(asyncio.create_task(self.links.run(stop)))
        for task in tasks:
            task.add_done_callback(_report_crash)
        try:
            await stop.wait()
        finally:
            for task in tasks + self._node_tasks:
                task.cancel()
            await asyncio.gather(*tasks, *self._node_tasks, return_exceptions=True)
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- Folding ------------------------------------------------------------

    async def _audit_after_listing(self) -> None:
        await self._folded_once.wait()
        await self.audit.run(
            lambda: sorted(enabled_namespaces(self._state, settings=self.settings))
        )

    def _apply(self, event: Mapping[str, Any]) -> None:
        """Queue an event; the publish loop folds the queue once per debounce window."""
        self._inbox.append(event)
        self._dirty.set()

    def _relearn(self) -> None:
        """A node's network or key was learned: publish again with it."""
        self._learned = True
        self._dirty.set()

    def _listed(self, source: str) -> None:
        self.availability.recovered(source)
        self._pending.discard(source)
        self._check_ready()

    def _list_failed(self, source: str, exc: BaseException, attempt: int) -> None:
        """A LIST failed: once unavailable, the source stops holding the rest back."""
        if self.availability.failed(source, exc, attempt):
            self._pending.discard(source)
            self._check_ready()

    def _check_ready(self) -> None:
        if not self._pending and not self._ready:
            self._ready = True
            log.info("watcher.ready", extra={"queued_events": len(self._inbox)})
            self._listed_all.set()

    async def _follow(self, source: Source) -> None:
        """List and watch one source forever, relisting whenever the watch says 410."""
        await supervise(
            lambda: self._follow_once(source),
            event="watcher.source-failed",
            extra={"resource": source.name},
        )

    async def _follow_once(self, source: Source) -> None:
        """One list-then-watch cycle: the list replaces this source's objects as a whole."""
        listing: list[dict[str, Any]] | None = []
        async for event in watch_events(
            source.list_fn,
            timeout_seconds=self.settings.watch_timeout_seconds,
            resource=source.name,
            metrics=self.metrics,
            executor=self._executor,
            transform=functools.partial(trim, kind=source.kind),
            on_list_failed=functools.partial(self._list_failed, source.name),
            **source.kwargs,
        ):
            obj = event["object"]  # already trimmed, page by page
            if listing is None:
                self._apply({"type": event["type"], "object": obj})
            elif event["type"] != "LISTED":
                listing.append(obj)
            else:
                self._apply({"type": "LISTED", "kind": source.kind, "objects": listing})
                listing = None
                self._listed(source.name)

    async def _follow_crd(self) -> None:
        """Watch the StellarNode CRD; run the StellarNode loops only while it exists."""
        await supervise(
            self._follow_crd_once,
            event="watcher.source-failed",
            extra={"resource": self._crds.name},
        )

    async def _follow_crd_once(self) -> None:
        present = listed = False
        async for event in watch_events(
            self._crds.list_fn,
            timeout_seconds=self.settings.watch_timeout_seconds,
            resource=self._crds.name,
            metrics=self.metrics,
            executor=self._executor,
            on_list_failed=functools.partial(self._list_failed, self._crds.name),
            **self._crds.kwargs,
        ):
            if event["type"] == "LISTED":
                listed = True
            else:
                present = event["type"] != "DELETED"
            if not listed:
                continue
            if present and not self._node_tasks:
                log.info("stellarnode.crd-present", extra={"crd": CRD_NAME})
                if not self._ready:
                    self._pending |= NODE_SOURCES
                self._node_tasks = [
                    asyncio.create_task(self._follow(source)) for source in self._nodes
                ]
                for task in self._node_tasks:
                    task.add_done_callback(_report_crash)
            elif not present and self._node_tasks:
                log.info("stellarnode.crd-removed", extra={"crd": CRD_NAME})
                await self._stop_node_loops()
            elif not present and not self._crd_absent_logged:
                self._crd_absent_logged = True
                log.info("stellarnode.crd-absent", extra={"crd": CRD_NAME})
            self._listed(self._crds.name)

    async def _stop_node_loops(self) -> None:
        for task in self._node_tasks:
            task.cancel()
        await asyncio.gather(*self._node_tasks, return_exceptions=True)
        self._node_tasks = []
        for source in self._nodes:
            self.availability.recovered(source.name, quiet=True)
            self._apply({"type": "LISTED", "kind": source.kind, "objects": []})

    # --- Publishing ---------------------------------------------------------

    async def _publish_loop(self) -> None:
        """Debounce changes, fold them, offer the fold for writing and notify listeners."""
        await self._listed_all.wait()
        published = False
        notified: PeerSet | None = None  # with networks and keys: a key learned is a change
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.settings.debounce_seconds)
            self._dirty.clear()
            events, self._inbox = self._inbox, []
            state = fold_all(self._state, events)
            changed, self._state = state is not self._state or self._learned, state
            self._learned = False
            self._folded_once.set()
            if published and not changed:
                continue
            published = True
            self._publish()
            if self.on_change is not None and self.snapshot.peers != notified:
                notified = self.snapshot.peers
                await self._notify(self.snapshot)

    def _publish(self) -> None:
        state = self._state
        enabled = enabled_namespaces(state, settings=self.settings)
        listed = validators(state, enabled=enabled)
        self.identity.want(listed)
        if self.identity.first_pass_pending() or self.links.first_pass_pending():
            return  # the learner's first pass publishes (`_relearn`); nothing is lost
        waiting = self.identity.pending()
        ready = tuple(v for v in listed if v["metadata"].get("uid") not in waiting)
        peers = peer_set(
            state,
            enabled_namespaces=enabled,
            static=self.static,
            identities=self.identity.identities(),
            default_network=self.settings.default_network,
            waiting=waiting,
            cluster_name=self.settings.cluster_name,
            remote=self.links.peers(),
        )
        if peers != self.snapshot.peers:
            log.info("watcher.peers-changed", extra={"hash": peers.hash, "peers": len(peers.peers)})
        self.snapshot = Snapshot(peers=peers, validators=ready)
        for source in ("pod", "stellarnode", "static", "remote"):
            self.metrics.peers.labels(source=source).set(
                sum(1 for p in peers.peers if p.source == source)
            )
        held = self.availability.holding_back()
        if held:
            if not self._held_logged:
                self._held_logged = True
                log.warning(
                    "watcher.publish-held",
                    extra={"unavailable": held, "hint": "the last good ConfigMaps stay"},
                )
            return
        self._held_logged = False
        self.on_fold(Fold(peers=peers, state=state, enabled=enabled))

    async def _notify(self, snapshot: Snapshot) -> None:
        assert self.on_change is not None
        await guarded(
            self.on_change(snapshot),
            event="watcher.on-change-failed",
            failed=None,
            extra={"hash": snapshot.hash},
        )


def _report_crash(task: asyncio.Task[None]) -> None:
    """A loop that ends by itself is a bug: say so loudly instead of going quiet."""
    if not task.cancelled() and task.exception() is not None:
        log.error("watcher.loop-crashed", exc_info=task.exception())
