"""The audit: validators admitted while the webhook was unreachable, counted and reported.

Such a pod runs without a peer list until it is recreated (failurePolicy
Ignore let it through). Every replica counts them (`UninjectedAudit`, fed the
enabled namespaces by the watcher after each fold); with `evict_uninjected`,
the leader-only `Evictions` evicts those a controller will recreate, so the
webhook gets a second chance to inject them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from webhook import names
from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import unless_stopped, wait_any
from webhook.core.peerset.peers import admitted_uninjected
from webhook.core.pod import controller_owner
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

AUDIT_INTERVAL_SECONDS = 60.0
Found = Sequence[dict[str, Any]]


class UninjectedAudit:
    def __init__(
        self,
        *,
        settings: Settings,
        rest: Rest,
        metrics: Metrics,
        on_found: Callable[[Found], None] = lambda found: None,
        interval_seconds: float = AUDIT_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.on_found = on_found
        self.interval_seconds = interval_seconds
        self._rest = rest
        self._enabled: list[str] = []
        self._seen = asyncio.Event()  # the watcher has folded once: the namespaces are known

    def see(self, enabled: frozenset[str]) -> None:
        """The enabled namespaces as the watcher folded them last (a listener hook)."""
        self._enabled = sorted(enabled)
        self._seen.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Every interval, count (and report once each) validators admitted uninjected.

        A plain LIST per enabled namespace rather than a watch: it needs every
        pod, not only injected ones, and a minute's delay costs nothing here.
        """
        await wait_any(self._seen, stop)
        reported: set[str] = set()
        while not stop.is_set():
            done = await guarded(
                unless_stopped(self._round(reported), stop),
                event="audit.round-crashed",
                failed=reported,
            )
            reported = reported if done is None else done
            await wait_any(stop, seconds=self.interval_seconds)

    async def _round(self, reported: set[str]) -> set[str]:
        """One audit round; the uids reported so far."""
        try:
            found = await asyncio.to_thread(self._find_uninjected, self._enabled)
        except FAILURES as exc:
            log.warning("audit.failed", extra={"error": describe_failure(exc)})
            return reported
        self.metrics.uninjected_validators.set(len(found))
        for pod in found:
            metadata = pod["metadata"]
            if metadata.get("uid") not in reported:
                log.warning(
                    "audit.uninjected-validator",
                    extra={
                        "namespace": metadata.get("namespace"),
                        "pod": metadata.get("name"),
                        "hint": "admitted while the webhook was unreachable; recreate it",
                    },
                )
        if found:
            self.on_found(found)
        return {str(pod["metadata"].get("uid")) for pod in found}

    def _find_uninjected(self, namespaces: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for namespace in namespaces:
            pods = self._rest.get(
                path("v1", "pods", namespace=namespace),
                label_selector=f"{names.INJECTED_LABEL}!=true",
            )
            for pod in pods.get("items") or ():
                try:
                    if admitted_uninjected(pod, settings=self.settings):
                        found.append(pod)
                except Exception:  # one odd object is skipped, not the whole audit
                    name = (pod.get("metadata") or {}).get("name")
                    log.exception("audit.bad-object", extra={"namespace": namespace, "pod": name})
        return found


class Evictions:
    """Leader-only: evicts what each audit round found (`offer`), once per round.

    A round found before this leadership began is not acted on: a new leader
    evicts from its own next round, as a stale list may name pods long gone.
    """

    def __init__(self, *, rest: Rest) -> None:
        self._rest = rest
        self._found: Found = ()
        self._wake = asyncio.Event()

    def offer(self, found: Found) -> None:
        """Keep only the latest round's finds; never blocks (a listener hook)."""
        self._found = found
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self._found = ()
        self._wake.clear()
        while not stop.is_set():
            await wait_any(self._wake, stop)
            self._wake.clear()
            found, self._found = self._found, ()
            if found:
                await unless_stopped(asyncio.to_thread(self._evict, found), stop)

    def _evict(self, pods: Found) -> None:
        """Evict (honouring PodDisruptionBudgets) only pods that a controller recreates."""
        for pod in pods:
            metadata = pod["metadata"]
            if controller_owner(metadata) is None:
                continue
            name, namespace = metadata["name"], metadata["namespace"]
            body = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": namespace},
            }
            try:
                self._rest.create(
                    path("v1", "pods", namespace=namespace, name=name, subresource="eviction"),
                    body,
                )
                log.warning("audit.evicted", extra={"namespace": namespace, "pod": name})
            except FAILURES as exc:  # 429: a PodDisruptionBudget says not now; next round
                log.warning(
                    "audit.evict-failed",
                    extra={"namespace": namespace, "pod": name, "error": describe_failure(exc)},
                )
