"""Watching one Kubernetes resource as an async stream of raw event dicts.

Owns the list-then-watch protocol: LIST (paged, raw JSON), yield every item,
yield a `LISTED` marker with the list's resourceVersion, then WATCH from there
with bookmarks, re-watching from the last resourceVersion whenever a stream
ends. A 410 Gone returns, so the caller relists. Errors back off and retry;
they never end the stream. Objects stay plain dicts: model objects are slow
and large.

The official client is synchronous, so every blocking read runs in a worker
thread; closing the generator shuts the socket down so no thread lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, Literal, TypeVar

import orjson
import urllib3
from kubernetes.client.exceptions import ApiException

from webhook.kube.api import describe_failure
from webhook.kube.backoff import backoff_delay
from webhook.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

Event = dict[str, Any]  # {"type": "ADDED"|"MODIFIED"|"DELETED"|"LISTED", "object": {...}}
Kind = Literal["object", "bookmark", "gone", "error", "unknown"]

LIST_PAGE_SIZE = 500
CONNECT_TIMEOUT_SECONDS = 10.0
# A stream silent for longer than the server-side timeout plus this is hung.
STALL_SLACK_SECONDS = 5.0
# What a dropped connection or a refused request looks like from the client.
RETRYABLE: tuple[type[BaseException], ...] = (
    ApiException,
    urllib3.exceptions.HTTPError,
    OSError,
    orjson.JSONDecodeError,
)


def classify(event: Any) -> Kind:
    """What a decoded watch line is, so the loop can act on it."""
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        return "unknown"
    kind = event.get("type")
    if kind in ("ADDED", "MODIFIED", "DELETED"):
        return "object"
    if kind == "BOOKMARK":
        return "bookmark"
    if kind == "ERROR":
        return "gone" if event["object"].get("code") == 410 else "error"
    return "unknown"


def item_kind(list_kind: str) -> str:
    """`PodList` → `Pod`: list items arrive without their own kind."""
    return list_kind[: -len("List")] if list_kind.endswith("List") else list_kind


def resource_version(obj: Any) -> str | None:
    if isinstance(obj, dict):
        value = (obj.get("metadata") or {}).get("resourceVersion")
        return value if isinstance(value, str) and value else None
    return None


async def watch_events(
    list_fn: Callable[..., Any],
    *,
    timeout_seconds: int,
    resource: str,
    metrics: Metrics | None = None,
    executor: Executor | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    on_list_failed: Callable[[BaseException, int], None] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Event]:
    """List, yield a `LISTED` marker, then watch until a 410 asks the caller to relist.

    `kwargs` go to `list_fn` (selectors, group/version/plural). Blocking reads
    run on `executor` (default: the loop's), one thread per open stream, so
    give many concurrent watches a pool of their own. `transform` (e.g. a trim
    to the fields the caller reads) is applied to each object as its page
    arrives, so a large list never sits in memory whole. `on_list_failed`
    hears of every failed LIST attempt (the error, the attempt number): the
    list itself keeps retrying, the caller decides what the failure means.
    """
    listed_version = None
    async for event in _list(
        list_fn,
        resource=resource,
        metrics=metrics,
        executor=executor,
        transform=transform,
        on_failed=on_list_failed,
        **kwargs,
    ):
        if event["type"] == "LISTED":
            listed_version = resource_version(event["object"])
        yield event
    version = listed_version
    attempt = 0
    while True:
        reason = "expired"
        try:
            async for event in _stream(
                list_fn,
                since=version,
                timeout_seconds=timeout_seconds,
                executor=executor,
                **kwargs,
            ):
                kind = classify(event)
                if kind == "gone":
                    _restarted(metrics, resource, "gone")
                    return
                if kind == "error":
                    raise ApiException(
                        status=event["object"].get("code"),
                        reason=str(event["object"].get("message")),
                    )
                if kind == "unknown":
                    log.warning(
                        "watch.unknown-event",
                        extra={"resource": resource, "type": str(event.get("type"))[:40]},
                    )
                    continue
                version = resource_version(event["object"]) or version
                attempt = 0
                if kind == "object":
                    if transform is not None:
                        event = {"type": event["type"], "object": transform(event["object"])}
                    yield event
        except ApiException as exc:
            if exc.status == 410:
                _restarted(metrics, resource, "gone")
                return
            reason = "error"
            log.warning(
                "watch.failed",
                extra={
                    "resource": resource,
                    "status": exc.status,
                    "reason": exc.reason,
                    "attempt": attempt,
                },
            )
        except RETRYABLE as exc:
            reason = "error"
            log.warning(
                "watch.failed",
                extra={"resource": resource, "error": describe_failure(exc), "attempt": attempt},
            )
        _restarted(metrics, resource, reason)
        if reason == "error":
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1


async def _list(
    list_fn: Callable[..., Any],
    *,
    resource: str,
    metrics: Metrics | None,
    executor: Executor | None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None,
    on_failed: Callable[[BaseException, int], None] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Event]:
    """Every item as an `ADDED` event, then `LISTED`; a failed page restarts the whole list."""
    attempt = 0
    while True:
        try:
            items: list[dict[str, Any]] = []
            version = ""
            async for page in _pages(list_fn, executor=executor, **kwargs):
                kind = item_kind(str(page.get("kind", "")))
                for item in page.get("items") or ():
                    item.setdefault("kind", kind)
                    items.append(transform(item) if transform is not None else item)
                version = resource_version(page) or ""
            break
        except RETRYABLE as exc:
            log.warning(
                "watch.list-failed",
                extra={"resource": resource, "error": describe_failure(exc), "attempt": attempt},
            )
            _restarted(metrics, resource, "error")
            if on_failed is not None:
                on_failed(exc, attempt)
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1
    for item in items:
        yield {"type": "ADDED", "object": item}
    yield {"type": "LISTED", "object": {"metadata": {"resourceVersion": version}}}


async def _pages(
    list_fn: Callable[..., Any], *, executor: Executor | None, **kwargs: Any
) -> AsyncIterator[dict[str, Any]]:
    token = None
    while True:
        extra: dict[str, str] = {"_continue": token} if token else {}
        response = await _in_thread(
            executor,
            list_fn,
            **kwargs,
            **extra,
            limit=LIST_PAGE_SIZE,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT_SECONDS, 60.0),
        )
        page: dict[str, Any] = orjson.loads(response.data)
        yield page
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


async def _stream(
    list_fn: Callable[..., Any],
    *,
    since: str | None,
    timeout_seconds: int,
    executor: Executor | None,
    **kwargs: Any,
) -> AsyncIterator[Any]:
    """One watch request: decoded lines until the server ends it or the socket fails."""
    if since:
        kwargs["resource_version"] = since
    response = await _in_thread(
        executor,
        list_fn,
        **kwargs,
        watch=True,
        allow_watch_bookmarks=True,
        timeout_seconds=timeout_seconds,
        _preload_content=False,
        _request_timeout=(CONNECT_TIMEOUT_SECONDS, timeout_seconds + STALL_SLACK_SECONDS),
    )
    lines = _lines(response)
    try:
        while True:
            line = await _in_thread(executor, next, lines, None)
            if line is None:
                return
            yield orjson.loads(line)
    finally:
        _shutdown(response)


async def _in_thread(
    executor: Executor | None, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """`asyncio.to_thread` on a chosen executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


def _lines(response: Any) -> Iterator[bytes]:
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


def _shutdown(response: Any) -> None:
    """Wake a worker thread blocked reading this response, then drop the connection.

    Never blocks the caller: closing waits for the reader to let go of the
    buffer, so it happens on a short-lived daemon thread once the socket is
    shut down (which is what makes the reader let go).
    """
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        # Already closed by the server or by the reader: nothing to wake then.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    threading.Thread(target=_close, args=(response,), name="watch-close", daemon=True).start()


def _close(response: Any) -> None:
    try:
        response.close()
    except (OSError, urllib3.exceptions.HTTPError) as exc:
        log.debug("watch.close-failed", extra={"error": repr(exc)})


def _restarted(metrics: Metrics | None, resource: str, reason: str) -> None:
    if metrics is not None:
        metrics.watch_restarts_total.labels(resource=resource, reason=reason).inc()
