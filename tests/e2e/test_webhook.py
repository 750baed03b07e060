"""The webhook against the real kube-apiserver: what comes back from the API is injected.

One in-process server (TLS on 127.0.0.1, a fresh CA) serves the whole module;
its MutatingWebhookConfiguration has a unique name and a selector that can
match only this module's namespaces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files
from tests.background import Background
from tests.e2e.conftest import Cluster, make_namespace
from tests.kube import label_enabled, validator_pod
from tests.polling import wait_until
from webhook import names
from webhook.admission import server
from webhook.cli.registration import webhook_configuration
from webhook.metrics import Metrics
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"


@dataclasses.dataclass
class Edge:
    settings: Settings
    enabled: str  # labelled for injection
    unlabelled: str  # in the selector's name list, but without the label
    cluster: Cluster
    core: client.CoreV1Api

    def kubectl(self, *args: str) -> str:
        return subprocess.run(
            [self.cluster.kubectl, "--kubeconfig", self.cluster.kubeconfig, *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def narrowed(body: dict[str, Any], namespaces: list[str]) -> dict[str, Any]:
    """Also require the namespace's name, so other tests' namespaces never match."""
    for hook in body["webhooks"]:
        hook["namespaceSelector"].setdefault("matchExpressions", []).append(
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
        )
    return body


def create_pod(
    core: client.CoreV1Api, namespace: str, body: dict[str, Any], *, dry_run: str | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"_preload_content": False}
    if dry_run:
        kwargs["dry_run"] = dry_run
    response = core.create_namespaced_pod(namespace, body, **kwargs)
    pod: dict[str, Any] = orjson.loads(response.data)
    return pod


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = orjson.loads(
        core.read_namespaced_pod(name, namespace, _preload_content=False).data
    )
    return pod


def core_container(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in pod["spec"]["containers"] if "stellar-core" in c.get("image", "")
    )
    return found


def is_injected(pod: dict[str, Any]) -> bool:
    labels: dict[str, str] = pod["metadata"].get("labels", {})
    return labels.get(names.INJECTED_LABEL) == "true"


def assert_injected(pod: dict[str, Any]) -> None:
    metadata = pod["metadata"]
    assert metadata["labels"][names.INJECTED_LABEL] == "true"
    status = json.loads(metadata["annotations"][names.STATUS_ANNOTATION])
    assert status["added"]["postStart"] is True
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == names.VOLUME_NAME)
    assert volume["configMap"] == {
        "name": names.CONFIGMAP_NAME,
        "optional": True,
        "defaultMode": 420,
    }
    container = core_container(pod)
    mount = next(m for m in container["volumeMounts"] if m["name"] == names.VOLUME_NAME)
    assert mount["mountPath"] == names.MOUNT_PATH
    assert mount["readOnly"] is True
    assert "subPath" not in mount
    env = {e["name"]: e for e in container["env"]}
    assert env[names.ENV_PEERS_FILE]["value"] == names.PEERS_FILE
    assert env[names.ENV_PEERS]["valueFrom"]["configMapKeyRef"]["key"] == names.KEY_CSV
    assert env[names.ENV_PEER_COUNT]["valueFrom"]["configMapKeyRef"]["key"] == names.KEY_COUNT
    assert env[names.ENV_POD_IP]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert container["lifecycle"]["postStart"]["exec"]["command"]


def assert_untouched(pod: dict[str, Any]) -> None:
    assert names.INJECTED_LABEL not in pod["metadata"].get("labels", {})
    assert names.STATUS_ANNOTATION not in pod["metadata"].get("annotations", {})
    assert all(v["name"] != names.VOLUME_NAME for v in pod["spec"].get("volumes", []))


class InProcessServer:
    """`server.serve` in a thread with its own event loop, stopped through its stop event."""

    def __init__(self, settings: Settings) -> None:
        self.listeners = server.bind(settings=settings)
        self.background = Background(
            lambda stop: server.serve(
                settings=settings,
                metrics=Metrics(),
                readiness=None,
                stop=stop,
                listeners=self.listeners,
            ),
            what="the server",
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.listeners.port}/mutate"

    def close(self) -> None:
        self.background.close()


def local_certificates(folder: Path) -> bytes:
    """Write a serving pair for 127.0.0.1 into `folder`; return the CA's PEM."""
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    files.write_bundle(folder, files.Bundle(ca_cert=ca.cert_pem, serving=serving))
    return ca.cert_pem


