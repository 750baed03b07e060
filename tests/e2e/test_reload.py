"""The reload controller against the real API server, with stellar-core stand-ins as nodes.

Each validator pod's `http` container port is its stand-in's port, and the fake
kubelet gives the pod the stand-in's loopback address as its IP, so the
controller dials exactly what it would dial in a cluster. Addresses are picked
per test from 127.0.0.0/8 so that tests running at the same time never meet.

Most tests drive the controller alone through `make_controller` (one round, or its
run loop, with made snapshots: a named seam); the tests of how it is joined to the
service (fed by the watcher, leader-only) run it as `serve` wires it
(`tests/service.running_service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from kubernetes import client

from tests.background import Background
from tests.e2e.conftest import injector_apart
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from tests.standin import PUBNET, StellarCoreStandIn
from webhook import names
from webhook.controllers.reload import ReloadController
from webhook.controllers.watcher import PeerWatcher
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.pod import is_running
from webhook.core.reload import connection
from webhook.kube.leader import micro_time, now_utc
from webhook.metrics import Metrics
from webhook.settings import Settings

IMAGE = "stellar/stellar-core:22.1.0"
# What the reload controller asks; the identity learner asks `info` and `quorum`.
RELOAD_COMMANDS = frozenset({"peers", "connect"})


@dataclass(frozen=True)
class Snap:
    peers: PeerSet
    validators: tuple[dict[str, Any], ...]


def loopback_block() -> str:
    """A random 127.x.y. prefix: this test's private range of node addresses."""
    return f"127.{random.randint(64, 254)}.{random.randint(0, 254)}."


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def validator(
    name: str, *, http_port: int, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """An injected-looking validator pod whose admin port is `http_port`."""
    return {
        "metadata": {
            "name": name,
            "labels": {names.INJECTED_LABEL: "true"},
            "annotations": annotations or {},
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


def snapshot_of(
    core: client.CoreV1Api,
    namespace: str,
    *,
    extra: tuple[Peer, ...] = (),
    only: Callable[[dict[str, Any]], bool] = lambda pod: True,
) -> Snap:
    """What the peer watcher would hand over: running injected pods and the set they make."""
    raw = core.list_namespaced_pod(
        namespace, label_selector=f"{names.INJECTED_LABEL}=true", _preload_content=False
    )
    pods = [p for p in orjson.loads(raw.data)["items"] if only(p)]
    ready = [p for p in pods if p.get("status", {}).get("podIP") and is_running(p)]
    peers = tuple(
        Peer(
            namespace=namespace,
            name=p["metadata"]["name"],
            node_type="validator",
            ip=p["status"]["podIP"],
            port=11625,
            source="pod",
        )
        for p in ready
    )
    return Snap(PeerSet(tuple(sorted(peers + extra))), tuple(ready))


class Running:
    """The controller's run loop on an event loop of its own thread."""

    def __init__(self, controller: ReloadController) -> None:
        self.controller = controller
        self.background = Background(controller.run, what="the run loop", stop_within=15)

    def notify(self, snapshot: Snap) -> None:
        self.background.call(self.controller.notify, snapshot)

    def close(self) -> None:
        self.background.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, reload_timeout_seconds=0.5, reload_retries=2, reload_connect_wait_seconds=1.0
    )


@pytest.fixture
def make_controller(cluster: Any, metrics: Metrics) -> Callable[..., ReloadController]:
    """One reload controller, alone: the named seam for tests of its rounds
    (docs/development.md, "Seams kept"). They hand it made snapshots (a static peer, a
    subset of the pods) and count rounds, which the wired service cannot be made to
    do; what joins it to the rest (the watcher's `on_change`, the Lease) is tested
    through `running_service` below."""

    def make(settings: Settings) -> ReloadController:
        return ReloadController(settings=settings, api_client=cluster.api_client, metrics=metrics)

    return make


@contextlib.contextmanager
def run_injector(
    settings: Settings, api_client: client.ApiClient, metrics: Metrics
) -> Iterator[PeerWatcher]:
    """The injector as `serve` wires it (watcher, reload under the Lease), running."""
    with running_service(settings, api_client=api_client, metrics=metrics) as service:
        assert service.watcher is not None
        yield service.watcher


@pytest.fixture
def nodes() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def start_node(
    stack: ExitStack,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    name: str,
    ip: str,
    *,
    annotations: dict[str, str] | None = None,
    **standin: Any,
) -> StellarCoreStandIn:
    standin.setdefault("redial_seconds", 0.5)
    node = stack.enter_context(StellarCoreStandIn(host=ip, port=0, peer_port=11625, **standin))
    core.create_namespaced_pod(
        namespace, validator(name, http_port=node.port, annotations=annotations)
    )
    kubelet.mark_ready(namespace=namespace, name=name, ip=ip)
    return node


def observed(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    annotations = core.read_namespaced_pod(name, namespace).metadata.annotations or {}
    return annotations.get(names.OBSERVED_HASH_ANNOTATION)


def connection_status(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    annotations = core.read_namespaced_pod(name, namespace).metadata.annotations or {}
    return annotations.get(names.CONNECTION_STATUS_ANNOTATION)


def events(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    found = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [(e.reason, e.type, e.message) for e in found.items]


def test_reload_sixth_node_reaches_the_five_and_learns_them(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
    metrics: Metrics,
) -> None:
    block = loopback_block()
    ips = [f"{block}{i}" for i in range(2, 8)]
    five = {}
    for i, ip in enumerate(ips[:5]):
        # The five know each other (KNOWN_PEERS) and mesh before the controller starts.
        five[f"v{i}"] = start_node(
            nodes,
            core,
            kubelet,
            namespace,
            f"v{i}",
            ip,
            known_peers=[f"{o}:11625" for o in ips[:5] if o != ip],
        )
    wait_until(
        lambda: all(len(n.authenticated()) == 4 for n in five.values()),
        timeout=30,
        message="the five to mesh",
    )
    running = Running(make_controller(settings))
    try:
        first = snapshot_of(core, namespace)
        running.notify(first)
        wait_until(
            lambda: all(observed(core, namespace, n) == first.peers.hash for n in five),
            timeout=10,
            message="the five to be marked up to date",
        )
        assert all(node.connects() == [] for node in five.values()), "nothing was missing"

        sixth = start_node(nodes, core, kubelet, namespace, "v5", ips[5])
        second = snapshot_of(core, namespace)
        assert len(second.validators) == 6
        running.notify(second)
        # Generous deadlines: how fast is measured by tests/bench/bench_reload.py, not here
        # (3 s failed here at a load of 9 on 2 cores).
        wait_until(
            lambda: all(n.connects() == [f"{ips[5]}:11625"] for n in five.values()),
            timeout=20,
            message="each of the five to get connect for the sixth",
        )
        # The sixth lacks everyone, so it is told about all five.
        wait_until(
            lambda: sorted(sixth.connects()) == sorted(f"{ip}:11625" for ip in ips[:5]),
            timeout=20,
            message="the sixth to get connect for the five",
        )
        wait_until(
            lambda: all(observed(core, namespace, f"v{i}") == second.peers.hash for i in range(6)),
            timeout=10,
            message="observed hashes",
        )
        # The Event is written just after the annotation: poll for it too.
        wait_until(
            lambda: any(
                r == "PeersReloaded" and t == "Normal" and "5 connects" in m
                for r, t, m in events(core, namespace, "v5")
            ),
            timeout=5,
            message="a PeersReloaded Event on the sixth saying it got 5 connects",
        )
        value = metrics.registry.get_sample_value(
            "stellar_reloads_total", {"mode": "http", "result": "success"}
        )
        assert value == 11  # five, then six
    finally:
        running.close()


def test_reload_retries_a_booting_node_until_it_answers(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
) -> None:
    block = loopback_block()
    booting = start_node(
        nodes, core, kubelet, namespace, "booting", f"{block}2", booting_requests=3
    )
    # "other" dials nobody (no outbound slots), so only the first node's own connect links them.
    start_node(
        nodes,
        core,
        kubelet,
        namespace,
        "other",
        f"{block}3",
        target_peer_connections=0,
        max_additional_peer_connections=8,
    )
    snap = snapshot_of(core, namespace)
    controller = make_controller(dataclasses.replace(settings, reload_retries=5))
    assert asyncio.run(controller.reconcile(snap)) == 0
    commands = [r.command for r in booting.received]
    assert commands[:3] == ["peers", "peers", "peers"], "booting answers are asked again"
    assert booting.connects() == [f"{block}3:11625"]
    assert observed(core, namespace, "booting") == snap.peers.hash


def test_reload_unreachable_and_slow_nodes_do_not_delay_the_others(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    fast: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
    metrics: Metrics,
) -> None:
    block = loopback_block()
    good = [
        start_node(nodes, core, kubelet, namespace, f"good{i}", f"{block}{i + 2}") for i in range(3)
    ]
    start_node(nodes, core, kubelet, namespace, "slow", f"{block}5", delay_seconds=5)
    # Nothing listens for the unreachable one: its admin port is a closed port.
    unreachable_ip = f"{block}6"
    core.create_namespaced_pod(
        namespace, validator("unreachable", http_port=free_port(unreachable_ip))
    )
    kubelet.mark_ready(namespace=namespace, name="unreachable", ip=unreachable_ip)
    snap = snapshot_of(core, namespace)
    assert len(snap.validators) == 5

    running = Running(make_controller(fast))
    try:
        started = time.monotonic()
        running.notify(snap)
        wait_until(
            lambda: all(len(n.connects()) == 4 for n in good),
            timeout=2,
            message="the good nodes to be told while the others are retried",
        )
        good_done = time.monotonic() - started
        # The good ones are behind too: nothing answers at the unreachable one's peer port.
        wait_until(
            lambda: metrics.registry.get_sample_value("stellar_nodes_behind") == 5,
            timeout=15,
            message="the round to end with every node behind",
        )
        round_done = time.monotonic() - started
    finally:
        closing = time.monotonic()
        running.close()
    assert time.monotonic() - closing < 1.0, "stopping cancels a round in progress"
    assert good_done < 1.0 < round_done, (good_done, round_done)
    # Failed nodes are retried in later rounds; every one of their events is a failure.
    assert {r for r, _, _ in events(core, namespace, "unreachable")} == {"PeersReloadFailed"}
    assert {r for r, _, _ in events(core, namespace, "slow")} == {"PeersReloadFailed"}
    assert "refused" in events(core, namespace, "unreachable")[0][2]
    assert "timeout" in events(core, namespace, "slow")[0][2]
    assert observed(core, namespace, "slow") is None
    assert observed(core, namespace, "unreachable") is None
    for i in range(3):
        # Asked is not connected: the good nodes say which peer they lack, and are not marked.
        assert observed(core, namespace, f"good{i}") is None
        status = orjson.loads(connection_status(core, namespace, f"good{i}") or "{}")
        assert status["missing"] == [{"peer": f"{unreachable_ip}:11625", "reason": "not-connected"}]
        assert (status["connected"], status["expected"]) == (3, 4)
        assert {r for r, _, _ in events(core, namespace, f"good{i}")} == {"PeersNotConnected"}
    failed = metrics.registry.get_sample_value(
        "stellar_reloads_total", {"mode": "http", "result": "failed"}
    )
    assert failed is not None
    assert failed >= 2


def test_reload_newer_peer_set_is_not_held_back_by_a_dead_node(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
) -> None:
    """A refused node is retried with backoff, but a newer set ends those retries at once."""
    patient = dataclasses.replace(settings, reload_timeout_seconds=0.5, reload_retries=8)
    block = loopback_block()
    good = [
        start_node(nodes, core, kubelet, namespace, f"good{i}", f"{block}{i + 2}") for i in range(2)
    ]
    dead_ip = f"{block}9"
    core.create_namespaced_pod(namespace, validator("dead", http_port=free_port(dead_ip)))
    kubelet.mark_ready(namespace=namespace, name="dead", ip=dead_ip)
    running = Running(make_controller(patient))
    try:
        running.notify(snapshot_of(core, namespace))
        wait_until(
            lambda: all(len(n.connects()) == 2 for n in good),
            timeout=3,
            message="the first round to reach the good nodes",
        )
        # The dead node now sits in 8 backoff retries (more than 10 s in all).
        newcomer = Peer(
            namespace=namespace,
            name="new",
            node_type="validator",
            ip=f"{block}20",
            port=11625,
            source="static",
        )
        changed = time.monotonic()
        running.notify(snapshot_of(core, namespace, extra=(newcomer,)))
        wait_until(
            lambda: all(newcomer.peer_string in n.connects() for n in good),
            timeout=5,
            message="the newer set to reach the good nodes",
        )
        delivered = time.monotonic() - changed
    finally:
        running.close()
    assert delivered < 2.0, f"the newer set waited {delivered:.1f}s behind the dead node's retries"


def test_reload_waits_for_leadership(
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    nodes: ExitStack,
) -> None:
    """The reload runnable is leader-only (`leader.start`, as `wire` declares it): a
    follower that watches the nodes, asks them who they are (the identity learner runs
    on every replica) and has folded them into its snapshot tells no node; once the
    Lease is handed over the runnable starts and catches up with the latest snapshot."""
    settings = dataclasses.replace(
        settings,
        identity="follower",
        leader_election=True,
        lease_duration_seconds=2.0,
        lease_renew_seconds=0.5,
    )
    settings = nodes.enter_context(injector_apart(core, settings))
    label_enabled(core, namespace, settings)
    block = loopback_block()
    node = start_node(nodes, core, kubelet, namespace, "v0", f"{block}2")
    other = start_node(nodes, core, kubelet, namespace, "v1", f"{block}3")
    held = {"holderIdentity": "other", "leaseDurationSeconds": 3600}
    held["renewTime"] = held["acquireTime"] = micro_time(now_utc())
    lease = {"metadata": {"name": settings.lease_name}, "spec": held}
    coordination.create_namespaced_lease(settings.namespace, lease)

    def told(standin: StellarCoreStandIn) -> list[str]:
        return [r.command for r in standin.received if r.command in RELOAD_COMMANDS]

    with running_service(settings, ready_within=30) as service:
        assert service.watcher is not None
        assert service.leader is not None
        watcher = service.watcher
        # What runs on every replica has reached both nodes: the watcher folded them
        # (the reload controller was offered that snapshot) and the identity learner
        # asked each one.
        wait_until(
            lambda: (
                len(watcher.snapshot.validators) == 2
                and all(any(r.command == "info" for r in n.received) for n in (node, other))
            ),
            timeout=30,
            message="the follower to fold and ask both nodes",
        )
        # A round over two answering stand-ins takes well under a second (the leader test
        # below catches up within that); a follower that ran one would be seen here.
        time.sleep(3)
        assert not service.leader.is_leader()
        assert told(node) == [], "a follower told a node"
        assert told(other) == [], "a follower told a node"
        current = coordination.read_namespaced_lease(settings.lease_name, settings.namespace)
        current.spec.holder_identity = None
        current.spec.lease_duration_seconds = 1
        coordination.replace_namespaced_lease(settings.lease_name, settings.namespace, current)
        wait_until(
            lambda: node.connects() == [f"{block}3:11625"],
            timeout=20,
            message="the new leader to catch up",
        )


def deployment(name: str, *, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": {**labels, names.INJECTED_LABEL: "true"},
                    "annotations": {names.RELOAD_MODE_ANNOTATION: "rollout"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "stellar-core",
                            "image": IMAGE,
                            "ports": [{"name": "peer", "containerPort": 11625}],
                        }
                    ]
                },
            },
        },
    }


def test_reload_rollout_patches_the_deployment_once_per_change(
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    make_controller: Callable[..., ReloadController],
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("core", replicas=2))

    def two_pods() -> list[Any] | None:
        items = core.list_namespaced_pod(namespace, label_selector="app=core").items
        return items if len(items) == 2 else None

    pods = wait_until(two_pods, timeout=20, message="the Deployment's two pods")
    block = loopback_block()
    for i, pod in enumerate(pods):
        kubelet.mark_ready(namespace=namespace, name=pod.metadata.name, ip=f"{block}{i + 2}")
    first_pods = {p.metadata.name for p in pods}

    def only_first(pod: dict[str, Any]) -> bool:
        return pod["metadata"]["name"] in first_pods

    controller = make_controller(settings)

    def template_state() -> tuple[str | None, int]:
        d = apps.read_namespaced_deployment("core", namespace)
        return (d.spec.template.metadata.annotations or {}).get(
            names.PEERS_HASH_ANNOTATION
        ), d.metadata.generation

    _, generation = template_state()
    first = snapshot_of(core, namespace, only=only_first)
    assert len(first.validators) == 2
    # Judged by the set without the workload's own pods: here, nothing else.
    first_hash = PeerSet(()).hash
    assert asyncio.run(controller.reconcile(first)) == 0
    assert template_state() == (first_hash, generation + 1), "one patch for two pods"
    assert asyncio.run(controller.reconcile(first)) == 0
    assert template_state() == (first_hash, generation + 1), "no second patch"

    static = Peer(
        namespace="", name="", node_type="validator", ip="203.0.113.9", port=11625, source="static"
    )
    second = snapshot_of(core, namespace, extra=(static,), only=only_first)
    assert asyncio.run(controller.reconcile(second)) == 0
    assert template_state() == (PeerSet((static,)).hash, generation + 2)
    for name in first_pods:
        assert any(r == "PeersReloaded" for r, _, _ in events(core, namespace, name))


def test_reload_driven_by_the_peer_watcher(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    nodes: ExitStack,
    metrics: Metrics,
) -> None:
    settings = nodes.enter_context(injector_apart(core, settings))
    label_enabled(core, namespace, settings)
    block = loopback_block()
    three = [
        start_node(nodes, core, kubelet, namespace, f"v{i}", f"{block}{i + 2}") for i in range(3)
    ]
    with run_injector(settings, cluster.api_client, metrics) as watcher:
        wait_until(
            lambda: all(len(n.connects()) == 2 for n in three),
            timeout=20,  # the watcher lists every source first
            message=f"the three to be told about each other (block {block})",
        )
        fourth = start_node(nodes, core, kubelet, namespace, "v3", f"{block}5")
        wait_until(
            lambda: all(f"{block}5:11625" in n.connects() for n in three),
            timeout=20,
            message="the three to be told about the fourth",
        )
        wait_until(lambda: len(fourth.connects()) == 3, timeout=20, message="the fourth told")
        wait_until(
            lambda: (
                len({observed(core, namespace, f"v{i}") for i in range(4)}) == 1
                and observed(core, namespace, "v0") == watcher.snapshot.peers.hash
            ),
            timeout=10,
            message="one observed hash, the watcher's",
        )


def test_reload_mode_none_leaves_the_node_alone(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
    metrics: Metrics,
) -> None:
    block = loopback_block()
    quiet = start_node(
        nodes,
        core,
        kubelet,
        namespace,
        "quiet",
        f"{block}2",
        annotations={names.RELOAD_MODE_ANNOTATION: "none"},
    )
    # "other" dials nobody (no outbound slots), so only the first node's own connect links them.
    start_node(
        nodes,
        core,
        kubelet,
        namespace,
        "other",
        f"{block}3",
        annotations={names.TARGET_PEER_CONNECTIONS_ANNOTATION: "0"},  # its slots explain it
        target_peer_connections=0,
        max_additional_peer_connections=8,
    )
    snap = snapshot_of(core, namespace)
    controller = make_controller(settings)
    assert asyncio.run(controller.reconcile(snap)) == 0
    assert asyncio.run(controller.reconcile(snap)) == 0
    assert quiet.received == []
    assert observed(core, namespace, "quiet") is None
    assert events(core, namespace, "quiet") == []
    skipped = {"mode": "none", "result": "skipped"}
    assert metrics.registry.get_sample_value("stellar_reloads_total", skipped) == 1


def test_reload_failing_node_gets_one_counted_event_not_one_per_round(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    fast: Settings,
    make_controller: Callable[..., ReloadController],
) -> None:
    block = loopback_block()
    dead_ip = f"{block}2"
    core.create_namespaced_pod(namespace, validator("dead", http_port=free_port(dead_ip)))
    kubelet.mark_ready(namespace=namespace, name="dead", ip=dead_ip)
    snap = snapshot_of(core, namespace)
    controller = make_controller(fast)
    for _ in range(3):
        assert asyncio.run(controller.reconcile(snap)) == 1
    found = core.list_namespaced_event(namespace, field_selector="involvedObject.name=dead").items
    assert [(e.reason, e.type, e.count) for e in found] == [("PeersReloadFailed", "Warning", 3)]
    assert "refused" in found[0].message


def test_reload_node_that_says_why_is_asked_a_few_rounds_then_on_change(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    fast: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
) -> None:
    block = loopback_block()
    node = start_node(nodes, core, kubelet, namespace, "lonely", f"{block}2")

    def static(ip: str) -> Peer:
        return Peer(
            namespace="", name="", node_type="validator", ip=ip, port=11625, source="static"
        )

    # Nothing listens at the static peer: the node dials it and drops it.
    snap = snapshot_of(core, namespace, extra=(static(f"{block}30"),))
    controller = make_controller(fast)
    rounds = [asyncio.run(controller.reconcile(snap)) for _ in range(connection.GIVE_UP_ROUNDS)]
    assert rounds == [1] * (connection.GIVE_UP_ROUNDS - 1) + [0]
    status = orjson.loads(connection_status(core, namespace, "lonely") or "{}")
    assert status["missing"] == [{"peer": f"{block}30:11625", "reason": "not-connected"}]
    asked = len(node.received)
    assert asyncio.run(controller.reconcile(snap)) == 0
    assert len(node.received) == asked, "a node that gave its answer is left alone"
    found = core.list_namespaced_event(namespace, field_selector="involvedObject.name=lonely").items
    assert [(e.reason, e.count) for e in found] == [
        ("PeersNotConnected", connection.GIVE_UP_ROUNDS)
    ]

    changed = snapshot_of(core, namespace, extra=(static(f"{block}30"), static(f"{block}31")))
    asyncio.run(controller.reconcile(changed))
    assert f"{block}31:11625" in node.connects(), "a new peer set asks it again"


def test_reload_another_network_explains_a_missing_peer(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    fast: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
    metrics: Metrics,
) -> None:
    block = loopback_block()
    start_node(nodes, core, kubelet, namespace, "test", f"{block}2")
    start_node(nodes, core, kubelet, namespace, "pub", f"{block}3", network_passphrase=PUBNET)
    snap = snapshot_of(core, namespace)
    controller = make_controller(fast)
    assert asyncio.run(controller.reconcile(snap)) == 0
    for name, other in (("test", f"{block}3"), ("pub", f"{block}2")):
        assert observed(core, namespace, name) == snap.peers.hash
        status = orjson.loads(connection_status(core, namespace, name) or "{}")
        assert status["missing"] == [{"peer": f"{other}:11625", "reason": "other-network"}]
        assert status["ports"]["peer"] == 11625
    value = metrics.registry.get_sample_value(
        "stellar_peer_connections", {"state": "other-network"}
    )
    assert value == 2


def test_reload_tells_a_node_each_peer_once_and_waits_only_while_unexplained(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    fast: Settings,
    make_controller: Callable[..., ReloadController],
    nodes: ExitStack,
) -> None:
    block = loopback_block()
    # No slots at all: every peer it is told stays out, and its limits say why at once.
    full = start_node(
        nodes,
        core,
        kubelet,
        namespace,
        "full",
        f"{block}2",
        annotations={names.TARGET_PEER_CONNECTIONS_ANNOTATION: "0"},
        target_peer_connections=0,
        max_additional_peer_connections=0,
    )
    start_node(nodes, core, kubelet, namespace, "a", f"{block}3")
    controller = make_controller(fast)
    asyncio.run(controller.reconcile(snapshot_of(core, namespace)))
    start_node(nodes, core, kubelet, namespace, "b", f"{block}4")
    asyncio.run(controller.reconcile(snapshot_of(core, namespace)))
    # stellar-core keeps a peer it was told and re-dials it: telling it again is only load.
    assert sorted(full.connects()) == [f"{block}3:11625", f"{block}4:11625"]
    reads = [path for path in full.paths if path.startswith("/peers")]
    # Two a round: before its connect, and one after (never judged on the answer from
    # before the connects); none spent waiting on peers its limits explain.
    assert len(reads) == 4, f"two peers reads a round: {reads}"
    assert sum(path.startswith("/info") for path in full.paths) == 1, "info once per pod"
    status = orjson.loads(connection_status(core, namespace, "full") or "{}")
    assert {m["reason"] for m in status["missing"]} == {"slots-full"}
