"""Kubernetes Events: the one shape the publisher and the reload controller write."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from webhook import names

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