@pytest.fixture(scope="module")
def edge(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    core = client.CoreV1Api(cluster.api_client)
    admreg = client.AdmissionregistrationV1Api(cluster.api_client)
    run_id = uuid.uuid4().hex[:10]
    folder = tmp_path_factory.mktemp("edge-tls")
    ca = local_certificates(folder)
    settings = Settings(
        kubeconfig=cluster.kubeconfig,
        namespace=f"edge-system-{run_id}",  # never created: only excluded
        namespace_selector=f"stellar.org/peer-injection=enabled,stellar-test={run_id}",
        port=0,
        metrics_port=0,
        cert_file=str(folder / files.TLS_CERT),
        key_file=str(folder / files.TLS_KEY),
        webhook_config_name=f"stellar-peer-injector-edge-{run_id}",
    )
    enabled = make_namespace(core, "edge")
    unlabelled = make_namespace(core, "edge-off")
    label_enabled(core, enabled, settings)
    running = InProcessServer(settings)
    body = narrowed(
        webhook_configuration(settings=settings, ca_bundle=ca, client_config={"url": running.url}),
        [enabled, unlabelled],
    )
    admreg.create_mutating_webhook_configuration(body)
    try:
        # The API server picks up new configurations asynchronously.
        wait_until(
            lambda: is_injected(create_pod(core, enabled, validator_pod("probe"), dry_run="All")),
            timeout=20,
            message="the webhook configuration to take effect",
        )
        yield Edge(
            settings=settings, enabled=enabled, unlabelled=unlabelled, cluster=cluster, core=core
        )
    finally:
        admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)
        running.close()
        for namespace in (enabled, unlabelled):
            core.delete_namespace(namespace, propagation_policy="Background")


def test_validator_pod_comes_back_injected(edge: Edge) -> None:
    created = create_pod(edge.core, edge.enabled, validator_pod("validator-a"))
    assert_injected(created)
    assert_injected(read_pod(edge.core, edge.enabled, "validator-a"))


def test_validator_pod_with_own_poststart_keeps_it(edge: Edge) -> None:
    body = validator_pod("validator-hook")
    own = {"exec": {"command": ["/bin/sh", "-c", "echo mine"]}}
    body["spec"]["containers"][0]["lifecycle"] = {"postStart": own}
    pod = create_pod(edge.core, edge.enabled, body)
    container = core_container(pod)
    assert container["lifecycle"]["postStart"] == own
    assert any(m["name"] == names.VOLUME_NAME for m in container["volumeMounts"])
    status = json.loads(pod["metadata"]["annotations"][names.STATUS_ANNOTATION])
    assert {"item": "postStart", "reason": "has-own-poststart"} in status["skipped"]


def test_non_validator_and_opted_out_pods_untouched(edge: Edge) -> None:
    web = {
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    }
    assert_untouched(create_pod(edge.core, edge.enabled, web))
    opted_out = validator_pod("validator-out", annotations={names.INJECT_ANNOTATION: "false"})
    assert_untouched(create_pod(edge.core, edge.enabled, opted_out))


def test_unlabelled_namespace_untouched(edge: Edge) -> None:
    assert_untouched(create_pod(edge.core, edge.unlabelled, validator_pod("validator-b")))


def test_dry_run_create_returns_injected_pod_and_leaves_nothing(edge: Edge) -> None:
    pod = create_pod(edge.core, edge.enabled, validator_pod("validator-dry"), dry_run="All")
    assert_injected(pod)
    with pytest.raises(ApiException) as missing:
        edge.core.read_namespaced_pod("validator-dry", edge.enabled)
    assert missing.value.status == 404


