"""Reload fan-out: 200 Ready validators told about a new peer, by the reload controller.

200 validator pods (private control plane) are Ready with IPs 127.0.1.1 to
127.0.1.200, where stellar-core stand-ins listen (`tests/bench/standins.py`,
their own process: admin answers as stellar-core gives them, an overlay
modelled in memory), meshed as a running network is, every outbound and
inbound slot taken. A first round brings every node to the current set; then,
per measured round, one new peer joins the set and `ReloadController.reconcile`
runs the round as the controller does on a change: ask each node's `peers`,
`connect` every peer of the set it lacks, read `peers` again until the expected
peers are authenticated or `reload_connect_wait_seconds` ran out, ask `info`
when some stay out, judge, annotate the pod, record an Event. Measured: the
whole round (start to `reconcile` returning), the time to the last `connect` a
stand-in answered, the requests the nodes got, the controller's CPU time
(`time.process_time`, this process only) and the stand-ins'. Baselines in the
same run: a plain loop sending the new peer's 200 connects one after another,
and the same loop reading each node's `peers` before and after its connect.

The controller is driven alone, one `reconcile` a round with made snapshots (a
named seam, docs/development.md): what is measured is the round's own cost. The
wired service, from a pod Ready to its connects, is `scripts/measure_reload.py`
and the scale benchmark (`tests/bench/run_watcher.py`).
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
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvloop
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests import admin_client
from tests.bench import pods, procs
from tests.bench.cluster import api_client, private_cluster
from tests.bench.fleet import RawClient, ready_status
from tests.bench.report import Row, emit, not_run
from webhook import names
from webhook.core.peerset.peers import Peer, PeerSet
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
        argv = [procs.PYTHON, "-m", "tests.bench.standins", "--first", str(FIRST),
                "--count", str(count), "--port", str(ADMIN_PORT),
                "--peer-port", str(PEER_PORT)]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=procs.ROOT
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the stand-ins did not start")

    def report(self) -> tuple[list[tuple[str, float, str]], dict[str, int]]:
        """Connects answered (host, when, peer) and requests by command, since the last."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        answer = orjson.loads(self.process.stdout.readline())
        return [tuple(item) for item in answer["connects"]], answer["requests"]

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
    """The joiner's connect to each node, one node after another: a plain loop.

    With `ask`, each node's `peers` is read before and once after the connect (the
    least that verifies it), so the difference to the controller is its concurrency,
    its connects for every other peer a node lacks, its waiting and its bookkeeping.
    """
    for pod in validators:
        ip = pod["status"]["podIP"]
        if ask:
            listed, _ = await admin_client.peers(ip=ip, port=ADMIN_PORT, time_limit=2.0)
            if not listed.ok:
                raise RuntimeError(f"naive peers of {ip} failed: {listed}")
        result = await admin_client.connect(
            ip=ip, port=ADMIN_PORT, peer_host=joiner, peer_port=PEER_PORT, time_limit=2.0
        )
        if not result.ok:
            raise RuntimeError(f"naive connect to {ip} failed: {result}")
        if ask:
            listed, _ = await admin_client.peers(ip=ip, port=ADMIN_PORT, time_limit=2.0)
            if not listed.ok:
                raise RuntimeError(f"naive peers of {ip} failed: {listed}")


@dataclass
class Rounds:
    """Per round: the controller's and the baselines' figures."""

    seconds: list[float] = field(default_factory=list)  # start -> reconcile returned
    last_connect: list[float] = field(default_factory=list)  # start -> last connect answered
    cpu: list[float] = field(default_factory=list)
    standin_cpu: list[float] = field(default_factory=list)
    requests: list[dict[str, int]] = field(default_factory=list)
    naive_seconds: list[float] = field(default_factory=list)
    naive_cpu: list[float] = field(default_factory=list)
    asking_seconds: list[float] = field(default_factory=list)


def wait_for_service_account(core: client.CoreV1Api, namespace: str) -> None:
    deadline = time.monotonic() + 60
    while True:  # pods are refused until the default ServiceAccount exists
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def measure(*, kubeconfig: str, count: int, rounds: int) -> list[Row]:
    from webhook.controllers.reload import ReloadController

    api = api_client(kubeconfig, qps_pool=32)
    raw = RawClient(api)
    core = client.CoreV1Api(api)
    namespace = f"br{uuid.uuid4().hex[:6]}"
    raw.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    seen = Rounds()
    try:
        wait_for_service_account(core, namespace)
        validators = make_validators(raw, namespace, count)
        settings = Settings(namespace=namespace, leader_election=False, reload_mode="http")
        controller = ReloadController(settings=settings, api_client=api, metrics=Metrics())
        with stand_ins(count) as nodes:
            # The first round brings every node to the current set (none was observed yet).
            started = time.monotonic()
            behind = uvloop.run(controller.reconcile(Snapshot(peer_set(validators), validators)))
            _, requests = nodes.report()
            print(
                f"  first round: {time.monotonic() - started:.2f} s, {behind} behind, "
                f"requests {requests}",
                flush=True,
            )
            joiners: list[str] = []
            for index in range(rounds):
                joiners.append(str(NEW_PEERS + 3 * index))
                one_round(controller, nodes, validators, joiners, seen, index=index)
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")
        api.close()
    return rows(seen, count=count, rounds=rounds, settings=settings)


