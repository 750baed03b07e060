"""The Helm chart: lints, renders exactly what manifests/ renders, refuses bad values.

`helm template` output is passed through `kubectl kustomize` before comparing:
both sides are then parsed and printed by the same YAML code (a folded CEL
expression in the guard policy otherwise parses with different line breaks in
PyYAML and in Go). The comparison itself is of whole objects, indexed by
(apiVersion, kind, namespace, name); the chart adds no labels of its own
(no helm.sh/chart, no managed-by), so nothing else is normalised.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import binaries
from webhook.core.selector import namespace_selector
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stellar-peer-injector"
MANIFESTS = ROOT / "manifests"
RELEASE_NAMESPACE = "stellar-system"

Key = tuple[str, str, str | None, str]


@pytest.fixture(scope="module")
def helm() -> str:
    return binaries.helm()


@pytest.fixture(scope="module")
def kubectl() -> str:
    return binaries.kubectl()


def index(text: str) -> dict[Key, dict[str, Any]]:
    objects: dict[Key, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc["metadata"]
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])
        assert key not in objects, f"{key} rendered twice"
        objects[key] = doc
    return objects


def kustomize(kubectl: str, path: Path) -> dict[Key, dict[str, Any]]:
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True
    )
    return index(out.stdout)


def template(
    helm: str, *args: str, namespace: str = RELEASE_NAMESPACE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "stellar-peer-injector", str(CHART), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
    )


def render(helm: str, *args: str, namespace: str = RELEASE_NAMESPACE) -> dict[Key, dict[str, Any]]:
    out = template(helm, *args, namespace=namespace)
    assert out.returncode == 0, out.stderr
    return index(out.stdout)


def render_through_kustomize(
    helm: str, kubectl: str, tmp_path: Path, *args: str
) -> dict[Key, dict[str, Any]]:
    out = template(helm, *args)
    assert out.returncode == 0, out.stderr
    (tmp_path / "chart.yaml").write_text(out.stdout)
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - chart.yaml\n")
    return kustomize(kubectl, tmp_path)


def assert_same_objects(
    chart: dict[Key, dict[str, Any]], kustomized: dict[Key, dict[str, Any]]
) -> None:
    assert sorted(chart) == sorted(kustomized), "the chart and manifests/ render different objects"
    for key, expected in kustomized.items():
        assert chart[key] == expected, f"{key} differs between the chart and manifests/"


def without_namespace_object(objects: dict[Key, dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {k: v for k, v in objects.items() if k[:2] != ("v1", "Namespace")}


def deployment(objects: dict[Key, dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects.values() if o["kind"] == "Deployment"]
    assert len(found) == 1
    return found[0]


def env_of(objects: dict[Key, dict[str, Any]]) -> dict[str, Any]:
    container = deployment(objects)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--set", "reload.mode=exec,metrics.serviceMonitor.enabled=true,namespace.create=true"],
        ["--set", "replicas=1,commonLabels.app\\.kubernetes\\.io/component=other"],
    ],
)
def test_chart_lints_strictly(helm: str, flags: list[str]) -> None:
    out = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *flags], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


def test_defaults_render_the_kustomize_base_but_its_namespace(
    helm: str, kubectl: str, tmp_path: Path
) -> None:
    # helm install --create-namespace makes the namespace (Helm keeps its release
    # record there, so it must exist first); everything else is the base, as is.
    chart = render_through_kustomize(helm, kubectl, tmp_path)
    assert_same_objects(chart, without_namespace_object(kustomize(kubectl, MANIFESTS)))


def test_namespace_create_renders_the_base_namespace_too(
    helm: str, kubectl: str, tmp_path: Path
) -> None:
    chart = render_through_kustomize(helm, kubectl, tmp_path, "--set", "namespace.create=true")
    assert_same_objects(chart, kustomize(kubectl, MANIFESTS))


def test_exec_reload_mode_renders_the_exec_overlay(helm: str, kubectl: str, tmp_path: Path) -> None:
    chart = render_through_kustomize(
        helm, kubectl, tmp_path, "--set", "namespace.create=true", "--set", "reload.mode=exec"
    )
    assert_same_objects(chart, kustomize(kubectl, MANIFESTS / "overlays" / "exec"))


@pytest.mark.parametrize("mode", ["policy", "webhook"])
def test_admission_mode_renders_its_overlay(
    helm: str, kubectl: str, tmp_path: Path, mode: str
) -> None:
    chart = render_through_kustomize(
        helm, kubectl, tmp_path, "--set", "namespace.create=true", "--set", f"admissionMode={mode}"
    )
    assert_same_objects(chart, kustomize(kubectl, MANIFESTS / "overlays" / mode))


def test_cert_manager_mode_renders_the_cert_manager_overlay(
    helm: str, kubectl: str, tmp_path: Path
) -> None:
    chart = render_through_kustomize(
        helm,
        kubectl,
        tmp_path,
        "--set",
        "namespace.create=true",
        "--set",
        "certificates.mode=cert-manager",
    )
    overlay = kustomize(kubectl, MANIFESTS / "overlays" / "cert-manager")
    assert_same_objects(chart, overlay)
    webhook = next(o for o in overlay.values() if o["kind"] == "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "stellar-system/stellar-peer-injector"
    }
    certificate = overlay[
        ("cert-manager.io/v1", "Certificate", RELEASE_NAMESPACE, "stellar-peer-injector")
    ]
    assert certificate["spec"]["secretName"] == "stellar-peer-injector-tls"
    assert "stellar-peer-injector.stellar-system.svc" in certificate["spec"]["dnsNames"]
    assert env_of(overlay)["STELLAR_INJECTOR_CERT_MODE"] == "external"
    volumes = deployment(overlay)["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["secret"]["secretName"] == "stellar-peer-injector-tls"
    role = overlay[
        ("rbac.authorization.k8s.io/v1", "Role", RELEASE_NAMESPACE, "stellar-peer-injector")
    ]
    assert not any("create" in r["verbs"] for r in role["rules"] if "secrets" in r["resources"])


def test_self_mode_makes_no_cert_manager_objects_and_may_create_its_secret(helm: str) -> None:
    objects = render(helm)
    assert not any(k[0].startswith("cert-manager.io/") for k in objects)
    assert "STELLAR_INJECTOR_CERT_MODE" not in env_of(objects)
    volumes = deployment(objects)["spec"]["template"]["spec"]["volumes"]
    assert volumes[0] == {"name": "tls", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}


def test_docs_name_the_pinned_helm_version() -> None:
    versions = (ROOT / "versions.env").read_text()
    pinned = re.search(r'HELM_VERSION="\$\{HELM_VERSION:-(v[0-9.]+)\}"', versions)
    assert pinned, "versions.env no longer pins HELM_VERSION"
    for doc in ("docs/development.md", "docs/quickstart.md"):
        assert f"helm {pinned.group(1)}" in (ROOT / doc).read_text(), doc


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--set", "replicas=0"], "/replicas"),
        (["--set-json", "replicas=1.5"], "/replicas"),
        (["--set", "webhook.failurePolicy=Never"], "/webhook/failurePolicy"),
        (["--set", "reload.mode=restart"], "/reload/mode"),
        (["--set", "certificates.mode=vault"], "/certificates/mode"),
        (["--set", "webhook.timeoutSeconds=0"], "/webhook/timeoutSeconds"),
        (["--set", "webhook.timeoutSeconds=31"], "/webhook/timeoutSeconds"),
        (["--set", "hook.timeoutSeconds=0"], "/hook/timeoutSeconds"),
        (["--set-json", "reload.timeoutSeconds=0"], "/reload/timeoutSeconds"),
        (["--set-json", "watcher.debounceSeconds=-0.1"], "/watcher/debounceSeconds"),
        (["--set", "reload.retries=-1"], "/reload/retries"),
        (["--set", "logLevel=LOUD"], "/logLevel"),
        (["--set", "staticPeers={not a peer}"], "/staticPeers/0"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "replica=3"], "replica"),
        (
            ["--set-json", 'namespaceSelector={"matchLabels":null}'],
            "/namespaceSelector",
        ),
    ],
)
def test_schema_refuses_bad_values(helm: str, flags: list[str], named: str) -> None:
    out = template(helm, *flags)
    assert out.returncode != 0, f"{flags} was accepted"
    assert "don't meet the specifications of the schema" in out.stderr
    assert named in out.stderr, out.stderr


def test_lease_renewal_must_be_shorter_than_the_lease(helm: str) -> None:
    out = template(
        helm,
        "--set",
        "leaderElection.leaseDurationSeconds=5",
        "--set",
        "leaderElection.leaseRenewSeconds=5",
    )
    assert out.returncode != 0
    assert "leaderElection.leaseRenewSeconds must be shorter" in out.stderr


def test_another_release_namespace_moves_every_reference(helm: str) -> None:
    objects = render(helm, "--set", "namespace.create=true", namespace="ops")
    for (_, kind, namespace, _), obj in objects.items():
        cluster_scoped = kind in {
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
        assert namespace == (None if cluster_scoped else "ops"), (kind, namespace)
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == "ops"
    webhook = next(o for o in objects.values() if o["kind"] == "MutatingWebhookConfiguration")
    hook = webhook["webhooks"][0]
    assert hook["clientConfig"]["service"]["namespace"] == "ops"
    assert hook["namespaceSelector"]["matchExpressions"][-1]["values"] == ["kube-system", "ops"]
    for policy in (o for o in objects.values() if o["kind"] == "ValidatingAdmissionPolicy"):
        condition = policy["spec"]["matchConditions"][0]["expression"]
        assert '"system:serviceaccount:ops:stellar-peer-injector"' in condition
    assert ("v1", "Namespace", None, "ops") in objects


def test_namespace_selector_reaches_the_injector_as_the_webhook_has_it(helm: str) -> None:
    selector = (
        '{"matchLabels":{"team":"payments"},"matchExpressions":['
        '{"key":"env","operator":"In","values":["prod","dev"]},'
        '{"key":"legacy","operator":"DoesNotExist"}]}'
    )
    objects = render(
        helm,
        "--set",
        "namespaceSelector.matchLabels=null",
        "--set-json",
        f"namespaceSelector={selector}",
    )
    env = env_of(objects)
    settings = Settings(
        namespace=RELEASE_NAMESPACE, namespace_selector=env["STELLAR_INJECTOR_NAMESPACE_SELECTOR"]
    )
    webhook = next(o for o in objects.values() if o["kind"] == "MutatingWebhookConfiguration")
    assert webhook["webhooks"][0]["namespaceSelector"] == namespace_selector(settings)
    assert "stellar.org/peer-injection" not in env["STELLAR_INJECTOR_NAMESPACE_SELECTOR"]


def test_webhook_policy_and_timeout_values(helm: str) -> None:
    objects = render(
        helm, "--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=12"
    )
    hook = next(o for o in objects.values() if o["kind"] == "MutatingWebhookConfiguration")
    assert hook["webhooks"][0]["failurePolicy"] == "Fail"
    assert hook["webhooks"][0]["timeoutSeconds"] == 12


def test_service_monitor_only_when_asked(helm: str) -> None:
    kinds = {k[1] for k in render(helm)}
    assert "ServiceMonitor" not in kinds
    objects = render(
        helm,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
    )
    monitor = objects[
        ("monitoring.coreos.com/v1", "ServiceMonitor", RELEASE_NAMESPACE, "stellar-peer-injector")
    ]
    service = objects[("v1", "Service", RELEASE_NAMESPACE, "stellar-peer-injector")]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert wanted.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in [p["name"] for p in service["spec"]["ports"]]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_labels_annotations_and_placement_values(helm: str) -> None:
    objects = render(
        helm,
        "--set",
        "commonLabels.team=payments",
        "--set",
        "commonAnnotations.owner=ops@example.org",
        "--set",
        "podLabels.tier=control",
        "--set",
        "podAnnotations.scrape=yes",
        "--set",
        "nodeSelector.pool=system",
        "--set",
        "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
        "--set",
        "priorityClassName=system-cluster-critical",
        "--set-json",
        'affinity={"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}}',
    )
    for key, obj in objects.items():
        assert obj["metadata"]["labels"]["team"] == "payments", key
        assert obj["metadata"]["annotations"] == {"owner": "ops@example.org"}, key
    pod = deployment(objects)["spec"]["template"]
    assert pod["metadata"]["labels"]["tier"] == "control"
    assert pod["metadata"]["annotations"] == {"scrape": "yes"}
    assert pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert "nodeAffinity" in pod["spec"]["affinity"]
    # The selector stays the base's: an upgrade with new pod labels must not orphan pods.
    assert deployment(objects)["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "stellar-peer-injector",
        "app.kubernetes.io/component": "injector",
    }


def test_image_replicas_and_resources_values(helm: str) -> None:
    objects = render(
        helm,
        "--set",
        "image.repository=registry.example.org/spi,image.tag=9.9.9,image.pullPolicy=Always",
        "--set",
        "replicas=3",
        "--set",
        "resources.limits.memory=256Mi",
    )
    spec = deployment(objects)["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/spi:9.9.9"
    assert container["imagePullPolicy"] == "Always"
    assert spec["replicas"] == 3
    assert container["resources"]["limits"]["memory"] == "256Mi"


def test_one_replica_renders_no_disruption_budget(helm: str) -> None:
    # minAvailable 1 of 1 would block every node drain.
    assert "PodDisruptionBudget" not in {k[1] for k in render(helm, "--set", "replicas=1")}
    assert "PodDisruptionBudget" in {k[1] for k in render(helm)}


def test_settings_values_become_injector_environment(helm: str) -> None:
    objects = render(
        helm,
        "--set",
        "logLevel=DEBUG,imagePattern=my-core$,reload.mode=rollout,reload.retries=0",
        "--set",
        "staticPeers={core1.example.org:11625,[2001:db8::1]:11625}",
        "--set",
        "webhook.maxBodyBytes=4194304,watcher.evictUninjected=true",
        "--set-json",
        "watcher.debounceSeconds=0.5",
    )
    env = env_of(objects)
    assert env["STELLAR_INJECTOR_LOG_LEVEL"] == "DEBUG"
    assert env["STELLAR_INJECTOR_IMAGE_PATTERN"] == "my-core$"
    assert env["STELLAR_INJECTOR_RELOAD_MODE"] == "rollout"
    assert env["STELLAR_INJECTOR_RELOAD_RETRIES"] == "0"
    assert env["STELLAR_INJECTOR_MAX_BODY_BYTES"] == "4194304"
    assert env["STELLAR_INJECTOR_EVICT_UNINJECTED"] == "true"
    assert env["STELLAR_INJECTOR_DEBOUNCE_SECONDS"] == "0.5"
    assert env["STELLAR_INJECTOR_STATIC_PEERS"] == "core1.example.org:11625,[2001:db8::1]:11625"
    environ = {k: v for k, v in env.items() if isinstance(v, str)}
    settings = Settings.from_namespace(argparse.Namespace(), environ)
    assert settings.static_peers == ("core1.example.org:11625", "[2001:db8::1]:11625")
    assert settings.max_body_bytes == 4194304
    # rollout needs no pods/exec.
    role = objects[("rbac.authorization.k8s.io/v1", "ClusterRole", None, "stellar-peer-injector")]
    assert not any("pods/exec" in r["resources"] for r in role["rules"])
