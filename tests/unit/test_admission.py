"""The admission app at its HTTP edge: answers, refusals, fail-open, health and metrics."""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Iterator
from typing import Any

import jsonpatch
import orjson
import pytest
from starlette.testclient import TestClient

from webhook import names
from webhook.admission.app import FAIL_OPEN_WARNING, build_app
from webhook.core.injection import mutation
from webhook.metrics import Metrics
from webhook.settings import Settings

SETTINGS = Settings(max_body_bytes=64 * 1024)

VALIDATOR: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "generateName": "validator-",
        "namespace": "stellar",
        "labels": {"app": "stellar-validator"},
    },
    "spec": {
        "containers": [
            {
                "name": "stellar-core",
                "image": "stellar/stellar-core:22.1.0-2385.b2a8ecb62.focal",
                "ports": [
                    {"name": "peer", "containerPort": 11625},
                    {"name": "http", "containerPort": 11626},
                ],
            }
        ],
    },
}
NGINX: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
}


def review_body(obj: Any = VALIDATOR, **request: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "uid": "0b5a3c1e-1111-2222-3333-444455556666",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "stellar",
        "operation": "CREATE",
        "object": obj,
    }
    fields.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": fields}


class Ready:
    def __init__(self) -> None:
        self.ready = False

    def __call__(self) -> bool:
        return self.ready


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def ready() -> Ready:
    return Ready()


@pytest.fixture
def client(metrics: Metrics, ready: Ready) -> Iterator[TestClient]:
    app = build_app(settings=SETTINGS, metrics=metrics, readiness=ready)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def post(client: TestClient, document: Any) -> Any:
    return client.post(
        "/mutate", content=orjson.dumps(document), headers={"content-type": "application/json"}
    )


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = orjson.loads(base64.b64decode(response["patch"]))
    return ops


def test_mutate_validator_patch_applies_and_echoes_uid(client: TestClient) -> None:
    answer = post(client, review_body())
    assert answer.status_code == 200
    body = answer.json()
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == "0b5a3c1e-1111-2222-3333-444455556666"
    assert body["response"]["allowed"] is True
    pod = jsonpatch.apply_patch(copy.deepcopy(VALIDATOR), decoded_patch(body["response"]))
    container = pod["spec"]["containers"][0]
    assert {
        "name": names.VOLUME_NAME,
        "mountPath": names.MOUNT_PATH,
        "readOnly": True,
    } in container["volumeMounts"]
    assert {e["name"] for e in container["env"]} >= {
        names.ENV_PEERS_FILE,
        names.ENV_PEERS,
        names.ENV_PEER_COUNT,
        names.ENV_POD_IP,
    }
    assert "exec" in container["lifecycle"]["postStart"]
    assert pod["metadata"]["labels"][names.INJECTED_LABEL] == "true"
    assert names.STATUS_ANNOTATION in pod["metadata"]["annotations"]
    assert any(v["name"] == names.VOLUME_NAME for v in pod["spec"]["volumes"])


def test_mutate_dry_run_gets_the_same_patch(client: TestClient) -> None:
    live = post(client, review_body()).json()["response"]
    dry = post(client, review_body(dryRun=True)).json()["response"]
    assert decoded_patch(dry) == decoded_patch(live)


@pytest.mark.parametrize(
    "request_fields",
    [
        {"operation": "UPDATE"},
        {"operation": "DELETE", "object": None},
        {"resource": {"group": "", "version": "v1", "resource": "configmaps"}},
        {"resource": {"group": "apps", "version": "v1", "resource": "pods"}},
        {"subResource": "ephemeralcontainers"},
        {"resource": "pods"},
        {"resource": ["pods"]},
    ],
)
def test_mutate_anything_but_pod_create_allowed_untouched(
    client: TestClient, request_fields: dict[str, Any]
) -> None:
    response = post(client, review_body(**request_fields)).json()["response"]
    assert response["allowed"] is True
    assert "patch" not in response
    assert "warnings" not in response  # judged, not a fail-open


def test_mutate_non_validator_pod_allowed_untouched(client: TestClient, metrics: Metrics) -> None:
    response = post(client, review_body(NGINX)).json()["response"]
    assert response == {"uid": "0b5a3c1e-1111-2222-3333-444455556666", "allowed": True}
    assert b'stellar_admission_skipped_total{reason="not-a-validator"} 1.0' in metrics.render()


