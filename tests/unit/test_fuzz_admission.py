"""Fuzzing `POST /mutate` and `mutation.patch_for`: never a 5xx, an exception or a hang.

Every answer is either a valid AdmissionReview (echoing the uid when the body
carried a readable one) or a 4xx JSON error. Corruptions start from a valid
validator review and break one field at a time, so the fuzzer reaches deep
into the pod rather than being stopped at the envelope.

The default run keeps to a few thousand examples in all; `scripts/soak.sh`
sets `STELLAR_FUZZ_EXAMPLES` for the long run.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jsonpatch
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from webhook import names
from webhook.admission.app import FAIL_OPEN_WARNING, build_app
from webhook.core.injection import mutation
from webhook.log import JsonFormatter
from webhook.metrics import Metrics
from webhook.settings import Settings

SETTINGS = Settings(max_body_bytes=64 * 1024)
UID = "7d1c1f2e-0000-4000-8000-00000000f022"
SOAK_EXAMPLES = int(os.environ.get("STELLAR_FUZZ_EXAMPLES", "0"))


def fuzz(default: int) -> Any:
    """Hypothesis settings: `default` examples, or the soak run's count."""
    return settings(
        max_examples=SOAK_EXAMPLES or default,
        # A request that takes this long is hung, not slow.
        deadline=timedelta(seconds=5),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=not SOAK_EXAMPLES,
        database=None,
    )


