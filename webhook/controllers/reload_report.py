"""What a reload round tells Kubernetes about each node: pod annotations and Events.

The round decides; this writes. A pod's `stellar.org/peers-observed-hash` is
set only once its node settled, `stellar.org/peers-connection-status` only when
it changed, and Events are aggregated per node, reason and cause (counted on
each repeat) so a node that stays behind does not flood the namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.core.reload import connection
from webhook.core.reload.reload_plan import NodePlan
from webhook.kube.api import CALL_TIMEOUT_SECONDS
from webhook.kube.events import EventRecorder
from webhook.kube.rest import Rest, path

log = logging.getLogger(__name__)


class ReloadReporter:
    def __init__(self, *, rest: Rest) -> None:
        self._rest = rest
        self._events = EventRecorder(rest=rest)

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the Event counts of pods that are gone (`keep` answers by pod uid)."""
        self._events.forget(keep)

    async def annotate(
        self, plan: NodePlan, node_verdict: Mapping[str, Any] | None, *, settled: bool
    ) -> None:
        annotations: dict[str, str] = {}
        if settled:
            annotations[names.OBSERVED_HASH_ANNOTATION] = plan.hash
        if node_verdict is not None:
            status = connection.status_annotation(
                node_verdict, hash=plan.hash, http_port=plan.http_port, peer_port=plan.peer_port
            )
            if status != plan.status:
                annotations[names.CONNECTION_STATUS_ANNOTATION] = status
        if not annotations:
            return
        body = {"metadata": {"annotations": annotations}}
        try:
            await asyncio.to_thread(
                self._rest.patch,
                path("v1", "pods", namespace=plan.namespace, name=plan.name),
                body,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except ApiException as exc:
            log.warning("reload.annotate-failed", extra={"pod": plan.name, "status": exc.status})

    async def event(self, plan: NodePlan, reason: str, why: str, kind: str, message: str) -> None:
        """One Event per node, reason and cause, counted on each repeat."""
        await self._events.record(
            key=f"{reason}/{why}",
            kind="Pod",
            name=plan.name,
            namespace=plan.namespace,
            uid=plan.uid,
            reason=reason,
            message=message[:1024],
            event_type=kind,
        )
