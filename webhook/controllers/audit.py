"""The audit: validators admitted while the webhook was unreachable, counted and reported.

Such a pod runs without a peer list until it is recreated (failurePolicy
Ignore let it through). With `evict_uninjected`, the leader evicts those a
controller will recreate, so the webhook gets a second chance to inject them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from webhook import names
from webhook.controllers.supervision import guarded
from webhook.core.peerset.peers import admitted_uninjected
from webhook.core.pod import controller_owner
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

AUDIT_INTERVAL_SECONDS = 60.0


class UninjectedAudit:
    def __init__(
        self,
        *,
        settings: Settings,
        rest: Rest,
        metrics: Metrics,
        is_leader: Callable[[], bool],
        interval_seconds: float = AUDIT_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.is_leader = is_leader
        self.interval_seconds = interval_seconds
        self._rest = rest

    async def run(self, namespaces: Callable[[], list[str]]) -> None:
        """Every interval, count (and report once each) validators admitted uninjected.

        A plain LIST per enabled namespace rather than a watch: it needs every
        pod, not only injected ones, and a minute's delay costs nothing here.
        With `evict_uninjected`, the leader evicts those a controller will
        recreate, so the webhook gets a second chance to inject them.
        """
        reported: set[str] = set()
        while True:
            reported = await guarded(
                self._round(namespaces, reported), event="audit.round-crashed", failed=reported
            )
            await asyncio.sleep(self.interval_seconds)

    async def _round(self, namespaces: Callable[[], list[str]], reported: set[str]) -> set[str]:
        """One audit round; the uids reported so far."""
        try:
            found = await asyncio.to_thread(self._find_uninjected, namespaces())
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
        if found and self.settings.evict_uninjected and self.is_leader():
            await asyncio.to_thread(self._evict, found)
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

    def _evict(self, pods: list[dict[str, Any]]) -> None:
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
