"""The RBAC of manifests/ against the real API server: everything needed, nothing more.

The ServiceAccount, (Cluster)Roles and bindings rendered by `kubectl kustomize
manifests/` are applied with the namespace `stellar-system` rewritten to a test
namespace and the cluster-scoped names made unique. A client authenticated
with a token minted for that ServiceAccount then does every call the service
makes, and is refused the calls it must never be able to make. Access reviews
(self and subject) say the same thing as the real calls.
"""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import ROOT, Cluster, make_namespace
from tests.kube import validator_pod
from tests.polling import wait_until
from webhook import names

SYSTEM = names.SYSTEM_NAMESPACE
SA_NAME = "stellar-peer-injector"
TLS_SECRET = "stellar-peer-injector-tls"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def kustomize(cluster: Cluster, path: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [cluster.kubectl, "kustomize", str(ROOT / path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def localised(doc: dict[str, Any], *, namespace: str, suffix: str) -> dict[str, Any]:
    """`doc` moved from stellar-system into `namespace`, cluster-scoped names made unique."""
    doc = yaml.safe_load(yaml.safe_dump(doc))
    metadata = doc["metadata"]
    if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
        metadata["name"] = f"{metadata['name']}-{suffix}"
    if metadata.get("namespace") == SYSTEM:
        metadata["namespace"] = namespace
    if doc["kind"] == "ClusterRoleBinding":
        doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{suffix}"
    for subject in doc.get("subjects") or ():
        if subject.get("namespace") == SYSTEM:
            subject["namespace"] = namespace
    return doc


@dataclasses.dataclass
class Installed:
    system: str  # the injector's own namespace (stands for stellar-system)
    other: str  # a validators' namespace
    sa_api: client.ApiClient  # authenticated as the ServiceAccount
    user: str
    rbac_docs: list[dict[str, Any]]
    admin: client.ApiClient

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.sa_api)


def _create(admin: client.ApiClient, doc: dict[str, Any]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    core = client.CoreV1Api(admin)
    namespace = doc["metadata"].get("namespace")
    create: dict[str, Callable[..., Any]] = {
        "ServiceAccount": lambda: core.create_namespaced_service_account(namespace, doc),
        "Role": lambda: rbac.create_namespaced_role(namespace, doc),
        "RoleBinding": lambda: rbac.create_namespaced_role_binding(namespace, doc),
        "ClusterRole": lambda: rbac.create_cluster_role(doc),
        "ClusterRoleBinding": lambda: rbac.create_cluster_role_binding(doc),
    }
    create[doc["kind"]]()


def _delete_cluster_scoped(admin: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    for doc in docs:
        name = doc["metadata"]["name"]
        try:
            if doc["kind"] == "ClusterRole":
                rbac.delete_cluster_role(name)
            elif doc["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def token_client(cluster: Cluster, token: str) -> client.ApiClient:
    admin = cluster.api_client.configuration
    configuration = client.Configuration()
    configuration.host = admin.host
    configuration.ssl_ca_cert = admin.ssl_ca_cert
    configuration.verify_ssl = True
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def self_allowed(api: client.ApiClient, **attributes: Any) -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attributes}}
    )
    return bool(review.status.allowed)


def subject_allowed(admin: client.ApiClient, user: str, **attributes: Any) -> bool:
    namespace = user.split(":")[2]
    review = client.AuthorizationV1Api(admin).create_subject_access_review(
        {
            "spec": {
                "user": user,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": attributes,
            }
        }
    )
    return bool(review.status.allowed)


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Installed]:
    admin = cluster.api_client
    core = client.CoreV1Api(admin)
    try:
        rendered = kustomize(cluster, "manifests")
    except RuntimeError as exc:
        pytest.fail(f"kubectl kustomize manifests/ failed: {exc}")
    system = make_namespace(core, "rbac-sys")
    other = make_namespace(core, "rbac-val")
    suffix = uuid.uuid4().hex[:10]
    docs = [
        localised(doc, namespace=system, suffix=suffix)
        for doc in rendered
        if doc["kind"] in RBAC_KINDS
    ]
    assert {d["kind"] for d in docs} == set(RBAC_KINDS), "manifests/ lacks an RBAC object"
    sa_api = None
    try:
        for doc in docs:
            _create(admin, doc)
        token = core.create_namespaced_service_account_token(
            SA_NAME, system, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        sa_api = token_client(cluster, token)
        user = f"system:serviceaccount:{system}:{SA_NAME}"
        # The authorizer learns of new bindings through its informers.
        wait_until(
            lambda: self_allowed(
                sa_api,
                verb="create",
                resource="leases",
                group="coordination.k8s.io",
                namespace=system,
            ),
            timeout=15,
            message="the Role binding to take effect",
        )
        wait_until(
            lambda: self_allowed(sa_api, verb="list", resource="pods"),
            timeout=15,
            message="the ClusterRole binding to take effect",
        )
        yield Installed(
            system=system, other=other, sa_api=sa_api, user=user, rbac_docs=docs, admin=admin
        )
    finally:
        if sa_api is not None:
            sa_api.close()
        _delete_cluster_scoped(admin, docs)
        for namespace in (system, other):
            core.delete_namespace(namespace, propagation_policy="Background")


def expect_forbidden(call: Callable[[], Any]) -> None:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value


def watch_once(list_fn: Callable[..., Any], **kwargs: Any) -> int:
    """Open a watch and read its first chunk; the HTTP status of the stream."""
    response = list_fn(watch=True, timeout_seconds=1, _preload_content=False, **kwargs)
    try:
        return int(response.status)
    finally:
        response.close()


def cm(name: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": dict(names.OWNER_LABELS)}, "data": data or {}}


# --- What the service needs -------------------------------------------------


def test_rbac_lists_and_watches_pods_and_namespaces(installed: Installed) -> None:
    core = installed.core()
    pods = core.list_pod_for_all_namespaces(label_selector=f"{names.INJECTED_LABEL}=true", limit=5)
    assert pods.items is not None
    assert core.list_namespace(label_selector=names.DEFAULT_NAMESPACE_SELECTOR).items is not None
    assert watch_once(core.list_pod_for_all_namespaces) == 200
    assert watch_once(core.list_namespace) == 200
    assert watch_once(core.list_config_map_for_all_namespaces) == 200
    core.read_namespace(installed.other)


def test_rbac_writes_configmaps_in_any_namespace(installed: Installed) -> None:
    core = installed.core()
    for namespace in (installed.system, installed.other):
        core.create_namespaced_config_map(namespace, cm(names.CONFIGMAP_NAME, {"a": "1"}))
        current = core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace)
        current.data = {"a": "2"}
        core.replace_namespaced_config_map(names.CONFIGMAP_NAME, namespace, current)
        core.patch_namespaced_config_map(names.CONFIGMAP_NAME, namespace, {"data": {"b": "3"}})
        assert core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace).data == {
            "a": "2",
            "b": "3",
        }
        core.delete_namespaced_config_map(names.CONFIGMAP_NAME, namespace)


def test_rbac_leases_get_create_update_in_own_namespace_only(installed: Installed) -> None:
    leases = client.CoordinationV1Api(installed.sa_api)
    name = f"lease-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ApiException) as missing:
        leases.read_namespaced_lease(name, installed.system)
    assert missing.value.status == 404
    body = {"metadata": {"name": name}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 5}}
    leases.create_namespaced_lease(installed.system, body)
    lease = leases.read_namespaced_lease(name, installed.system)
    lease.spec.holder_identity = "b"
    leases.replace_namespaced_lease(name, installed.system, lease)
    assert leases.read_namespaced_lease(name, installed.system).spec.holder_identity == "b"
    expect_forbidden(lambda: leases.delete_namespaced_lease(name, installed.system))
    expect_forbidden(lambda: leases.create_namespaced_lease(installed.other, body))
    expect_forbidden(lambda: leases.read_namespaced_lease(name, installed.other))
    expect_forbidden(lambda: leases.list_namespaced_lease(installed.system))


