"""The reload controller's pure planning: which nodes, how, and which peers they lack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook import names
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.reload.reload_plan import exec_command, missing_peers, plan_round, reload_mode
from webhook.settings import Settings

SETTINGS = Settings()


def peer(ip: str, port: int = 11625, name: str = "") -> Peer:
    return Peer(
        namespace="ns",
        name=name or f"v-{ip}",
        node_type="validator",
        ip=ip,
        port=port,
        source="pod",
    )


PEER_SET = PeerSet((peer("10.0.0.1"), peer("10.0.0.2"), peer("10.0.0.3", 11700)))


def pod(
    name: str,
    ip: str | None,
    *,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {names.INJECTED_LABEL: "true"},
            "annotations": annotations or {},
            "ownerReferences": [owner] if owner else [],
        },
        "spec": {
            "containers": containers
            if containers is not None
            else [
                {"name": "sidecar", "image": "busybox"},
                {
                    "name": "core",
                    "image": "stellar/stellar-core:21",
                    "ports": [
                        {"name": "peer", "containerPort": 11625},
                        {"name": "http", "containerPort": 11700},
                    ],
                },
            ]
        },
        "status": {"podIP": ip} if ip else {},
    }


@dataclass(frozen=True)
class Snap:
    peers: PeerSet
    validators: tuple[dict[str, Any], ...]


def test_plan_round_targets_the_stellar_core_container_and_its_http_port() -> None:
    [plan] = plan_round(Snap(PEER_SET, (pod("v1", "10.0.0.1"),)), settings=SETTINGS)
    assert (plan.name, plan.namespace, plan.uid) == ("v1", "ns", "uid-v1")
    assert (plan.ip, plan.container, plan.http_port) == ("10.0.0.1", "core", 11700)
    assert plan.mode == "http"
    assert plan.hash == PEER_SET.hash
    assert not plan.current


def test_plan_round_defaults_the_http_port_to_11626() -> None:
    bare = pod("v1", "10.0.0.1", containers=[{"name": "core", "image": "stellar/stellar-core"}])
    [plan] = plan_round(Snap(PEER_SET, (bare,)), settings=SETTINGS)
    assert plan.http_port == 11626


def test_plan_round_skips_pods_without_a_valid_ip_or_container() -> None:
    validators = (
        pod("no-ip", None),
        pod("bad-ip", "10.0.0.1; rm -rf /"),
        pod("host", "example.org"),
        pod("empty", "10.0.0.9", containers=[]),
        pod("named", "10.0.0.8", annotations={names.CONTAINER_ANNOTATION: "missing"}),
    )
    assert plan_round(Snap(PEER_SET, validators), settings=SETTINGS) == []


def test_plan_round_reads_mode_from_annotation_else_settings() -> None:
    validators = (
        pod("a", "10.0.0.1", annotations={names.RELOAD_MODE_ANNOTATION: "Exec"}),
        pod("b", "10.0.0.2", annotations={names.RELOAD_MODE_ANNOTATION: "bogus"}),
        pod("c", "10.0.0.3"),
    )
    settings = Settings(reload_mode="none")
    assert [p.mode for p in plan_round(Snap(PEER_SET, validators), settings=settings)] == [
        "exec",
        "none",
        "none",
    ]


def test_plan_round_marks_nodes_already_on_the_hash() -> None:
    done = pod("a", "10.0.0.1", annotations={names.OBSERVED_HASH_ANNOTATION: PEER_SET.hash})
    stale = pod("b", "10.0.0.2", annotations={names.OBSERVED_HASH_ANNOTATION: "sha256:old"})
    rolled = pod("c", "10.0.0.3", annotations={names.PEERS_HASH_ANNOTATION: PEER_SET.hash})
    plans = plan_round(Snap(PEER_SET, (done, stale, rolled)), settings=SETTINGS)
    assert [(p.current, p.rolled_out) for p in plans] == [
        (True, False),
        (False, False),
        (False, True),
    ]


def test_plan_round_records_the_controlling_owner() -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "core-abc",
        "uid": "u",
        "controller": True,
    }
    [plan] = plan_round(Snap(PEER_SET, (pod("a", "10.0.0.1", owner=owner),)), settings=SETTINGS)
    assert plan.owner == ("ReplicaSet", "core-abc")


def test_missing_peers_skips_itself_and_connected_ones() -> None:
    missing = missing_peers(PEER_SET, {"10.0.0.2:11625"}, own_ip="10.0.0.1")
    assert [p.peer_string for p in missing] == ["10.0.0.3:11700"]


def test_missing_peers_for_a_new_node_is_every_other_peer() -> None:
    missing = missing_peers(PEER_SET, set(), own_ip="10.0.0.9")
    assert [p.peer_string for p in missing] == [
        "10.0.0.1:11625",
        "10.0.0.2:11625",
        "10.0.0.3:11700",
    ]


def test_missing_peers_one_per_address_and_never_odd_hosts() -> None:
    peers = PeerSet(
        (
            peer("10.0.0.1", name="a"),
            peer("10.0.0.1", name="b"),
            peer("core.example.org"),
            peer("evil&port=1"),
            peer("a b"),
        )
    )
    missing = missing_peers(peers, set(), own_ip="10.0.0.9")
    assert [p.peer_string for p in missing] == ["10.0.0.1:11625", "core.example.org:11625"]


def test_missing_peers_keeps_another_port_on_its_own_ip() -> None:
    # A node is itself by IP: stellar-core never needs to dial its own address.
    peers = PeerSet((peer("10.0.0.1", 11625), peer("10.0.0.1", 11626)))
    assert missing_peers(peers, set(), own_ip="10.0.0.1") == []


def test_reload_mode_is_case_insensitive_and_falls_back() -> None:
    assert reload_mode({names.RELOAD_MODE_ANNOTATION: " Rollout "}, default="http") == "rollout"
    assert reload_mode({}, default="exec") == "exec"


def test_exec_command_runs_http_command_with_the_pods_conf() -> None:
    helm = pod(
        "core-0",
        "10.0.0.1",
        containers=[
            {
                "name": "core",
                "image": "stellar/stellar-core:22",
                "args": ["run", "--conf", "/config/stellar-core.cfg", "--console"],
            }
        ],
    )
    [plan] = plan_round(Snap(PEER_SET, (helm,)), settings=SETTINGS)
    assert plan.conf == "/config/stellar-core.cfg"
    argv = exec_command("peers", conf=plan.conf, seconds=2)
    assert argv[-3:] == ["--conf", "/config/stellar-core.cfg", "peers"]
    assert "stellar-core http-command" in argv[2]


def rollout_pods(generation: int, template: str, ips: list[str]) -> list[dict[str, Any]]:
    """A rollout-mode Deployment `core`'s pods of one generation (ReplicaSet `core-<gen>`)."""
    owner = {"kind": "ReplicaSet", "name": f"core-{generation}", "controller": True}
    made = []
    for i, ip in enumerate(ips):
        p = pod(
            f"core-{generation}-{i}",
            ip,
            annotations={
                names.RELOAD_MODE_ANNOTATION: "rollout",
                names.PEERS_HASH_ANNOTATION: template,
            },
            owner=owner,
        )
        p["metadata"]["labels"]["pod-template-hash"] = str(generation)
        made.append(p)
    return made


