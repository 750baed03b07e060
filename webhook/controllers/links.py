"""Links to other clusters: their Secrets here, one follower per link, and the remote
entries the peer set takes from them.

The link Secrets (`webhook.core.peerset.links`) are listed and watched in the injector's
namespace; each usable link gets one task, a `LinkFollower`
(`webhook.controllers.link_follower`: the other API server, the one ConfigMap
watched there, staleness). A removed or changed Secret cancels its task and drops
its entries at once.

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
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from webhook import names
from webhook.controllers.link_follower import LinkFollower, LinkRecord, LinkState, set_gauges
from webhook.controllers.supervision import supervise
from webhook.controllers.waiting import unless_stopped
from webhook.core.peerset.links import Link, choose
from webhook.core.peerset.peers import Peer
from webhook.core.pod import as_dict, as_str
from webhook.kube.api import describe_failure
from webhook.kube.events import EventRecorder
from webhook.kube.rest import Rest, path
from webhook.kube.watch import watch_events
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["LinkState", "LinkWatcher"]

log = logging.getLogger(__name__)


class LinkWatcher:
    """Follows the link Secrets: chooses the usable links and runs one follower each."""

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
            set_gauges(self.metrics, state.cluster, None)
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
                set_gauges(self.metrics, link.cluster, None)
                changed = changed or bool(dropped and dropped.entries)
                log.info("link.removed", extra={"secret": name, "cluster": link.cluster})
        for name, link in sorted(links.items()):
            if name not in self._tasks:
                state = self.states[name] = LinkState(cluster=link.cluster, secret=name)
                record = LinkRecord(
                    link=link,
                    state=state,
                    settings=self.settings,
                    metrics=self.metrics,
                    on_change=self.on_change,
                    event=self._event,
                )
                task = asyncio.create_task(LinkFollower(record=record).run())
                self._tasks[name] = (link, task)
        if changed:
            self.on_change()

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
