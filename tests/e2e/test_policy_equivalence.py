"""Policy mode against webhook mode on the real kube-apiserver: the same pod, field for field.

One namespace is injected by the webhook (an in-process server), another by the
MutatingAdmissionPolicy rendered from the same settings. Every golden input and the
real-world workloads the tests hold are created in both (server-side dry-run), and the
two pods the API server answers with must be equal once the fields that differ by
namespace or by chance (uid, timestamps, the ServiceAccount token volume's suffix) are
set aside. Each policy-mode pod is then created again: reinvocation changes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import files
from tests.e2e.conftest import Cluster, make_namespace
from tests.e2e.test_webhook import InProcessServer, create_pod, local_certificates, narrowed
from tests.kube import label_enabled, validator_pod
from tests.polling import wait_until
from tests.unit.test_golden import cases, input_pod
from tests.unit.test_pod_ports import helm_chart_pod
from webhook import __version__, names
from webhook.cli.registration import webhook_configuration
from webhook.core.injection import mutation, policy
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"


@dataclasses.dataclass
class Pair:
    settings: Settings
    webhook_ns: str
    policy_ns: str
    core: client.CoreV1Api


def narrowed_policy(body: dict[str, Any], namespaces: list[str]) -> dict[str, Any]:
    """The policy, also requiring the namespace's name: other tests' namespaces never match."""
    selector = body["spec"]["matchConstraints"]["namespaceSelector"]
    selector.setdefault("matchExpressions", []).append(
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
    )
    return body


def apply_policy(api: client.ApiClient, settings: Settings, namespaces: list[str]) -> None:
    custom = client.CustomObjectsApi(api)
    for plural, body in (
        (policy.POLICY_RESOURCE, narrowed_policy(policy.policy(settings), namespaces)),
        (policy.BINDING_RESOURCE, policy.binding(settings)),
    ):
        custom.create_cluster_custom_object(policy.GROUP, "v1", plural, body)


def delete_policy(api: client.ApiClient, settings: Settings) -> None:
    custom = client.CustomObjectsApi(api)
    for plural in (policy.BINDING_RESOURCE, policy.POLICY_RESOURCE):
        try:
            custom.delete_cluster_custom_object(
                policy.GROUP, "v1", plural, settings.webhook_config_name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


def injected_now(core: client.CoreV1Api, namespace: str) -> bool:
    pod = create_pod(core, namespace, validator_pod(f"probe-{uuid.uuid4().hex[:6]}"), dry_run="All")
    return names.INJECTED_LABEL in (pod["metadata"].get("labels") or {})


# The defaults, and settings that change what the policy's text holds (the image pattern, the
# hook's timeout): the same rendering must follow them.
SETTINGS_VARIANTS = {
    "defaults": {},
    "custom": {"image_pattern": r"(^|/)(stellar-core|core-node)$", "hook_timeout_seconds": 90},
}


@pytest.fixture(scope="module", params=sorted(SETTINGS_VARIANTS))
def pair(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pair]:
    core = client.CoreV1Api(cluster.api_client)
    admreg = client.AdmissionregistrationV1Api(cluster.api_client)
    run_id = uuid.uuid4().hex[:10]
    folder = tmp_path_factory.mktemp("pair-tls")
    ca = local_certificates(folder)
    settings = Settings(
        kubeconfig=cluster.kubeconfig,
        namespace=f"pair-system-{run_id}",  # never created: only excluded
        namespace_selector=f"stellar-test={run_id}",
        port=0,
        metrics_port=0,
        cert_file=str(folder / files.TLS_CERT),
        key_file=str(folder / files.TLS_KEY),
        webhook_config_name=f"stellar-peer-injector-pair-{run_id}",
        **SETTINGS_VARIANTS[request.param],
    )
    webhook_ns = make_namespace(core, "pair-hook")
    policy_ns = make_namespace(core, "pair-policy")
    for namespace in (webhook_ns, policy_ns):
        label_enabled(core, namespace, settings)
    running = InProcessServer(settings)
    body = narrowed(
        webhook_configuration(settings=settings, ca_bundle=ca, client_config={"url": running.url}),
        [webhook_ns],
    )
    admreg.create_mutating_webhook_configuration(body)
    apply_policy(cluster.api_client, settings, [policy_ns])
    try:
        for namespace in (webhook_ns, policy_ns):
            wait_until(
                lambda namespace=namespace: injected_now(core, namespace),
                timeout=30,
                message=f"injection to take effect in {namespace}",
            )
        yield Pair(settings=settings, webhook_ns=webhook_ns, policy_ns=policy_ns, core=core)
    finally:
        admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)
        delete_policy(cluster.api_client, settings)
        running.close()
        for namespace in (webhook_ns, policy_ns):
            core.delete_namespace(namespace, propagation_policy="Background")


_TOKEN_VOLUME = re.compile(r"^kube-api-access-[a-z0-9]+$")


def comparable(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod without what differs by namespace or by chance between two creates."""
    pod = copy.deepcopy(pod)
    metadata = pod["metadata"]
    for key in (
        "namespace",
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "managedFields",
        "generation",
    ):
        metadata.pop(key, None)
    if "generateName" in metadata:
        metadata.pop("name", None)
    spec = pod["spec"]
    for volume in spec.get("volumes") or []:
        if _TOKEN_VOLUME.match(volume["name"]):
            volume["name"] = "kube-api-access"
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for mount in container.get("volumeMounts") or []:
            if _TOKEN_VOLUME.match(mount["name"]):
                mount["name"] = "kube-api-access"
    return pod


