"""`stellar-peers link` and `unlink`: the two ends of a link between clusters.

`link --cluster-name NAME`, run against the cluster to be linked (its kubeconfig),
makes there a ServiceAccount, a Role that may only get, list and watch the
ConfigMap `<namespace>/stellar-peers` (by `resourceNames`), their RoleBinding and
a token Secret, waits for the token, and prints the link Secret to apply in the
other cluster (the shape of `linkerd multicluster link`). `unlink` removes those
objects there and, given `--local-kubeconfig`, the link Secret here.
"""

from __future__ import annotations

import base64
import sys
import time
from typing import Any, Final, TextIO

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.core.peerset.links import KEY_NAMESPACE
from webhook.kube import api as kube
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

ACCOUNT: Final = "stellar-peers-link"
# The token Secret's name (not a credential itself).
TOKEN_OBJECT: Final = "stellar-peers-link-token"  # noqa: S105
TOKEN_WAIT_SECONDS: Final = 30.0
RBAC: Final = "rbac.authorization.k8s.io/v1"


class LinkCommandError(Exception):
    """The link could not be made or removed; the message says what to do."""


_FAILURES: tuple[type[BaseException], ...] = (LinkCommandError, *kube.FAILURES)


def link_secret_name(cluster: str) -> str:
    return f"stellar-peers-link-{cluster}"


def objects(namespace: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(api, plural, body) of what `link` makes in the linked cluster, in creation order."""
    meta = {"name": ACCOUNT, "namespace": namespace, "labels": dict(names.OWNER_LABELS)}
    return [
        ("v1", "serviceaccounts", {"metadata": meta}),
        (
            RBAC,
            "roles",
            {
                "metadata": meta,
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "resourceNames": [names.CONFIGMAP_NAME],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            },
        ),
        (
            RBAC,
            "rolebindings",
            {
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": ACCOUNT,
                },
                "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
            },
        ),
        (
            "v1",
            "secrets",
            {
                "metadata": {
                    **meta,
                    "name": TOKEN_OBJECT,
                    "annotations": {"kubernetes.io/service-account.name": ACCOUNT},
                },
                "type": "kubernetes.io/service-account-token",
            },
        ),
    ]


def link_secret(
    *, cluster: str, server: str, ca_data: str, token: str, namespace: str, into: str
) -> dict[str, Any]:
    """The Secret to apply in the other cluster: `cluster`, `kubeconfig`, `namespace`."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": ACCOUNT}}],
        "current-context": cluster,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": link_secret_name(cluster),
            "namespace": into,
            "labels": {names.LINK_LABEL: "true"},
        },
        "type": "Opaque",
        "stringData": {
            names.LINK_KEY_CLUSTER: cluster,
            names.LINK_KEY_KUBECONFIG: yaml.safe_dump(kubeconfig, sort_keys=False),
            KEY_NAMESPACE: namespace,
        },
    }


def _create(rest: Rest, api: str, plural: str, body: dict[str, Any], namespace: str) -> None:
    try:
        rest.create(path(api, plural, namespace=namespace), body)
    except ApiException as exc:
        if exc.status != 409:
            raise LinkCommandError(
                f"creating {plural}/{body['metadata']['name']}: {kube.describe_failure(exc)}"
            ) from exc


def make_link(
    api_client: client.ApiClient, *, cluster: str, namespace: str, into: str, server: str = ""
) -> dict[str, Any]:
    """Make the linked end and answer the link Secret for the other cluster."""
    rest = Rest(api_client)
    for api, plural, body in objects(namespace):
        _create(rest, api, plural, body, namespace)
    token_path = path("v1", "secrets", namespace=namespace, name=TOKEN_OBJECT)
    deadline = time.monotonic() + TOKEN_WAIT_SECONDS
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        data = rest.get(token_path).get("data") or {}
        if data.get("token") and data.get("ca.crt"):
            break
        time.sleep(0.2)
    else:
        raise LinkCommandError(
            f"the token Secret {namespace}/{TOKEN_OBJECT} got no token within "
            f"{TOKEN_WAIT_SECONDS:g}s: is kube-controller-manager's token controller running?"
        )
    return link_secret(
        cluster=cluster,
        server=server or str(api_client.configuration.host),
        ca_data=str(data["ca.crt"]),
        token=base64.b64decode(str(data["token"])).decode(),
        namespace=namespace,
        into=into,
    )


def remove_link(api_client: client.ApiClient, *, namespace: str) -> list[str]:
    """Delete what `link` made in the linked cluster; answer what was deleted."""
    rest = Rest(api_client)
    gone = []
    for api, plural, body in reversed(objects(namespace)):
        name = body["metadata"]["name"]
        try:
            rest.delete(path(api, plural, namespace=namespace, name=name))
            gone.append(f"{plural}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise LinkCommandError(
                    f"deleting {plural}/{name}: {kube.describe_failure(exc)}"
                ) from exc
    return gone


def run_link(settings: Settings, *, into: str, server: str, out: TextIO = sys.stdout) -> int:
    try:
        secret = make_link(
            kube.api_client(settings),
            cluster=settings.cluster_name,
            namespace=settings.namespace,
            into=into,
            server=server,
        )
    except _FAILURES as exc:
        print(f"stellar-peers link: {exc}", file=sys.stderr)
        return 1
    out.write(yaml.safe_dump(secret, sort_keys=False))
    return 0


def run_unlink(
    settings: Settings, *, into: str, local_kubeconfig: str, out: TextIO = sys.stdout
) -> int:
    try:
        for gone in remove_link(kube.api_client(settings), namespace=settings.namespace):
            out.write(f"deleted {gone} in the linked cluster\n")
        name = link_secret_name(settings.cluster_name)
        if not local_kubeconfig:
            out.write(f"now delete the link Secret here: kubectl -n {into} delete secret {name}\n")
            return 0
        local = Settings(kubeconfig=local_kubeconfig)
        try:
            Rest(kube.api_client(local)).delete(path("v1", "secrets", namespace=into, name=name))
            out.write(f"deleted secrets/{name} in {into}\n")
        except ApiException as exc:
            if exc.status != 404:
                raise
    except _FAILURES as exc:
        print(f"stellar-peers unlink: {exc}", file=sys.stderr)
        return 1
    return 0
