"""Reload fan-out: 200 Ready validators told about a new peer, by the reload controller.

200 validator pods (private control plane) are Ready with IPs 127.0.1.1 to
127.0.1.200, where stellar-core admin stand-ins listen (`tests/bench/standins.py`,
their own process), each knowing the 199 others (KNOWN_PEERS) and, like
stellar-core, connected to as many as its 8 outbound and inbound slots hold,
so a round asks each node to `connect` the peers its full slots keep out
(answered `Connect to:`, nothing dialed). A round with the current set; then one new
peer joins the set, and `ReloadController.reconcile` runs the round as the
controller does on a change: ask each node's `peers`, `connect` what it lacks,
annotate the pod, record an Event. Measured: time from the start of the round
to the last `connect` a stand-in answered, and the controller's CPU time for
the whole round (`time.process_time`, this process only). Baseline in the same
run: a plain loop sending the same 200 connects one after another.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import uvloop
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.bench import pods, procs
from tests.bench.cluster import api_client, private_cluster
from tests.bench.fleet import RawClient, ready_status
from tests.bench.report import Row, emit, not_run
from webhook import names
from webhook.core import stellar_admin
from webhook.core.peers import Peer, PeerSet
from webhook.metrics import Metrics
from webhook.settings import Settings

FIRST = ipaddress.ip_address("127.0.1.1")
NEW_PEERS = ipaddress.ip_address("127.0.2.1")  # joiners: never dialled, only named
ADMIN_PORT = 21626  # not 11626: other test suites' stand-ins may hold that on loopback
PEER_PORT = 11625
TARGET_SECONDS = 3.0


@dataclass(frozen=True)
class Snapshot:
    """What the peer watcher hands the controller: the set and the Ready validators."""

    peers: PeerSet
    validators: tuple[dict[str, Any], ...]


class StandIns:
    """The stand-in process: start, collect connect times, stop."""

    def __init__(self, *, count: int) -> None:
        peers = [f"{FIRST + i}:{PEER_PORT}" for i in range(count)]
        argv = [procs.PYTHON, "-m", "tests.bench.standins", "--first", str(FIRST),
                "--count", str(count), "--port", str(ADMIN_PORT)]  # fmt: skip
        for peer in peers:
            argv += ["--peer", peer]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=procs.ROOT
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the stand-ins did not start")

    def report(self) -> list[tuple[str, float, str]]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        return [tuple(item) for item in orjson.loads(self.process.stdout.readline())]

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            procs.stop(self.process)


@contextlib.contextmanager
def stand_ins(count: int) -> Iterator[StandIns]:
    nodes = StandIns(count=count)
    try:
        yield nodes
    finally:
        nodes.close()


def validator_pod(name: str) -> dict[str, Any]:
    pod = pods.validator_pod(name=name)
    metadata = pod["metadata"]
    for key in ("ownerReferences", "managedFields", "generateName", "namespace"):
        metadata.pop(key, None)
    metadata["labels"][names.INJECTED_LABEL] = "true"
    pod.pop("status", None)
    for port in pod["spec"]["containers"][0]["ports"]:
        if port["name"] == "http":
            port["containerPort"] = ADMIN_PORT
    return pod


def make_validators(raw: RawClient, namespace: str, count: int) -> tuple[dict[str, Any], ...]:
    """`count` Ready validator pods with IPs FIRST.., as the API server returns them."""

    def one(index: int) -> None:
        name = f"validator-{index:03d}"
        raw.call("POST", f"/api/v1/namespaces/{namespace}/pods", validator_pod(name))
        raw.call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            ready_status(str(FIRST + index)),
            content_type="application/merge-patch+json",
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))
    listed = raw.call("GET", f"/api/v1/namespaces/{namespace}/pods")
    return tuple(sorted(listed["items"], key=lambda p: p["metadata"]["name"]))


def peer_set(validators: Sequence[dict[str, Any]], *extra: str) -> PeerSet:
    members = [
        Peer(
            namespace=v["metadata"]["namespace"],
            name=v["metadata"]["name"],
            node_type="validator",
            ip=v["status"]["podIP"],
            port=PEER_PORT,
            source="pod",
        )
        for v in validators
    ]
    members += [
        Peer(namespace="", name=ip, node_type="validator", ip=ip, port=PEER_PORT, source="static")
        for ip in extra
    ]
    return PeerSet(peers=tuple(sorted(members)))


async def naive(validators: Sequence[dict[str, Any]], joiner: str, *, ask: bool) -> None:
    """One connect after another: what a plain loop over the validators does.

    With `ask`, each node's `peers` is read first, as the controller does, so the
    difference to the controller is only its concurrency and its bookkeeping.
    """
    for pod in validators:
        if ask:
            listed, _ = await stellar_admin.peers(
                ip=pod["status"]["podIP"], port=ADMIN_PORT, time_limit=2.0
            )
            if not listed.ok:
                raise RuntimeError(f"naive peers of {pod['status']['podIP']} failed: {listed}")
        result = await stellar_admin.connect(
            ip=pod["status"]["podIP"],
            port=ADMIN_PORT,
            peer_host=joiner,
            peer_port=PEER_PORT,
            time_limit=2.0,
        )
        if not result.ok:
            raise RuntimeError(f"naive connect to {pod['status']['podIP']} failed: {result}")


def measure(*, kubeconfig: str, count: int, rounds: int) -> list[Row]:
    from webhook.controllers.reload import ReloadController

    api = api_client(kubeconfig, qps_pool=32)
    raw = RawClient(api)
    core = client.CoreV1Api(api)
    namespace = f"br{uuid.uuid4().hex[:6]}"
    raw.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    ours_seconds: list[float] = []
    ours_cpu: list[float] = []
    naive_seconds: list[float] = []
    naive_cpu: list[float] = []
    asking_seconds: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while True:  # pods are refused until the default ServiceAccount exists
            try:
                core.read_namespaced_service_account("default", namespace)
                break
            except ApiException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        validators = make_validators(raw, namespace, count)
        settings = Settings(namespace=namespace, leader_election=False, reload_mode="http")
        controller = ReloadController(
            settings=settings, api_client=api, metrics=Metrics(), is_leader=lambda: True
        )
        with stand_ins(count) as nodes:
            # Every node has the current set: this round only records that.
            behind = uvloop.run(controller.reconcile(Snapshot(peer_set(validators), validators)))
            if behind or nodes.report():
                raise RuntimeError(f"the warm-up round sent connects or left {behind} behind")
            joiners: list[str] = []
            for index in range(rounds):
                joiners.append(str(NEW_PEERS + 3 * index))
                snapshot = Snapshot(peer_set(validators, *joiners), validators)
                standin_cpu = procs.cpu_seconds(nodes.process.pid)
                started, cpu = time.monotonic(), time.process_time()
                behind = uvloop.run(controller.reconcile(snapshot))
                ours_cpu.append(time.process_time() - cpu)
                connects = nodes.report()
                standin_cpu = procs.cpu_seconds(nodes.process.pid) - standin_cpu
                if behind or len(connects) != count:
                    raise RuntimeError(f"round {index}: {len(connects)} connects, {behind} behind")
                ours_seconds.append(max(at for _, at, _ in connects) - started)

                for offset, ask in ((1, False), (2, True)):
                    other = str(NEW_PEERS + 3 * index + offset)
                    started, cpu = time.monotonic(), time.process_time()
                    uvloop.run(naive(validators, other, ask=ask))
                    spent = time.process_time() - cpu
                    connects = nodes.report()
                    if len(connects) != count:
                        raise RuntimeError(f"naive round {index}: {len(connects)} connects")
                    seconds = max(at for _, at, _ in connects) - started
                    if ask:
                        asking_seconds.append(seconds)
                    else:
                        naive_seconds.append(seconds)
                        naive_cpu.append(spent)
                print(
                    f"  round {index}: controller {ours_seconds[-1]:.2f} s "
                    f"(CPU {ours_cpu[-1]:.2f} s), sequential connects {naive_seconds[-1]:.2f} s "
                    f"(CPU {naive_cpu[-1]:.2f} s), sequential peers + connect "
                    f"{asking_seconds[-1]:.2f} s; stand-ins' CPU in the controller's round "
                    f"{standin_cpu:.2f} s",
                    flush=True,
                )
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")
        api.close()

    median = statistics.median
    note = (
        f"{count} validators, 1 new peer, median of {rounds} round(s); "
        f"concurrency {settings.reload_concurrency}"
    )
    return [
        Row(
            benchmark=f"reload: change → last connect, {count} validators",
            unit="s",
            ours=median(ours_seconds),
            baseline=median(naive_seconds),
            baseline_name="sequential connects",
            target=f"≤ {TARGET_SECONDS:g} s",
            met=median(ours_seconds) <= TARGET_SECONDS,
            note=note,
        ),
        Row(
            benchmark=f"reload: change → last connect, {count} validators",
            unit="s",
            ours=median(ours_seconds),
            baseline=median(asking_seconds),
            baseline_name="sequential peers + connect",
            note="same requests one at a time: the controller's gain is its concurrency",
        ),
        Row(
            benchmark="reload: controller CPU time for the round",
            unit="s",
            ours=median(ours_cpu),
            baseline=median(naive_cpu),
            baseline_name="sequential connects",
            note="ours also asks each node's peers, annotates each pod and records an Event",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round instead of three")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    print("== reload fan-out")
    try:
        from webhook.controllers import reload  # noqa: F401
    except ImportError as exc:
        emit([not_run("reload", f"webhook.controllers.reload is not there: {exc}")])
        return 0
    with private_cluster() as kubeconfig:
        rows = measure(kubeconfig=kubeconfig, count=args.count, rounds=1 if args.quick else 3)
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
