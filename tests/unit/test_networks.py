"""Networks: each peer's network, one set per network, and the snippets rendered from them."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from tests.kubelet import container_statuses
from webhook import names
from webhook.core.admin_protocol import network_name
from webhook.core.injection.additions import env_vars as env_for
from webhook.core.peerset import networks
from webhook.core.peerset.networks import Identity
from webhook.core.peerset.peers import PeerSet, static_peer, stellarnode_peer
from webhook.core.publishing.publish import render
from webhook.core.publishing.watched import KIND_NAMESPACE, KIND_POD, peer_set, trim
from webhook.core.reload.reload_plan import handed, missing_peers, plan_round
from webhook.settings import Settings, SettingsError

READY = [{"type": "Ready", "status": "True"}]
KEY_A = "GA" + "A" * 54
KEY_B = "GB" + "B" * 54
KEY_C = "GC" + "C" * 54


def pod(
    name: str,
    ip: str,
    *,
    network: str | None = None,
    domain: str | None = None,
    namespace: str = "ns",
) -> dict[str, Any]:
    labels = {names.INJECTED_LABEL: "true"}
    if network is not None:
        labels[names.NETWORK_LABEL] = network
    annotations = {names.HOME_DOMAIN_ANNOTATION: domain} if domain is not None else {}
    return trim(
        {
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {"containers": [{"name": "core", "image": "stellar/stellar-core:22"}]},
            "status": {
                "podIP": ip,
                "phase": "Running",
                "conditions": READY,
                "containerStatuses": container_statuses(["core"]),
            },
        },
        kind=KIND_POD,
    )


def state_of(*pods: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    state: dict[tuple[str, str, str], Any] = {
        (KIND_NAMESPACE, "", "ns"): {"kind": KIND_NAMESPACE, "metadata": {"name": "ns"}}
    }
    for p in pods:
        state[(KIND_POD, "ns", p["metadata"]["name"])] = p
    return state


def test_pubnet_and_testnet_passphrases_have_names_and_others_a_hash() -> None:
    assert network_name("Public Global Stellar Network ; September 2015") == "pubnet"
    assert network_name("Test SDF Network ; September 2015") == "testnet"
    assert (
        network_name("Standalone Network ; February 2017")
        == "net-"
        + (__import__("hashlib").sha256(b"Standalone Network ; February 2017").hexdigest()[:8])
    )


def test_label_wins_over_what_the_node_reports() -> None:
    state = state_of(pod("a", "10.0.0.1", network="pubnet"))
    found = peer_set(
        state,
        enabled_namespaces=frozenset({"ns"}),
        identities={"uid-a": Identity("testnet", KEY_A)},
    )
    assert [(p.network, p.public_key) for p in found.peers] == [("pubnet", KEY_A)]


def test_a_label_that_is_no_network_name_is_ignored() -> None:
    state = state_of(pod("a", "10.0.0.1", network="Not_A_Label"))
    found = peer_set(state, enabled_namespaces=frozenset({"ns"}))
    assert found.peers[0].network == ""


def test_learned_network_else_default_else_unknown() -> None:
    state = state_of(pod("a", "10.0.0.1"), pod("b", "10.0.0.2"))
    learned = {"uid-a": Identity("testnet", KEY_A)}
    found = peer_set(state, enabled_namespaces=frozenset({"ns"}), identities=learned)
    assert [p.network for p in found.peers] == ["testnet", ""]
    assert sorted(networks.split(found)) == ["testnet", "unknown"]
    defaulted = peer_set(
        state, enabled_namespaces=frozenset({"ns"}), identities=learned, default_network="pubnet"
    )
    assert [p.network for p in defaulted.peers] == ["testnet", "pubnet"]


def test_static_peer_names_its_network() -> None:
    peer = static_peer("core1.example.org:11625@pubnet")
    assert (peer.name, peer.ip, peer.port, peer.network) == (
        "core1.example.org:11625",
        "core1.example.org",
        11625,
        "pubnet",
    )
    with pytest.raises(ValueError, match="DNS label"):
        static_peer("core1.example.org:11625@Pub Net")
    with pytest.raises(SettingsError):
        Settings(static_peers=("10.0.0.1:11625@",))
    with pytest.raises(SettingsError):
        Settings(default_network="Pubnet!")


def test_untagged_static_peers_join_the_one_network_of_the_cluster() -> None:
    state = state_of(pod("a", "10.0.0.1", network="testnet"))
    static = [static_peer("192.0.2.1:11625"), static_peer("192.0.2.2:11625@pubnet")]
    found = peer_set(state, enabled_namespaces=frozenset({"ns"}), static=static)
    assert {p.ip: p.network for p in found.peers} == {
        "10.0.0.1": "testnet",
        "192.0.2.1": "testnet",
        "192.0.2.2": "pubnet",
    }
    two = state_of(pod("a", "10.0.0.1", network="testnet"), pod("b", "10.0.0.2", network="pubnet"))
    found = peer_set(two, enabled_namespaces=frozenset({"ns"}), static=static[:1])
    assert {p.ip: p.network for p in found.peers}["192.0.2.1"] == ""


def test_stellarnode_network_from_its_spec() -> None:
    def node(**spec: Any) -> Any:
        body = {"metadata": {"name": "n", "namespace": "ns"}, "spec": {"nodeType": "Validator"}}
        body["spec"].update(spec)
        return stellarnode_peer(body, running_pod_ip="10.0.0.9", service_ip=None)

    assert node(network="futurenet").network == "futurenet"
    assert node(network="Test SDF Network ; September 2015").network == "testnet"
    assert node(networkPassphrase="Public Global Stellar Network ; September 2015").network == (
        "pubnet"
    )
    assert node().network == ""


def two_networks() -> PeerSet:
    state = state_of(
        pod("a", "10.0.0.1", domain="example.org"),
        pod("b", "10.0.0.2"),
        pod("c", "10.0.0.3", network="pubnet"),
        pod("d", "10.0.0.4"),
    )
    learned = {
        "uid-a": Identity("testnet", KEY_A),
        "uid-b": Identity("testnet", KEY_B),
        "uid-c": Identity("pubnet", KEY_C),
    }
    return peer_set(state, enabled_namespaces=frozenset({"ns"}), identities=learned)


def test_one_key_set_per_network_and_the_unqualified_keys_empty() -> None:
    data = render(two_networks())
    assert data["peers-testnet.txt"] == "10.0.0.1:11625\n10.0.0.2:11625\n"
    assert data["peers-testnet.csv"] == "10.0.0.1:11625,10.0.0.2:11625"
    assert data["peer_count-testnet"] == "2"
    assert data["known_peers-pubnet.cfg"] == 'KNOWN_PEERS = ["10.0.0.3:11625"]\n'
    assert data["preferred_peer_keys-testnet.cfg"] == (
        f'PREFERRED_PEER_KEYS = ["{KEY_A}", "{KEY_B}"]\n'
    )
    assert data["validators-testnet.cfg"] == (
        "[[VALIDATORS]]\n"
        'NAME="ns/a"\n'
        'HOME_DOMAIN="example.org"\n'
        f'PUBLIC_KEY="{KEY_A}"\n'
        'ADDRESS="10.0.0.1:11625"\n'
        "\n"
        "[[VALIDATORS]]\n"
        'NAME="ns/b"\n'
        f'PUBLIC_KEY="{KEY_B}"\n'
        'ADDRESS="10.0.0.2:11625"\n'
    )
    assert not any("unknown" in key for key in data)  # the unknown set has no keys
    assert (data["peers.txt"], data["peers.csv"], data["peer_count"]) == ("", "", "0")
    assert data["known_peers.cfg"] == "KNOWN_PEERS = []\n"
    entries = {e["name"]: e for e in orjson.loads(data["peers.json"])}
    assert (entries["a"]["network"], entries["a"]["publicKey"]) == ("testnet", KEY_A)
    assert "network" not in entries["d"]
    assert "publicKey" not in entries["d"]


def test_one_network_keeps_the_unqualified_keys_as_they_were() -> None:
    state = state_of(pod("a", "10.0.0.1"), pod("b", "10.0.0.2"))
    unknown = render(peer_set(state, enabled_namespaces=frozenset({"ns"})))
    assert unknown["peers.txt"] == "10.0.0.1:11625\n10.0.0.2:11625\n"
    assert sorted(unknown) == sorted(
        [names.KEY_JSON, names.KEY_TXT, names.KEY_CSV, names.KEY_COUNT, names.KEY_KNOWN_PEERS]
    )
    learned = {"uid-a": Identity("testnet", KEY_A), "uid-b": Identity("testnet", KEY_B)}
    known = render(peer_set(state, enabled_namespaces=frozenset({"ns"}), identities=learned))
    assert known["peers.txt"] == known["peers-testnet.txt"] == unknown["peers.txt"]


def test_each_network_is_a_set_of_its_own() -> None:
    sets = networks.split(two_networks())
    assert sets["testnet"].strings == ("10.0.0.1:11625", "10.0.0.2:11625")
    assert sets["pubnet"].strings == ("10.0.0.3:11625",)
    assert sets["unknown"].strings == ("10.0.0.4:11625",)  # unknown: only its own kind


def test_a_home_domain_that_could_break_the_snippet_is_dropped() -> None:
    state = state_of(pod("a", "10.0.0.1", domain='x"\n[[VALIDATORS]]'))
    learned = {"uid-a": Identity("testnet", KEY_A)}
    data = render(peer_set(state, enabled_namespaces=frozenset({"ns"}), identities=learned))
    assert "HOME_DOMAIN" not in data["validators-testnet.cfg"]


def test_a_disagreeing_label_is_reported() -> None:
    assert networks.mismatch("pubnet", Identity("testnet", KEY_A)) == "testnet"
    assert networks.mismatch("pubnet", Identity("pubnet", KEY_A)) == ""
    assert networks.mismatch("", Identity("testnet", KEY_A)) == ""


def test_each_node_is_planned_against_its_own_networks_hash() -> None:
    @dataclasses.dataclass(frozen=True)
    class Snap:
        peers: PeerSet
        validators: tuple[dict[str, Any], ...]

    pods = (pod("a", "10.0.0.1"), pod("b", "10.0.0.2"), pod("c", "10.0.0.3", network="pubnet"))
    learned = {"uid-a": Identity("testnet", KEY_A), "uid-b": Identity("testnet", KEY_B)}
    peers = peer_set(state_of(*pods), enabled_namespaces=frozenset({"ns"}), identities=learned)
    plans = {p.name: p for p in plan_round(Snap(peers, pods), settings=Settings())}
    assert {n: p.network for n, p in plans.items()} == {
        "a": "testnet",
        "b": "testnet",
        "c": "pubnet",
    }
    testnet = networks.split(peers)["testnet"]
    assert plans["a"].hash == plans["b"].hash == testnet.hash != plans["c"].hash
    assert [
        p.peer_string for p in missing_peers(handed(peers, plans["a"]), set(), own_ip="10.0.0.1")
    ] == ["10.0.0.2:11625"]
    # A new testnet node changes the testnet nodes' hash only.
    more = (*pods, pod("d", "10.0.0.4", network="testnet"))
    grown = peer_set(state_of(*more), enabled_namespaces=frozenset({"ns"}), identities=learned)
    after = {p.name: p for p in plan_round(Snap(grown, more), settings=Settings())}
    assert after["a"].hash != plans["a"].hash
    assert after["c"].hash == plans["c"].hash


def test_a_labeled_pod_gets_its_networks_env_and_an_unlabeled_one_the_plain_keys() -> None:
    env = {e["name"]: e for e in env_for({names.NETWORK_LABEL: "testnet"})}
    assert env[names.ENV_PEERS]["valueFrom"]["configMapKeyRef"]["key"] == "peers-testnet.csv"
    assert env[names.ENV_PEER_COUNT]["valueFrom"]["configMapKeyRef"]["key"] == "peer_count-testnet"
    assert env[names.ENV_NETWORK]["value"] == "testnet"
    plain = {e["name"]: e for e in env_for({})}
    assert plain[names.ENV_PEERS]["valueFrom"]["configMapKeyRef"]["key"] == names.KEY_CSV
    assert names.ENV_NETWORK not in plain
