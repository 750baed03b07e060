"""One link's follower: the other cluster's API server, the one ConfigMap watched there.

`LinkWatcher` (`webhook.controllers.links`) starts one `LinkFollower` per usable
link Secret and cancels it when the Secret goes or changes. The follower first
asks the other API server what the credential may do (refused when it may read
more than that ConfigMap), then lists and watches the one ConfigMap, with
timeouts and back-off. An unreachable link keeps its last entries for
`link_stale_seconds` and says so (log, Event on the Secret, metric), then drops
them. What it learns is written into its `LinkState`, and `on_change` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import config

from webhook import names
from webhook.core.peerset.links import (
    FORBIDDEN_PROBES,
    Link,
    configmap_entries,
    excess_rights,
    remote_peers,
)
from webhook.core.peerset.peers import Peer
from webhook.core.pod import as_dict, as_str
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.backoff import backoff_delay
from webhook.kube.remote import Gone, may, read_named, remote_client, review_rules, watch_named
from webhook.kube.rest import Rest
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

# A link's watch is renewed at least this often, so a silent partition is noticed.
LINK_WATCH_SECONDS = 60
# What a link's list and watch raise when the other side fails or sends nonsense.
_LINK_FAILURES: tuple[type[BaseException], ...] = (*FAILURES, ValueError)
# A refused credential is asked again this often (it may have been narrowed since).
RECHECK_SECONDS = 60.0

# Records an Event on a link Secret: (secret, reason, message, warning).
EventSink = Callable[[str, str, str, bool], Awaitable[None]]


@dataclass
class LinkState:
    """What `status` and the metrics show of one link."""

    cluster: str
    secret: str
    reachable: bool = False
    entries: tuple[Peer, ...] = ()
    last_contact: float = 0.0  # time.monotonic() of the last answer, 0: never
    contact_wall: float = 0.0  # the same, as time.time(), for status
    stale: bool = False
    error: str = ""
    done_first: bool = False  # listed or failed once


def set_gauges(metrics: Metrics, cluster: str, state: LinkState | None) -> None:
    """A link's reachable and entries gauges; `None` removes them (the link is gone)."""
    if state is None:
        for gauge in (metrics.link_reachable, metrics.link_entries):
            with contextlib.suppress(KeyError):
                gauge.remove(cluster)
        return
    metrics.link_reachable.labels(cluster=cluster).set(1 if state.reachable else 0)
    metrics.link_entries.labels(cluster=cluster).set(len(state.entries))


async def excess_of(rest: Rest, link: Link) -> list[str]:
    """What the link's credential may do beyond reading the one ConfigMap."""
    rules = await review_rules(rest, namespace=link.namespace)
    excess = excess_rights(rules, namespace=link.namespace)
    for verb, group, resource, namespace in FORBIDDEN_PROBES:
        if await may(rest, verb=verb, group=group, resource=resource, namespace=namespace):
            excess.append(f"{verb} {resource} in every namespace")
    return excess


