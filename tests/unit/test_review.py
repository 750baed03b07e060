"""AdmissionReview parsing and the answer constructors."""

from __future__ import annotations

import base64

import orjson
import pytest

from webhook.admission import review

REQUEST = {
    "uid": "u-1",
    "operation": "CREATE",
    "resource": {"group": "", "version": "v1", "resource": "pods"},
}


def body(document: object) -> bytes:
    return orjson.dumps(document)


def test_parse_review_returns_request() -> None:
    request = review.parse_review(
        body({"apiVersion": review.API_VERSION, "kind": review.KIND, "request": REQUEST})
    )
    assert request["uid"] == "u-1"
    assert request["operation"] == "CREATE"


@pytest.mark.parametrize(
    ("raw", "kind", "words"),
    [
        (b"{not json", "json", "not JSON"),
        (b"\xff\xfe{}", "encoding", "UTF-8"),
        (b"[1, 2]", "shape", "not a JSON object"),
        (b'"text"', "shape", "not a JSON object"),
        (
            body(
                {
                    "apiVersion": "admission.k8s.io/v1beta1",
                    "kind": "AdmissionReview",
                    "request": REQUEST,
                }
            ),
            "version",
            "admission.k8s.io/v1",
        ),
        (
            body({"apiVersion": review.API_VERSION, "kind": "Pod", "request": REQUEST}),
            "version",
            "AdmissionReview",
        ),
        (body({"apiVersion": review.API_VERSION, "kind": review.KIND}), "request", "no request"),
        (
            body({"apiVersion": review.API_VERSION, "kind": review.KIND, "request": [1]}),
            "request",
            "no request",
        ),
        (
            body({"apiVersion": review.API_VERSION, "kind": review.KIND, "request": {}}),
            "uid",
            "no uid",
        ),
        (
            body({"apiVersion": review.API_VERSION, "kind": review.KIND, "request": {"uid": 7}}),
            "uid",
            "no uid",
        ),
        (b"", "json", "not JSON"),
    ],
)
def test_parse_review_rejects_what_is_no_review(raw: bytes, kind: str, words: str) -> None:
    with pytest.raises(review.ReviewError) as caught:
        review.parse_review(raw)
    assert caught.value.kind == kind
    assert words in caught.value.message


def test_allowed_echoes_uid_and_version() -> None:
    answer = review.allowed("u-2", warnings=["careful"])
    assert answer == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-2", "allowed": True, "warnings": ["careful"]},
    }


def test_patched_encodes_jsonpatch_in_base64() -> None:
    ops = [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]
    answer = review.patched("u-3", ops)
    response = answer["response"]
    assert response["patchType"] == "JSONPatch"
    assert orjson.loads(base64.b64decode(response["patch"])) == ops
    assert response["uid"] == "u-3"


def test_patched_without_ops_is_a_plain_allow() -> None:
    assert review.patched("u-4", []) == review.allowed("u-4")


def test_errored_carries_code_and_message() -> None:
    errored = review.errored("u-6", "broken")
    assert errored["response"]["allowed"] is False
    assert errored["response"]["status"] == {"code": 400, "message": "broken"}
    assert errored["kind"] == "AdmissionReview"
