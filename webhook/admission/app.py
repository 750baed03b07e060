"""The admission app: the HTTP edge between the API server and `injection`.

Owns the routes (`/mutate`, `/healthz`, `/readyz`, `/metrics`), the body size
cap, and the rule that this edge never answers 5xx: a readable review always
gets HTTP 200 with a review echoing its `uid`; a body that is no review gets a
4xx that says why; a bug in injection is logged and the pod allowed untouched,
because failing open keeps validators running.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.admission import review
from webhook.admission.answers import Answers
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

FAIL_OPEN_WARNING: Final = "stellar-peer-injector: injection failed; pod admitted without peers"
# At INFO one `admission.answered` line per this many seconds at most (the first
# admission after it), counting by decision what was answered since the last one;
# every admission is logged at DEBUG. A log line per request cost more CPU than
# the injection itself, and the metrics count every answer.
SUMMARY_SECONDS: Final = 60.0


JSON: Final = b"application/json"


class _Disconnected(Exception):
    """The client went away before its body was read."""


class _ASGI:
    """Wraps a bound method so Starlette routes to it as an ASGI app: a method would get
    a Request and must return a Response, objects the hot path does without."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def is_pod_create(request: review.Request) -> bool:
    """Only a CREATE of core `pods` (not a subresource such as pods/ephemeralcontainers)."""
    resource = request.get("resource")
    return (
        request.get("operation") == "CREATE"
        and isinstance(resource, dict)
        and resource.get("group") == ""
        and resource.get("resource") == "pods"
        and not request.get("subResource")
    )


def answer(request: review.Request, *, answers: Answers) -> tuple[review.Review, str, str]:
    """Decide one parsed review: (the review to send, result label, reason)."""
    uid = request["uid"]
    if not is_pod_create(request):
        return review.allowed(uid), "allowed", "not-pod-create"
    pod = request.get("object")
    if not isinstance(pod, dict):
        message = "a CREATE of pods must carry the pod as an object"
        return review.errored(uid, message, 400), "invalid", "no-object"
    decision, patch = answers.answer(pod)
    if not decision.inject:
        return review.allowed(uid), "skipped", decision.reason
    if not patch:
        return review.allowed(uid), "skipped", "nothing-to-add"
    return review.patched_encoded(uid, patch), "patched", decision.reason


def _text(value: object) -> str:
    """A request field fit for a log line: only strings, and not too long.

    str() or JSON of an arbitrary (possibly hostile, deeply nested) value can
    raise or flood the log, and a lost log line hides what was admitted.
    """
    return value[:253] if isinstance(value, str) else ""


def _pod_name(request: review.Request) -> str:
    pod = request.get("object")
    if not isinstance(pod, dict):
        return ""
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        return ""
    return _text(metadata.get("name")) or _text(metadata.get("generateName"))