def test_rbac_creates_events(installed: Installed) -> None:
    core = installed.core()
    event = {
        "metadata": {"generateName": "stellar-peers."},
        "involvedObject": {
            "kind": "ConfigMap",
            "name": "stellar-peers",
            "namespace": installed.other,
        },
        "reason": "PeersReloaded",
        "message": "rbac test",
        "type": "Normal",
        "source": {"component": "stellar-peer-injector"},
    }
    created = core.create_namespaced_event(installed.other, event)
    assert created.reason == "PeersReloaded"
    assert self_allowed(
        installed.sa_api,
        verb="create",
        resource="events",
        group="events.k8s.io",
        namespace=installed.other,
    )


def test_rbac_patches_pod_annotations_but_cannot_create_or_delete_pods(
    installed: Installed,
) -> None:
    admin_core = client.CoreV1Api(installed.admin)
    name = f"v-{uuid.uuid4().hex[:6]}"
    admin_core.create_namespaced_pod(installed.other, validator_pod(name))
    core = installed.core()
    patch = {"metadata": {"annotations": {names.OBSERVED_HASH_ANNOTATION: "sha256:00"}}}
    core.patch_namespaced_pod(name, installed.other, patch)
    pod = admin_core.read_namespaced_pod(name, installed.other)
    assert pod.metadata.annotations[names.OBSERVED_HASH_ANNOTATION] == "sha256:00"
    expect_forbidden(lambda: core.delete_namespaced_pod(name, installed.other))
    expect_forbidden(lambda: core.create_namespaced_pod(installed.other, validator_pod("x")))
    expect_forbidden(
        lambda: core.patch_namespaced_pod_status(name, installed.other, {"status": {}})
    )