def one_round(
    controller: Any,
    nodes: StandIns,
    validators: tuple[dict[str, Any], ...],
    joiners: list[str],
    seen: Rounds,
    *,
    index: int,
) -> None:
    """The controller's round for the newest joiner, then the two plain loops."""
    snapshot = Snapshot(peer_set(validators, *joiners), validators)
    joiner = f"{joiners[-1]}:{PEER_PORT}"
    standin_cpu = procs.cpu_seconds(nodes.process.pid)
    started, cpu = time.monotonic(), time.process_time()
    behind = uvloop.run(controller.reconcile(snapshot))
    seen.seconds.append(time.monotonic() - started)
    seen.cpu.append(time.process_time() - cpu)
    connects, requests = nodes.report()
    seen.standin_cpu.append(procs.cpu_seconds(nodes.process.pid) - standin_cpu)
    told = {host for host, _, peer in connects if peer == joiner}
    if behind or len(told) != len(validators):
        raise RuntimeError(f"round {index}: {len(told)} nodes told of {joiner}, {behind} behind")
    seen.last_connect.append(max(at for _, at, _ in connects) - started)
    seen.requests.append(requests)

    for offset, ask in ((1, False), (2, True)):
        other = str(NEW_PEERS + 3 * index + offset)
        started, cpu = time.monotonic(), time.process_time()
        uvloop.run(naive(validators, other, ask=ask))
        spent = time.process_time() - cpu
        connects, _ = nodes.report()
        if len(connects) != len(validators):
            raise RuntimeError(f"naive round {index}: {len(connects)} connects")
        seconds = max(at for _, at, _ in connects) - started
        if ask:
            seen.asking_seconds.append(seconds)
        else:
            seen.naive_seconds.append(seconds)
            seen.naive_cpu.append(spent)
    print(
        f"  round {index}: controller {seen.seconds[-1]:.2f} s (last connect at "
        f"{seen.last_connect[-1]:.2f} s, CPU {seen.cpu[-1]:.2f} s, stand-ins' CPU "
        f"{seen.standin_cpu[-1]:.2f} s, requests {requests}); sequential connects "
        f"{seen.naive_seconds[-1]:.2f} s (CPU {seen.naive_cpu[-1]:.2f} s); sequential "
        f"peers + connect + peers {seen.asking_seconds[-1]:.2f} s",
        flush=True,
    )


def rows(seen: Rounds, *, count: int, rounds: int, settings: Settings) -> list[Row]:
    median = statistics.median
    requests = seen.requests[len(seen.requests) // 2]
    note = (
        f"{count} validators, every slot taken, 1 new peer, median of {rounds} round(s); "
        f"concurrency {settings.reload_concurrency}, reload_connect_wait_seconds "
        f"{settings.reload_connect_wait_seconds:g}; requests in a round: "
        + ", ".join(f"{command} {n}" for command, n in sorted(requests.items()))
    )
    return [
        Row(
            benchmark=f"reload: whole round (verifying peers read included), {count} validators",
            unit="s",
            ours=median(seen.seconds),
            baseline=median(seen.asking_seconds),
            baseline_name="sequential peers + connect + peers",
            target=f"≤ {TARGET_SECONDS:g} s",
            met=median(seen.seconds) <= TARGET_SECONDS,
            note=note,
        ),
        Row(
            benchmark=f"reload: change → last connect answered, {count} validators",
            unit="s",
            ours=median(seen.last_connect),
            baseline=median(seen.naive_seconds),
            baseline_name="sequential connects",
        ),
        Row(
            benchmark="reload: controller CPU time for the round",
            unit="s",
            ours=median(seen.cpu),
            baseline=median(seen.naive_cpu),
            baseline_name="sequential connects",
            note="ours also reads each node's peers, connects every peer it lacks, "
            "annotates each pod and records an Event",
        ),
        Row(
            benchmark="reload: controller CPU time per node",
            unit="ms",
            ours=median(seen.cpu) / count * 1000,
            baseline=median(seen.naive_cpu) / count * 1000,
            baseline_name="sequential connects",
        ),
        Row(
            benchmark="reload: stand-ins' CPU time for the round",
            unit="s",
            ours=median(seen.standin_cpu),
            note="the 200 stand-ins' process (in-memory overlay): what the nodes spend answering",
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
