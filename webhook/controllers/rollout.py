"""Rollout reload mode: set the owning workload's pod template annotation, once per change.

A Deployment (through its ReplicaSet) or StatefulSet whose template carries
`stellar.org/peers-hash` restarts its pods with the new peer set; pods it
owns are reported on together. A 409 on the patch reads the workload again.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.core.admin_protocol import Outcome, Result
from webhook.core.pod import controller_owner
from webhook.core.reload.reload_plan import NodeOutcome, NodePlan
from webhook.kube.backoff import backoff_delay
from webhook.kube.rest import Rest, path

log = logging.getLogger("webhook.controllers.reload")  # its lines are the reload controller's

# One call's retries (a 409 here, a transient answer in the reload controller).
RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 2.0


class Rollout:
    """Patches workload templates for the reload controller's rollout-mode nodes."""

    def __init__(self, *, rest: Rest, retries: int) -> None:
        self._rest = rest
        self._retries = retries

    async def run(self, plans: list[NodePlan]) -> list[NodeOutcome]:
        """Patch each owning workload once, then report on every pod it owns."""
        by_workload: dict[tuple[str, str, str], list[NodePlan]] = {}
        outcomes = []
        for plan in plans:
            workload = await self._workload(plan)
            if workload is None:
                outcomes.append(NodeOutcome(plan, Result(Outcome.FAILED, "no-workload")))
            else:
                by_workload.setdefault(workload, []).append(plan)
        for (namespace, kind, name), owned in by_workload.items():
            result = await self._patch_template(
                namespace=namespace, kind=kind, name=name, digest=owned[0].hash
            )
            outcomes += [NodeOutcome(plan, result) for plan in owned]
        return outcomes

    async def _workload(self, plan: NodePlan) -> tuple[str, str, str] | None:
        """(namespace, kind, name) of the Deployment or StatefulSet that owns the pod."""
        if plan.owner is None:
            return None
        kind, name = plan.owner
        if kind == "StatefulSet":
            return plan.namespace, kind, name
        if kind != "ReplicaSet":
            return None
        try:
            replica_set = await asyncio.to_thread(
                self._rest.get, path("apps/v1", "replicasets", namespace=plan.namespace, name=name)
            )
        except ApiException as exc:
            log.warning("reload.owner-unreadable", extra={"pod": plan.name, "status": exc.status})
            return None
        owner = controller_owner(replica_set.get("metadata") or {})
        if owner is None or owner[0] != "Deployment":
            return None
        return plan.namespace, "Deployment", owner[1]

    async def _patch_template(self, *, namespace: str, kind: str, name: str, digest: str) -> Result:
        """Set the template annotation to `digest` unless it is already; 409 -> read again."""
        plural = "deployments" if kind == "Deployment" else "statefulsets"
        one = path("apps/v1", plural, namespace=namespace, name=name)
        for attempt in range(self._retries + 1):
            try:
                workload = await asyncio.to_thread(self._rest.get, one)
                template = (workload.get("spec") or {}).get("template") or {}
                annotations = (template.get("metadata") or {}).get("annotations") or {}
                if annotations.get(names.PEERS_HASH_ANNOTATION) == digest:
                    return Result(Outcome.SUCCESS, "rolled-out")
                version = (workload.get("metadata") or {}).get("resourceVersion")
                annotation = {names.PEERS_HASH_ANNOTATION: digest}
                body = {
                    "metadata": {"resourceVersion": version},  # a conflict answers 409
                    "spec": {"template": {"metadata": {"annotations": annotation}}},
                }
                await asyncio.to_thread(self._rest.patch, one, body)
                log.info(
                    "reload.rollout",
                    extra={"namespace": namespace, "kind": kind, "name": name, "hash": digest},
                )
                return Result(Outcome.SUCCESS, "rolled-out")
            except ApiException as exc:
                if exc.status != 409 or attempt >= self._retries:
                    return Result(Outcome.FAILED, f"rollout-{exc.status}")
            await asyncio.sleep(
                backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
            )
        return Result(Outcome.FAILED, "rollout-conflict")
