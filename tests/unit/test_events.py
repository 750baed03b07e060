"""Events are written one way: aggregated per object and reason, counted on repeats."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook.kube.events import EventRecorder

FIELDS: dict[str, Any] = {
    "kind": "ConfigMap",
    "name": "stellar-peers",
    "namespace": "ns",
    "uid": "uid-1",
    "reason": "NotOwned",
    "message": "left untouched",
    "event_type": "Warning",
}


class FakeRest:
    """Records the calls; `exists` makes the first create answer 409."""

    def __init__(self, *, exists: int | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.exists = exists

    def create(self, url_path: str, body: Any, **_: Any) -> dict[str, Any]:
        self.calls.append(("create", url_path, body))
        if self.exists is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return {}

    def get(self, url_path: str, **_: Any) -> dict[str, Any]:
        self.calls.append(("get", url_path, None))
        return {"count": self.exists}

    def patch(self, url_path: str, body: Any, **_: Any) -> dict[str, Any]:
        self.calls.append(("patch", url_path, body))
        return {}


def recorder(rest: FakeRest) -> EventRecorder:
    return EventRecorder(rest=rest)  # type: ignore[arg-type]


def test_a_repeat_raises_the_count_of_one_event() -> None:
    rest = FakeRest()
    events = recorder(rest)
    events.record_now(key="NotOwned", **FIELDS)
    asyncio.run(events.record(key="NotOwned", **FIELDS))
    [(verb, _, body), (again, one, patch)] = rest.calls
    assert (verb, again) == ("create", "patch")
    assert one == f"/api/v1/namespaces/ns/events/{body['metadata']['name']}"
    assert patch["count"] == 2


def test_an_event_left_by_an_earlier_replica_is_counted_on() -> None:
    rest = FakeRest(exists=4)
    recorder(rest).record_now(key="NotOwned", **FIELDS)
    assert [c[0] for c in rest.calls] == ["create", "get", "patch"]
    assert rest.calls[-1][2]["count"] == 5
