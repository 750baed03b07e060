"""Peers as plain values: what a peer is, and how a set of them is ordered and hashed.

A peer comes from an injected pod, a StellarNode or a static `host:port`;
it carries its network and node key where known (`webhook.core.peerset.networks`
decides them). No I/O here: everything takes and returns dicts.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from webhook import names
from webhook.address import is_dns_label, is_dns_name, static_address, static_peer_text
from webhook.core.admin_protocol import is_peer_host, network_name
from webhook.core.injection import mutation
from webhook.core.pod import (
    as_dict,
    as_str,
    is_running,
    label_network,
    peer_ip,
    peer_port,
    pod_ip,
    port_number,
    target_container,
)
from webhook.settings import Settings

Source = Literal["pod", "stellarnode", "static", "remote"]
Obj = Mapping[str, Any]


@dataclass(frozen=True, order=True)
class Peer:
    namespace: str
    name: str
    node_type: str
    ip: str  # an IP address, or a DNS name for static peers
    port: int
    source: Source
    network: str = ""  # a network name (`testnet`); "" while not known
    public_key: str = ""  # the node's full `G...` key, once learned
    home_domain: str = ""  # from the pod's `stellar.org/home-domain` annotation
    advertised: str = ""  # `host:port` nodes outside the cluster dial (`core.advertised`)
    cluster: str = ""  # the cluster that owns it: `cluster_name`, or a link's cluster

    @property
    def peer_string(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class PeerSet:
    """Peers sorted by namespace then name; `hash` is `sha256:<hex>` of peers.txt."""

    peers: tuple[Peer, ...]

    # Computed once per set: a reload round asks every node for them.
    @functools.cached_property
    def strings(self) -> tuple[str, ...]:
        return tuple(sorted({p.peer_string for p in self.peers}))

    @functools.cached_property
    def by_address(self) -> tuple[tuple[str, Peer], ...]:
        """(`ip:port`, peer) pairs sorted by address."""
        return tuple(sorted(((p.peer_string, p) for p in self.peers), key=lambda pair: pair[0]))

    @functools.cached_property
    def text(self) -> str:
        return "".join(f"{s}\n" for s in self.strings)

    @functools.cached_property
    def hash(self) -> str:
        return text_hash(self.text)

    @functools.cached_property
    def by_network(self) -> dict[str, PeerSet]:
        """One set per network (`unknown` for peers of none), each in this set's order;
        computed once per set: a reload round asks it for every node."""
        grouped: dict[str, list[Peer]] = {}
        for peer in self.peers:
            grouped.setdefault(peer.network or names.UNKNOWN_NETWORK, []).append(peer)
        return {network: PeerSet(tuple(members)) for network, members in sorted(grouped.items())}


def text_hash(text: str) -> str:
    """`sha256:<hex>` of a `peers.txt`: the set's hash, its ConfigMap's `stellar.org/peers-hash`."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def pod_peer_port(pod: Obj) -> int | None:
    """The target container's peer port by `webhook.core.pod.peer_port`.

    An annotation that is no port makes the pod no peer (None): publishing a
    guessed port would send every node to a port nobody listens on.
    """
    annotations = as_dict(as_dict(pod.get("metadata")).get("annotations"))
    return peer_port(target_container(pod), annotations)


def pod_peer(pod: Obj) -> Peer | None:
    """The peer a pod stands for while its node's container runs (`is_running`, Ready or
    not) and it has an IP."""
    metadata = as_dict(pod.get("metadata"))
    name, namespace = as_str(metadata.get("name")), as_str(metadata.get("namespace"))
    ip = pod_ip(pod)
    if not (name and namespace and ip and is_running(pod)):
        return None
    port = pod_peer_port(pod)
    if port is None:
        return None
    labels = as_dict(metadata.get("labels"))
    node_type = as_str(labels.get(names.NODE_TYPE_LABEL)) or "validator"
    annotations = as_dict(metadata.get("annotations"))
    domain = as_str(annotations.get(names.HOME_DOMAIN_ANNOTATION)).strip().lower()
    return Peer(
        namespace=namespace,
        name=name,
        node_type=node_type,
        ip=ip,
        port=port,
        source="pod",
        network=label_network(pod),
        home_domain=domain if is_dns_name(domain) else "",
    )


def stellarnode_peer(
    node: Obj, *, running_pod_ip: str | None, service_ip: str | None
) -> Peer | None:
    """A StellarNode that is an active validator, at its running pod (Ready or not) or Service."""
    metadata, spec = as_dict(node.get("metadata")), as_dict(node.get("spec"))
    name, namespace = as_str(metadata.get("name")), as_str(metadata.get("namespace"))
    if not (name and namespace) or as_str(spec.get("nodeType")).lower() != "validator":
        return None
    if spec.get("suspended") is True:
        return None
    ip = peer_ip(running_pod_ip) or peer_ip(service_ip)
    if ip is None:
        return None
    config = as_dict(spec.get("validatorConfig"))
    port = port_number(config["peerPort"]) if "peerPort" in config else names.DEFAULT_PEER_PORT
    if port is None:
        return None
    return Peer(
        namespace=namespace,
        name=name,
        node_type="validator",
        ip=ip,
        port=port,
        source="stellarnode",
        network=stellarnode_network(spec),
    )


def stellarnode_network(spec: Obj) -> str:
    """`spec.network` as a name, or the name of the passphrase it (or `networkPassphrase`) holds."""
    network = as_str(spec.get("network"))
    if is_dns_label(network):
        return network
    passphrase = network or as_str(spec.get("networkPassphrase"))
    return network_name(passphrase) if passphrase else ""


def static_peer(text: str) -> Peer:
    """Parse `host:port[@network]` (IPv4, RFC 1123 DNS name, or `[IPv6]:port`), or raise
    ValueError."""
    address, network = static_peer_text(text)
    ip, port = static_address(address)
    return Peer(
        namespace="",
        name=address,
        node_type="validator",
        ip=ip,
        port=port,
        source="static",
        network=network,
    )


def dialable_static_peers(texts: Iterable[str]) -> tuple[tuple[Peer, ...], tuple[str, ...]]:
    """(the static peers a node can be told of, the IPv6 ones left out): stellar-core
    dials IPv4 and names only (`admin_protocol.is_peer_host`), so an IPv6 one is never
    published."""
    peers = [static_peer(text) for text in texts]
    kept = tuple(p for p in peers if is_peer_host(p.ip))
    return kept, tuple(p.name for p in peers if not is_peer_host(p.ip))


def admitted_uninjected(pod: Obj, *, settings: Settings) -> bool:
    """A live validator the webhook would inject now but that carries no injection.

    Such a pod was admitted while the webhook was unreachable (failurePolicy
    Ignore): it runs without a peer list until it is recreated.
    """
    metadata = as_dict(pod.get("metadata"))
    if metadata.get("deletionTimestamp") or as_dict(pod.get("status")).get("phase") in (
        "Succeeded",
        "Failed",
    ):
        return False
    if as_dict(metadata.get("labels")).get(names.INJECTED_LABEL) == "true":
        return False
    return mutation.decide(pod, settings=settings).inject
