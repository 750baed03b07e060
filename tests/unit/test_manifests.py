"""The kustomize base and the examples: rendered by kubectl, checked for their invariants."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook import names
from webhook.cli.registration import webhook_configuration
from webhook.core.selector import label_selector, namespace_selector
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
EXAMPLES = MANIFESTS / "examples"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is needed to render the kustomize base")
    output = subprocess.run(
        [KUBECTL, "kustomize", str(MANIFESTS)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Evaluate a LabelSelector like the API server does."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(name: str, *, enabled: bool) -> dict[str, str]:
    labels = {"kubernetes.io/metadata.name": name}
    if enabled:
        labels[names.ENABLE_LABEL] = names.ENABLE_VALUE
    return labels


def test_manifests_render_every_kind(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    for doc in rendered:
        if doc["kind"] not in (
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ):
            assert doc["metadata"]["namespace"] == names.SYSTEM_NAMESPACE


def test_webhook_selector_never_matches_system_namespaces(
    rendered: list[dict[str, Any]],
) -> None:
    (hook,) = one(rendered, "MutatingWebhookConfiguration")["webhooks"]
    selector = hook["namespaceSelector"]
    assert selects(selector, namespace_labels("stellar", enabled=True))
    assert not selects(selector, namespace_labels("stellar", enabled=False))
    for system in (names.SYSTEM_NAMESPACE, "kube-system"):
        assert not selects(selector, namespace_labels(system, enabled=True))


def test_webhook_fails_open_without_side_effects(rendered: list[dict[str, Any]]) -> None:
    (hook,) = one(rendered, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["timeoutSeconds"] == 5
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    service = hook["clientConfig"]["service"]
    assert service == {
        "name": "stellar-peer-injector",
        "namespace": names.SYSTEM_NAMESPACE,
        "path": "/mutate",
        "port": 443,
    }


def test_local_configuration_matches_the_manifest(rendered: list[dict[str, Any]]) -> None:
    (manifest,) = one(rendered, "MutatingWebhookConfiguration")["webhooks"]
    built = webhook_configuration(
        settings=Settings(), ca_bundle=b"ca", client_config={"url": "https://127.0.0.1:8443/mutate"}
    )
    (local,) = built["webhooks"]
    strip = ("clientConfig",)
    assert {k: v for k, v in local.items() if k not in strip} == {
        k: v for k, v in manifest.items() if k not in strip
    }
    assert (
        built["metadata"]["name"]
        == one(rendered, "MutatingWebhookConfiguration")["metadata"]["name"]
    )


def test_deployment_is_locked_down(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("topologySpreadConstraints") or pod.get("affinity", {}).get("podAntiAffinity")
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": 8443, "metrics": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    assert env["STELLAR_INJECTOR_HOST"]["value"] == "0.0.0.0"
    assert env["STELLAR_INJECTOR_METRICS_HOST"]["value"] == "0.0.0.0"
    assert env["STELLAR_INJECTOR_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == os.path.dirname(Settings().cert_file)
    assert mounts["tls"]["mountPath"] == os.path.dirname(Settings().key_file)
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The injector writes the pair it takes from the Secret here: in memory, never ca.key.
    assert volumes["tls"] == {"name": "tls", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    assert not mounts["tls"].get("readOnly")
    assert container["image"] == "stellar-peer-injector:0.1.0"


def test_service_and_policies_reach_the_ports(rendered: list[dict[str, Any]]) -> None:
    service = one(rendered, "Service")
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (443, "webhook"),
        (9090, "metrics"),
    }
    assert one(rendered, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    policy = one(rendered, "NetworkPolicy")
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {8443, 9090}
    assert all("from" not in rule for rule in policy["spec"]["ingress"])
    selector = one(rendered, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert service["spec"]["selector"] == selector


def rules_of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for doc in docs if doc["kind"] == kind for rule in doc["rules"]]


def test_rbac_is_least_privilege(rendered: list[dict[str, Any]]) -> None:
    cluster_rules = rules_of(rendered, "ClusterRole")
    every_rule = cluster_rules + rules_of(rendered, "Role")
    for rule in every_rule:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "pods/exec" not in rule["resources"]
    assert not [r for r in cluster_rules if "secrets" in r["resources"]]
    secrets, create, links = [r for r in rules_of(rendered, "Role") if "secrets" in r["resources"]]
    assert secrets["resourceNames"] == ["stellar-peer-injector-tls"]
    assert set(secrets["verbs"]) == {"get", "update"}
    # Link Secrets are found by label, which RBAC cannot limit: list and watch, in
    # its own namespace only (a Role), never get, update or delete.
    assert links == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}
    # create cannot be limited by resourceNames; it is the only unnamed Secret right.
    assert create == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}
    (webhooks,) = [r for r in cluster_rules if "mutatingwebhookconfigurations" in r["resources"]]
    assert webhooks["resourceNames"] == ["stellar-peer-injector"]
    # admission_mode auto: the caBundle (webhook mode), or its removal (policy mode).
    assert set(webhooks["verbs"]) == {"get", "patch", "delete"}
    named, create = [r for r in cluster_rules if "mutatingadmissionpolicies" in r["resources"]]
    assert named["resourceNames"] == ["stellar-peer-injector"]
    assert set(named["verbs"]) == {"get", "update", "delete"}
    assert create["verbs"] == ["create"]
    assert "resourceNames" not in create
    (pods,) = [r for r in cluster_rules if r["resources"] == ["pods"]]
    assert set(pods["verbs"]) == {"get", "list", "watch", "patch"}


def overlay(name: str) -> list[dict[str, Any]]:
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is needed to render the kustomize overlays")
    output = subprocess.run(
        [KUBECTL, "kustomize", str(MANIFESTS / "overlays" / name)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def admission_rules(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Verbs per admission resource (named or not) in the ClusterRole."""
    found: dict[str, set[str]] = {}
    for rule in rules_of(docs, "ClusterRole"):
        if rule["apiGroups"] == ["admissionregistration.k8s.io"]:
            for resource in rule["resources"]:
                key = resource + ("" if rule.get("resourceNames") else " (any name)")
                found.setdefault(key, set()).update(rule["verbs"])
    return found