VALIDATOR: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "validator-0",
        "namespace": "stellar",
        "labels": {"app": "stellar-validator", names.NODE_TYPE_LABEL: "Validator"},
        "annotations": {names.PEER_PORT_ANNOTATION: "11625", "team": "core"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "v"}],
    },
    "spec": {
        "initContainers": [{"name": "init", "image": "busybox:1.36"}],
        "containers": [
            {
                "name": "stellar-core",
                "image": "docker.io/stellar/stellar-core:22.1.0@sha256:abcd",
                "ports": [
                    {"name": "peer", "containerPort": 11625},
                    {"name": "http", "containerPort": 11626, "protocol": "TCP"},
                ],
                "env": [{"name": "NETWORK", "value": "testnet"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
                "resources": {"limits": {"cpu": "1"}},
            },
            {"name": "sidecar", "image": "prom/statsd-exporter:v0.26.0"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}


def review(obj: Any = VALIDATOR, *, uid: Any = UID, **fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "stellar",
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:statefulset-controller"},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    request.update(fields)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


# --- Strategies --------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
huge_strings = st.builds(
    lambda char, size: char * size,
    st.sampled_from(["x", "é", "\u2028", "\x00", "/", "~", '"', "\\", "😀"]),
    st.integers(min_value=1_000, max_value=90_000),
)


def nested(depth: int, leaf: Any, *, as_list: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"x": value}
    return value


# Kept within what this file's own tools (deepcopy, json, jsonpatch) handle; deeper
# values go through the dedicated tests below, which build their bodies as text.
deep_values = st.builds(
    nested, st.integers(min_value=2, max_value=200), scalars, as_list=st.booleans()
)
wrong_values = json_values | huge_strings | deep_values


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes)."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from paths(value, (*prefix, index))


def with_value(doc: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> Any:
    """A deep copy of `doc` with the value at `path` replaced (or removed)."""
    result = copy.deepcopy(doc)
    if not path:
        return value
    parent = result
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return result


REVIEW = review()
REVIEW_PATHS = [p for p in paths(REVIEW) if p]
POD_PATHS = [p for p in paths(VALIDATOR) if p]


@st.composite
def corrupted_reviews(draw: st.DrawFn) -> dict[str, Any]:
    """The valid review with one field (anywhere, mostly in the pod) wrong or gone."""
    pod_path = draw(st.booleans())
    path = (
        ("request", "object", *draw(st.sampled_from(POD_PATHS)))
        if pod_path
        else draw(st.sampled_from(REVIEW_PATHS))
    )
    delete = draw(st.integers(min_value=0, max_value=7)) == 0
    corrupted: dict[str, Any] = with_value(REVIEW, path, draw(wrong_values), delete=delete)
    return corrupted


@st.composite
def corrupted_pods(draw: st.DrawFn) -> Any:
    path = draw(st.sampled_from([(), *POD_PATHS]))
    delete = bool(path) and draw(st.integers(min_value=0, max_value=7)) == 0
    return with_value(VALIDATOR, path, draw(wrong_values), delete=delete)


def dumps(document: Any) -> bytes:
    """JSON bytes, allowing what orjson refuses to write (ints past 64 bits)."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document).encode()


# --- The oracle --------------------------------------------------------------


def readable_uid(body: bytes) -> str | None:
    """The uid the answer must echo, or None when the body is no readable review."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("apiVersion") != "admission.k8s.io/v1":
        return None
    if document.get("kind") != "AdmissionReview":
        return None
    request = document.get("request")
    if not isinstance(request, dict):
        return None
    uid = request.get("uid")
    return uid if isinstance(uid, str) and uid else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def request_object(body: bytes) -> Any:
    try:
        return json.loads(body)["request"].get("object")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def check_answer(answer: Any, body: bytes) -> dict[str, Any] | None:
    """Assert the contract for one answer; return the review's response when there is one."""
    status = answer.status_code
    assert status < 500, f"{status} for {body[:200]!r}"
    uid = readable_uid(body)
    if status != 200:
        assert 400 <= status < 500
        assert uid is None or status == 413, f"readable review (uid {uid!r}) refused with {status}"
        error = answer.json()
        assert isinstance(error, dict)
        assert isinstance(error.get("error"), str)
        assert error["error"]
        return None
    assert uid is not None, f"unreadable body answered 200: {body[:200]!r}"
    document = answer.json()
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    response = document["response"]
    assert response["uid"] == uid
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert 400 <= response["status"]["code"] < 500
        assert isinstance(response["status"]["message"], str)
        assert "patch" not in response
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        ops = orjson.loads(base64.b64decode(response["patch"], validate=True))
        assert isinstance(ops, list)
        assert ops
        patched = jsonpatch.apply_patch(request_object(body), ops)
        assert isinstance(patched, dict)
    assert isinstance(response, dict)
    return dict(response)


@pytest.fixture(scope="module")
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="module")
def client(metrics: Metrics) -> Iterator[TestClient]:
    # Thousands of refusals and fail-opens would each log a line.
    logging.disable(logging.CRITICAL)
    app = build_app(settings=SETTINGS, metrics=metrics)
    try:
        with TestClient(app, raise_server_exceptions=True) as test_client:
            yield test_client
    finally:
        logging.disable(logging.NOTSET)


def post(client: TestClient, body: bytes) -> Any:
    return client.post("/mutate", content=body, headers={"content-type": "application/json"})


# --- Through the app ---------------------------------------------------------


def test_fuzz_baseline_review_is_patched(client: TestClient) -> None:
    body = dumps(REVIEW)
    response = check_answer(post(client, body), body)
    assert response is not None
    assert "patch" in response
    assert "warnings" not in response


@fuzz(600)
@given(document=json_values)
def test_fuzz_mutate_random_json(client: TestClient, document: Any) -> None:
    body = dumps(document)
    check_answer(post(client, body), body)


@fuzz(1200)
@given(document=corrupted_reviews())
def test_fuzz_mutate_one_field_corrupted(client: TestClient, document: dict[str, Any]) -> None:
    body = dumps(document)
    check_answer(post(client, body), body)


@fuzz(300)
@given(data=st.data())
def test_fuzz_mutate_truncated_body_is_4xx(client: TestClient, data: st.DataObject) -> None:
    body = dumps(data.draw(corrupted_reviews()))
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    answer = post(client, body[:cut])
    assert 400 <= answer.status_code < 500
    assert answer.json()["error"]


INVALID_UTF8 = [
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xc0\xaf",
]


@fuzz(300)
@given(data=st.data())
def test_fuzz_mutate_invalid_utf8_is_4xx(client: TestClient, data: st.DataObject) -> None:
    body = dumps(data.draw(corrupted_reviews()))
    at = data.draw(st.integers(min_value=0, max_value=len(body)))
    bad = data.draw(st.sampled_from(INVALID_UTF8))
    answer = post(client, body[:at] + bad + body[at:])
    assert 400 <= answer.status_code < 500
    assert answer.json()["error"]


@fuzz(150)
@given(depth=st.integers(min_value=1_030, max_value=20_000), as_list=st.booleans())
@example(depth=100_000, as_list=True)
def test_fuzz_mutate_nesting_past_the_parser_limit_is_4xx(
    client: TestClient, depth: int, as_list: bool
) -> None:
    pod = with_value(VALIDATOR, ("metadata", "labels"), None)
    body = dumps(review(pod)).replace(b'"labels":null', b'"labels":' + _deep_text(depth, as_list))
    answer = post(client, body)
    assert 400 <= answer.status_code < 500
    assert answer.json()["error"]


def _deep_text(depth: int, as_list: bool) -> bytes:
    if as_list:
        return b"[" * depth + b"]" * depth
    return b'{"x":' * depth + b"1" + b"}" * depth


@fuzz(200)
@given(uid=st.text(min_size=1, max_size=300))
def test_fuzz_mutate_echoes_any_uid(client: TestClient, uid: str) -> None:
    body = dumps(review(uid=uid))
    response = check_answer(post(client, body), body)
    assert response is not None
    assert response["uid"] == uid


def test_fuzz_mutate_answered_every_kind_of_outcome(client: TestClient, metrics: Metrics) -> None:
    """The fuzz above reached refusals, patches and skips, not only the envelope checks."""
    text = metrics.render().decode()
    for result in ("invalid", "patched", "skipped", "allowed"):
        line = f'stellar_admission_requests_total{{result="{result}"}}'
        assert line in text, f"no {result} answers during the fuzz run"


@fuzz(400)
@given(document=corrupted_reviews())
@example(document=review(resource="pods"))
def test_fuzz_mutate_never_fails_open(client: TestClient, document: dict[str, Any]) -> None:
    """A corrupted review is judged, not crashed on: the fail-open path is for bugs."""
    body = dumps(document)
    response = check_answer(post(client, body), body)
    if response is not None:
        assert FAIL_OPEN_WARNING not in response.get("warnings", [])


@pytest.mark.parametrize("resource", ["pods", ["pods"], 1, True])
def test_mutate_resource_of_wrong_type_is_not_an_injection_failure(
    client: TestClient, resource: Any
) -> None:
    body = dumps(review(resource=resource))
    response = check_answer(post(client, body), body)
    assert response is not None
    assert FAIL_OPEN_WARNING not in response.get("warnings", [])


# --- patch_for directly ------------------------------------------------------


def check_patch_for(pod: Any) -> None:
    before = copy.deepcopy(pod)
    decision, ops = mutation.patch_for(pod, settings=SETTINGS)
    assert pod == before, "patch_for changed its input"
    if not ops:
        return
    assert decision.inject
    patched = jsonpatch.apply_patch(pod, ops)
    assert isinstance(patched, dict)
    # Re-invocation (reinvocationPolicy IfNeeded) must not inject twice.
    again, more = mutation.patch_for(patched, settings=SETTINGS)
    assert not again.inject
    assert more == []


@fuzz(1200)
@given(pod=corrupted_pods())
def test_fuzz_patch_for_corrupted_pod(pod: Any) -> None:
    check_patch_for(pod)


pod_like = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["Pod", "Deployment"]) | json_values,
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "labels": st.dictionaries(
                    st.sampled_from([names.NODE_TYPE_LABEL, names.INJECTED_LABEL, "app"]),
                    st.sampled_from(["validator", "VALIDATOR", "true"]) | json_values,
                )
                | json_values,
                "annotations": st.dictionaries(
                    st.sampled_from(
                        [
                            names.INJECT_ANNOTATION,
                            names.CONTAINER_ANNOTATION,
                            names.PEER_PORT_ANNOTATION,
                            names.STATUS_ANNOTATION,
                        ]
                    ),
                    st.sampled_from(["false", "stellar-core", "sidecar", "0", "65536", "{}"])
                    | st.builds(lambda v: orjson.dumps(v).decode(), json_values)
                    | json_values,
                )
                | json_values,
            },
        )
        | json_values,
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "containers": st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["stellar-core", "sidecar", ""]) | json_values},
                        optional={
                            "image": st.sampled_from(
                                ["stellar/stellar-core", "stellar-core:1", "nginx", ""]
                            )
                            | json_values,
                            "ports": st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "name": st.sampled_from(["peer", "http"]) | json_values,
                                        "containerPort": json_values,
                                    }
                                )
                            )
                            | json_values,
                            "env": st.lists(
                                st.fixed_dictionaries(
                                    {"name": st.sampled_from(["STELLAR_PEERS", "X"])},
                                    optional={"value": json_values},
                                )
                            )
                            | json_values,
                            "volumeMounts": st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "name": st.sampled_from(["stellar-peers", "d"]),
                                        "mountPath": st.sampled_from(
                                            ["/etc/stellar/peers/", "/etc/stellar/peers", "/d"]
                                        ),
                                    }
                                )
                            )
                            | json_values,
                            "lifecycle": st.fixed_dictionaries(
                                {}, optional={"postStart": json_values}
                            )
                            | json_values,
                        },
                    ),
                    max_size=3,
                )
                | json_values,
                "volumes": st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["stellar-peers", "data"])},
                        optional={"configMap": json_values},
                    ),
                    max_size=2,
                )
                | json_values,
            },
        )
        | json_values,
    },
)


