"""The watch side of the peer watcher: every source listed and watched, its events queued.

Owns the watch loops (injected pods; namespaces matching the selector;
`stellar-peers` ConfigMaps; the StellarNode CRD and, while it exists,
StellarNodes with their pods and Services), the queue of trimmed events they
fill, and which sources have listed. It decides nothing about peers: the
watcher takes the queue (`take`) once per debounce window and folds it.

A source that cannot list (refused by RBAC at once, any other failure after a
few attempts) is reported as unavailable (`Availability`: log with what to do,
metric, `/readyz` detail) and no longer holds readiness back. Its list keeps
retrying; once it lists, it is back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client

from webhook.controllers.availability import Availability
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
from webhook.controllers.supervision import supervise
from webhook.core.publishing.watched import trim
from webhook.kube.watch import watch_events
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

# Threads for open watch streams: each holds one while it waits for a line.
WATCH_THREADS = 12


class SourceFollower:
    """Lists then watches every source; `dirty` is set whenever an event is queued."""

    def __init__(
        self, *, settings: Settings, api_client: client.ApiClient, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # What is watched: a test may swap a source (one the API refuses, say).
        self.base = base_sources(api_client, settings)
        self.crds = crd_source(api_client)
        self.nodes = node_sources(api_client)
        self.availability = Availability(metrics=metrics, holding=HOLDING_SOURCES)
        self.dirty = asyncio.Event()
        self.listed_all = asyncio.Event()  # every source listed or reported unavailable
        self._inbox: list[Mapping[str, Any]] = []  # events not taken yet
        self._pending = set(BASE_SOURCES)  # sources not listed yet
        self._node_tasks: list[asyncio.Task[None]] = []
        self._crd_absent_logged = False
        self._executor: ThreadPoolExecutor | None = None

    def take(self) -> list[Mapping[str, Any]]:
        """The events queued since the last take, oldest first."""
        events, self._inbox = self._inbox, []
        return events

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set, then close every stream."""
        self._executor = ThreadPoolExecutor(WATCH_THREADS, thread_name_prefix="peer-watch")
        tasks = [spawn(self._follow(source)) for source in self.base]
        tasks.append(spawn(self._supervised(self.crds.name, self._follow_crd_once)))
        try:
            await stop.wait()
        finally:
            for task in tasks + self._node_tasks:
                task.cancel()
            await asyncio.gather(*tasks, *self._node_tasks, return_exceptions=True)
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _queue(self, event: Mapping[str, Any]) -> None:
        self._inbox.append(event)
        self.dirty.set()

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
        if not self._pending and not self.listed_all.is_set():
            log.info("watcher.ready", extra={"queued_events": len(self._inbox)})
            self.listed_all.set()

    async def _follow(self, source: Source) -> None:
        """List and watch one source forever, relisting whenever the watch says 410."""
        await self._supervised(source.name, lambda: self._follow_once(source))

    async def _supervised(self, name: str, once: Callable[[], Awaitable[None]]) -> None:
        """Run `once` again and again; a bug in it must not leave the state silently stale."""
        await supervise(once, event="watcher.source-failed", extra={"resource": name})

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
                self._queue({"type": event["type"], "object": obj})
            elif event["type"] != "LISTED":
                listing.append(obj)
            else:
                self._queue({"type": "LISTED", "kind": source.kind, "objects": listing})
                listing = None
                self._listed(source.name)

    async def _follow_crd_once(self) -> None:
        """Watch the StellarNode CRD; run the StellarNode loops only while it exists."""
        present = listed = False
        async for event in watch_events(
            self.crds.list_fn,
            timeout_seconds=self.settings.watch_timeout_seconds,
            resource=self.crds.name,
            metrics=self.metrics,
            executor=self._executor,
            on_list_failed=functools.partial(self._list_failed, self.crds.name),
            **self.crds.kwargs,
        ):
            if event["type"] == "LISTED":
                listed = True
            else:
                present = event["type"] != "DELETED"
            if listed:
                await self._crd_seen(present=present)
                self._listed(self.crds.name)

    async def _crd_seen(self, *, present: bool) -> None:
        if present and not self._node_tasks:
            log.info("stellarnode.crd-present", extra={"crd": CRD_NAME})
            if not self.listed_all.is_set():
                self._pending |= NODE_SOURCES
            self._node_tasks = [spawn(self._follow(source)) for source in self.nodes]
        elif not present and self._node_tasks:
            log.info("stellarnode.crd-removed", extra={"crd": CRD_NAME})
            await self._stop_node_loops()
        elif not present and not self._crd_absent_logged:
            self._crd_absent_logged = True
            log.info("stellarnode.crd-absent", extra={"crd": CRD_NAME})

    async def _stop_node_loops(self) -> None:
        for task in self._node_tasks:
            task.cancel()
        await asyncio.gather(*self._node_tasks, return_exceptions=True)
        self._node_tasks = []
        for source in self.nodes:
            self.availability.recovered(source.name, quiet=True)
            self._queue({"type": "LISTED", "kind": source.kind, "objects": []})


def spawn(work: Awaitable[None]) -> asyncio.Task[None]:
    """A task whose crash is logged loudly: a loop that ends by itself is a bug."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(_report_crash)
    return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("watcher.loop-crashed", exc_info=task.exception())
