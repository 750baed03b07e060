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
from webhook.core.reload.reload_plan import NodeOutcome, NodePlan
from webhook.kube.api import CALL_TIMEOUT_SECONDS
from webhook.kube.events import EventRecorder
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics

log = logging.getLogger(__name__)
round_log = logging.getLogger("webhook.controllers.reload")  # a node's outcome: the round's line


class ReloadReporter:
    def __init__(self, *, rest: Rest, metrics: Metrics) -> None:
        self._rest = rest
        self._metrics = metrics
        self._events = EventRecorder(rest=rest)

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the Event counts of pods that are gone (`keep` answers by pod uid)."""
        self._events.forget(keep)

    async def report(self, outcome: NodeOutcome, *, gave_up: bool) -> None:
        """Metrics, and the pod's annotations and aggregated Event for one node's outcome;
        a node brought up to date gets its Event from `reloaded`."""
        plan, result, node_verdict = outcome.plan, outcome.result, outcome.verdict
        if plan.mode == "none":
            self._metrics.reloads_total.labels(mode=plan.mode, result="skipped").inc()
            return
        self._metrics.reloads_total.labels(
            mode=plan.mode, result="success" if result.ok else "failed"
        ).inc()
        if not result.ok:
            round_log.warning(
                "reload.failed",
                extra={
                    "namespace": plan.namespace,
                    "pod": plan.name,
                    "mode": plan.mode,
                    "reason": result.reason,
                    "gave_up": gave_up,
                },
            )
            if node_verdict is not None:
                await self.annotate(plan, node_verdict, settled=False)
                message = f"peer set {plan.hash}: {result.detail}"
                for reason in sorted(set(node_verdict["missing"].values())):
                    await self.event(plan, "PeersNotConnected", reason, "Warning", message)
                return
            message = f"peer set {plan.hash}: {result.reason} {result.detail}".strip()
            await self.event(plan, "PeersReloadFailed", result.reason, "Warning", message)
            return
        if plan.mode != "rollout" or plan.rolled_out:
            # A pod whose workload is rolling out is replaced, not brought up to date.
            await self.annotate(plan, node_verdict, settled=True)

    async def reloaded(self, outcome: NodeOutcome) -> None:
        """The `PeersReloaded` Event of a node brought up to date."""
        plan, result = outcome.plan, outcome.result
        detail = f"{outcome.connected} connects" if plan.mode in ("http", "exec") else plan.mode
        if result.detail:
            detail += f"; {result.detail}"
        message = f"peer set {plan.hash}: {result.reason} ({detail})"
        await self.event(plan, "PeersReloaded", "", "Normal", message)

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