def test_rbac_lists_stellarnodes_when_the_crd_exists(installed: Installed) -> None:
    apiext = client.ApiextensionsV1Api(installed.admin)
    crd = f"{names.STELLARNODE_PLURAL}.{names.STELLARNODE_GROUP}"
    assert self_allowed(
        installed.sa_api, verb="list", resource=names.STELLARNODE_PLURAL, group=names.GROUP
    )
    assert self_allowed(
        installed.sa_api,
        verb="watch",
        resource="customresourcedefinitions",
        group="apiextensions.k8s.io",
    )
    client.ApiextensionsV1Api(installed.sa_api).list_custom_resource_definition(
        field_selector=f"metadata.name={crd}"
    )
    custom = client.CustomObjectsApi(installed.sa_api)
    if apiext.list_custom_resource_definition(field_selector=f"metadata.name={crd}").items:
        listed = custom.list_cluster_custom_object(
            names.STELLARNODE_GROUP, names.STELLARNODE_VERSION, names.STELLARNODE_PLURAL
        )
        assert "items" in listed
    else:
        # Without the CRD the request is authorized first, then not found: 404, never 403.
        with pytest.raises(ApiException) as absent:
            custom.list_cluster_custom_object(
                names.STELLARNODE_GROUP, names.STELLARNODE_VERSION, names.STELLARNODE_PLURAL
            )
        assert absent.value.status == 404


# --- What it must never do --------------------------------------------------


def _secret(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "stringData": {"key": "value"}}


def test_rbac_secrets_only_its_own_tls_secret_and_lists_in_its_namespace(
    installed: Installed,
) -> None:
    admin_core = client.CoreV1Api(installed.admin)
    admin_core.create_namespaced_secret(installed.other, _secret(TLS_SECRET))
    admin_core.create_namespaced_secret(installed.other, _secret("validator-seed"))
    admin_core.create_namespaced_secret(installed.system, _secret(TLS_SECRET))
    admin_core.create_namespaced_secret(installed.system, _secret("another"))
    core = installed.core()
    assert core.read_namespaced_secret(TLS_SECRET, installed.system).metadata.name == TLS_SECRET
    expect_forbidden(lambda: core.read_namespaced_secret("validator-seed", installed.other))
    expect_forbidden(lambda: core.read_namespaced_secret(TLS_SECRET, installed.other))
    expect_forbidden(lambda: core.read_namespaced_secret("another", installed.system))
    # Link Secrets are found by label: list and watch in its own namespace only.
    core.list_namespaced_secret(installed.system, label_selector="stellar.org/peer-link=true")
    expect_forbidden(lambda: core.list_namespaced_secret(installed.other))
    expect_forbidden(lambda: core.list_secret_for_all_namespaces())
    expect_forbidden(lambda: watch_once(core.list_namespaced_secret, namespace=installed.other))
    # create cannot be limited by resourceNames: any Secret, but only in its own namespace,
    # and it can then neither read nor delete it.
    core.create_namespaced_secret(installed.system, _secret("new"))
    expect_forbidden(lambda: core.read_namespaced_secret("new", installed.system))
    expect_forbidden(lambda: core.create_namespaced_secret(installed.other, _secret("new")))
    expect_forbidden(lambda: core.delete_namespaced_secret(TLS_SECRET, installed.system))


