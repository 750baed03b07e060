"""What the peer watcher watches: one `Source` per resource, with its filters.

The base sources feed every peer set; the StellarNode sources are watched
only while the StellarNode CRD exists (the watcher follows the CRD itself to
know). Which sources hold publishing back when they cannot list is decided
here too, beside the list of what there is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from webhook import names
from webhook.core.watched import (
    KIND_CONFIGMAP,
    KIND_NAMESPACE,
    KIND_NODE_POD,
    KIND_POD,
    KIND_SERVICE,
    KIND_STELLARNODE,
    NODE_NAME_LABEL,
    NODE_NAME_VALUE,
)
from webhook.settings import Settings

CRD_NAME = f"{names.STELLARNODE_PLURAL}.{names.STELLARNODE_GROUP}"
BASE_SOURCES = frozenset({"pods", "namespaces", "configmaps", "crds"})
NODE_SOURCES = frozenset({"stellarnodes", "stellarnode-pods", "services"})
# Without one of these the peer set or the mirror plan would be wrong: no writes meanwhile.
HOLDING_SOURCES = frozenset({"pods", "namespaces", "configmaps"})


@dataclass(frozen=True)
class Source:
    """One watched resource: what to call, with which filters, and the state kind it feeds."""

    name: str
    kind: str
    list_fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def base_sources(api_client: client.ApiClient, settings: Settings) -> list[Source]:
    """Injected pods, enabled namespaces and the `stellar-peers` ConfigMaps."""
    core = client.CoreV1Api(api_client)
    return [
        Source(
            "pods",
            KIND_POD,
            core.list_pod_for_all_namespaces,
            {"label_selector": f"{names.INJECTED_LABEL}=true"},
        ),
        Source(
            "namespaces",
            KIND_NAMESPACE,
            core.list_namespace,
            {"label_selector": settings.namespace_selector},
        ),
        Source(
            "configmaps",
            KIND_CONFIGMAP,
            core.list_config_map_for_all_namespaces,
            {"field_selector": f"metadata.name={names.CONFIGMAP_NAME}"},
        ),
    ]


def crd_source(api_client: client.ApiClient) -> Source:
    """The StellarNode CRD alone: its presence turns the StellarNode sources on and off."""
    apiext = client.ApiextensionsV1Api(api_client)
    return Source(
        "crds",
        "CustomResourceDefinition",
        apiext.list_custom_resource_definition,
        {"field_selector": f"metadata.name={CRD_NAME}"},
    )


def node_sources(api_client: client.ApiClient) -> list[Source]:
    """StellarNodes, the pods their operator runs, and the Services in front of them."""
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    return [
        Source(
            "stellarnodes",
            KIND_STELLARNODE,
            custom.list_cluster_custom_object,
            {
                "group": names.STELLARNODE_GROUP,
                "version": names.STELLARNODE_VERSION,
                "plural": names.STELLARNODE_PLURAL,
            },
        ),
        Source(
            "stellarnode-pods",
            KIND_NODE_POD,
            core.list_pod_for_all_namespaces,
            {"label_selector": f"{NODE_NAME_LABEL}={NODE_NAME_VALUE}"},
        ),
        Source("services", KIND_SERVICE, core.list_service_for_all_namespaces),
    ]
