"""Measure the reload controller: from a changed snapshot to the last `connect` delivered.

Against the local control plane (`scripts/cluster.sh up`): five validator pods
in a scratch namespace, each backed by a stellar-core stand-in on its own
loopback address. Each run adds one static peer to the snapshot, hands it to
the running controller and times until all five nodes have received `connect`
for it (the stand-ins stamp each request as it arrives). Prints the median and
the worst of the runs.

    .venv/bin/python scripts/measure_reload.py [--runs 20] [--nodes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from tests.e2e.test_reload import Snap, snapshot_of, validator  # noqa: E402
from tests.kubelet import FakeKubelet  # noqa: E402
from tests.polling import wait_until  # noqa: E402
from tests.standin import StellarCoreStandIn  # noqa: E402
from webhook import names  # noqa: E402
from webhook.controllers.reload import ReloadController  # noqa: E402
from webhook.core.peerset.peers import Peer, PeerSet  # noqa: E402
from webhook.metrics import Metrics  # noqa: E402
from webhook.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=5)
    args = parser.parse_args()

    kubeconfig = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "kubeconfig"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    api_client = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api_client)
    kubelet = FakeKubelet(api_client)
    namespace = f"measure-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    block = f"127.{random.randint(64, 254)}.{random.randint(0, 254)}."  # noqa: S311
    settings = Settings(
        kubeconfig=kubeconfig, namespace=namespace, leader_election=False, debounce_seconds=0.05
    )
    metrics = Metrics()
    controller = ReloadController(settings=settings, api_client=api_client, metrics=metrics)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=loop.run_until_complete, args=(controller.run(stop),))
    runner.start()
    samples: list[float] = []
    try:
        with ExitStack() as stack:
            nodes = []
            for i in range(args.nodes):
                ip = f"{block}{i + 2}"
                node = stack.enter_context(StellarCoreStandIn(host=ip, port=0))
                core.create_namespaced_pod(namespace, validator(f"v{i}", http_port=node.port))
                kubelet.mark_ready(namespace=namespace, name=f"v{i}", ip=ip)
                nodes.append(node)
            base = snapshot_of(core, namespace)
            loop.call_soon_threadsafe(controller.notify, base)
            wait_until(
                lambda: all(len(n.connects()) == args.nodes - 1 for n in nodes),
                timeout=30,
                message="the first round",
            )
            extra: tuple[Peer, ...] = ()
            for run in range(args.runs):
                added = Peer(
                    namespace="",
                    name=f"static-{run}",
                    node_type="validator",
                    ip=f"198.51.100.{run + 1}",
                    port=11625,
                    source="static",
                )
                extra += (added,)
                snap = Snap(PeerSet(tuple(sorted(base.peers.peers + extra))), base.validators)
                started = time.monotonic()
                loop.call_soon_threadsafe(controller.notify, snap)
                wanted = f"{added.ip}:11625"

                def delivered(target: str = wanted) -> list[float] | None:
                    stamps = [
                        r.at
                        for n in nodes
                        for r in n.received
                        if r.command == "connect"
                        and f"{r.params.get('peer')}:{r.params.get('port')}" == target
                    ]
                    return stamps if len(stamps) == len(nodes) else None

                stamps = wait_until(delivered, timeout=10, interval=0.005, message=f"run {run}")
                samples.append(max(stamps) - started)
                # Let the round finish (annotations, events) before the next change.
                wait_until(
                    lambda s=snap, r=run: (
                        rounds(metrics) == r + 2 and all_observed(core, namespace, s)
                    ),
                    timeout=10,
                    message="the round to finish",
                )
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(timeout=30)
        core.delete_namespace(namespace, propagation_policy="Background")
    ms = sorted(s * 1000 for s in samples)
    print(
        f"runs={len(ms)} nodes={args.nodes} median={statistics.median(ms):.1f}ms "
        f"worst={ms[-1]:.1f}ms best={ms[0]:.1f}ms"
    )


def rounds(metrics: Metrics) -> float:
    """Rounds the controller has finished."""
    return metrics.registry.get_sample_value("stellar_reload_duration_seconds_count") or 0.0


def all_observed(core: client.CoreV1Api, namespace: str, snap: Snap) -> bool:
    """True once every pod carries the snapshot's hash as its observed hash."""
    pods = core.list_namespaced_pod(namespace).items
    return all(
        (p.metadata.annotations or {}).get(names.OBSERVED_HASH_ANNOTATION) == snap.peers.hash
        for p in pods
    )


if __name__ == "__main__":
    main()