def test_rollout_mode_rolls_out_once_per_change_then_is_quiet() -> None:
    other = pod("other", "10.0.9.1")  # an http-mode validator outside the workload
    statics = [peer("203.0.113.1")]
    template, generation, rollouts = "", 0, []
    address = iter(range(10, 250))

    def step(extra: list[Peer]) -> bool:
        """One round; True when it calls for a rollout, which then replaces the pods."""
        nonlocal template, generation, current
        validators = (*current, other)
        peers = PeerSet(
            tuple(
                Peer(
                    namespace="ns",
                    name=v["metadata"]["name"],
                    node_type="validator",
                    ip=v["status"]["podIP"],
                    port=11625,
                    source="pod",
                )
                for v in validators
            )
            + tuple(extra)
        )
        plans = plan_round(Snap(peers, validators), settings=SETTINGS)
        due = {p.hash for p in plans if p.mode == "rollout" and not p.rolled_out}
        if not due:
            return False
        [template] = due  # one hash for the whole workload
        generation += 1
        ips = [f"10.0.{generation}.{next(address)}" for _ in range(3)]
        current = rollout_pods(generation, template, ips)  # new pods, new addresses
        return True

    current = rollout_pods(0, "", ["10.0.0.2", "10.0.0.3", "10.0.0.4"])
    rollouts = [step(statics) for _ in range(5)]
    assert rollouts == [True, False, False, False, False]
    statics.append(peer("203.0.113.2"))  # a change of the others calls for one more
    rollouts = [step(statics) for _ in range(5)]
    assert rollouts == [True, False, False, False, False]
    other["status"]["podIP"] = "10.0.9.2"  # so does another validator's new address
    assert [step(statics) for _ in range(3)] == [True, False, False]
    assert generation == 3


def test_a_remote_peer_named_like_a_local_pod_does_not_change_its_network() -> None:
    """Linked clusters often run the same chart: `ns/v1` there must not stand for `ns/v1` here."""
    local = Peer("ns", "v1", "validator", "10.0.0.1", 11625, "pod", network="testnet")
    remote = Peer(
        "ns", "v1", "validator", "198.51.100.1", 11625, "remote", network="pubnet", cluster="west"
    )
    peers = PeerSet((local, remote))
    [plan] = plan_round(Snap(peers, (pod("v1", "10.0.0.1"),)), settings=SETTINGS)
    assert plan.network == "testnet"
