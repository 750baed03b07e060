"""Links to other clusters: their Secrets here, one watch on each linked canonical
ConfigMap there, and the remote entries the peer set takes from them.

The link Secrets (`webhook.core.peerset.links`) are listed and watched in the injector's
namespace. Each usable link gets one task: it first asks the other API server
what the credential may do (refused when it may read more than that ConfigMap),
then lists and watches the one ConfigMap, with timeouts and back-off. An
unreachable link keeps its last entries for `link_stale_seconds` and says so
(log, Event on the Secret, metric), then drops them; a removed or changed Secret
drops its entries at once.

Only the leader follows the links (one watch per link per cluster): `run` is a
leader-only `Runnable`, started when the Lease is won and cancelled when it is
lost, which drops every entry. While it runs, `first_pass_pending` holds the
watcher's publishing back until each link has answered or failed once. What it
learns reaches the watcher through `changed`, an event the watcher waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from webhook import names
from webhook.controllers.supervision import supervise
from webhook.controllers.waiting import unless_stopped
from webhook.core.peerset.links import (
    FORBIDDEN_PROBES,
    Link,
    choose,
    configmap_entries,
    excess_rights,
    remote_peers,
)
from webhook.core.peerset.peers import Peer
from webhook.core.pod import as_dict, as_str
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.backoff import backoff_delay
from webhook.kube.events import EventRecorder
from webhook.kube.remote import Gone, may, read_named, remote_client, review_rules, watch_named
from webhook.kube.rest import Rest, path
from webhook.kube.watch import watch_events
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

# A link's watch is renewed at least this often, so a silent partition is noticed.
LINK_WATCH_SECONDS = 60
# What a link's list and watch raise when the other side fails or sends nonsense.
_LINK_FAILURES: tuple[type[BaseException], ...] = (*FAILURES, ValueError)
# A refused credential is asked again this often (it may have been narrowed since).
RECHECK_SECONDS = 60.0


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


class LinkWatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.changed = asyncio.Event()  # the entries (or the first pass) changed: publish again
        self._rest = Rest(api_client)
        self._events = EventRecorder(rest=self._rest)
        self.states: dict[str, LinkState] = {}  # by Secret name
        self.errors: dict[str, str] = {}  # refused Secrets: why
        self._secrets: dict[str, Mapping[str, Any]] = {}
        self._tasks: dict[str, tuple[Link, asyncio.Task[None]]] = {}
        self._listed = False
        self._running = False

    def peers(self) -> tuple[Peer, ...]:
        """Every remote entry of every link, in link order."""
        return tuple(p for _, s in sorted(self.states.items()) for p in s.entries)

    def first_pass_pending(self) -> bool:
        """While following (leading): True until the Secrets listed and every link answered
        or failed once, so a leader does not publish its set without the remote entries."""
        if not self._running:
            return False
        return not self._listed or any(not s.done_first for s in self.states.values())

    def on_change(self) -> None:
        self.changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the links until `stop` (leader-only: cancelled when the Lease is lost)."""
        self._running = True
        try:
            await supervise(
                lambda: unless_stopped(self._follow_secrets(), stop),
                event="links.secrets-failed",
                stop=stop,
            )
        finally:
            await self._drop_all()

    async def _drop_all(self) -> None:
        """No longer following: no watch, no entries; the next leader follows the links."""
        self._running = False
        for _, task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*(t for _, t in self._tasks.values()), return_exceptions=True)
        for state in self.states.values():
            self._gauges(state.cluster, None)
        self._tasks, self.states, self.errors, self._secrets = {}, {}, {}, {}
        self._listed = False
        self.on_change()

    async def _follow_secrets(self) -> None:
        listing: dict[str, Mapping[str, Any]] | None = {}
        async for event in watch_events(
            self._rest.lister(path("v1", "secrets", namespace=self.settings.namespace)),
            timeout_seconds=self.settings.watch_timeout_seconds,
            resource="link-secrets",
            metrics=self.metrics,
            transform=_trim_secret,
            on_list_failed=self._list_failed,
            label_selector=f"{names.LINK_LABEL}=true",
        ):
            obj = event["object"]
            name = as_str(as_dict(obj.get("metadata")).get("name"))
            if event["type"] == "LISTED":
                self._secrets, listing = dict(listing or {}), None
            elif listing is not None:
                listing[name] = obj
                continue
            elif event["type"] == "DELETED":
                self._secrets.pop(name, None)
            else:
                self._secrets[name] = obj
            await self._reconcile()
            if not self._listed:
                self._listed = True
                self.on_change()

    def _list_failed(self, exc: BaseException, attempt: int) -> None:
        """Link Secrets that cannot be listed must not hold the local set back: say what
        to do, and publish without remote entries meanwhile (the list keeps retrying)."""
        if attempt == 0:
            log.warning(
                "links.list-failed",
                extra={
                    "error": describe_failure(exc),
                    "hint": f"the injector needs list and watch on Secrets in "
                    f"{self.settings.namespace} (manifests/base/role.yaml) to use links",
                },
            )
        if not self._listed:
            self._listed = True
            self.on_change()

    async def _reconcile(self) -> None:
        links, errors = choose(self._secrets.values(), cluster_name=self.settings.cluster_name)
        for name, error in sorted(errors.items()):
            if self.errors.get(name) != error:
                log.error("link.refused", extra={"secret": name, "error": error})
                await self._event(name, "LinkRefused", f"link Secret not used: {error}", True)
        self.errors = errors
        changed = False
        for name in list(self._tasks):
            link, task = self._tasks[name]
            if links.get(name) != link:  # removed, or changed (its resourceVersion)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                del self._tasks[name]
                dropped = self.states.pop(name, None)
                self._gauges(link.cluster, None)
                changed = changed or bool(dropped and dropped.entries)
                log.info("link.removed", extra={"secret": name, "cluster": link.cluster})
        for name, link in sorted(links.items()):
            if name not in self._tasks:
                self.states[name] = LinkState(cluster=link.cluster, secret=name)
                self._tasks[name] = (link, asyncio.create_task(self._follow_link(link)))
        if changed:
            self.on_change()

    # --- One link -----------------------------------------------------------

    async def _follow_link(self, link: Link) -> None:
        state = self.states[link.secret]
        try:
            api = remote_client(link.kubeconfig)
        except (config.ConfigException, ValueError, OSError) as exc:
            state.error = f"kubeconfig unusable: {exc}"[:300]
            state.done_first = True
            log.error("link.refused", extra={"secret": link.secret, "error": state.error})
            await self._event(link.secret, "LinkRefused", state.error, True)
            self.on_change()
            return
        rest = Rest(api)
        attempt = 0
        checked = False
        try:
            while True:
                try:
                    if not checked:
                        if not await self._credential_ok(rest, link, state):
                            await asyncio.sleep(RECHECK_SECONDS)
                            continue
                        checked = True
                    await self._list_and_watch(rest, link, state)
                    attempt = 0
                except _LINK_FAILURES as exc:
                    await self._lost(link, state, exc)
                    await self._wait_or_expire(link, state, backoff_delay(attempt))
                    attempt += 1
        finally:
            api.close()

    async def _credential_ok(self, rest: Rest, link: Link, state: LinkState) -> bool:
        """Refuse a credential that may read more than the one ConfigMap."""
        rules = await review_rules(rest, namespace=link.namespace)
        excess = excess_rights(rules, namespace=link.namespace)
        for verb, group, resource, namespace in FORBIDDEN_PROBES:
            if await may(rest, verb=verb, group=group, resource=resource, namespace=namespace):
                excess.append(f"{verb} {resource} in every namespace")
        if not excess:
            state.error = ""
            return True
        error = (
            f"the credential for cluster {link.cluster!r} may do more than read the ConfigMap "
            f"{link.namespace}/{names.CONFIGMAP_NAME}: {'; '.join(sorted(set(excess)))[:400]}; "
            "use the ServiceAccount `stellar-peers link` makes"
        )
        if state.error != error:
            log.error("link.refused", extra={"secret": link.secret, "error": error})
            await self._event(link.secret, "LinkRefused", error, True)
        state.error = error
        notify = bool(state.entries) or not state.done_first
        state.entries, state.done_first = (), True
        self._gauges(link.cluster, state)
        if notify:
            self.on_change()
        return False

    async def _list_and_watch(self, rest: Rest, link: Link, state: LinkState) -> None:
        configmap, version = await read_named(
            rest, namespace=link.namespace, name=names.CONFIGMAP_NAME
        )
        await self._contact(link, state, configmap)
        while True:
            try:
                async for event in watch_named(
                    rest,
                    namespace=link.namespace,
                    name=names.CONFIGMAP_NAME,
                    since=version,
                    timeout_seconds=min(LINK_WATCH_SECONDS, self.settings.watch_timeout_seconds),
                ):
                    obj = as_dict(event.get("object"))
                    version = as_str(as_dict(obj.get("metadata")).get("resourceVersion")) or version
                    if event.get("type") == "BOOKMARK":
                        await self._contact(link, state, None, keep=True)
                    elif event.get("type") == "DELETED":
                        await self._contact(link, state, None)
                    else:
                        await self._contact(link, state, obj)
            except Gone:
                return  # relist
            await self._contact(link, state, None, keep=True)  # the stream ended in time

    async def _contact(
        self,
        link: Link,
        state: LinkState,
        configmap: Mapping[str, Any] | None,
        *,
        keep: bool = False,
    ) -> None:
        """The other cluster answered: note it, and take its entries unless `keep`."""
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
        if not state.done_first:
            state.done_first = True
            self.on_change()
        self._gauges(link.cluster, state)
        if not was:
            log.info("link.reachable", extra={"cluster": link.cluster})
            await self._event(
                link.secret,
                "LinkReachable",
                f"cluster {link.cluster!r} answers: {len(state.entries)} entries",
                False,
            )

    async def _lost(self, link: Link, state: LinkState, exc: BaseException) -> None:
        why = describe_failure(exc)
        first = state.reachable or not state.done_first
        if state.reachable:
            # An open watch is contact, events or not: the stale time runs from the cut.
            state.last_contact = time.monotonic()
        state.reachable, state.error = False, why
        self._gauges(link.cluster, state)
        if not state.done_first:
            state.done_first = True
            self.on_change()
        if first:
            log.warning("link.unreachable", extra={"cluster": link.cluster, "error": why})
            await self._event(
                link.secret,
                "LinkUnreachable",
                f"cluster {link.cluster!r} cannot be reached ({why}); its "
                f"{len(state.entries)} entries are kept for "
                f"{self.settings.link_stale_seconds:g}s",
                True,
            )

    async def _wait_or_expire(self, link: Link, state: LinkState, delay: float) -> None:
        """Back off; drop the entries once the link has been silent past the stale time."""
        left = state.last_contact + self.settings.link_stale_seconds - time.monotonic()
        if state.entries and left > 0:
            delay = min(delay, left + 0.01)
        await asyncio.sleep(delay)
        left = state.last_contact + self.settings.link_stale_seconds - time.monotonic()
        if state.entries and left <= 0:
            count, state.entries, state.stale = len(state.entries), (), True
            self._gauges(link.cluster, state)
            log.warning("link.stale", extra={"cluster": link.cluster, "dropped": count})
            await self._event(
                link.secret,
                "LinkStale",
                f"cluster {link.cluster!r} silent for over "
                f"{self.settings.link_stale_seconds:g}s: its {count} entries are dropped",
                True,
            )
            self.on_change()

    def _gauges(self, cluster: str, state: LinkState | None) -> None:
        if state is None:
            for gauge in (self.metrics.link_reachable, self.metrics.link_entries):
                with contextlib.suppress(KeyError):
                    gauge.remove(cluster)
            return
        self.metrics.link_reachable.labels(cluster=cluster).set(1 if state.reachable else 0)
        self.metrics.link_entries.labels(cluster=cluster).set(len(state.entries))

    async def _event(self, secret: str, reason: str, message: str, warning: bool) -> None:
        obj = self._secrets.get(secret, {})
        await self._events.record(
            key=reason,
            kind="Secret",
            name=secret,
            namespace=self.settings.namespace,
            uid=as_str(as_dict(obj.get("metadata")).get("uid")),
            reason=reason,
            message=message[:1000],
            event_type="Warning" if warning else "Normal",
        )


def _trim_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A link Secret's name, uid, version and its three keys; nothing else is kept."""
    metadata = as_dict(obj.get("metadata"))
    data = as_dict(obj.get("data"))
    keep = (names.LINK_KEY_CLUSTER, names.LINK_KEY_KUBECONFIG, "namespace")
    return {
        "kind": "Secret",
        "metadata": {k: metadata.get(k) for k in ("name", "uid", "resourceVersion")},
        "data": {k: data[k] for k in keep if k in data},
    }