class LinkRecord:
    """What one link's answers mean: contact, loss, staleness, and the Events and gauges
    that say so. Kept apart from the calls that get the answers (`LinkFollower`)."""

    def __init__(
        self,
        *,
        link: Link,
        state: LinkState,
        settings: Settings,
        metrics: Metrics,
        on_change: Callable[[], None],
        event: EventSink,
    ) -> None:
        self.link = link
        self.state = state
        self.settings = settings
        self.metrics = metrics
        self.on_change = on_change
        self.event = event

    async def unusable(self, error: str) -> None:
        """The Secret's kubeconfig cannot be used: refused, and done with its first pass."""
        state = self.state
        state.error = error
        state.done_first = True
        log.error("link.refused", extra={"secret": self.link.secret, "error": error})
        await self.event(self.link.secret, "LinkRefused", error, True)
        self.on_change()

    async def refused(self, error: str) -> None:
        """The credential may do too much: no entries, and say why (once per reason)."""
        link, state = self.link, self.state
        if state.error != error:
            log.error("link.refused", extra={"secret": link.secret, "error": error})
            await self.event(link.secret, "LinkRefused", error, True)
        state.error = error
        notify = bool(state.entries) or not state.done_first
        state.entries, state.done_first = (), True
        set_gauges(self.metrics, link.cluster, state)
        if notify:
            self.on_change()

    async def contact(self, configmap: Mapping[str, Any] | None, *, keep: bool = False) -> None:
        """The other cluster answered: note it, and take its entries unless `keep`."""
        link, state = self.link, self.state
        was = state.reachable
        state.reachable, state.stale, state.error = True, False, ""
        state.last_contact, state.contact_wall = time.monotonic(), time.time()
        if not keep:
            entries = configmap_entries(configmap) if configmap is not None else []
            fresh = remote_peers(entries, cluster=link.cluster)
            if fresh != state.entries:
                state.entries = fresh
                log.info("link.entries", extra={"cluster": link.cluster, "entries": len(fresh)})
                self.on_change()
        self._first_done()
        set_gauges(self.metrics, link.cluster, state)
        if not was:
            log.info("link.reachable", extra={"cluster": link.cluster})
            await self.event(
                link.secret,
                "LinkReachable",
                f"cluster {link.cluster!r} answers: {len(state.entries)} entries",
                False,
            )

    async def lost(self, exc: BaseException) -> None:
        """The other cluster failed: unreachable, entries kept until the stale time."""
        link, state = self.link, self.state
        why = describe_failure(exc)
        first = state.reachable or not state.done_first
        if state.reachable:
            # An open watch is contact, events or not: the stale time runs from the cut.
            state.last_contact = time.monotonic()
        state.reachable, state.error = False, why
        set_gauges(self.metrics, link.cluster, state)
        self._first_done()
        if first:
            log.warning("link.unreachable", extra={"cluster": link.cluster, "error": why})
            await self.event(
                link.secret,
                "LinkUnreachable",
                f"cluster {link.cluster!r} cannot be reached ({why}); its "
                f"{len(state.entries)} entries are kept for "
                f"{self.settings.link_stale_seconds:g}s",
                True,
            )

    def _first_done(self) -> None:
        """The link answered or failed once: the watcher may stop holding its set back."""
        if not self.state.done_first:
            self.state.done_first = True
            self.on_change()

    async def wait_or_expire(self, delay: float) -> None:
        """Back off; drop the entries once the link has been silent past the stale time."""
        link, state, stale_seconds = self.link, self.state, self.settings.link_stale_seconds
        left = state.last_contact + stale_seconds - time.monotonic()
        if state.entries and left > 0:
            delay = min(delay, left + 0.01)
        await asyncio.sleep(delay)
        left = state.last_contact + stale_seconds - time.monotonic()
        if state.entries and left <= 0:
            count, state.entries, state.stale = len(state.entries), (), True
            set_gauges(self.metrics, link.cluster, state)
            log.warning("link.stale", extra={"cluster": link.cluster, "dropped": count})
            await self.event(
                link.secret,
                "LinkStale",
                f"cluster {link.cluster!r} silent for over "
                f"{stale_seconds:g}s: its {count} entries are dropped",
                True,
            )
            self.on_change()


class LinkFollower:
    """Follows one link until cancelled: its remote client, the rights check, the list
    and watch of the one ConfigMap; what the answers mean is `record`'s."""

    def __init__(self, *, record: LinkRecord) -> None:
        self.record = record
        self.link = record.link

    async def run(self) -> None:
        link, record = self.link, self.record
        try:
            api = remote_client(link.kubeconfig)
        except (config.ConfigException, ValueError, OSError) as exc:
            await record.unusable(f"kubeconfig unusable: {exc}"[:300])
            return
        rest = Rest(api)
        attempt = 0
        checked = False
        try:
            while True:
                try:
                    if not checked:
                        if not await self._credential_ok(rest):
                            await asyncio.sleep(RECHECK_SECONDS)
                            continue
                        checked = True
                    await self._list_and_watch(rest)
                    attempt = 0
                except _LINK_FAILURES as exc:
                    await record.lost(exc)
                    await record.wait_or_expire(backoff_delay(attempt))
                    attempt += 1
        finally:
            api.close()

    async def _credential_ok(self, rest: Rest) -> bool:
        """Refuse a credential that may read more than the one ConfigMap."""
        link = self.link
        excess = await excess_of(rest, link)
        if not excess:
            self.record.state.error = ""
            return True
        await self.record.refused(
            f"the credential for cluster {link.cluster!r} may do more than read the ConfigMap "
            f"{link.namespace}/{names.CONFIGMAP_NAME}: {'; '.join(sorted(set(excess)))[:400]}; "
            "use the ServiceAccount `stellar-peers link` makes"
        )
        return False

    async def _list_and_watch(self, rest: Rest) -> None:
        link, record = self.link, self.record
        configmap, version = await read_named(
            rest, namespace=link.namespace, name=names.CONFIGMAP_NAME
        )
        await record.contact(configmap)
        while True:
            try:
                async for event in watch_named(
                    rest,
                    namespace=link.namespace,
                    name=names.CONFIGMAP_NAME,
                    since=version,
                    timeout_seconds=min(LINK_WATCH_SECONDS, record.settings.watch_timeout_seconds),
                ):
                    obj = as_dict(event.get("object"))
                    version = as_str(as_dict(obj.get("metadata")).get("resourceVersion")) or version
                    if event.get("type") == "BOOKMARK":
                        await record.contact(None, keep=True)
                    elif event.get("type") == "DELETED":
                        await record.contact(None)
                    else:
                        await record.contact(obj)
            except Gone:
                return  # relist
            await record.contact(None, keep=True)  # the stream ended in time