@fuzz(1200)
@given(pod=pod_like)
def test_fuzz_patch_for_pod_shaped_values(pod: Any) -> None:
    check_patch_for(pod)


@fuzz(100)
@given(value=json_values)
def test_fuzz_patch_for_any_json(value: Any) -> None:
    check_patch_for(value)


DEEP = "deep"


def ops_outside(ops: list[dict[str, Any]], prefix: str) -> bool:
    return all(not op["path"].startswith(prefix) for op in ops)


@pytest.mark.parametrize("depth", [300, 400, 1000, 5000])
def test_patch_for_deeply_nested_field_does_not_raise(depth: int) -> None:
    """Past orjson's 254 levels copies and diffs fall back to Python: no recursion limit."""
    pod = with_value(VALIDATOR, ("metadata", "annotations", DEEP), nested(depth, 1, as_list=False))
    decision, ops = mutation.patch_for(pod, settings=SETTINGS)
    assert decision.inject
    assert ops_outside(ops, f"/metadata/annotations/{DEEP}")
    # The deep value is untouched, so the ops apply the same to the pod without it.
    shallow = with_value(VALIDATOR, ("metadata", "annotations", DEEP), "placeholder")
    patched = jsonpatch.apply_patch(shallow, ops)
    assert patched["metadata"]["labels"][names.INJECTED_LABEL] == "true"
    assert patched["metadata"]["annotations"][DEEP] == "placeholder"


