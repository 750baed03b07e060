"""Advertised addresses: the `host:port` nodes outside this cluster dial for a validator.

DESIGN.md's order, first match wins: the pod annotation
`stellar.org/advertised-address`; a LoadBalancer or NodePort Service that
selects this pod alone and exposes its peer port; a hostNetwork pod or a
hostPort on the peer port (the node's ExternalIP, else InternalIP). stellar-core
announces PEER_PORT, so an exposed port that differs from it, several Services
for one pod, or a LoadBalancer still pending are reported (`Exposure.problem`)
and nothing is guessed. No I/O here: trimmed dicts in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook import names
from webhook.address import static_address
from webhook.core.admin_protocol import is_peer_host
from webhook.core.pod import as_dict, as_list, as_str, port_number, target_container

Obj = Mapping[str, Any]

# State kinds the watcher keeps for this decision (beside `webhook.core.publishing.watched`'s).
KIND_EXPOSED_SERVICE = "ExposedService"  # every Service; only LoadBalancer/NodePort kept whole
KIND_CLUSTER_NODE = "ClusterNode"  # Nodes, trimmed to their addresses
EXPOSING_TYPES = ("LoadBalancer", "NodePort")
_PORT_FIELDS = ("name", "port", "targetPort", "nodePort", "protocol")


@dataclass(frozen=True)
class Exposure:
    """A validator's advertised `host:port` ("" when none), how it was found, and what is
    wrong when an exposure exists but cannot be used."""

    address: str = ""
    via: str = ""  # annotation, Service ns/name, hostNetwork or hostPort
    problem: str = ""


def trim_service(obj: Obj) -> dict[str, Any]:
    """What the decision reads of a Service: type, selector, ports, load-balancer ingress."""
    metadata, spec = as_dict(obj.get("metadata")), as_dict(obj.get("spec"))
    meta = {"name": as_str(metadata.get("name")), "namespace": as_str(metadata.get("namespace"))}
    kind = as_str(spec.get("type")) or "ClusterIP"
    if kind not in EXPOSING_TYPES:
        return {"kind": KIND_EXPOSED_SERVICE, "metadata": meta, "spec": {"type": kind}}
    ports = [
        {k: v for k, v in as_dict(p).items() if k in _PORT_FIELDS}
        for p in as_list(spec.get("ports"))
    ]
    ingress = [
        {k: v for k, v in as_dict(i).items() if k in ("ip", "hostname")}
        for i in as_list(as_dict(as_dict(obj.get("status")).get("loadBalancer")).get("ingress"))
    ]
    return {
        "kind": KIND_EXPOSED_SERVICE,
        "metadata": meta,
        "spec": {
            "type": kind,
            "selector": dict(as_dict(spec.get("selector"))),
            "ports": ports,
            "externalTrafficPolicy": spec.get("externalTrafficPolicy"),
        },
        "status": {"ingress": ingress},
    }


def trim_node(obj: Obj) -> dict[str, Any]:
    """A Node's name and addresses."""
    metadata = as_dict(obj.get("metadata"))
    addresses = [
        {"type": as_str(as_dict(a).get("type")), "address": as_str(as_dict(a).get("address"))}
        for a in as_list(as_dict(obj.get("status")).get("addresses"))
    ]
    return {
        "kind": KIND_CLUSTER_NODE,
        "metadata": {"name": as_str(metadata.get("name")), "namespace": ""},
        "status": {"addresses": addresses},
    }


def node_address(node: Obj | None) -> str:
    """The node's ExternalIP, else its InternalIP ("" when it has neither)."""
    addresses = as_list(as_dict(as_dict(node).get("status")).get("addresses"))
    for wanted in ("ExternalIP", "InternalIP"):
        for address in addresses:
            if as_dict(address).get("type") == wanted and as_str(as_dict(address).get("address")):
                return as_str(as_dict(address).get("address"))
    return ""


def _selects(service: Obj, pod: Obj) -> bool:
    selector = as_dict(as_dict(service.get("spec")).get("selector"))
    labels = as_dict(as_dict(pod.get("metadata")).get("labels"))
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _peer_port_name(pod: Obj, peer_port: int) -> str:
    for port in as_list(as_dict(target_container(pod)).get("ports")):
        if port_number(as_dict(port).get("containerPort")) == peer_port:
            return as_str(as_dict(port).get("name"))
    return ""


def _exposing_port(service: Obj, pod: Obj, peer_port: int) -> Mapping[str, Any] | None:
    """The Service port whose target is the pod's peer port, if any."""
    port_name = _peer_port_name(pod, peer_port)
    for port in as_list(as_dict(service.get("spec")).get("ports")):
        port = as_dict(port)
        if as_str(port.get("protocol") or "TCP") != "TCP":
            continue
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            if port_name and target == port_name:
                return port
        elif port_number(target) == peer_port:
            return port
    return None


