"""Kubernetes Events: the one shape and the one way every part writes them, aggregated
(one Event per object and reason, counted, as client-go's EventCorrelator does)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.kube.api import CALL_TIMEOUT_SECONDS
from webhook.kube.rest import Rest, path

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


def event_body(
    *,
    kind: str,
    name: str,
    namespace: str,
    uid: str,
    reason: str,
    message: str,
    event_type: str,
) -> dict[str, Any]:
    """A core/v1 Event about `kind namespace/name`, from this injector, counted once."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": kind,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": names.FIELD_MANAGER},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def event_name(*, name: str, uid: str, key: str) -> str:
    """A stable name per object and key, so a repeat updates one Event (as client-go's
    EventCorrelator does) instead of writing a new one each time."""
    digest = hashlib.sha256(f"{uid}\0{key}".encode()).hexdigest()[:16]
    return f"{name[:200]}.{digest}"


class EventRecorder:
    """Aggregated Events, the only way the service writes one: one per object and key,
    its `count` raised on each repeat."""

    def __init__(self, *, rest: Rest, timeout: float = CALL_TIMEOUT_SECONDS) -> None:
        self._rest = rest
        self._timeout = timeout
        self._counts: dict[tuple[str, str], int] = {}  # (namespace, event name) -> count
        self._uids: dict[tuple[str, str], str] = {}  # the same key -> its object's uid

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the counts of Events whose object is gone (`keep(uid)` false)."""
        self._uids = {k: u for k, u in self._uids.items() if keep(u)}
        self._counts = {k: c for k, c in self._counts.items() if k in self._uids}

    async def record(self, *, key: str, **fields: Any) -> None:
        """`record_now` on a worker thread."""
        await asyncio.to_thread(self.record_now, key=key, **fields)

    def record_now(self, *, key: str, **fields: Any) -> None:
        """Create the Event, or count a repeat on it; blocking, for callers already on a
        worker thread (the ConfigMap writer). A failed call other than the API's answer
        is raised."""
        body = event_body(**fields)
        namespace, uid = str(fields["namespace"]), str(fields["uid"])
        name = event_name(name=str(fields["name"]), uid=uid, key=key)
        body["metadata"] = {"name": name, "namespace": namespace}
        slot = (namespace, name)
        one = path("v1", "events", namespace=namespace, name=name)
        self._uids[slot] = uid
        count = self._counts.get(slot)
        try:
            if count is None:
                try:
                    self._rest.create(
                        path("v1", "events", namespace=namespace), body, timeout=self._timeout
                    )
                    self._counts[slot] = 1
                    return
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    existing = self._rest.get(one, timeout=self._timeout)
                    count = int(existing.get("count") or 1)
            patch = {
                "count": count + 1,
                "lastTimestamp": body["lastTimestamp"],
                "message": body["message"],
            }
            self._rest.patch(one, patch, timeout=self._timeout)
            self._counts[slot] = count + 1
        except ApiException as exc:
            if exc.status == 404:
                self._counts.pop(slot, None)  # expired: the next repeat creates it again
            log.warning("event.failed", extra={"event": name, "status": exc.status})
