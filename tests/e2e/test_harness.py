"""The harness is real: these fail if the control plane were a mock."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster
from tests.kubelet import FakeKubelet
from tests.polling import wait_until


def test_configmap_round_trip(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "v1"}})
    stored = core.read_namespaced_config_map("c", namespace)
    assert stored.data == {"k": "v1"}
    assert stored.metadata.uid  # assigned by the API server
    core.patch_namespaced_config_map("c", namespace, {"data": {"k": "v2"}})
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "v2"}


def test_watch_sees_update(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "w"}, "data": {"n": "0"}}
    )
    seen: list[str] = []

    def watcher() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=created.metadata.resource_version,
            timeout_seconds=10,
        ):
            if event["type"] == "MODIFIED":
                seen.append(event["object"].data["n"])
                w.stop()

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    core.patch_namespaced_config_map("w", namespace, {"data": {"n": "1"}})
    thread.join(timeout=15)
    assert seen == ["1"]


def test_deployment_produces_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    labels = {"app": "smoke"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "smoke"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    pods = wait_until(
        lambda: (
            [p for p in core.list_namespaced_pod(namespace, label_selector="app=smoke").items]
            if len(core.list_namespaced_pod(namespace, label_selector="app=smoke").items) == 2
            else None
        ),
        timeout=30,
        message="2 pods from the Deployment (kube-controller-manager)",
    )
    owners = {p.metadata.owner_references[0].kind for p in pods}
    assert owners == {"ReplicaSet"}
    assert all(p.status.phase == "Pending" for p in pods)  # no kubelet


def test_fake_kubelet_marks_ready(
    core: client.CoreV1Api, kubelet: FakeKubelet, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    kubelet.mark_ready(namespace=namespace, name="p", ip="127.0.0.7")
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.status.pod_ip == "127.0.0.7"
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    kubelet.mark_not_ready(namespace=namespace, name="p")
    pod = core.read_namespaced_pod("p", namespace)
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert pod.status.container_statuses[0].state.running is not None  # still running
    kubelet.mark_crashed(namespace=namespace, name="p")
    pod = core.read_namespaced_pod("p", namespace)
    (crashed,) = pod.status.container_statuses
    assert crashed.state.waiting.reason == "CrashLoopBackOff"
    assert crashed.started is False


def test_rbac_denies_service_account_without_rights(
    cluster: Cluster, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    configuration = client.Configuration()
    configuration.host = cluster.api_client.configuration.host
    configuration.ssl_ca_cert = cluster.api_client.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as as_nobody, pytest.raises(ApiException) as denied:
        client.CoreV1Api(as_nobody).list_namespaced_secret(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in denied.value.body


# --- a MutatingWebhookConfiguration that the API server really calls ---


def _self_signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem


class _MarkingHandler(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        uid = review["request"]["uid"]
        self.calls.append(uid)
        patch = [{"op": "add", "path": "/metadata/annotations", "value": {"smoke/marked": "yes"}}]
        body = json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": uid,
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def marking_server(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    cert_path, key_path, pem = _self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MarkingHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], pem
    server.shutdown()
    server.server_close()


def test_mutating_webhook_is_called_by_api_server(
    admreg: client.AdmissionregistrationV1Api,
    core: client.CoreV1Api,
    namespace: str,
    marking_server: tuple[int, bytes],
) -> None:
    port, ca_pem = marking_server
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    admreg.create_mutating_webhook_configuration(
        {
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "smoke.stellar.org",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/mutate",
                        "caBundle": base64.b64encode(ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 5,
                }
            ],
        }
    )
    try:
        # The configuration reaches the API server's webhook cache asynchronously.
        def create_marked() -> object:
            pod_name = f"p-{uuid.uuid4().hex[:6]}"
            pod = core.create_namespaced_pod(
                namespace,
                {
                    "metadata": {"name": pod_name},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            )
            return pod if (pod.metadata.annotations or {}).get("smoke/marked") == "yes" else None

        pod = wait_until(create_marked, timeout=15, message="a pod create that the webhook marked")
        stored = core.read_namespaced_pod(pod.metadata.name, namespace)  # type: ignore[attr-defined]
        assert stored.metadata.annotations["smoke/marked"] == "yes"
        assert _MarkingHandler.calls, "the API server never called the webhook"
    finally:
        admreg.delete_mutating_webhook_configuration(name)


def test_kubectl_applies_against_cluster(cluster: Cluster, namespace: str) -> None:
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "applied", "namespace": namespace},
            "data": {"a": "b"},
        }
    )
    result = subprocess.run(
        [cluster.kubectl, "--kubeconfig", cluster.kubeconfig, "apply", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "configmap/applied created" in result.stdout
