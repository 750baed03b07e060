"""One `stellar-peers` ConfigMap write: create, or replace with the resourceVersion read.

The round (`webhook.controllers.publisher`: which namespaces, the canonical one
first, the mirrors eight at a time) hands each step here; this carries it out on
a thread of its own. An update carries the resourceVersion last seen, so a
concurrent writer makes us read again (409) instead of being overwritten; a
ConfigMap without our owner labels is someone else's: left alone, counted, said
once in a Warning Event (`webhook.controllers.configmap_notices`). Labels,
annotations and data keys others added stay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.controllers.configmap_notices import (
    ConfigMapNotices,
    configmap_path,
    read_configmap,
)
from webhook.core.publishing.publish import merged
from webhook.core.publishing.publish_plan import (
    Step,
    Written,
    canonical_ref,
    is_ours,
    observed_digest,
)
from webhook.core.publishing.watched import KIND_CONFIGMAP, trim
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger("webhook.controllers.publisher")  # its lines are the publisher's

CONFLICT_RETRIES = 3


class ConfigMapWrites:
    """Carries out the publish plan's steps, one ConfigMap at a time (thread-safe per
    namespace: the round runs at most one write per namespace)."""

    def __init__(
        self, *, settings: Settings, rest: Rest, metrics: Metrics, notices: ConfigMapNotices
    ) -> None:
        self._settings = settings
        self._rest = rest
        self._metrics = metrics
        self._notices = notices
        # namespace -> our last replace there, until the watch shows it
        self.written: dict[str, Written] = {}

    def kind(self, namespace: str) -> str:
        return "canonical" if namespace == self._settings.namespace else "mirror"

    def carry_out(self, step: Step, body: dict[str, Any], digest: str) -> int | None:
        """Carry out one step; the bytes of JSON sent (0 for none), None when a call failed."""
        kind = self.kind(step.namespace)
        try:
            if step.verb == "conflict":
                self._notices.not_ours(namespace=step.namespace, uid=step.uid)
            elif step.verb == "delete":
                self._delete(namespace=step.namespace, uid=step.uid, kind=kind)
            else:
                return self.write(
                    namespace=step.namespace, body=body, digest=digest, known=step.observed
                )
        except FAILURES as exc:
            self._metrics.configmap_writes_total.labels(kind=kind, result="error").inc()
            log.warning(
                "configmap.write-failed",
                extra={
                    "namespace": step.namespace,
                    "verb": step.verb,
                    "error": describe_failure(exc),
                },
            )
            return None
        return 0

    def write(
        self,
        *,
        namespace: str,
        body: dict[str, Any],
        digest: str,
        known: Mapping[str, Any] | None = None,
    ) -> int:
        """Create or replace, carrying the resourceVersion last seen; the bytes of JSON sent.

        The first try trusts what the watch last saw (`known`, no read: with a
        hundred mirrors the reads were half the time); a 409 means it was stale,
        or someone wrote in between: read afresh and try again.
        """
        current: Mapping[str, Any] | None = known
        sent = 0
        for attempt in range(CONFLICT_RETRIES):
            if attempt:
                current = read_configmap(self._rest, namespace)
            if current is not None and not is_ours(
                current, canonical=canonical_ref(self._settings)
            ):
                uid = str(current["metadata"].get("uid") or "")
                self._notices.not_ours(namespace=namespace, uid=uid)
                return sent
            if current is not None and observed_digest(current) == digest:
                return sent
            wanted = _wanted(body, namespace=namespace, current=current)
            sent += self._count(wanted, self.kind(namespace))
            try:
                answer = self._send(wanted, namespace=namespace, replace=current is not None)
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            self._written(namespace, current=current, answer=answer, body=body)
            return sent
        raise ApiException(status=409, reason=f"{namespace}: still conflicting after retries")

    def _send(self, wanted: dict[str, Any], *, namespace: str, replace: bool) -> dict[str, Any]:
        if replace:
            return self._rest.replace(
                configmap_path(namespace), wanted, field_manager=names.FIELD_MANAGER
            )
        return self._rest.create(
            path("v1", "configmaps", namespace=namespace), wanted, field_manager=names.FIELD_MANAGER
        )

    def _written(
        self,
        namespace: str,
        *,
        current: Mapping[str, Any] | None,
        answer: dict[str, Any],
        body: Mapping[str, Any],
    ) -> None:
        """Remember a replace until the watch shows it; count and log the write."""
        kind, result = self.kind(namespace), "created" if current is None else "updated"
        if current is not None:  # not a create: a delete before its echo would hide
            written = trim(answer, kind=KIND_CONFIGMAP)
            self.written[namespace] = (current["metadata"]["resourceVersion"], written)
        self._metrics.configmap_writes_total.labels(kind=kind, result=result).inc()
        log.info(
            "configmap.written",
            extra={
                "namespace": namespace,
                "kind": kind,
                "result": result,
                "hash": body["metadata"]["annotations"][names.PEERS_HASH_ANNOTATION],
            },
        )

    def _count(self, wanted: Mapping[str, Any], kind: str) -> int:
        """Bytes of the body about to be sent (compact JSON), counted in the metric."""
        size = len(orjson.dumps(wanted))
        self._metrics.configmap_write_bytes_total.labels(kind=kind).inc(size)
        return size

    def _delete(self, *, namespace: str, uid: str, kind: str) -> None:
        options = {"preconditions": {"uid": uid}} if uid else None
        try:
            self._rest.delete(configmap_path(namespace), options)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or replaced by someone else's
                raise
            return
        self._metrics.configmap_writes_total.labels(kind=kind, result="deleted").inc()
        log.info(
            "configmap.deleted", extra={"namespace": namespace, "reason": "namespace-disabled"}
        )


def _wanted(
    body: Mapping[str, Any], *, namespace: str, current: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The object to send: `body` in `namespace`; for a replace, with the resourceVersion
    read and what others added beside ours (labels, annotations, data keys, binaryData;
    ours win on the keys we own, `publish.merged`)."""
    wanted = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    if current is None:
        return wanted
    metadata = current["metadata"]
    wanted["metadata"]["resourceVersion"] = metadata["resourceVersion"]
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    wanted["metadata"]["labels"] = {**labels, **body["metadata"]["labels"]}
    wanted["metadata"]["annotations"] = {**annotations, **body["metadata"]["annotations"]}
    content = merged(current, body)
    wanted["data"] = content["data"]
    wanted.pop("binaryData", None)
    if content["binaryData"]:
        wanted["binaryData"] = content["binaryData"]
    return wanted