def test_policy_overlay_grants_policy_mode_only() -> None:
    docs = overlay("policy")
    assert not [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    assert admission_rules(docs) == {
        "mutatingwebhookconfigurations": {"get", "delete"},
        "mutatingadmissionpolicies": {"get", "update", "delete"},
        "mutatingadmissionpolicybindings": {"get", "update", "delete"},
        "mutatingadmissionpolicies (any name)": {"create"},
        "mutatingadmissionpolicybindings (any name)": {"create"},
    }
    # The TLS Secret only read (a switch from webhook mode), never renewed or created;
    # and the link Secrets' list and watch.
    secrets = [r for r in rules_of(docs, "Role") if "secrets" in r["resources"]]
    assert secrets == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["stellar-peer-injector-tls"],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
    ]
    (owner,) = [r for r in rules_of(docs, "ClusterRole") if "clusterroles" in r["resources"]]
    assert owner["resourceNames"] == ["stellar-peer-injector"]
    assert owner["verbs"] == ["get"]
    env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STELLAR_INJECTOR_ADMISSION_MODE", "value": "policy"} in env


def test_webhook_overlay_grants_webhook_mode_only() -> None:
    docs = overlay("webhook")
    one(docs, "MutatingWebhookConfiguration")
    assert admission_rules(docs) == {
        "mutatingwebhookconfigurations": {"get", "patch"},
        "mutatingadmissionpolicies": {"get", "delete"},
        "mutatingadmissionpolicybindings": {"get", "delete"},
    }
    assert not [r for r in rules_of(docs, "ClusterRole") if "clusterroles" in r["resources"]]
    env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STELLAR_INJECTOR_ADMISSION_MODE", "value": "webhook"} in env


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("example", ["validator-deployment.yaml", "validator-statefulset.yaml"])
def test_examples_carry_nothing_of_ours(example: str) -> None:
    text = yaml.safe_dump_all(load(EXAMPLES / example))  # the objects, not the comments
    for ours in (
        names.VOLUME_NAME,
        names.MOUNT_PATH,
        names.STATUS_ANNOTATION,
        names.INJECTED_LABEL,
        names.ENV_PEERS,
        "postStart",
    ):
        assert ours not in text
    (workload,) = [
        d for d in load(EXAMPLES / example) if d["kind"] in ("Deployment", "StatefulSet")
    ]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    image, _, tag = container["image"].rpartition(":")
    assert image == "stellar/stellar-core"
    assert tag
    assert tag != "latest"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "peer": 11625,
        "http": 11626,
    }
    config_mounts = [m for m in container["volumeMounts"] if m.get("subPath")]
    assert config_mounts
    assert config_mounts[0]["subPath"] == "stellar-core.cfg"


