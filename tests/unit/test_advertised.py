"""Advertised addresses: DESIGN.md's order, and the problems reported instead of guesses."""

from __future__ import annotations

from typing import Any

import orjson

from tests.kubelet import container_statuses
from webhook import names
from webhook.core.peerset.advertised import (
    Exposure,
    exposure,
    node_address,
    trim_node,
    trim_service,
)
from webhook.core.publishing import publish
from webhook.core.publishing.watched import KIND_NAMESPACE, KIND_POD, peer_set, trim

PEER = 11625


def pod(name: str = "core-0", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": "node-a",
        "containers": [
            {
                "name": "core",
                "image": "stellar/stellar-core:25",
                "ports": [{"name": "peer", "containerPort": PEER, **extra.pop("port", {})}],
            }
        ],
        **extra.pop("spec", {}),
    }
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {"app": name, "tier": "validators", names.INJECTED_LABEL: "true"},
            "annotations": extra.pop("annotations", {}),
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1" if name == "core-0" else "10.0.0.2",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": container_statuses(["core"]),
        },
    }


def service(name: str, kind: str, *, selector: dict[str, str] | None = None, **port: Any) -> dict:
    return trim_service(
        {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {
                "type": kind,
                "selector": selector or {"app": "core-0"},
                "ports": [{"port": PEER, "targetPort": "peer", "protocol": "TCP", **port}],
            },
            "status": {"loadBalancer": {"ingress": port.pop("_ingress", [])}},
        }
    )


NODES = {
    "node-a": trim_node(
        {
            "metadata": {"name": "node-a"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.5"},
                    {"type": "ExternalIP", "address": "203.0.113.5"},
                ]
            },
        }
    )
}


def lb(name: str = "core-0-lb", ingress: list[dict[str, str]] | None = None, **port: Any) -> dict:
    svc = service(name, "LoadBalancer", **port)
    svc["status"]["ingress"] = ingress if ingress is not None else [{"ip": "198.51.100.7"}]
    return svc


def test_annotation_wins_over_everything() -> None:
    annotated = pod(annotations={names.ADVERTISED_ADDRESS_ANNOTATION: "core0.example.org:11625"})
    found = exposure(annotated, peer_port=PEER, services=[lb()], nodes=NODES)
    assert found == Exposure(address="core0.example.org:11625", via="annotation")


def test_bad_annotation_is_a_problem_not_a_guess() -> None:
    annotated = pod(annotations={names.ADVERTISED_ADDRESS_ANNOTATION: "core0 ; rm -rf"})
    found = exposure(annotated, peer_port=PEER, services=[lb()], nodes=NODES)
    assert not found.address
    assert "is not host:port" in found.problem


def test_loadbalancer_gives_its_ingress_and_the_peer_port() -> None:
    found = exposure(pod(), peer_port=PEER, services=[lb()], nodes=NODES)
    assert found == Exposure(address="198.51.100.7:11625", via="Service ns/core-0-lb")


def test_loadbalancer_hostname_counts() -> None:
    found = exposure(pod(), peer_port=PEER, services=[lb(ingress=[{"hostname": "a.elb.example"}])])
    assert found.address == "a.elb.example:11625"


def test_pending_loadbalancer_is_reported() -> None:
    found = exposure(pod(), peer_port=PEER, services=[lb(ingress=[])], nodes=NODES)
    assert not found.address
    assert "pending" in found.problem


def test_service_port_other_than_peer_port_is_reported() -> None:
    found = exposure(pod(), peer_port=PEER, services=[lb(port=11700)], nodes=NODES)
    assert not found.address
    assert "port 11700" in found.problem
    assert "PEER_PORT 11625" in found.problem


def test_nodeport_uses_the_nodes_external_ip() -> None:
    found = exposure(
        pod(), peer_port=PEER, services=[service("np", "NodePort", nodePort=PEER)], nodes=NODES
    )
    assert found.address == "203.0.113.5:11625"


def test_nodeport_other_than_peer_port_is_reported() -> None:
    found = exposure(
        pod(), peer_port=PEER, services=[service("np", "NodePort", nodePort=31625)], nodes=NODES
    )
    assert "nodePort 31625" in found.problem
    assert not found.address


def test_several_services_are_reported() -> None:
    found = exposure(
        pod(),
        peer_port=PEER,
        services=[lb("a"), service("b", "NodePort", nodePort=PEER)],
        nodes=NODES,
    )
    assert "several Services" in found.problem
    assert "ns/a, ns/b" in found.problem


def test_a_service_selecting_several_validators_is_not_this_ones() -> None:
    shared = lb("all", selector={"tier": "validators"})
    found = exposure(pod(), peer_port=PEER, services=[shared], siblings=[pod("core-1")])
    assert found == Exposure()


def test_a_service_of_another_port_is_ignored() -> None:
    found = exposure(pod(), peer_port=PEER, services=[lb(targetPort=11626)], nodes=NODES)
    assert found == Exposure()


def test_host_network_uses_the_node_address() -> None:
    found = exposure(pod(spec={"hostNetwork": True}), peer_port=PEER, nodes=NODES)
    assert found == Exposure(address="203.0.113.5:11625", via="hostNetwork")


def test_host_port_on_the_peer_port() -> None:
    assert exposure(pod(port={"hostPort": PEER}), peer_port=PEER, nodes=NODES).address == (
        "203.0.113.5:11625"
    )
    other = exposure(pod(port={"hostPort": 31000}), peer_port=PEER, nodes=NODES)
    assert "hostPort 31000" in other.problem
    assert not other.address


def test_host_network_without_a_visible_node_is_reported() -> None:
    found = exposure(pod(spec={"hostNetwork": True}), peer_port=PEER, nodes={})
    assert "ExternalIP or InternalIP" in found.problem


def test_internal_ip_when_no_external() -> None:
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.5"}]}}
    assert node_address(node) == "192.168.1.5"


def test_peers_json_gains_advertised_and_cluster_but_nodes_keep_pod_ips() -> None:
    state = {
        (KIND_NAMESPACE, "", "ns"): {"kind": KIND_NAMESPACE, "metadata": {"name": "ns"}},
        (KIND_POD, "ns", "core-0"): trim(pod(), kind=KIND_POD),
        (KIND_POD, "ns", "core-1"): trim(pod("core-1"), kind=KIND_POD),
        ("ExposedService", "ns", "core-0-lb"): lb(),
    }
    peers = peer_set(state, enabled_namespaces=frozenset({"ns"}), cluster_name="east")
    data = publish.render(peers)
    entries = orjson.loads(data[names.KEY_JSON])
    assert [(e["name"], e.get("advertised"), e["cluster"]) for e in entries] == [
        ("core-0", "198.51.100.7:11625", "east"),
        ("core-1", None, "east"),
    ]
    assert data[names.KEY_TXT] == "10.0.0.1:11625\n10.0.0.2:11625\n"
