"""The pure parts of watching: event classification, backoff, list item kinds."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from webhook.kube.backoff import backoff_delay
from webhook.kube.watch import classify, item_kind, resource_version, watch_events
from webhook.metrics import Metrics


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"type": "ADDED", "object": {}}, "object"),
        ({"type": "MODIFIED", "object": {}}, "object"),
        ({"type": "DELETED", "object": {}}, "object"),
        ({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}}, "bookmark"),
        ({"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}, "gone"),
        ({"type": "ERROR", "object": {"code": 500}}, "error"),
        ({"type": "SURPRISE", "object": {}}, "unknown"),
        ({"type": "ADDED", "object": "not a dict"}, "unknown"),
        ({"type": "ADDED"}, "unknown"),
        ("garbage", "unknown"),
    ],
)
def test_classify_event(event: Any, kind: str) -> None:
    assert classify(event) == kind


def test_backoff_grows_then_caps() -> None:
    top = [backoff_delay(n, base=0.5, cap=30.0, rand=lambda: 1.0) for n in range(10)]
    assert top[:4] == [0.5, 1.0, 2.0, 4.0]
    assert top[-1] == 30.0
    assert backoff_delay(10_000, rand=lambda: 1.0) == 30.0


def test_backoff_jitter_stays_within_half_to_full() -> None:
    assert backoff_delay(3, base=1.0, cap=100.0, rand=lambda: 0.0) == 4.0
    assert backoff_delay(3, base=1.0, cap=100.0, rand=lambda: 0.5) == 6.0


def test_item_kind_strips_list_suffix() -> None:
    assert item_kind("PodList") == "Pod"
    assert item_kind("StellarNodeList") == "StellarNode"
    assert item_kind("Odd") == "Odd"


def test_resource_version_from_object_or_none() -> None:
    assert resource_version({"metadata": {"resourceVersion": "42"}}) == "42"
    assert resource_version({"metadata": {}}) is None
    assert resource_version({"metadata": {"resourceVersion": ""}}) is None
    assert resource_version("x") is None


# --- The list-then-watch protocol, over a scripted list function ---------------
# `list_fn` is watch_events' only contact with the API; a scripted one stands in
# for it here so the protocol is checked without a cluster.


class Body:
    """What `_preload_content=False` returns: `.data` for a list, `.stream()` for a watch."""

    def __init__(self, *, data: Any = None, lines: tuple[Any, ...] = ()) -> None:
        self.data = orjson.dumps(data) if data is not None else b""
        self._chunks = [orjson.dumps(line) + b"\n" for line in lines]
        self.closed = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        # Split one event across two chunks, as the network may.
        joined = b"".join(self._chunks)
        middle = len(joined) // 2
        yield from (joined[:middle], joined[middle:])

    def close(self) -> None:
        self.closed = True


class Script:
    """Answers each call with the next scripted Body or exception; records the calls."""

    def __init__(self, *answers: Body | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Body:
        self.calls.append(kwargs)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def pod_list(*names: str, version: str = "10", kind: str = "PodList") -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"resourceVersion": version},
        "items": [{"metadata": {"name": n, "resourceVersion": "9"}} for n in names],
    }


def change(kind: str, name: str, version: str) -> dict[str, Any]:
    return {
        "type": kind,
        "object": {"kind": "Pod", "metadata": {"name": name, "resourceVersion": version}},
    }


def collect(script: Script, **kwargs: Any) -> list[tuple[str, str]]:
    async def run() -> list[tuple[str, str]]:
        seen = []
        async for event in watch_events(
            script, timeout_seconds=5, resource="pods", label_selector="a=b", **kwargs
        ):
            seen.append(
                (
                    event["type"],
                    event["object"]["metadata"].get("name")
                    or event["object"]["metadata"]["resourceVersion"],
                )
            )
        return seen

    return asyncio.run(run())


def test_watch_lists_marks_watches_and_returns_on_410() -> None:
    script = Script(
        Body(data=pod_list("a", "b")),
        Body(
            lines=(
                change("ADDED", "c", "11"),
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
            )
        ),
        Body(
            lines=(
                change("DELETED", "a", "16"),
                {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}},
                change("ADDED", "never", "17"),
            )
        ),
    )
    assert collect(script) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("LISTED", "10"),
        ("ADDED", "c"),
        ("DELETED", "a"),
    ]
    first_watch, second_watch = script.calls[1], script.calls[2]
    assert script.calls[0]["label_selector"] == "a=b"
    assert "watch" not in script.calls[0]
    assert first_watch["resource_version"] == "10"  # from the list
    assert second_watch["resource_version"] == "15"  # from the bookmark
    assert first_watch["watch"] is True
    assert first_watch["allow_watch_bookmarks"] is True
    assert first_watch["timeout_seconds"] == 5
    assert first_watch["_request_timeout"][1] > 5  # a hung stream times out client-side


def test_watch_list_items_get_their_kind() -> None:
    async def run() -> dict[str, Any]:
        script = Script(Body(data=pod_list("a")), ApiException(status=410))
        events = [e async for e in watch_events(script, timeout_seconds=5, resource="pods")]
        return events[0]["object"]

    assert asyncio.run(run())["kind"] == "Pod"


def test_watch_api_410_returns_so_the_caller_relists() -> None:
    script = Script(Body(data=pod_list()), ApiException(status=410, reason="Gone"))
    assert collect(script) == [("LISTED", "10")]


def test_watch_unknown_event_types_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(
        Body(data=pod_list()),
        Body(
            lines=(
                {"type": "SURPRISE", "object": {}},
                change("MODIFIED", "a", "12"),
                {"type": "ERROR", "object": {"code": 410}},
            )
        ),
    )
    assert collect(script) == [("LISTED", "10"), ("MODIFIED", "a")]
    assert "watch.unknown-event" in caplog.messages


def test_watch_connection_errors_back_off_and_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays: list[float] = []

    async def no_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr("webhook.kube.watch.asyncio.sleep", no_sleep)
    metrics = Metrics()
    script = Script(
        ConnectionResetError("list refused"),
        Body(data=pod_list()),
        urllib3.exceptions.ProtocolError("connection dropped"),
        Body(lines=(change("ADDED", "a", "12"),)),
        Body(lines=({"type": "ERROR", "object": {"code": 410}},)),
    )
    assert collect(script, metrics=metrics) == [("LISTED", "10"), ("ADDED", "a")]
    assert len(delays) == 2
    assert script.calls[4]["resource_version"] == "12"  # resumed, not relisted
    restarts = {
        s.labels["reason"]: s.value
        for m in metrics.watch_restarts_total.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert restarts == {"error": 2.0, "expired": 1.0, "gone": 1.0}


def test_watch_paged_list_follows_continue_tokens() -> None:
    first = pod_list("a")
    first["metadata"]["continue"] = "token-1"
    script = Script(
        Body(data=first), Body(data=pod_list("b", version="10")), ApiException(status=410)
    )
    assert collect(script) == [("ADDED", "a"), ("ADDED", "b"), ("LISTED", "10")]
    assert script.calls[1]["_continue"] == "token-1"
    assert script.calls[0]["limit"] > 0
