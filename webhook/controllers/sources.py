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
from webhook.core.peerset.advertised import KIND_CLUSTER_NODE, KIND_EXPOSED_SERVICE
from webhook.core.publishing.watched import (
    KIND_CONFIGMAP,
    KIND_NAMESPACE,
    KIND_NODE_POD,
    KIND_POD,
    KIND_SERVICE,
    KIND_STELLARNODE,
    NODE_NAME_LABEL,
    NODE_NAME_VALUE,
)
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

CRD_NAME = f"{names.STELLARNODE_PLURAL}.{names.STELLARNODE_GROUP}"
BASE_SOURCES = frozenset({"pods", "namespaces", "configmaps", "crds", "exposed-services", "nodes"})
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
    rest = Rest(api_client)
    return [
        Source(
            "pods",
            KIND_POD,
            rest.lister(path("v1", "pods")),
            {"label_selector": f"{names.INJECTED_LABEL}=true"},
        ),
        Source(
            "namespaces",
            KIND_NAMESPACE,
            rest.lister(path("v1", "namespaces")),
            {"label_selector": settings.namespace_selector},
        ),
        Source(
            "configmaps",
            KIND_CONFIGMAP,
            rest.lister(path("v1", "configmaps")),
            {"field_selector": f"metadata.name={names.CONFIGMAP_NAME}"},
        ),
        *exposure_sources(rest),
    ]


def exposure_sources(rest: Rest) -> list[Source]:
    """Services and Nodes, for advertised addresses (`webhook.core.peerset.advertised`). Not
    holding: without them validators are only published without an advertised address."""
    return [
        Source("exposed-services", KIND_EXPOSED_SERVICE, rest.lister(path("v1", "services"))),
        Source("nodes", KIND_CLUSTER_NODE, rest.lister(path("v1", "nodes"))),
    ]


def crd_source(api_client: client.ApiClient) -> Source:
    """The StellarNode CRD alone: its presence turns the StellarNode sources on and off."""
    return Source(
        "crds",
        "CustomResourceDefinition",
        Rest(api_client).lister(path("apiextensions.k8s.io/v1", "customresourcedefinitions")),
        {"field_selector": f"metadata.name={CRD_NAME}"},
    )


def node_sources(api_client: client.ApiClient) -> list[Source]:
    """StellarNodes, the pods their operator runs, and the Services in front of them."""
    rest = Rest(api_client)
    stellarnodes = path(
        f"{names.STELLARNODE_GROUP}/{names.STELLARNODE_VERSION}", names.STELLARNODE_PLURAL
    )
    return [
        Source(
            "stellarnodes",
            KIND_STELLARNODE,
            rest.lister(stellarnodes),
        ),
        Source(
            "stellarnode-pods",
            KIND_NODE_POD,
            rest.lister(path("v1", "pods")),
            {"label_selector": f"{NODE_NAME_LABEL}={NODE_NAME_VALUE}"},
        ),
        Source("services", KIND_SERVICE, rest.lister(path("v1", "services"))),
    ]
