"""AdmissionReview (`admission.k8s.io/v1`): its shapes, its parsing, its answers.

The answers follow controller-runtime's constructors: `allowed`, `patched`
and `errored` each return a whole review that echoes the request's
`uid`, so the handler never builds response dicts by hand. No I/O here.
"""

from __future__ import annotations

import base64
from typing import Any, Final, Literal, NotRequired, TypedDict

import orjson

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    group: str
    version: str
    resource: str


class Request(TypedDict):
    uid: str
    kind: NotRequired[GroupVersionKind]
    resource: NotRequired[GroupVersionResource]
    subResource: NotRequired[str]
    requestKind: NotRequired[GroupVersionKind]
    requestResource: NotRequired[GroupVersionResource]
    requestSubResource: NotRequired[str]
    name: NotRequired[str]
    namespace: NotRequired[str]
    operation: NotRequired[str]
    userInfo: NotRequired[dict[str, Any]]
    object: NotRequired[Any]
    oldObject: NotRequired[Any]
    dryRun: NotRequired[bool]
    options: NotRequired[dict[str, Any]]


class Status(TypedDict):
    code: int
    message: str
    reason: NotRequired[str]


class Response(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]


class Review(TypedDict):
    apiVersion: str
    kind: str
    response: Response


class ReviewError(ValueError):
    """The body is no AdmissionReview; `kind` is a bounded label for metrics."""

    def __init__(self, message: str, *, kind: str = "malformed") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def parse_review(body: bytes) -> Request:
    """Return the review's `request`, or raise `ReviewError` saying what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise ReviewError("body is not valid UTF-8", kind="encoding") from None
        raise ReviewError(f"body is not JSON: {exc}", kind="json") from None
    if not isinstance(document, dict):
        raise ReviewError("body is not a JSON object", kind="shape")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise ReviewError(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{document.get('apiVersion')!r} and {document.get('kind')!r}",
            kind="version",
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request object", kind="request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("AdmissionReview request has no uid", kind="uid")
    return request  # type: ignore[return-value]


def _review(response: Response) -> Review:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def allowed(uid: str, *, warnings: list[str] | None = None) -> Review:
    response: Response = {"uid": uid, "allowed": True}
    if warnings:
        response["warnings"] = warnings
    return _review(response)


def encode_patch(ops: list[dict[str, Any]]) -> str:
    """A JSONPatch as a review carries it: base64 of its JSON."""
    return base64.b64encode(orjson.dumps(ops)).decode("ascii")


def patched(uid: str, ops: list[dict[str, Any]], *, warnings: list[str] | None = None) -> Review:
    """Allow with a JSONPatch; an empty patch is a plain allow (nothing to send)."""
    if not ops:
        return allowed(uid, warnings=warnings)
    return patched_encoded(uid, encode_patch(ops), warnings=warnings)


def patched_encoded(uid: str, patch: str, *, warnings: list[str] | None = None) -> Review:
    """Allow with a JSONPatch already encoded (`encode_patch`), e.g. one built for
    another pod of the same template."""
    response: Response = {
        "uid": uid,
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": patch,
    }
    if warnings:
        response["warnings"] = warnings
    return _review(response)


def errored(uid: str, message: str, code: int = 400) -> Review:
    """Refuse a review we could read but cannot act on (e.g. a CREATE without an object)."""
    return _review({"uid": uid, "allowed": False, "status": {"code": code, "message": message}})
