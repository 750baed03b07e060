"""stellar-core dials IPv4 and DNS names only: an IPv6 address is never a peer, anywhere."""

from __future__ import annotations

from typing import Any

from tests.kubelet import container_statuses
from webhook import names
from webhook.core.peerset import advertised, links
from webhook.core.peerset.peers import dialable_static_peers, pod_peer, stellarnode_peer
from webhook.core.pod import pod_ip
from webhook.core.publishing import watched


def pod(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "v", "namespace": "ns", "uid": "u1"},
        "spec": {"containers": [{"name": "stellar-core", "image": "stellar/stellar-core:21"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": container_statuses(["stellar-core"]),
            **status,
        },
    }


def test_a_dual_stack_pod_is_a_peer_at_its_ipv4_address() -> None:
    dual = pod({"podIP": "fd00::5", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.1.2.3"}]})
    assert pod_ip(dual) == "10.1.2.3"
    peer = pod_peer(dual)
    assert peer is not None
    assert peer.peer_string == "10.1.2.3:11625"


def test_the_watchers_trimmed_pod_keeps_the_ipv4_address_of_a_dual_stack_pod() -> None:
    dual = pod({"podIP": "fd00::5", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.1.2.3"}]})
    assert pod_ip(watched.trim(dual, kind="Pod")) == "10.1.2.3"


def test_an_ipv6_only_pod_is_no_peer() -> None:
    only = pod({"podIP": "fd00::5", "podIPs": [{"ip": "fd00::5"}]})
    assert pod_ip(only) is None
    assert pod_peer(only) is None


def test_a_stellarnode_behind_an_ipv6_service_is_no_peer() -> None:
    node = {
        "metadata": {"name": "sn", "namespace": "ns"},
        "spec": {"nodeType": "validator"},
    }
    assert stellarnode_peer(node, running_pod_ip=None, service_ip="fd00::9") is None
    found = stellarnode_peer(node, running_pod_ip="fd00::8", service_ip="10.0.0.9")
    assert found is not None
    assert found.ip == "10.0.0.9"


def test_ipv6_static_peers_are_left_out_and_named() -> None:
    kept, left_out = dialable_static_peers(
        ["core1.example.org:11625", "[2001:db8::1]:11625", "192.0.2.7:11625"]
    )
    assert [p.peer_string for p in kept] == ["core1.example.org:11625", "192.0.2.7:11625"]
    assert left_out == ("[2001:db8::1]:11625",)


def test_an_ipv6_advertised_address_or_remote_entry_is_never_dialled() -> None:
    """One rule (`admin_protocol.is_peer_host`) for the annotation and linked clusters."""
    pod = {
        "metadata": {
            "name": "v",
            "namespace": "ns",
            "annotations": {names.ADVERTISED_ADDRESS_ANNOTATION: "[2001:db8::1]:11625"},
        },
        "spec": {"containers": [{"name": "core", "image": "stellar/stellar-core"}]},
    }
    found = advertised.exposure(pod, peer_port=11625)
    assert (found.address, "IPv4" in found.problem) == ("", True)
    entries = [
        {"name": "a", "advertised": "[2001:db8::1]:11625", "source": "pod"},
        {"name": "b", "advertised": "203.0.113.7:11625", "source": "pod"},
    ]
    assert [p.name for p in links.remote_peers(entries, cluster="east")] == ["b"]
