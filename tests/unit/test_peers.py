"""Peers: who counts as a peer, on which port, and the ConfigMap rendered from them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from tests.kubelet import container_statuses, crashed_statuses
from webhook import names
from webhook.core.peerset.peers import (
    Peer,
    PeerSet,
    pod_peer,
    static_peer,
    stellarnode_peer,
    text_hash,
)
from webhook.core.pod import image_repository
from webhook.core.publishing.publish import configmap_body, content_digest, encoded_size, render
from webhook.core.publishing.watched import (
    KIND_CONFIGMAP,
    KIND_NAMESPACE,
    KIND_NODE_POD,
    KIND_POD,
    KIND_SERVICE,
    KIND_STELLARNODE,
    State,
    enabled_namespaces,
    fold_all,
    peer_set,
    trim,
    validators,
)
from webhook.settings import Settings


def fold(state: State, event: Mapping[str, Any]) -> State:
    """One event at a time, as the tests below reason about it."""
    return fold_all(state, (event,))


READY = [{"type": "Ready", "status": "True"}]


def pod(
    name: str = "v0",
    namespace: str = "ns",
    *,
    ip: str | None = "10.0.0.1",
    conditions: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels if labels is not None else {names.INJECTED_LABEL: "true"},
        "annotations": annotations or {},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    containers = (
        containers
        if containers is not None
        else [{"name": "core", "image": "stellar/stellar-core:22"}]
    )
    ready = conditions is None or conditions == READY
    if statuses is None:
        statuses = container_statuses((str(c.get("name")) for c in containers), ready=ready)
    return {
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": containers},
        "status": {
            "podIP": ip,
            "phase": phase,
            "conditions": READY if conditions is None else conditions,
            "containerStatuses": statuses,
        },
    }


def node(name: str = "n0", namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "StellarNode",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeType": "Validator", **spec},
    }


def peer(name: str, ip: str, port: int = 11625, namespace: str = "ns") -> Peer:
    return Peer(
        namespace=namespace, name=name, node_type="validator", ip=ip, port=port, source="pod"
    )


# --- pod_peer ---------------------------------------------------------------


def test_pod_peer_ready_pod_with_ip_is_a_peer() -> None:
    assert pod_peer(pod()) == peer("v0", "10.0.0.1")


@pytest.mark.parametrize(
    "raw",
    [pod(conditions=[{"type": "Ready", "status": "False"}]), pod(conditions=[])],
    ids=["not-ready", "no-conditions"],
)
def test_pod_peer_running_but_not_ready_is_a_peer(raw: dict[str, Any]) -> None:
    """DESIGN.md "Bootstrap": a validator turns Ready once it met its peers, so the set
    never waits for Ready (a probe past the ~35 s start window deadlocked real nodes)."""
    assert pod_peer(raw) == peer("v0", "10.0.0.1")


STARTING = {"name": "core", "started": False, "state": {"running": {}}}


@pytest.mark.parametrize(
    "raw",
    [
        pod(ip=None),
        pod(ip="not-an-ip"),
        pod(deleting=True),
        pod(phase="Pending"),
        pod(phase="Succeeded"),
        pod(statuses=crashed_statuses(["core"])),
        pod(statuses=[{"name": "core", "state": {"waiting": {"reason": "ContainerCreating"}}}]),
        pod(statuses=[STARTING]),
        pod(statuses=[]),
        pod(
            containers=[
                {"name": "core", "image": "stellar/stellar-core:22"},
                {"name": "side", "image": "busybox"},
            ],
            statuses=[
                crashed_statuses(["core"])[0],
                container_statuses(["side"])[0],
            ],
        ),
    ],
    ids=[
        "no-ip",
        "bad-ip",
        "terminating",
        "pending",
        "succeeded",
        "crash-looping",
        "creating",
        "startup-probe-not-passed",
        "no-container-status",
        "only-a-sidecar-runs",
    ],
)
def test_pod_peer_not_running_or_terminating_is_none(raw: dict[str, Any]) -> None:
    assert pod_peer(raw) is None


def test_a_pod_whose_ready_flaps_is_the_same_trimmed_pod() -> None:
    """Membership follows the container, not the probe: Ready going False and back
    changes nothing the watcher keeps, so it folds to the same state (no write)."""
    ready = trim(pod(), kind="Pod")
    flapped = trim(pod(conditions=[{"type": "Ready", "status": "False"}]), kind="Pod")
    assert flapped == ready
    state = fold({}, {"type": "ADDED", "object": ready})
    assert fold(state, {"type": "MODIFIED", "object": flapped}) is state


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"metadata": "x"},
        {"metadata": {"name": "a"}, "status": []},
        {"metadata": {"name": "a", "namespace": "b"}, "status": {"conditions": "Ready"}},
        {
            "metadata": {"name": "a", "namespace": "b"},
            "status": {"podIP": "10.0.0.1", "conditions": [None, 3, READY[0]]},
            "spec": {"containers": [{"ports": "peer"}]},
        },
    ],
)
def test_pod_peer_malformed_never_raises(raw: dict[str, Any]) -> None:
    result = pod_peer(raw)
    assert result is None or result.port == names.DEFAULT_PEER_PORT


def test_pod_peer_port_named_peer_on_target_container_wins() -> None:
    containers = [
        {"name": "sidecar", "image": "busybox", "ports": [{"name": "peer", "containerPort": 1}]},
        {
            "name": "core",
            "image": "reg:5000/stellar/stellar-core:22@sha256:ab",
            "ports": [
                {"name": "http", "containerPort": 11626},
                {"name": "peer", "containerPort": 11700},
            ],
        },
    ]
    raw = pod(containers=containers, annotations={names.PEER_PORT_ANNOTATION: "12000"})
    assert pod_peer(raw) == peer("v0", "10.0.0.1", 11700)


def test_pod_peer_annotated_container_is_the_target() -> None:
    containers = [
        {
            "name": "core",
            "image": "stellar/stellar-core",
            "ports": [{"name": "peer", "containerPort": 11700}],
        },
        {"name": "other", "image": "x", "ports": [{"name": "peer", "containerPort": 11800}]},
    ]
    raw = pod(containers=containers, annotations={names.CONTAINER_ANNOTATION: "other"})
    assert pod_peer(raw) == peer("v0", "10.0.0.1", 11800)


def test_pod_peer_port_annotation_then_default() -> None:
    assert pod_peer(pod(annotations={names.PEER_PORT_ANNOTATION: "12000"})) == peer(
        "v0", "10.0.0.1", 12000
    )
    assert pod_peer(pod()) == peer("v0", "10.0.0.1", 11625)


@pytest.mark.parametrize("value", ["0", "65536", "abc", "-1", "", "\u00b2", "\uff18\uff10"])
def test_pod_peer_malformed_port_annotation_is_no_peer(value: str) -> None:
    assert pod_peer(pod(annotations={names.PEER_PORT_ANNOTATION: value})) is None


def test_pod_peer_target_is_the_container_the_webhook_injected() -> None:
    containers = [
        {
            "name": "core",
            "image": "stellar/stellar-core",
            "ports": [{"name": "peer", "containerPort": 11700}],
        },
        {
            "name": "custom",
            "image": "mine/validator",
            "ports": [{"name": "peer", "containerPort": 11900}],
        },
    ]
    status = orjson.dumps({"version": "0.1.0", "container": "custom"}).decode()
    raw = pod(containers=containers, annotations={names.STATUS_ANNOTATION: status})
    assert pod_peer(raw) == peer("v0", "10.0.0.1", 11900)
    garbled = pod(containers=containers, annotations={names.STATUS_ANNOTATION: "{not json"})
    assert pod_peer(garbled) == peer("v0", "10.0.0.1", 11700)


def test_pod_peer_node_type_from_label() -> None:
    raw = pod(labels={names.INJECTED_LABEL: "true", names.NODE_TYPE_LABEL: "watcher"})
    result = pod_peer(raw)
    assert result is not None
    assert result.node_type == "watcher"


def test_image_repository_strips_tag_and_digest_not_registry_port() -> None:
    assert image_repository("reg:5000/stellar/stellar-core:22@sha256:ab") == (
        "reg:5000/stellar/stellar-core"
    )
    assert image_repository("reg:5000/stellar-core") == "reg:5000/stellar-core"


# --- stellarnode_peer ---------------------------------------------------------


def test_stellarnode_peer_prefers_running_pod_ip_then_service() -> None:
    found = stellarnode_peer(node(), running_pod_ip="10.1.0.1", service_ip="10.96.0.1")
    assert found == Peer("ns", "n0", "validator", "10.1.0.1", 11625, "stellarnode")
    fallback = stellarnode_peer(node(), running_pod_ip=None, service_ip="10.96.0.1")
    assert fallback is not None
    assert fallback.ip == "10.96.0.1"


def test_stellarnode_peer_port_from_validator_config() -> None:
    found = stellarnode_peer(
        node(validatorConfig={"peerPort": 11999}), running_pod_ip="10.1.0.1", service_ip=None
    )
    assert found is not None
    assert found.port == 11999


@pytest.mark.parametrize(
    ("raw", "pod_ip", "service_ip"),
    [
        (node(suspended=True), "10.1.0.1", None),
        (node(nodeType="Watcher"), "10.1.0.1", None),
        (node(), None, None),
        (node(), None, "None"),
        (node(validatorConfig={"peerPort": 0}), "10.1.0.1", None),
    ],
    ids=["suspended", "watcher", "no-address", "headless", "bad-port"],
)
def test_stellarnode_peer_excluded(
    raw: dict[str, Any], pod_ip: str | None, service_ip: str | None
) -> None:
    assert stellarnode_peer(raw, running_pod_ip=pod_ip, service_ip=service_ip) is None


def test_stellarnode_peer_node_type_is_case_insensitive() -> None:
    assert (
        stellarnode_peer(node(nodeType="VALIDATOR"), running_pod_ip="10.1.0.1", service_ip=None)
        is not None
    )


# --- static_peer --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ip", "port", "peer_string"),
    [
        ("1.2.3.4:11625", "1.2.3.4", 11625, "1.2.3.4:11625"),
        (
            "core-live-a.stellar.org:11625",
            "core-live-a.stellar.org",
            11625,
            "core-live-a.stellar.org:11625",
        ),
        ("Validator.Example.COM:1", "validator.example.com", 1, "validator.example.com:1"),
        ("[::1]:11625", "::1", 11625, "[::1]:11625"),
        ("localhost:65535", "localhost", 65535, "localhost:65535"),
    ],
)
def test_static_peer_accepts(text: str, ip: str, port: int, peer_string: str) -> None:
    parsed = static_peer(text)
    assert (parsed.ip, parsed.port, parsed.source, parsed.peer_string) == (
        ip,
        port,
        "static",
        peer_string,
    )


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4:11625; rm -rf /",
        "$(id):11625",
        "`id`:11625",
        "1.2.3.4 :11625",
        "a b:11625",
        "http://1.2.3.4:11625",
        "1.2.3.4:11625/",
        "1.2.3.4",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:",
        ":11625",
        "999.1.1.1:11625",
        "1.2.3:11625",
        "::1:11625",
        "[::1]11625",
        "[not-ip]:11625",
        "-bad.example.com:11625",
        "a..b:11625",
        "1.2.3.4:\uff11\uff11\uff16\uff12\uff15",  # full-width digits
        "",
        "host:11625\n",
    ],
)
def test_static_peer_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="static peer"):
        static_peer(text)


# --- fold -------------------------------------------------------------------


def events(*items: tuple[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple({"type": kind, "object": obj} for kind, obj in items)


def run(stream: tuple[dict[str, Any], ...]) -> Any:
    state: Any = {}
    for event in stream:
        state = fold(state, event)
    return state


def test_fold_added_modified_deleted() -> None:
    first, second = pod("a", ip="10.0.0.1"), pod("b", ip="10.0.0.2")
    moved = pod("a", ip="10.0.0.9")
    state = run(
        events(("ADDED", first), ("ADDED", second), ("MODIFIED", moved), ("DELETED", second))
    )
    assert state == {("Pod", "ns", "a"): moved}


def test_fold_keys_by_kind_namespace_name() -> None:
    state = run(
        events(
            ("ADDED", pod("a", "x")),
            ("ADDED", pod("a", "y")),
            ("ADDED", {**pod("a", "x"), "kind": KIND_NODE_POD}),
        )
    )
    assert set(state) == {("Pod", "x", "a"), ("Pod", "y", "a"), (KIND_NODE_POD, "x", "a")}


def test_fold_unchanged_returns_same_state() -> None:
    state = run(events(("ADDED", pod("a"))))
    assert fold(state, {"type": "MODIFIED", "object": pod("a")}) is state
    assert fold(state, {"type": "DELETED", "object": pod("zz")}) is state
    assert fold(state, {"type": "BOOKMARK", "object": pod("b")}) is state
    assert fold(state, {"type": "ADDED", "object": {"metadata": {}}}) is state


def test_fold_does_not_mutate_input() -> None:
    state = run(events(("ADDED", pod("a"))))
    before = dict(state)
    fold(state, {"type": "ADDED", "object": pod("b")})
    fold(state, {"type": "DELETED", "object": pod("a")})
    assert state == before


def test_fold_listed_replaces_only_that_kind() -> None:
    ns = {"kind": KIND_NAMESPACE, "metadata": {"name": "ns"}}
    state = run(events(("ADDED", pod("gone")), ("ADDED", ns)))
    state = fold(state, {"type": "LISTED", "kind": KIND_POD, "objects": [pod("kept")]})
    assert set(state) == {("Pod", "ns", "kept"), (KIND_NAMESPACE, "", "ns")}


def test_fold_all_equals_folding_one_by_one_and_keeps_input() -> None:
    stream = events(
        ("ADDED", pod("a", ip="10.0.0.1")),
        ("ADDED", pod("b")),
        ("MODIFIED", pod("a", ip="10.0.0.5")),
        ("DELETED", pod("b")),
        ("ADDED", namespace("ns")),
    )
    start = run(events(("ADDED", pod("z"))))
    before = dict(start)
    one_by_one = start
    for event in stream:
        one_by_one = fold(one_by_one, event)
    assert fold_all(start, stream) == one_by_one
    assert start == before
    assert fold_all(start, events(("MODIFIED", pod("z")), ("DELETED", pod("q")))) is start


# --- peer_set ---------------------------------------------------------------


def namespace(name: str) -> dict[str, Any]:
    return {"kind": KIND_NAMESPACE, "metadata": {"name": name}}


def test_peer_set_pods_only_from_enabled_namespaces() -> None:
    state = run(
        events(
            ("ADDED", namespace("on")),
            ("ADDED", pod("a", "on", ip="10.0.0.1")),
            ("ADDED", pod("b", "off", ip="10.0.0.2")),
        )
    )
    enabled = enabled_namespaces(state, settings=Settings())
    assert enabled == frozenset({"on"})
    assert peer_set(state, enabled_namespaces=enabled).strings == ("10.0.0.1:11625",)


def test_peer_set_dedups_by_peer_string_and_sorts_by_namespace_name() -> None:
    state = run(
        events(
            ("ADDED", pod("z", "a", ip="10.0.0.3")),
            ("ADDED", pod("b", "b", ip="10.0.0.1")),
            ("ADDED", pod("a", "b", ip="10.0.0.2")),
            ("ADDED", pod("dup", "b", ip="10.0.0.2")),
        )
    )
    result = peer_set(
        state,
        enabled_namespaces=frozenset({"a", "b"}),
        static=[static_peer("10.0.0.1:11625"), static_peer("8.8.8.8:11625")],
    )
    assert [(p.namespace, p.name) for p in result.peers] == [
        ("", "8.8.8.8:11625"),
        ("a", "z"),
        ("b", "a"),
        ("b", "b"),
    ]
    assert result.strings == ("10.0.0.1:11625", "10.0.0.2:11625", "10.0.0.3:11625", "8.8.8.8:11625")


def test_peer_set_stellarnodes_resolve_through_pods_and_services() -> None:
    node_pod = trim(
        pod(
            "n0-abc",
            ip="10.2.0.1",
            labels={"app.kubernetes.io/name": "stellar-node", "app.kubernetes.io/instance": "n0"},
        ),
        kind=KIND_NODE_POD,
    )
    service = {
        "kind": KIND_SERVICE,
        "metadata": {"name": "n1", "namespace": "ns"},
        "spec": {"clusterIP": "10.96.0.7"},
    }
    state = run(
        events(
            ("ADDED", namespace("ns")),
            ("ADDED", node_pod),
            ("ADDED", service),
            ("ADDED", trim(node("n0"), kind=KIND_STELLARNODE)),
            ("ADDED", trim(node("n1"), kind=KIND_STELLARNODE)),
            ("ADDED", trim(node("n2", suspended=True), kind=KIND_STELLARNODE)),
            ("ADDED", trim(node("other", "elsewhere"), kind=KIND_STELLARNODE)),
        )
    )
    result = peer_set(state, enabled_namespaces=enabled_namespaces(state, settings=Settings()))
    assert [(p.name, p.ip, p.source) for p in result.peers] == [
        ("n0", "10.2.0.1", "stellarnode"),
        ("n1", "10.96.0.7", "stellarnode"),
    ]


def test_validators_are_running_injected_pods_in_enabled_namespaces() -> None:
    state = run(
        events(
            ("ADDED", trim(pod("b", ip="10.0.0.2"), kind=KIND_POD)),
            ("ADDED", trim(pod("a", ip="10.0.0.1"), kind=KIND_POD)),
            ("ADDED", trim(pod("c", ip="10.0.0.3", conditions=[]), kind=KIND_POD)),
            ("ADDED", trim(pod("e", statuses=crashed_statuses(["core"])), kind=KIND_POD)),
            ("ADDED", trim(pod("d", "off"), kind=KIND_POD)),
        )
    )
    found = validators(state, enabled=frozenset({"ns"}))
    assert [v["metadata"]["name"] for v in found] == ["a", "b", "c"]
    assert set(found[0]) == {"kind", "metadata", "spec", "status"}


def test_trim_pod_keeps_what_readers_need_and_drops_the_rest() -> None:
    raw = pod(
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": "x" * 10000,
            names.STATUS_ANNOTATION: "{}",
        }
    )
    raw["spec"]["volumes"] = [{"name": "big"}]
    raw["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"message": "m" * 1000}}
    raw["status"]["conditions"] = [{"type": "Ready", "status": "True", "message": "m" * 1000}]
    small = trim(raw, kind=KIND_POD)
    assert small["metadata"]["annotations"] == {names.STATUS_ANNOTATION: "{}"}
    assert "volumes" not in small["spec"]
    assert "conditions" not in small["status"]
    assert small["status"]["containerStatuses"] == [
        {"name": "core", "started": True, "state": {"running": {}}}
    ]
    assert pod_peer(small) == pod_peer(raw)


# --- rendering --------------------------------------------------------------


def two_peers() -> PeerSet:
    return PeerSet(
        peers=(
            Peer("a", "v1", "validator", "10.0.0.2", 11625, "pod"),
            Peer("b", "v0", "validator", "10.0.0.10", 11700, "stellarnode"),
        )
    )


def test_render_is_byte_exact() -> None:
    data = render(two_peers())
    assert data == {
        "peers.json": (
            '[{"name":"v1","namespace":"a","nodeType":"validator","ip":"10.0.0.2","port":11625,'
            '"peerString":"10.0.0.2:11625","source":"pod"},'
            '{"name":"v0","namespace":"b","nodeType":"validator","ip":"10.0.0.10","port":11700,'
            '"peerString":"10.0.0.10:11700","source":"stellarnode"}]'
        ),
        "peers.txt": "10.0.0.10:11700\n10.0.0.2:11625\n",
        "peers.csv": "10.0.0.10:11700,10.0.0.2:11625",
        "peer_count": "2",
        "known_peers.cfg": 'KNOWN_PEERS = ["10.0.0.10:11700", "10.0.0.2:11625"]\n',
    }


def test_render_empty_set() -> None:
    assert render(PeerSet(peers=())) == {
        "peers.json": "[]",
        "peers.txt": "",
        "peers.csv": "",
        "peer_count": "0",
        "known_peers.cfg": "KNOWN_PEERS = []\n",
    }


def test_hash_is_sha256_of_peers_txt() -> None:
    peers = two_peers()
    expected = hashlib.sha256(render(peers)["peers.txt"].encode()).hexdigest()
    assert peers.hash == f"sha256:{expected}"
    assert text_hash(render(peers)["peers.txt"]) == peers.hash  # what `check` compares


def test_configmap_body_has_owner_labels_hash_and_data() -> None:
    body = configmap_body(two_peers(), name="stellar-peers", namespace="ns")
    assert body["metadata"]["labels"] == names.OWNER_LABELS
    assert body["metadata"]["annotations"] == {names.PEERS_HASH_ANNOTATION: two_peers().hash}
    assert body["data"] == render(two_peers())
    assert orjson.loads(body["data"]["peers.json"])[0]["name"] == "v1"


def test_content_digest_ignores_metadata_noise_but_sees_data_and_owner() -> None:
    body = configmap_body(two_peers(), name="stellar-peers", namespace="ns")
    noisy = {**body, "metadata": {**body["metadata"], "resourceVersion": "7", "uid": "u"}}
    tampered = {**body, "data": {**body["data"], "peers.txt": "1.1.1.1:1\n"}}
    unowned = {**body, "metadata": {**body["metadata"], "labels": {}}}
    assert content_digest(noisy) == content_digest(body)
    assert content_digest(tampered) != content_digest(body)
    assert content_digest(unowned) != content_digest(body)
    assert trim(noisy, kind=KIND_CONFIGMAP)["digest"] == content_digest(body)


def test_encoded_size_counts_keys_and_utf8_bytes() -> None:
    assert encoded_size({"ab": "é"}) == 4


def big_set(count: int) -> PeerSet:
    return PeerSet(
        peers=tuple(
            Peer(
                "bench-0123456789",
                f"validator-{i}",
                "validator",
                f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                11625,
                "pod",
            )
            for i in range(count)
        )
    )


def test_configmap_limit_is_reached_near_five_thousand_peers() -> None:
    # About 210 bytes a peer across the five keys: the limit is a real bound.
    assert encoded_size(render(big_set(4500))) <= names.CONFIGMAP_MAX_BYTES
    assert encoded_size(render(big_set(5000))) > names.CONFIGMAP_MAX_BYTES