@pytest.mark.parametrize("obj", [None, "a pod", [1, 2]])
def test_mutate_create_without_object_is_errored_review(client: TestClient, obj: Any) -> None:
    answer = post(client, review_body(obj))
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "object" in response["status"]["message"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xc3\x28", "UTF-8"),
        (b"[]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"apiVersion": "v1", "kind": "Pod"}', "expected apiVersion"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "no request"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
            "no uid",
        ),
    ],
)
def test_mutate_malformed_body_is_a_clear_4xx(
    client: TestClient, metrics: Metrics, content: bytes, words: str
) -> None:
    answer = client.post("/mutate", content=content)
    assert 400 <= answer.status_code < 500
    assert words in answer.json()["error"]
    assert b'stellar_admission_requests_total{result="invalid"} 1.0' in metrics.render()


def test_mutate_body_over_cap_is_413(client: TestClient, metrics: Metrics) -> None:
    padded = review_body(padding="x" * (SETTINGS.max_body_bytes + 1))
    answer = post(client, padded)
    assert answer.status_code == 413
    assert "exceeds" in answer.json()["error"]
    assert b'stellar_admission_errors_total{kind="too-large"} 1.0' in metrics.render()


def test_mutate_streamed_body_over_cap_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(SETTINGS.max_body_bytes // 1024 + 2):
            yield b"x" * 1024

    answer = client.post("/mutate", content=chunks())
    assert answer.status_code == 413


def test_mutate_injection_bug_fails_open_with_warning(
    client: TestClient, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(pod: Any, *, settings: Settings) -> Any:
        raise KeyError("spec")

    monkeypatch.setattr(mutation, "patch_for", broken)
    answer = post(client, review_body())
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["allowed"] is True
    assert response["warnings"] == [FAIL_OPEN_WARNING]
    assert "patch" not in response
    assert b'stellar_admission_errors_total{kind="injection"} 1.0' in metrics.render()


def test_mutate_get_is_not_allowed(client: TestClient) -> None:
    assert client.get("/mutate").status_code == 405


def test_readyz_flips_with_readiness(client: TestClient, ready: Ready) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    ready.ready = True
    assert client.get("/readyz").status_code == 200


def test_metrics_text_counts_admissions(client: TestClient) -> None:
    post(client, review_body())
    post(client, review_body(NGINX))
    text = client.get("/metrics").text
    assert 'stellar_admission_requests_total{result="patched"} 1.0' in text
    assert 'stellar_admission_requests_total{result="skipped"} 1.0' in text
    assert "stellar_admission_injected_total 1.0" in text
    assert "stellar_admission_duration_seconds_count 2.0" in text


def test_health_app_has_no_mutate(metrics: Metrics) -> None:
    app = build_app(settings=SETTINGS, metrics=metrics, mutate=False)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert client.post("/mutate", content=b"{}").status_code == 404


def test_readyz_names_unavailable_sources(metrics: Metrics) -> None:
    unavailable = {"services": "HTTP 403: forbidden; grant list and watch on services"}
    app = build_app(
        settings=SETTINGS,
        metrics=metrics,
        readiness=lambda: True,
        readiness_detail=lambda: unavailable,
        mutate=False,
    )
    with TestClient(app) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready", "unavailable": unavailable}


@pytest.mark.parametrize(("level", "lines"), [(logging.INFO, 1), (logging.DEBUG, 4)])
def test_mutate_logs_one_info_line_a_minute_and_every_answer_at_debug(
    client: TestClient, caplog: pytest.LogCaptureFixture, level: int, lines: int
) -> None:
    """A line per admission cost more CPU than the injection; the metrics count them all."""
    with caplog.at_level(level, logger="webhook.admission.app"):
        for document in (review_body(), review_body(NGINX), review_body(), review_body()):
            assert post(client, document).status_code == 200
    answered = [r for r in caplog.records if r.getMessage() == "admission.answered"]
    assert len(answered) == lines
    first = answered[0]
    assert first.levelno == logging.INFO
    assert first.__dict__["answered_since_last"] == {"patched": 1}
    assert all(r.levelno == logging.DEBUG for r in answered[1:])
    assert [r.__dict__["decision"] for r in answered] == [
        "patched",
        "skipped",
        "patched",
        "patched",
    ][:lines]