def test_rbac_cannot_write_workloads_namespaces_or_rbac(installed: Installed) -> None:
    apps = client.AppsV1Api(installed.sa_api)
    deployment = {
        "metadata": {"name": "evil"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    expect_forbidden(lambda: apps.create_namespaced_deployment(installed.other, deployment))
    expect_forbidden(lambda: apps.delete_namespaced_deployment("x", installed.other))
    expect_forbidden(lambda: apps.create_namespaced_daemon_set(installed.other, deployment))
    core = installed.core()
    expect_forbidden(
        lambda: core.patch_namespace(installed.other, {"metadata": {"labels": {"a": "b"}}})
    )
    expect_forbidden(lambda: core.delete_namespace(installed.other))
    expect_forbidden(lambda: core.create_namespace({"metadata": {"name": "evil-ns"}}))
    expect_forbidden(
        lambda: core.create_namespaced_service_account(
            installed.system, {"metadata": {"name": "x"}}
        )
    )
    expect_forbidden(
        lambda: core.create_namespaced_service_account_token(
            SA_NAME, installed.system, {"spec": {}}
        )
    )
    rbac = client.RbacAuthorizationV1Api(installed.sa_api)
    role = next(d for d in installed.rbac_docs if d["kind"] == "ClusterRole")
    expect_forbidden(
        lambda: rbac.create_cluster_role_binding(
            {
                "metadata": {"name": f"evil-{uuid.uuid4().hex[:6]}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "User", "name": "evil"}],
            }
        )
    )
    expect_forbidden(lambda: rbac.patch_cluster_role(role["metadata"]["name"], {"rules": []}))
    expect_forbidden(
        lambda: core.create_namespaced_service(
            installed.other, {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 1}]}}
        )
    )
    admreg = client.AdmissionregistrationV1Api(installed.sa_api)
    expect_forbidden(
        lambda: admreg.create_mutating_webhook_configuration(
            {"metadata": {"name": f"evil-{uuid.uuid4().hex[:6]}"}, "webhooks": []}
        )
    )
    expect_forbidden(lambda: admreg.list_validating_webhook_configuration())


@pytest.mark.parametrize(
    ("attributes", "allowed"),
    [
        ({"verb": "list", "resource": "pods"}, True),
        ({"verb": "watch", "resource": "namespaces"}, True),
        ({"verb": "create", "resource": "configmaps", "namespace": "{other}"}, True),
        ({"verb": "delete", "resource": "configmaps", "namespace": "{other}"}, True),
        (
            {
                "verb": "update",
                "resource": "leases",
                "group": "coordination.k8s.io",
                "namespace": "{system}",
            },
            True,
        ),
        ({"verb": "create", "resource": "events", "namespace": "{other}"}, True),
        ({"verb": "patch", "resource": "pods", "namespace": "{other}"}, True),
        ({"verb": "list", "resource": "stellarnodes", "group": "stellar.org"}, True),
        (
            {
                "verb": "patch",
                "resource": "mutatingwebhookconfigurations",
                "group": "admissionregistration.k8s.io",
                "name": "stellar-peer-injector",
            },
            True,
        ),
        (
            {"verb": "create", "resource": "pods", "subresource": "exec", "namespace": "{other}"},
            False,
        ),
        ({"verb": "get", "resource": "pods", "subresource": "exec", "namespace": "{other}"}, False),
        ({"verb": "get", "resource": "secrets", "namespace": "{other}"}, False),
        ({"verb": "list", "resource": "secrets", "namespace": "{system}"}, True),
        ({"verb": "list", "resource": "secrets", "namespace": "{other}"}, False),
        ({"verb": "get", "resource": "secrets", "namespace": "{system}", "name": TLS_SECRET}, True),
        (
            {"verb": "create", "resource": "deployments", "group": "apps", "namespace": "{other}"},
            False,
        ),
        ({"verb": "delete", "resource": "pods", "namespace": "{other}"}, False),
        ({"verb": "patch", "resource": "namespaces", "name": "{other}"}, False),
        (
            {
                "verb": "create",
                "resource": "leases",
                "group": "coordination.k8s.io",
                "namespace": "{other}",
            },
            False,
        ),
        (
            {
                "verb": "patch",
                "resource": "mutatingwebhookconfigurations",
                "group": "admissionregistration.k8s.io",
                "name": "someone-elses",
            },
            False,
        ),
        (
            {"verb": "escalate", "resource": "clusterroles", "group": "rbac.authorization.k8s.io"},
            False,
        ),
        ({"verb": "impersonate", "resource": "serviceaccounts"}, False),
        (
            {
                "verb": "create",
                "resource": "pods",
                "subresource": "portforward",
                "namespace": "{other}",
            },
            False,
        ),
        ({"verb": "get", "resource": "nodes", "subresource": "proxy"}, False),
    ],
)
def test_rbac_access_reviews_agree(
    installed: Installed, attributes: dict[str, str], allowed: bool
) -> None:
    filled = {
        key: value.format(system=installed.system, other=installed.other)
        for key, value in attributes.items()
    }
    assert self_allowed(installed.sa_api, **filled) is allowed
    assert subject_allowed(installed.admin, installed.user, **filled) is allowed


