"""What the ConfigMap publisher tells operators: log lines, counters and Events.

A peer set too large to write (once per set), a change of layout (mirrors
without `peers.json`, the canonical one compressed), and a `stellar-peers`
ConfigMap someone else owns (once per object, left untouched). Events about
the whole set go on the canonical ConfigMap: the place an operator looks first.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing.publish_size import Layout, Notice
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.events import EventRecorder
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger("webhook.controllers.publisher")  # its lines are the publisher's


def configmap_path(namespace: str) -> str:
    return path("v1", "configmaps", namespace=namespace, name=names.CONFIGMAP_NAME)


def read_configmap(rest: Rest, namespace: str) -> dict[str, Any] | None:
    """The `stellar-peers` ConfigMap there, None if there is none."""
    try:
        return rest.get(configmap_path(namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


class ConfigMapNotices:
    def __init__(self, *, settings: Settings, rest: Rest, metrics: Metrics) -> None:
        self._settings = settings
        self._rest = rest
        self._metrics = metrics
        self._warned: set[str] = set()  # uids and set hashes already reported
        self._events = EventRecorder(rest=rest)

    def too_large(self, peers: PeerSet, shaped: Layout, *, keeping: str | None) -> str:
        """A set that does not fit even compressed: logged and counted once; the
        warning for an Event ("" when already said)."""
        if peers.hash in self._warned:
            return ""
        self._warned.add(peers.hash)
        self._metrics.configmap_oversize_total.inc()
        log.error(
            "configmap.oversize",
            extra={
                "bytes": shaped.compressed_bytes,
                "plain_bytes": shaped.full_bytes,
                "limit": names.CONFIGMAP_MAX_BYTES,
                "peers": len(peers.peers),
                "keeping": keeping,
            },
        )
        return (
            f"{len(peers.peers)} peers need {shaped.compressed_bytes} bytes even with "
            f"peers.json gzip-compressed ({shaped.full_bytes} in plain text), over the "
            f"ConfigMap limit of {names.CONFIGMAP_MAX_BYTES}; keeping the last peer set that fit"
        )

    def layout_changed(self, said: Notice, shaped: Layout) -> None:
        """The layout changed: a log line and an Event on the canonical ConfigMap."""
        log.log(
            logging.WARNING if said.event_type == "Warning" else logging.INFO,
            "configmap.layout",
            extra={
                "mode": shaped.mode,
                "reason": said.reason,
                "json_bytes": shaped.json_bytes,
                "plain_bytes": shaped.full_bytes,
                "compressed_bytes": shaped.compressed_bytes,
                "says": said.message,
            },
        )
        self.canonical_event(reason=said.reason, message=said.message, event_type=said.event_type)

    def not_ours(self, *, namespace: str, uid: str) -> None:
        """Someone else's `stellar-peers`: never touched; reported once per object."""
        if uid in self._warned:
            return
        self._warned.add(uid)
        self._metrics.configmap_conflicts_total.inc()
        log.warning(
            "configmap.conflict",
            extra={"namespace": namespace, "configmap": names.CONFIGMAP_NAME, "uid": uid},
        )
        self._event(
            namespace=namespace,
            uid=uid,
            reason="NotOwned",
            message="a ConfigMap named stellar-peers that this peer injector does not own "
            "(no owner labels, or another installation's mirror) exists here; "
            "it is left untouched",
        )

    def canonical_event(self, *, reason: str, message: str, event_type: str) -> None:
        """An Event on the canonical ConfigMap: the place an operator looks first."""
        namespace = self._settings.namespace
        try:
            current = read_configmap(self._rest, namespace)
        except FAILURES as exc:
            log.warning("configmap.event-failed", extra={"error": describe_failure(exc)})
            return
        uid = str((current or {}).get("metadata", {}).get("uid") or "")
        # `_event` says itself when recording fails.
        self._event(
            namespace=namespace, uid=uid, reason=reason, message=message, event_type=event_type
        )

    def _event(
        self, *, namespace: str, uid: str, reason: str, message: str, event_type: str = "Warning"
    ) -> None:
        try:
            self._events.record_now(
                key=reason,
                kind="ConfigMap",
                name=names.CONFIGMAP_NAME,
                namespace=namespace,
                uid=uid,
                reason=reason,
                message=message,
                event_type=event_type,
            )
        except FAILURES as exc:
            log.warning(
                "configmap.event-failed", extra={"reason": reason, "error": describe_failure(exc)}
            )