@pytest.mark.parametrize("depth", [300, 1000])
def test_mutate_deeply_nested_field_is_patched_not_failed_open(
    client: TestClient, depth: int
) -> None:
    shallow = with_value(VALIDATOR, ("metadata", "annotations", DEEP), "placeholder")
    body = dumps(review(shallow)).replace(b'"placeholder"', _deep_text(depth, as_list=False))
    answer = post(client, body)
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["uid"] == UID
    assert "warnings" not in response
    ops = orjson.loads(base64.b64decode(response["patch"]))
    assert ops_outside(ops, f"/metadata/annotations/{DEEP}")
    assert jsonpatch.apply_patch(shallow, ops)["metadata"]["labels"][names.INJECTED_LABEL]


@pytest.mark.parametrize("field", ["name", "generateName"])
def test_mutate_deeply_nested_pod_name_is_not_a_5xx(metrics: Metrics, field: str) -> None:
    """The log line's pod name once went through str(): a deep list made repr() overflow."""
    pod = with_value(VALIDATOR, ("metadata",), {field: "placeholder"})
    body = dumps(review(pod)).replace(b'"placeholder"', _deep_text(1015, as_list=True))
    app = build_app(settings=SETTINGS, metrics=metrics)
    with TestClient(app, raise_server_exceptions=False) as plain:
        answer = post(plain, body)
    assert answer.status_code == 200
    assert answer.json()["response"]["uid"] == UID


def test_mutate_odd_namespace_still_writes_one_json_log_line(metrics: Metrics) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("webhook.admission.app")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    # The module's `client` fixture silences logging while it lives; this test reads it.
    silenced = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    try:
        body = dumps(review(namespace="placeholder")).replace(
            b'"placeholder"', _deep_text(600, as_list=True)
        )
        with TestClient(build_app(settings=SETTINGS, metrics=metrics)) as plain:
            assert post(plain, body).status_code == 200
    finally:
        logging.disable(silenced)
        logger.removeHandler(handler)
        logger.setLevel(previous)
    events = [orjson.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["admission.answered"]