def test_rbac_cannot_exec_into_pods(installed: Installed) -> None:
    admin_core = client.CoreV1Api(installed.admin)
    name = f"v-{uuid.uuid4().hex[:6]}"
    admin_core.create_namespaced_pod(installed.other, validator_pod(name))
    core = installed.core()
    # The POST form of exec: refused by authorization before anything reaches a node.
    with pytest.raises(ApiException) as caught:
        core.connect_post_namespaced_pod_exec(
            name, installed.other, command=["true"], stdout=True, _preload_content=False
        )
    assert caught.value.status == 403


def test_rbac_exec_overlay_grants_exec(cluster: Cluster, installed: Installed) -> None:
    try:
        rendered = kustomize(cluster, "manifests/overlays/exec")
    except RuntimeError as exc:
        pytest.skip(f"manifests/overlays/exec does not build: {str(exc)[:200]}")
    suffix = f"exec-{uuid.uuid4().hex[:8]}"
    docs = [
        localised(doc, namespace=installed.system, suffix=suffix)
        for doc in rendered
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding")
    ]
    try:
        for doc in docs:
            _create(installed.admin, doc)
        wait_until(
            lambda: self_allowed(
                installed.sa_api,
                verb="create",
                resource="pods",
                subresource="exec",
                namespace=installed.other,
            ),
            timeout=15,
            message="pods/exec to be allowed by the exec overlay",
        )
        assert subject_allowed(
            installed.admin,
            installed.user,
            verb="get",
            resource="pods",
            subresource="exec",
            namespace=installed.other,
        )
    finally:
        _delete_cluster_scoped(installed.admin, docs)


def test_rbac_policy_mode_keeps_only_its_own_policy(installed: Installed) -> None:
    """As the ServiceAccount: the keeper's whole pass in policy mode, then in webhook mode
    (which keeps the policy: no webhook configuration is in force), then its removal;
    a policy of another name can be neither read, changed nor deleted. One pass
    (`sync_once`, a named seam: docs/development.md) is what the rights are for."""
    from webhook.controllers.admission_policy import remove_policy, sync_once
    from webhook.core.injection import policy
    from webhook.kube.rest import Rest, path
    from webhook.settings import Settings

    settings = Settings(
        namespace=installed.system,
        # the manifests' name, which RBAC names; a selector no other test's namespace has
        namespace_selector=f"stellar-rbac-policy={uuid.uuid4().hex[:10]}",
        webhook_config_name="stellar-peer-injector",
    )
    rest = Rest(installed.sa_api)
    api = f"{policy.GROUP}/v1"
    try:
        done = sync_once(rest, settings, "policy")
        assert f"created {policy.POLICY_RESOURCE}" in done
        assert f"created {policy.BINDING_RESOURCE}" in done
        assert sync_once(rest, settings, "policy") == []
        for name in ("someone-elses", "stellar-peer-injector-2"):
            for verb in ("get", "update", "delete"):
                assert not self_allowed(
                    installed.sa_api,
                    verb=verb,
                    group=policy.GROUP,
                    resource=policy.POLICY_RESOURCE,
                    name=name,
                )
        assert sync_once(rest, settings, "webhook") == []  # no webhook in force: kept
        assert sorted(remove_policy(rest, settings)) == sorted(
            [f"deleted {policy.BINDING_RESOURCE}", f"deleted {policy.POLICY_RESOURCE}"]
        )
    finally:
        admin = Rest(installed.admin)
        for plural in (policy.BINDING_RESOURCE, policy.POLICY_RESOURCE):
            try:
                admin.delete(path(api, plural, name="stellar-peer-injector"))
            except ApiException as exc:
                if exc.status != 404:
                    raise
