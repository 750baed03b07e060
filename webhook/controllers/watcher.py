"""The peer watcher: folds the watched events into one state and publishes peer snapshots.

It only watches and folds (`SourceFollower` lists and watches; this module
folds its queue once per debounce window with `watched.fold_kinds`: one copy of
the state per burst, not per event) and hands each new peer set to its
listeners, wired by `webhook.cli.wiring.wire`: `on_enabled` (the audit's
namespaces), `on_fold` (the ConfigMap publisher, which writes only on the
leader) and `on_change` (the reload controller). The state is replaced, never
mutated, so a listener always reads a consistent picture.

Two parts feed the peer set besides the watches: the identity learner (each
node's network and key) and the link follower (other clusters' entries, only
while leading). The watcher reads them when it publishes and publishes again
when either sets its `changed` event. Nothing is offered for writing before
every source has listed once (a half-listed cluster would publish a half peer
set), before the identity learner's first pass, while the link follower's
first pass is pending, or while a base source (pods, namespaces, ConfigMaps)
is unavailable: without it the set would be wrong, and the last good one stays.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from webhook.controllers.configmaps import Fold
from webhook.controllers.following import SourceFollower, spawn
from webhook.controllers.identity import IdentityLearner
from webhook.controllers.links import LinkWatcher
from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import wait_any
from webhook.core.peerset.peers import Peer, PeerSet, dialable_static_peers
from webhook.core.publishing.watched import (
    State,
    enabled_namespaces,
    fold_kinds,
    moves_peers,
    peer_set,
    validators,
)
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

PEER_SOURCES = ("pod", "stellarnode", "static", "remote")


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
        identity: IdentityLearner,
        links: LinkWatcher,
        on_fold: Callable[[Fold], None],
        on_change: OnChange | None = None,
        on_enabled: Callable[[frozenset[str]], None] = lambda enabled: None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.identity = identity
        self.links = links
        self.on_fold = on_fold
        self.on_change = on_change
        self.on_enabled = on_enabled
        self.sources = SourceFollower(settings=settings, api_client=api_client, metrics=metrics)
        self.static = _static_peers(settings)
        self.snapshot = Snapshot(peers=PeerSet(peers=()))
        self._state: State = {}
        self._held_logged = False
        # The last fold published whole, and whether anything it was made of has changed
        # since (anything but the `stellar-peers` ConfigMaps, or something learned).
        self._published: Fold | None = None
        self._moved = True

    @property
    def ready(self) -> bool:
        """True once every source has listed or been reported unavailable."""
        return self.sources.listed_all.is_set()

    def detail(self) -> dict[str, str]:
        """For `/readyz`: each source that cannot list, and why."""
        return dict(self.sources.availability.unavailable)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and publish until `stop` is set."""
        publishing = spawn(self._publish_loop())
        try:
            await self.sources.run(stop)
        finally:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)

    async def _publish_loop(self) -> None:
        """Once every source has listed: fold each debounced burst, publish what changed."""
        await self.sources.listed_all.wait()
        notified: PeerSet | None = None  # with networks and keys: a key learned is a change
        first = True
        while True:
            await self._debounced()
            if self._fold() or first:
                first = False
                self._publish()
                if self.snapshot.peers != notified:
                    notified = self.snapshot.peers
                    await self._notify(self.snapshot)

    async def _debounced(self) -> None:
        """Wait for an event or something learned, then for the rest of the burst."""
        nudges = (self.sources.dirty, self.identity.changed, self.links.changed)
        await wait_any(*nudges)
        await asyncio.sleep(self.settings.debounce_seconds)

    def _fold(self) -> bool:
        """Fold the queued events; True when the state or what was learned changed."""
        self.sources.dirty.clear()
        learned = self.identity.changed.is_set() or self.links.changed.is_set()
        self.identity.changed.clear()
        self.links.changed.clear()
        self._state, kinds = fold_kinds(self._state, self.sources.take())
        self._moved = self._moved or learned or moves_peers(kinds)
        return bool(kinds) or learned

    def _publish(self) -> None:
        """Offer the newest fold. When only `stellar-peers` ConfigMaps changed (the echoes
        of our own writes, or someone else's edit to repair), the peer set and validators
        cannot have: the last ones are offered with the new state, not worked out again."""
        if self._published is not None and not self._moved:
            if not self._first_pass_pending():  # a new leader's links may be pending
                self._offer(dataclasses.replace(self._published, state=self._state))
            return
        state = self._state
        enabled = enabled_namespaces(state, settings=self.settings)
        self.on_enabled(enabled)
        listed = validators(state, enabled=enabled)
        self.identity.want(listed)
        if self._first_pass_pending():
            return  # their first pass sets `changed`, which publishes; nothing is lost
        waiting = self.identity.pending()
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
        ready = tuple(v for v in listed if v["metadata"].get("uid") not in waiting)
        self.snapshot = Snapshot(peers=peers, validators=ready)
        for source in PEER_SOURCES:
            count = sum(1 for p in peers.peers if p.source == source)
            self.metrics.peers.labels(source=source).set(count)
        self._published, self._moved = Fold(peers=peers, state=state, enabled=enabled), False
        self._offer(self._published)

    def _first_pass_pending(self) -> bool:
        return self.identity.first_pass_pending() or self.links.first_pass_pending()

    def _offer(self, fold: Fold) -> None:
        if not self._held():
            self.on_fold(fold)

    def _held(self) -> bool:
        """True while a base source cannot list: the last good ConfigMaps stay."""
        held = self.sources.availability.holding_back()
        if held and not self._held_logged:
            log.warning(
                "watcher.publish-held",
                extra={"unavailable": held, "hint": "the last good ConfigMaps stay"},
            )
        self._held_logged = bool(held)
        return bool(held)

    async def _notify(self, snapshot: Snapshot) -> None:
        if self.on_change is None:
            return
        await guarded(  # a listener's bug must not stop publishing
            self.on_change(snapshot),
            event="watcher.on-change-failed",
            failed=None,
            extra={"hash": snapshot.hash},
        )


def _static_peers(settings: Settings) -> tuple[Peer, ...]:
    """The static peers stellar-core can dial; an IPv6 one is left out, and said so."""
    static, ipv6 = dialable_static_peers(settings.static_peers)
    for name in ipv6:
        log.warning(
            "static-peer.ipv6-left-out",
            extra={
                "peer": name,
                "hint": "stellar-core dials IPv4 and DNS names only: "
                "give this peer's IPv4 address or a name with an A record",
            },
        )
    return static
