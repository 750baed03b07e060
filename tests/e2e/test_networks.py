"""Peer sets per network, against the real API server, with stand-ins as the nodes.

Two networks in one namespace: unlabeled testnet and pubnet stand-ins (their
networks learned from `info`), a pod labeled `testnet` whose node is on pubnet
(the label wins, and it is reported), and a static peer per network (stand-ins
too, outside the cluster). The watcher, the identity learner and the reload
controller run together, as `serve` runs them. Each stand-in logs the admin
requests it got, so a `connect` to another network's peer would show.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import orjson
import pytest
from kubernetes import client

from tests.e2e.conftest import injector_apart
from tests.e2e.test_reload import IMAGE, events, loopback_block, observed, run_injector
from tests.e2e.test_watcher import ensure_crd, stellar_node
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.standin import PUBNET, TESTNET, StellarCoreStandIn
from webhook import names
from webhook.cli import status
from webhook.core.peerset import networks
from webhook.metrics import Metrics
from webhook.settings import Settings


def validator_pod(name: str, *, http_port: int, network: str | None = None) -> dict[str, Any]:
    labels = {names.INJECTED_LABEL: "true"}
    if network is not None:
        labels[names.NETWORK_LABEL] = network
    return {
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {names.HOME_DOMAIN_ANNOTATION: f"{name}.example.org"},
        },
        "spec": {
            "containers": [
                {
                    "name": "stellar-core",
                    "image": IMAGE,
                    "ports": [
                        {"name": "peer", "containerPort": 11625},
                        {"name": "http", "containerPort": http_port},
                    ],
                }
            ]
        },
    }


class Cluster:
    """The stand-ins of one test, by pod name, and what it takes to add one."""

    def __init__(
        self, stack: ExitStack, core: client.CoreV1Api, kubelet: FakeKubelet, namespace: str
    ) -> None:
        self.stack, self.core, self.kubelet, self.namespace = stack, core, kubelet, namespace
        self.block = loopback_block()
        self.nodes: dict[str, StellarCoreStandIn] = {}
        self.next = 2

    def ip(self) -> str:
        self.next += 1
        return f"{self.block}{self.next}"

    def standin(self, passphrase: str, **options: Any) -> StellarCoreStandIn:
        node = StellarCoreStandIn(
            host=self.ip(),
            port=0,
            peer_port=11625,
            network_passphrase=passphrase,
            redial_seconds=0.5,
            **options,
        )
        return self.stack.enter_context(node)

    def pod(
        self, name: str, passphrase: str, *, label: str | None = None, **options: Any
    ) -> StellarCoreStandIn:
        node = self.standin(passphrase, **options)
        self.core.create_namespaced_pod(
            self.namespace, validator_pod(name, http_port=node.port, network=label)
        )
        self.kubelet.mark_ready(namespace=self.namespace, name=name, ip=node.host)
        self.nodes[name] = node
        return node


def canonical(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    try:
        found = core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace)
    except client.ApiException:
        return {}
    return dict(found.data or {})


def writes(metrics: Metrics) -> float:
    total = 0.0
    for result in ("created", "updated"):
        value = metrics.registry.get_sample_value(
            "stellar_configmap_writes_total", {"kind": "canonical", "result": result}
        )
        total += value or 0.0
    return total


@pytest.fixture
def settings(settings: Settings, core: client.CoreV1Api) -> Iterator[Settings]:
    """The injector apart from the validators' namespace (it never serves its own)."""
    with injector_apart(core, settings) as apart:
        yield apart


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def test_networks_are_learned_kept_apart_and_changed_one_at_a_time(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    stack: ExitStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    label_enabled(core, namespace, settings)
    nodes = Cluster(stack, core, kubelet, namespace)
    static_test, static_pub = nodes.standin(TESTNET), nodes.standin(PUBNET)
    settings = dataclasses.replace(
        settings,
        static_peers=(f"{static_test.host}:11625@testnet", f"{static_pub.host}:11625@pubnet"),
        reload_timeout_seconds=1.0,
        reload_connect_wait_seconds=2.0,
    )
    t0, t1 = nodes.pod("t0", TESTNET), nodes.pod("t1", TESTNET)
    p0, p1 = nodes.pod("p0", PUBNET), nodes.pod("p1", PUBNET)
    odd = nodes.pod("odd", PUBNET, label="testnet")  # the label says testnet, the node pubnet
    testnet_ips = {t0.host, t1.host, odd.host, static_test.host}
    pubnet_ips = {p0.host, p1.host, static_pub.host}
    metrics = Metrics()
    with run_injector(settings, cluster.api_client, metrics) as watcher:

        def published() -> bool:
            data = canonical(core, namespace)
            txt = {k: set(data.get(f"peers-{k}.txt", "").split()) for k in ("testnet", "pubnet")}
            return (
                txt
                == {
                    "testnet": {f"{ip}:11625" for ip in testnet_ips},
                    "pubnet": {f"{ip}:11625" for ip in pubnet_ips},
                }
                and len(data.get("validators-testnet.cfg", "").split("[[VALIDATORS]]")) == 4
            )

        wait_until(published, timeout=30, message="one peer set per network, keys learned")
        data = canonical(core, namespace)
        assert (data["peers.txt"], data["peer_count"]) == ("", "0"), "two networks: no mixed key"
        entries = {e["name"]: e for e in orjson.loads(data["peers.json"])}
        for name, node in nodes.nodes.items():
            assert entries[name]["publicKey"] == node.public_key
        assert {n: entries[n]["network"] for n in nodes.nodes} == {
            "t0": "testnet",
            "t1": "testnet",
            "p0": "pubnet",
            "p1": "pubnet",
            "odd": "testnet",  # the label wins
        }
        assert entries[f"{static_pub.host}:11625"]["network"] == "pubnet"
        assert data["preferred_peer_keys-pubnet.cfg"] == (
            "PREFERRED_PEER_KEYS = [{}]\n".format(
                ", ".join(f'"{k}"' for k in sorted({p0.public_key, p1.public_key}))
            )
        )
        assert f'PUBLIC_KEY="{t0.public_key}"' in data["validators-testnet.cfg"]
        assert (
            f'NAME="{namespace}/t0"\nHOME_DOMAIN="t0.example.org"' in data["validators-testnet.cfg"]
        )

        sets = networks.split(watcher.snapshot.peers)
        wait_until(
            lambda: all(
                observed(core, namespace, name) == sets[entries[name]["network"]].hash
                for name in nodes.nodes
            ),
            timeout=30,
            message="every node up to date with its own network's set",
        )
        wait_until(
            lambda: any(r == "NetworkMismatch" for r, _, _ in events(core, namespace, "odd")),
            timeout=10,
            message="the label that disagrees with its node reported on the pod",
        )
        own = {"t0": testnet_ips, "t1": testnet_ips, "odd": testnet_ips}
        own |= {"p0": pubnet_ips, "p1": pubnet_ips}
        for name, node in nodes.nodes.items():
            dialed = {c.rpartition(":")[0] for c in node.connects()}
            assert dialed <= own[name], f"{name} was told of another network's peers: {dialed}"
            assert dialed, f"{name} was told of nobody"
        assert not {c.rpartition(":")[0] for c in p0.connects()} & testnet_ips

        # One network changes: a third pubnet node. Only pubnet nodes are asked anything.
        before = {name: len(node.received) for name, node in nodes.nodes.items()}
        versions = {
            name: core.read_namespaced_pod(name, namespace).metadata.resource_version
            for name in nodes.nodes
        }
        learner_asked, written = watcher.identity.asked, writes(metrics)
        p2 = nodes.pod("p2", PUBNET)
        pubnet_ips.add(p2.host)
        wait_until(
            lambda: f"{p2.host}:11625" in canonical(core, namespace).get("peers-pubnet.txt", ""),
            timeout=20,
            message="the pubnet set to grow",
        )
        new_pubnet = networks.split(watcher.snapshot.peers)["pubnet"]
        wait_until(
            lambda: all(
                observed(core, namespace, n) == new_pubnet.hash for n in ("p0", "p1", "p2")
            ),
            timeout=30,
            message="the pubnet nodes up to date",
        )
        calls = {
            name: len(nodes.nodes[name].received) - before.get(name, 0) for name in nodes.nodes
        }
        assert calls["t0"] == calls["t1"] == calls["odd"] == 0, calls
        assert all(calls[n] > 0 for n in ("p0", "p1", "p2")), calls
        assert f"{p2.host}:11625" in p0.connects()
        assert not {c.rpartition(":")[0] for c in p2.connects()} & testnet_ips
        patched = sorted(
            name
            for name in ("t0", "t1", "odd", "p0", "p1")
            if core.read_namespaced_pod(name, namespace).metadata.resource_version != versions[name]
        )
        assert not set(patched) & {"t0", "t1", "odd"}, patched
        published = status.peer_set({"data": canonical(core, namespace)})
        listed = core.list_namespaced_pod(namespace, _preload_content=False)
        pods = orjson.loads(listed.data)["items"]
        rows = {r.pod: r for r in status.rows(published, pods, settings=settings)}
        assert (rows["t0"].network, rows["t0"].key) == ("testnet", t0.public_key)
        assert (rows["odd"].network, rows["odd"].key) == ("testnet", odd.public_key)
        assert (rows["p2"].network, rows["p2"].state) == ("pubnet", "current")
        with capsys.disabled():
            print(
                f"\nnetwork change (one pubnet node added): ConfigMap writes "
                f"{writes(metrics) - written:.0f}, pods patched {patched} (+ p2), "
                f"identity admin calls {watcher.identity.asked - learner_asked}, "
                f"admin requests per node {calls}"
            )


def test_a_node_that_cannot_be_asked_is_only_with_its_own_kind(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    stack: ExitStack,
) -> None:
    """Refused admin port, no label: the `unknown` set, handed to no known network."""
    label_enabled(core, namespace, settings)
    nodes = Cluster(stack, core, kubelet, namespace)
    t0 = nodes.pod("t0", TESTNET)
    t1 = nodes.pod("t1", TESTNET)
    mute = nodes.ip()
    with socket.socket() as s:
        s.bind((mute, 0))
        closed = s.getsockname()[1]
    core.create_namespaced_pod(namespace, validator_pod("mute", http_port=closed))
    kubelet.mark_ready(namespace=namespace, name="mute", ip=mute)
    metrics = Metrics()
    with run_injector(settings, cluster.api_client, metrics) as watcher:

        def placed() -> bool:
            data = canonical(core, namespace)
            entries = {e["name"]: e for e in orjson.loads(data.get("peers.json", "[]"))}
            return (
                set(entries) == {"t0", "t1", "mute"}
                and "network" not in entries["mute"]
                and data.get("peers-testnet.txt") == f"{t0.host}:11625\n{t1.host}:11625\n"
            )

        wait_until(placed, timeout=30, message="mute in the unknown set, t0 and t1 in testnet")
        data = canonical(core, namespace)
        assert not any("unknown" in key for key in data)
        assert data["peers.txt"] == "", "two sets: the unqualified keys are empty"
        sets = networks.split(watcher.snapshot.peers)
        wait_until(
            lambda: all(observed(core, namespace, n) == sets["testnet"].hash for n in ("t0", "t1")),
            timeout=20,
            message="the testnet nodes up to date",
        )
        for node in (t0, t1):
            assert f"{mute}:11625" not in node.connects()


def test_stellarnodes_are_placed_by_their_spec(
    cluster: Any,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    apiext: client.ApiextensionsV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    stack: ExitStack,
) -> None:
    label_enabled(core, namespace, settings)
    ensure_crd(apiext)
    nodes = Cluster(stack, core, kubelet, namespace)
    t0, t1 = nodes.pod("t0", TESTNET), nodes.pod("t1", TESTNET)
    sn_test, sn_pub = nodes.standin(TESTNET), nodes.standin(PUBNET)
    group, version = names.STELLARNODE_GROUP, names.STELLARNODE_VERSION
    for name, spec, node in (
        ("sn-test", {"networkPassphrase": TESTNET}, sn_test),
        ("sn-pub", {"network": "pubnet"}, sn_pub),
    ):
        body = stellar_node(name, **spec)
        custom.create_namespaced_custom_object(
            group, version, namespace, names.STELLARNODE_PLURAL, body
        )
        pod = {
            "metadata": {
                "name": f"{name}-0",
                "labels": {
                    "app.kubernetes.io/name": "stellar-node",
                    "app.kubernetes.io/instance": name,
                },
            },
            "spec": {"containers": [{"name": "core", "image": "stellar/stellar-core:22"}]},
        }
        core.create_namespaced_pod(namespace, pod)
        kubelet.mark_ready(namespace=namespace, name=f"{name}-0", ip=node.host)
    with run_injector(settings, cluster.api_client, Metrics()) as watcher:

        def placed() -> bool:
            data = canonical(core, namespace)
            return (
                set(data.get("peers-testnet.txt", "").split())
                == {f"{ip}:11625" for ip in (t0.host, t1.host, sn_test.host)}
                and data.get("peers-pubnet.txt") == f"{sn_pub.host}:11625\n"
            )

        wait_until(placed, timeout=30, message="each StellarNode in its spec's network")
        entries = {e["name"]: e for e in orjson.loads(canonical(core, namespace)["peers.json"])}
        assert (entries["sn-test"]["network"], entries["sn-pub"]["network"]) == (
            "testnet",
            "pubnet",
        )
        testnet = networks.split(watcher.snapshot.peers)["testnet"]
        wait_until(
            lambda: all(observed(core, namespace, n) == testnet.hash for n in ("t0", "t1")),
            timeout=20,
            message="the testnet pods up to date",
        )
        for node in (t0, t1):
            assert f"{sn_pub.host}:11625" not in node.connects()
            assert f"{sn_test.host}:11625" in node.connects()


def test_a_booting_node_is_asked_again_until_it_says_who_it_is(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    stack: ExitStack,
) -> None:
    label_enabled(core, namespace, settings)
    nodes = Cluster(stack, core, kubelet, namespace)
    slow = nodes.pod("slow", PUBNET, booting_requests=3)  # three answers of "booting" first
    with run_injector(settings, cluster.api_client, Metrics()):

        def learned() -> bool:
            data = canonical(core, namespace)
            entries = orjson.loads(data.get("peers.json", "[]"))
            return bool(entries) and entries[0].get("publicKey") == slow.public_key

        wait_until(learned, timeout=30, message="the key learned after the node booted")
        entry = orjson.loads(canonical(core, namespace)["peers.json"])[0]
        assert entry["network"] == "pubnet"
        commands = [r.command for r in slow.received]
        # Asked first (before any reload), and again after the booting answer.
        assert commands[0] == "info", commands
        assert commands.count("info") >= 2, commands
        assert commands.count("quorum") == 1, commands


def test_nodes_of_two_networks_still_booting_are_not_handed_each_other(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    stack: ExitStack,
) -> None:
    """Unlabeled nodes that answer "Core is booting" (v25.2+) when first asked: their
    networks are not known yet, yet they are no `unknown` pair to connect. Once booted,
    each is told only of its own network's peers."""
    label_enabled(core, namespace, settings)
    nodes = Cluster(stack, core, kubelet, namespace)
    settings = dataclasses.replace(
        settings, reload_timeout_seconds=1.0, reload_connect_wait_seconds=2.0
    )
    nodes.pod("t0", TESTNET), nodes.pod("p0", PUBNET)
    # Booting for different times, so some boot between two of the injector's asks.
    for n, boot in enumerate((3, 5, 8), start=1):
        nodes.pod(f"t{n}", TESTNET, booting_seconds=boot)
        nodes.pod(f"p{n}", PUBNET, booting_seconds=boot)
    want = {name: "testnet" if name[0] == "t" else "pubnet" for name in nodes.nodes}
    ips = {
        net: {nodes.nodes[name].host for name in want if want[name] == net}
        for net in ("testnet", "pubnet")
    }
    with run_injector(settings, cluster.api_client, Metrics()) as watcher:

        def current() -> bool:
            sets = networks.split(watcher.snapshot.peers)
            return set(sets) == {"testnet", "pubnet"} and all(
                observed(core, namespace, name) == sets[net].hash for name, net in want.items()
            )

        wait_until(current, timeout=60, message="every node current with its network's set")
        for name, node in nodes.nodes.items():
            dialed = {c.rpartition(":")[0] for c in node.connects()}
            own = ips[want[name]]
            assert dialed <= own, f"{name} was told of another network's peers: {dialed - own}"
            refused = [e for e in node.events() if e[1] == "wrong network passphrase"]
            assert not refused, f"{name} met another network's node: {refused}"


def test_a_restarted_injector_keeps_the_published_set_while_it_asks_the_nodes_again(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    stack: ExitStack,
) -> None:
    label_enabled(core, namespace, settings)
    nodes = Cluster(stack, core, kubelet, namespace)
    # Every answer takes a second: the restarted injector's first pass takes a while.
    a = nodes.pod("a", TESTNET, delay_seconds=1.0)
    b = nodes.pod("b", TESTNET, delay_seconds=1.0)
    both = {f"{a.host}:11625", f"{b.host}:11625"}
    with run_injector(settings, cluster.api_client, Metrics()):
        wait_until(
            lambda: set(canonical(core, namespace).get("peers-testnet.txt", "").split()) == both,
            timeout=30,
            message="the two published",
        )
    metrics = Metrics()
    with run_injector(settings, cluster.api_client, metrics) as watcher:
        wait_until(
            lambda: {p.peer_string for p in watcher.snapshot.peers.peers} == both,
            timeout=30,
            message="the restarted injector to know both nodes again",
        )
        # Nothing changed, so nothing was written: not the set without the nodes it had not
        # asked yet (every mirror blanked), then the whole set again.
        assert writes(metrics) == 0
        assert set(canonical(core, namespace).get("peers-testnet.txt", "").split()) == both