def exposure(
    pod: Obj,
    *,
    peer_port: int,
    services: Iterable[Obj] = (),
    siblings: Iterable[Obj] = (),
    nodes: Mapping[str, Obj] | None = None,
) -> Exposure:
    """The advertised address of one validator pod; `services` and `siblings` (the other
    validator pods) are those of its namespace, `nodes` by name."""
    metadata = as_dict(pod.get("metadata"))
    name = as_str(metadata.get("name"))
    annotated = as_str(
        as_dict(metadata.get("annotations")).get(names.ADVERTISED_ADDRESS_ANNOTATION)
    )
    if annotated:
        return _annotated(annotated.strip())
    others = [s for s in siblings if as_str(as_dict(s.get("metadata")).get("name")) != name]
    found = []
    for service in services:
        spec = as_dict(service.get("spec"))
        if spec.get("type") not in EXPOSING_TYPES or not _selects(service, pod):
            continue
        if any(_selects(service, other) for other in others):
            continue  # selects more than this pod: not this validator's own Service
        port = _exposing_port(service, pod, peer_port)
        if port is not None:
            found.append((service, port))
    node = (nodes or {}).get(as_str(as_dict(pod.get("spec")).get("nodeName")))
    if len(found) > 1:
        listed = ", ".join(sorted(_name(s) for s, _ in found))
        return Exposure(
            problem=f"several Services expose this pod's peer port ({listed}): "
            f"keep one, or set the annotation {names.ADVERTISED_ADDRESS_ANNOTATION}"
        )
    if found:
        return _from_service(*found[0], peer_port=peer_port, node=node)
    return _from_host(pod, peer_port=peer_port, node=node)


def _name(service: Obj) -> str:
    metadata = as_dict(service.get("metadata"))
    return f"{as_str(metadata.get('namespace'))}/{as_str(metadata.get('name'))}"


def _annotated(text: str) -> Exposure:
    via = "annotation"
    try:
        host, port = static_address(text)
    except ValueError as exc:
        return Exposure(
            via=via,
            problem=f"annotation {names.ADVERTISED_ADDRESS_ANNOTATION}={text!r} is not "
            f"host:port ({exc}); give an IPv4 address or DNS name and the peer port",
        )
    if not is_peer_host(host):
        return Exposure(
            via=via, problem=f"annotation {text!r}: stellar-core dials IPv4 and DNS names only"
        )
    return Exposure(address=f"{host}:{port}", via=via)


def _from_service(service: Obj, port: Obj, *, peer_port: int, node: Obj | None) -> Exposure:
    via = f"Service {_name(service)}"
    if as_dict(service.get("spec")).get("type") == "LoadBalancer":
        exposed = port_number(port.get("port"))
        if exposed != peer_port:
            return Exposure(via=via, problem=_port_problem(via, "port", exposed, peer_port))
        ingress = [as_dict(i) for i in as_list(as_dict(service.get("status")).get("ingress"))]
        hosts = [as_str(i.get("ip")) or as_str(i.get("hostname")) for i in ingress]
        hosts = [h for h in hosts if h]
        if not hosts:
            return Exposure(
                via=via,
                problem=f"{via} (LoadBalancer) is pending: no ingress IP or hostname yet",
            )
        return Exposure(address=f"{hosts[0]}:{peer_port}", via=via)
    exposed = port_number(port.get("nodePort"))
    if exposed != peer_port:
        return Exposure(via=via, problem=_port_problem(via, "nodePort", exposed, peer_port))
    return _on_node(node, port=peer_port, via=via)


def _port_problem(via: str, field: str, exposed: int | None, peer_port: int) -> str:
    return (
        f"{via} exposes the peer port as {field} {exposed}, but stellar-core announces "
        f"PEER_PORT {peer_port}: set the {field} to {peer_port}, or set the annotation "
        f"{names.ADVERTISED_ADDRESS_ANNOTATION}"
    )


def _from_host(pod: Obj, *, peer_port: int, node: Obj | None) -> Exposure:
    if as_dict(pod.get("spec")).get("hostNetwork") is True:
        return _on_node(node, port=peer_port, via="hostNetwork")
    for port in as_list(as_dict(target_container(pod)).get("ports")):
        port = as_dict(port)
        if port_number(port.get("containerPort")) != peer_port or "hostPort" not in port:
            continue
        host_port = port_number(port.get("hostPort"))
        if host_port != peer_port:
            return Exposure(
                via="hostPort",
                problem=_port_problem("the container", "hostPort", host_port, peer_port),
            )
        return _on_node(node, port=peer_port, via="hostPort")
    return Exposure()


def _on_node(node: Obj | None, *, port: int, via: str) -> Exposure:
    address = node_address(node)
    if not address:
        return Exposure(
            via=via,
            problem=f"{via}: the pod's node has no ExternalIP or InternalIP the injector can "
            "see (is it scheduled, and may the injector list nodes?)",
        )
    return Exposure(address=f"{address}:{port}", via=via)


def exposures(
    pods: Iterable[tuple[Obj, int]],
    *,
    services: Iterable[Obj],
    nodes: Iterable[Obj],
) -> dict[tuple[str, str], Exposure]:
    """Each (pod, peer port)'s exposure by (namespace, name); pods without one are left out."""
    by_namespace: dict[str, list[Obj]] = {}
    for service in services:
        if as_dict(service.get("spec")).get("type") in EXPOSING_TYPES:
            namespace = as_str(as_dict(service.get("metadata")).get("namespace"))
            by_namespace.setdefault(namespace, []).append(service)
    named = {as_str(as_dict(n.get("metadata")).get("name")): n for n in nodes}
    listed = list(pods)
    siblings: dict[str, list[Obj]] = {}
    for pod, _ in listed:
        siblings.setdefault(as_str(as_dict(pod.get("metadata")).get("namespace")), []).append(pod)
    found = {}
    for pod, port in listed:
        metadata = as_dict(pod.get("metadata"))
        namespace = as_str(metadata.get("namespace"))
        result = exposure(
            pod,
            peer_port=port,
            services=by_namespace.get(namespace, ()),
            siblings=siblings.get(namespace, ()),
            nodes=named,
        )
        if result != Exposure():
            found[(namespace, as_str(metadata.get("name")))] = result
    return found
