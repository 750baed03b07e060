"""Bootstrap against the real API server: validators that are not Ready yet are still peers.

Measured on stellar-core v25.2.0 (STELLAR.md): a node says `Synced!` for its first ~35 s,
then `Joining SCP` until it meets a quorum of its validators. SDF's chart turns a pod
Ready on `Synced!`; a probe that first looks after that window never sees a lone node
Ready. Here three stand-ins of a private network, each with the other two in its quorum
set, start at once; a probe like the kubelet's looks first after their start window, so
no pod is Ready until the nodes have met. The injector must hand them to each other
anyway (DESIGN.md "Bootstrap"): the network forms and every pod turns Ready, with nobody
marking anything Ready by hand. Then the same after a cold restart of all three with their
data kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client

from tests.e2e.conftest import injector_apart
from tests.e2e.test_reload import loopback_block, run_injector, validator
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.standin import StellarCoreStandIn
from tests.standin_keys import public_key_of, random_seed
from tests.standin_quorum import QuorumSet
from webhook.core import admin_protocol
from webhook.metrics import Metrics
from webhook.settings import Settings
from webhook.stellar import admin

PRIVATE = "Bootstrap Test Network ; December 2026"
WINDOW = 3.0  # the stand-in's start window here (the real binary: about 35 s)
PROBE_DELAY = WINDOW + 2.0  # `initialDelaySeconds` past the window, as in the deadlock
PROBE_PERIOD = 0.5
NAMES = ("core-0", "core-1", "core-2")


@dataclasses.dataclass
class Probe:
    """A readiness probe as the kubelet runs one: `info` says `Synced!` -> Ready, first
    after `PROBE_DELAY`, then every `PROBE_PERIOD`; it writes only when Ready changes."""

    kubelet: FakeKubelet
    namespace: str
    name: str
    node: StellarCoreStandIn
    ready: bool = False
    turned_ready_at: float | None = None
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def run(self) -> None:
        if self.stop.wait(PROBE_DELAY):
            return
        while not self.stop.wait(PROBE_PERIOD):
            synced = state_of(self.node) == "Synced!"
            if synced != self.ready:
                self.kubelet.mark_ready(
                    namespace=self.namespace, name=self.name, ip=self.node.host, ready=synced
                )
                self.ready = synced
                if synced and self.turned_ready_at is None:
                    self.turned_ready_at = time.monotonic()


def state_of(node: StellarCoreStandIn) -> str:
    try:
        _, body = asyncio.run(admin.get(ip=node.host, port=node.port, path="/info", time_limit=2))
        return admin_protocol.node_state(body)
    except (OSError, TimeoutError, admin_protocol.AnswerError):
        return "?"


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    seed: str
    database: Path


def members(tmp_path: Path) -> list[Member]:
    return [Member(n, random_seed(), tmp_path / f"{n}.db") for n in NAMES]


@contextlib.contextmanager
def validators(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    group: list[Member],
    block: str,
) -> Iterator[tuple[list[StellarCoreStandIn], list[Probe]]]:
    """The three as they start: nodes up, pods Running but not Ready, probes running."""
    quorum = QuorumSet.of(public_key_of(m.seed) for m in group)
    with ExitStack() as stack:
        nodes, probes = [], []
        for i, member in enumerate(group):
            node = stack.enter_context(
                StellarCoreStandIn(
                    host=f"{block}{i + 2}",
                    port=0,
                    peer_port=11625,
                    network_passphrase=PRIVATE,
                    node_seed=member.seed,
                    quorum_set=quorum,
                    start_window_seconds=WINDOW,
                    database=str(member.database),
                    redial_seconds=0.5,
                )
            )
            core.create_namespaced_pod(namespace, validator(member.name, http_port=node.port))
            kubelet.mark_ready(namespace=namespace, name=member.name, ip=node.host, ready=False)
            probe = Probe(kubelet, namespace, member.name, node)
            thread = threading.Thread(target=probe.run, daemon=True)
            thread.start()
            stack.callback(thread.join, 10)
            stack.callback(probe.stop.set)
            nodes.append(node)
            probes.append(probe)
        yield nodes, probes


def all_synced_past_the_window(
    core: client.CoreV1Api, namespace: str, nodes: list[StellarCoreStandIn], started: float
) -> bool:
    """Each node `Synced!` after its start window (so in consensus) and its pod Ready."""
    if time.monotonic() - started < WINDOW + 0.5:
        return False
    if not all(state_of(n) == "Synced!" for n in nodes):
        return False
    pods = core.list_namespaced_pod(namespace).items
    return len(pods) == len(nodes) and all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or ())
        for p in pods
    )


@pytest.fixture
def settings(settings: Settings, core: client.CoreV1Api) -> Iterator[Settings]:
    """The injector apart from the validators' namespace (it never serves its own)."""
    with injector_apart(core, settings) as apart:
        yield apart


def test_validators_that_are_not_ready_meet_and_sync_cold_start_and_cold_restart(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    label_enabled(core, namespace, settings)
    group = members(tmp_path)
    timings = []
    with run_injector(settings, cluster.api_client, Metrics()):
        for round_ in ("cold start", "cold restart, data kept"):
            started = time.monotonic()
            with validators(core, kubelet, namespace, group, loopback_block()) as (nodes, probes):
                keys = {n.public_key for n in nodes}
                wait_until(
                    lambda n=nodes, k=keys: all(
                        authenticated_keys(node) == k - {node.public_key} for node in n
                    ),
                    timeout=90,
                    interval=0.1,
                    message=f"{round_}: the three to authenticate each other",
                )
                meshed = time.monotonic() - started
                wait_until(
                    lambda s=started, n=nodes: all_synced_past_the_window(core, namespace, n, s),
                    timeout=90,
                    interval=0.2,
                    message=f"{round_}: three not-Ready validators to meet, sync and turn Ready",
                )
                timings.append((meshed, time.monotonic() - started))
                assert all(p.turned_ready_at is not None for p in probes)
                for node in nodes:
                    assert authenticated_keys(node) == keys - {node.public_key}, round_
                connects = sum(len(n.connects()) for n in nodes)
                print(f"bootstrap {round_}: meshed {meshed:.2f} s; {connects} connects sent")
                # A cold restart: every pod goes, the nodes stop; their databases stay.
                for member in group:
                    core.delete_namespaced_pod(member.name, namespace, grace_period_seconds=0)
            wait_until(
                lambda: not core.list_namespaced_pod(namespace).items,
                timeout=30,
                message="the pods gone",
            )
    print(f"bootstrap (meshed, all Synced! and Ready) in s: {timings}")


def authenticated_keys(node: StellarCoreStandIn) -> set[str]:
    """The full keys of the peers the node authenticated, either way (`peers?fullkeys=true`)."""
    _, body = asyncio.run(
        admin.get(ip=node.host, port=node.port, path="/peers?fullkeys=true", time_limit=2)
    )
    groups = orjson.loads(body)["authenticated_peers"]
    return {p["id"] for way in ("inbound", "outbound") for p in groups.get(way) or ()}