class Admission:
    """The route handlers, holding what they share so each request does no setup."""

    def __init__(
        self,
        *,
        settings: Settings,
        metrics: Metrics,
        readiness: Callable[[], bool] | None,
        readiness_detail: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.readiness = readiness
        self.readiness_detail = readiness_detail
        self.limit = settings.max_body_bytes
        # The answer built for a pod template, reused for its other pods.
        self.answers = Answers(settings=settings)
        # Label children bound once: `.labels()` on every request is measurable.
        self._results = {
            result: metrics.admission_requests_total.labels(result=result)
            for result in ("patched", "allowed", "skipped", "invalid", "error")
        }
        self._skipped: dict[str, Any] = {}
        self._answered: Counter[str] = Counter()
        self._summarized = -math.inf  # when the last INFO line was written

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The body, or None as soon as it is known to exceed the cap."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _refuse(self, *, status: int, kind: str, message: str, started: float) -> tuple[int, bytes]:
        self._results["invalid"].inc()
        self.metrics.admission_errors_total.labels(kind=kind).inc()
        elapsed = time.perf_counter() - started
        self.metrics.admission_duration_seconds.observe(elapsed)
        log.warning(
            "admission.refused",
            extra={"kind": kind, "reason": message, "duration_ms": round(elapsed * 1000, 3)},
        )
        return status, orjson.dumps({"error": message})

    async def mutate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /mutate` as a bare ASGI app: no Request or Response objects per admission."""
        started = time.perf_counter()
        try:
            body = await self._body(scope, receive)
        except _Disconnected:
            return  # nobody is left to answer
        status, content = self.respond(body, started=started)
        headers = [(b"content-length", b"%d" % len(content)), (b"content-type", JSON)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def respond(self, body: bytes | None, *, started: float) -> tuple[int, bytes]:
        """The status and JSON body for one request body (None: over the cap)."""
        if body is None:
            message = f"request body exceeds {self.limit} bytes"
            return self._refuse(status=413, kind="too-large", message=message, started=started)
        try:
            parsed = review.parse_review(body)
        except review.ReviewError as exc:
            return self._refuse(status=400, kind=exc.kind, message=exc.message, started=started)

        try:
            result, outcome, reason = answer(parsed, answers=self.answers)
        except Exception:
            # Fail open: a validator admitted without peers is audited by the
            # watcher later; a validator refused does not run at all.
            log.exception(
                "admission.failed",
                extra={"uid": parsed["uid"], "namespace": _text(parsed.get("namespace"))},
            )
            self.metrics.admission_errors_total.labels(kind="injection").inc()
            result = review.allowed(parsed["uid"], warnings=[FAIL_OPEN_WARNING])
            outcome, reason = "error", "injection-failed"

        metrics = self.metrics
        self._results[outcome].inc()
        if outcome == "patched":
            metrics.admission_injected_total.inc()
        elif outcome == "skipped":
            skipped = self._skipped.get(reason)
            if skipped is None:
                skipped = self._skipped[reason] = metrics.admission_skipped_total.labels(
                    reason=reason
                )
            skipped.inc()
        elif outcome == "invalid":
            metrics.admission_errors_total.labels(kind=reason).inc()
        elapsed = time.perf_counter() - started
        metrics.admission_duration_seconds.observe(elapsed)
        self._answered[outcome] += 1
        summary = started - self._summarized >= SUMMARY_SECONDS
        if summary or log.isEnabledFor(logging.DEBUG):
            fields: dict[str, Any] = {
                "uid": parsed["uid"],
                "namespace": _text(parsed.get("namespace")),
                "pod": _pod_name(parsed),
                "operation": _text(parsed.get("operation")),
                "dry_run": bool(parsed.get("dryRun", False)),
                "decision": outcome,
                "reason": reason,
                "duration_ms": round(elapsed * 1000, 3),
            }
            if summary:
                fields["answered_since_last"] = dict(self._answered)
                self._answered.clear()
                self._summarized = started
            log.log(logging.INFO if summary else logging.DEBUG, "admission.answered", extra=fields)
        return 200, orjson.dumps(result)

    async def healthz(self, request: Request) -> Response:
        return ORJSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        body: dict[str, Any] = {}
        if self.readiness_detail is not None and (unavailable := self.readiness_detail()):
            body["unavailable"] = unavailable  # sources that cannot list, and what to do
        if self.readiness is None or self.readiness():
            return ORJSONResponse({"status": "ready", **body})
        return ORJSONResponse({"status": "not ready", **body}, status_code=503)

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def build_app(
    *,
    settings: Settings,
    metrics: Metrics,
    readiness: Callable[[], bool] | None = None,
    readiness_detail: Callable[[], Mapping[str, str]] | None = None,
    mutate: bool = True,
) -> Starlette:
    """The ASGI app; `mutate=False` gives the health/metrics-only app of the plain port."""
    handlers = Admission(
        settings=settings,
        metrics=metrics,
        readiness=readiness,
        readiness_detail=readiness_detail,
    )
    routes = [
        Route("/healthz", handlers.healthz, methods=["GET"]),
        Route("/readyz", handlers.readyz, methods=["GET"]),
        Route("/metrics", handlers.metrics_text, methods=["GET"]),
    ]
    if mutate:
        routes.insert(0, Route("/mutate", _ASGI(handlers.mutate), methods=["POST"]))
    return Starlette(routes=routes)