def test_example_deployment_is_labelled_app() -> None:
    (deployment,) = [
        d for d in load(EXAMPLES / "validator-deployment.yaml") if d["kind"] == "Deployment"
    ]
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "stellar-validator"}


def test_example_namespace_is_enabled() -> None:
    (namespace,) = load(EXAMPLES / "namespace.yaml")
    assert namespace["metadata"]["labels"] == {names.ENABLE_LABEL: names.ENABLE_VALUE}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stellar.org/peer-injection=enabled",
            {"matchLabels": {"stellar.org/peer-injection": "enabled"}},
        ),
        (
            "a==b, c!=d",
            {
                "matchLabels": {"a": "b"},
                "matchExpressions": [{"key": "c", "operator": "NotIn", "values": ["d"]}],
            },
        ),
        (
            "tier in (b, a),env notin (x)",
            {
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "env", "operator": "NotIn", "values": ["x"]},
                ]
            },
        ),
        (
            "team,!legacy",
            {
                "matchExpressions": [
                    {"key": "team", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ]
            },
        ),
    ],
)
def test_label_selector_parses_selector_strings(text: str, expected: dict[str, Any]) -> None:
    assert label_selector(text) == expected


def test_namespace_selector_excludes_own_namespace() -> None:
    selector = namespace_selector(Settings(namespace="ops", namespace_selector="a=b"))
    assert selects(selector, {"a": "b", "kubernetes.io/metadata.name": "validators"})
    assert not selects(selector, {"a": "b", "kubernetes.io/metadata.name": "ops"})
    assert not selects(selector, {"a": "b", "kubernetes.io/metadata.name": "kube-system"})


def _benchmark_mb(label: str) -> float:
    """The first figure in MB of the docs/benchmarks.md table row that starts with `label`."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    for line in text.splitlines():
        if line.startswith(f"| {label} |"):
            return float(re.search(r"\| ([\d.]+) MB", line).group(1))  # type: ignore[union-attr]
    raise AssertionError(f"no row {label!r} in docs/benchmarks.md")


def _mebibytes(quantity: str) -> float:
    assert quantity.endswith("Mi"), quantity
    return float(quantity[:-2]) * 1024 * 1024 / 1e6  # in MB, as the benchmarks report


def test_memory_request_and_limit_cover_the_measured_peaks(
    rendered: list[dict[str, Any]],
) -> None:
    """128Mi was below the 154 MB the watcher alone reached at 1,000 pods: OOM-killed."""
    container = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    memory = {
        kind: _mebibytes(container["resources"][kind]["memory"]) for kind in ("requests", "limits")
    }
    admission = _benchmark_mb("admission: idle RSS of stellar-peers serve")
    thousand = _benchmark_mb("scale: 1,000 pods, watcher peak RSS")
    five_thousand = _benchmark_mb("scale: 5,000 pods, watcher peak RSS")
    assert memory["requests"] >= thousand + admission, memory
    assert memory["limits"] >= five_thousand + admission, memory