def pods_with(edge: Edge, selector: str) -> list[dict[str, Any]]:
    listing = orjson.loads(
        edge.core.list_namespaced_pod(
            edge.enabled, label_selector=selector, _preload_content=False
        ).data
    )
    pods: list[dict[str, Any]] = listing["items"]
    return pods


def test_example_deployment_applied_unchanged_yields_injected_pods(edge: Edge) -> None:
    edge.kubectl("apply", "-n", edge.enabled, "-f", str(EXAMPLES / "validator-deployment.yaml"))
    (pod,) = wait_until(
        lambda: pods_with(edge, "app=stellar-validator,pod-template-hash"),
        timeout=30,
        message="the example Deployment's pod",
    )
    assert_injected(pod)
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_example_statefulset_applied_unchanged_yields_injected_pods(edge: Edge) -> None:
    edge.kubectl("apply", "-n", edge.enabled, "-f", str(EXAMPLES / "validator-statefulset.yaml"))
    pod = wait_until(
        lambda: read_pod(edge.core, edge.enabled, "stellar-core-0"),
        timeout=30,
        message="the example StatefulSet's pod",
    )
    assert_injected(pod)
    assert core_container(pod)["name"] == "core"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_webhook_down_with_ignore_lets_pods_through_uninjected(
    cluster: Cluster,
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    settings: Settings,
    tmp_path: Path,
) -> None:
    target = make_namespace(core, "edge-down")
    label_enabled(core, target, settings)
    ca = local_certificates(tmp_path)
    nobody = f"https://127.0.0.1:{free_port()}/mutate"  # nothing listens there
    body = narrowed(
        webhook_configuration(settings=settings, ca_bundle=ca, client_config={"url": nobody}),
        [target],
    )
    admreg.create_mutating_webhook_configuration(body)
    try:
        assert body["webhooks"][0]["failurePolicy"] == "Ignore"
        pod = create_pod(core, target, validator_pod("validator-c"))
        assert_untouched(pod)
        assert read_pod(core, target, "validator-c")["metadata"]["uid"] == pod["metadata"]["uid"]
    finally:
        admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)
        core.delete_namespace(target, propagation_policy="Background")


class Lines:
    """Collects a subprocess's stderr lines in a thread, so tests can poll them."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    def event(self, name: str) -> dict[str, Any] | None:
        for line in list(self.lines):
            if line.startswith("{"):
                entry: dict[str, Any] = json.loads(line)
                if entry.get("event") == name:
                    return entry
        return None


def test_serve_local_registers_injects_and_cleans_up(
    cluster: Cluster,
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    settings: Settings,
) -> None:
    target = make_namespace(core, "edge-local")
    label_enabled(core, target, settings)
    command = [
        sys.executable,
        "-m",
        "webhook.cli",
        "serve",
        "--local",
        "--admission-mode",
        "webhook",
        "--kubeconfig",
        settings.kubeconfig,
        "--namespace",
        settings.namespace,
        "--namespace-selector",
        settings.namespace_selector,
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--webhook-config-name",
        settings.webhook_config_name,
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = Lines(process)
        announced = wait_until(
            lambda: lines.event("serve.local"),
            timeout=20,
            message="serve --local to announce its address",
        )
        assert announced["url"].startswith("https://127.0.0.1:")
        registered = admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
        assert registered.webhooks[0].client_config.url == announced["url"]
        wait_until(
            lambda: is_injected(create_pod(core, target, validator_pod("probe"), dry_run="All")),
            timeout=20,
            message="the local webhook to inject",
        )
        assert_injected(create_pod(core, target, validator_pod("validator-local")))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        with pytest.raises(ApiException) as gone:
            admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
        assert gone.value.status == 404
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(ApiException):  # normally already removed by the process
            admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)
        core.delete_namespace(target, propagation_policy="Background")
