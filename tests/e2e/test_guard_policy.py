"""The ValidatingAdmissionPolicy of manifests/: the injector may change annotations only.

RBAC grants the injector `patch` on pods and workloads (for the observed-hash
and rollout annotations). The policy, rendered from `kubectl kustomize
manifests/` and bound to a test ServiceAccount, must let that account change
annotations and refuse any change of image, labels, replicas or template.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import Cluster
from tests.e2e.test_rbac import kustomize, token_client
from tests.kube import validator_pod
from tests.polling import wait_until

SA = "guarded"
REAL_USER = "system:serviceaccount:stellar-system:stellar-peer-injector"


@pytest.fixture
def guarded(cluster: Cluster, core: client.CoreV1Api, namespace: str) -> Iterator[client.ApiClient]:
    """A ServiceAccount with the injector's pod/workload rights, under the policy."""
    admin = cluster.api_client
    rbac = client.RbacAuthorizationV1Api(admin)
    admreg = client.AdmissionregistrationV1Api(admin)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": SA}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": SA},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": SA},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA},
            "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": namespace}],
        },
    )
    suffix = uuid.uuid4().hex[:8]
    docs = [
        d for d in kustomize(cluster, "manifests") if d["kind"].startswith("ValidatingAdmission")
    ]
    policies = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert len(policies) == len(bindings) == 2
    for policy in policies:
        condition = policy["spec"]["matchConditions"][0]
        assert REAL_USER in condition["expression"]
        condition["expression"] = condition["expression"].replace(
            REAL_USER, f"system:serviceaccount:{namespace}:{SA}"
        )
        policy["metadata"]["name"] += f"-{suffix}"
        admreg.create_validating_admission_policy(policy)
        # Every expression type-checks against the resources it matches.
        checked = wait_until(
            lambda name=policy["metadata"]["name"]: (
                admreg.read_validating_admission_policy(name).status
            ),
            timeout=10,
            message="the policy's type check",
        )
        assert not (checked.type_checking and checked.type_checking.expression_warnings)
    for binding in bindings:
        binding["metadata"]["name"] += f"-{suffix}"
        binding["spec"]["policyName"] += f"-{suffix}"
        admreg.create_validating_admission_policy_binding(binding)
    token = core.create_namespaced_service_account_token(
        SA, namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    api = token_client(cluster, token)
    try:
        yield api
    finally:
        api.close()
        for binding in bindings:
            admreg.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        for policy in policies:
            admreg.delete_validating_admission_policy(policy["metadata"]["name"])


def _refused(call: Any) -> str:
    try:
        call()
    except ApiException as exc:
        return str(exc.body)
    return ""


def test_guard_pod_annotations_only(
    guarded: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, validator_pod("v"))
    as_injector = client.CoreV1Api(guarded)
    core.create_namespaced_pod(namespace, validator_pod("probe"))
    tags = iter(range(1000))

    def change_probe_image() -> str:
        # Each try is a real change: a patch to the image it already has changes nothing.
        image = f"evil/probe:{next(tags)}"
        body = {"spec": {"containers": [{"name": "stellar-core", "image": image}]}}
        return _refused(lambda: as_injector.patch_namespaced_pod("probe", namespace, body))

    # The policy reaches the API server's cache asynchronously: wait until it bites.
    wait_until(change_probe_image, timeout=20, message="the policy to refuse an image change")
    image = {"spec": {"containers": [{"name": "stellar-core", "image": "evil/miner:1"}]}}
    assert "pod annotations only, not the pod spec" in _refused(
        lambda: as_injector.patch_namespaced_pod("v", namespace, image)
    )
    assert "pod annotations only, not labels" in _refused(
        lambda: as_injector.patch_namespaced_pod(
            "v", namespace, {"metadata": {"labels": {"app": "other"}}}
        )
    )
    as_injector.patch_namespaced_pod(
        "v",
        namespace,
        {"metadata": {"annotations": {"stellar.org/peers-observed-hash": "sha256:x"}}},
    )
    stored = core.read_namespaced_pod("v", namespace)
    assert stored.metadata.annotations["stellar.org/peers-observed-hash"] == "sha256:x"
    assert stored.spec.containers[0].image.startswith("stellar/stellar-core")
    # Everyone else is untouched by the policy.
    core.patch_namespaced_pod("v", namespace, image)
    assert core.read_namespaced_pod("v", namespace).spec.containers[0].image == "evil/miner:1"


def test_guard_deployment_template_annotations_only(
    guarded: client.ApiClient, apps: client.AppsV1Api, namespace: str
) -> None:
    labels = {"app": "validator"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "stellar-core", "image": "stellar/stellar-core:22"}]
                    },
                },
            },
        },
    )
    as_injector = client.AppsV1Api(guarded)
    replicas = iter(range(2, 1000))

    def scale() -> str:
        # Each try is a real change: a no-op patch passes any policy.
        body = {"spec": {"replicas": next(replicas)}}
        return _refused(lambda: as_injector.patch_namespaced_deployment("d", namespace, body))

    # Wait until the policy bites on a throwaway change, then check the real ones.
    wait_until(scale, timeout=20, message="the policy to refuse a replica change")
    apps.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 1}})
    image = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "stellar-core", "image": "evil/miner:1"}]}
            }
        }
    }
    assert "template's annotations only" in _refused(
        lambda: as_injector.patch_namespaced_deployment("d", namespace, image)
    )
    assert "template's annotations only" in _refused(
        lambda: as_injector.patch_namespaced_deployment("d", namespace, {"spec": {"replicas": 5}})
    )
    as_injector.patch_namespaced_deployment(
        "d",
        namespace,
        {
            "spec": {
                "template": {"metadata": {"annotations": {"stellar.org/peers-hash": "sha256:y"}}}
            }
        },
    )
    stored = apps.read_namespaced_deployment("d", namespace)
    assert stored.spec.template.metadata.annotations["stellar.org/peers-hash"] == "sha256:y"
    assert stored.spec.replicas == 1
    assert stored.spec.template.spec.containers[0].image == "stellar/stellar-core:22"