def as_pod(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A workload's pod template as the pod its controller would create."""
    template = document["spec"]["template"]
    metadata = dict(template.get("metadata") or {})
    metadata["name"] = name
    spec = copy.deepcopy(template["spec"])
    for claim in document["spec"].get("volumeClaimTemplates") or ():  # as the StatefulSet adds
        claim_name = claim["metadata"]["name"]
        spec.setdefault("volumes", []).append(
            {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"}}
        )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def workloads() -> dict[str, dict[str, Any]]:
    """The real-world shapes the tests hold: the shipped examples, SDF's chart, the e2e pod."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.glob("validator-*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("Deployment", "StatefulSet"):
                found[f"{path.stem}-{doc['kind'].lower()}"] = as_pod(doc, path.stem)
    chart = helm_chart_pod()
    chart["metadata"] = {"name": "core-0", "labels": {"app": "core", "release": "core"}}
    chart.pop("status")
    found["helm-chart-core"] = chart
    found["e2e-validator"] = validator_pod("validator-e2e")
    found["e2e-validator-network"] = validator_pod(
        "validator-net", labels={"app": "v", names.NETWORK_LABEL: "testnet"}
    )
    return found


WORKLOADS = workloads()
ALL = [f"golden:{c}" for c in cases()] + [f"workload:{w}" for w in WORKLOADS]


def body_of(case: str) -> dict[str, Any]:
    kind, name = case.split(":", 1)
    pod = input_pod(name) if kind == "golden" else copy.deepcopy(WORKLOADS[name])
    pod.setdefault("metadata", {}).pop("namespace", None)
    if (
        kind == "golden"
        and not pod["metadata"].get("name")
        and "generateName" not in pod["metadata"]
    ):
        pod["metadata"]["name"] = name
    return pod


def created(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """The pod the API server answers a dry-run create with, or its refusal as a dict."""
    try:
        return create_pod(core, namespace, copy.deepcopy(body), dry_run="All")
    except ApiException as exc:
        message = json.loads(exc.body or "{}").get("message", "")
        return {"refused": exc.status, "message": message.replace(namespace, "NS")}


@pytest.mark.parametrize("case", ALL)
def test_policy_pod_equals_webhook_pod(pair: Pair, case: str) -> None:
    body = body_of(case)
    by_webhook = created(pair.core, pair.webhook_ns, body)
    by_policy = created(pair.core, pair.policy_ns, body)
    assert "refused" not in by_webhook, by_webhook
    assert comparable(by_policy) == comparable(by_webhook)
    if mutation.decide(body, settings=pair.settings).inject:
        status = by_policy["metadata"]["annotations"][names.STATUS_ANNOTATION]
        assert json.loads(status)["version"] == __version__


@pytest.mark.parametrize("case", ALL)
def test_policy_pod_created_again_is_unchanged(pair: Pair, case: str) -> None:
    """Reinvocation, or a pod copied from an injected one: the guard holds, nothing doubles."""
    first = created(pair.core, pair.policy_ns, body_of(case))
    assert "refused" not in first, first
    server_set = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: v for k, v in first["metadata"].items() if k not in server_set},
        "spec": first["spec"],
    }
    second = created(pair.core, pair.policy_ns, again)
    assert comparable(second) == comparable(first)
