"""Measure reload through the wired service: from a validator Ready to the last `connect`.

Against the local control plane (`scripts/cluster.sh up`): the injector as `serve`
wires it (`tests/service.running_service`: watcher, reload controller under the
Lease), five validator pods in a scratch namespace, each backed by a
stellar-core stand-in on its own loopback address. Each run adds one validator
(a stand-in and its pod), marks it Ready and times until every node already
there has received `connect` for it (the stand-ins stamp each request as it
arrives): the watcher's fold and debounce and the reload round. Prints the
median and the worst of the runs.

    .venv/bin/python scripts/measure_reload.py [--runs 20] [--nodes 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from tests.e2e.test_reload import validator  # noqa: E402
from tests.kube import label_enabled  # noqa: E402
from tests.kubelet import FakeKubelet  # noqa: E402
from tests.polling import wait_until  # noqa: E402
from tests.service import running_service  # noqa: E402
from tests.standin import StellarCoreStandIn  # noqa: E402
from webhook import names  # noqa: E402
from webhook.cli.wiring import Service  # noqa: E402
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
    run_id = uuid.uuid4().hex[:8]
    own, namespace = f"measure-injector-{run_id}", f"measure-{run_id}"
    for name in (own, namespace):
        core.create_namespace({"metadata": {"name": name}})
    settings = Settings(
        kubeconfig=kubeconfig,
        # The injector's own namespace is never enabled: the validators live apart.
        namespace=own,
        namespace_selector=f"stellar-measure={run_id}",
        leader_election=False,
        debounce_seconds=0.05,
        port=0,
        metrics_port=0,
    )
    label_enabled(core, namespace, settings)
    try:
        with ExitStack() as stack:
            ms = sorted(s * 1000 for s in measure(stack, settings, api_client, namespace, args))
    finally:
        for name in (namespace, own):
            core.delete_namespace(name, propagation_policy="Background")
        api_client.close()
    print(
        f"runs={len(ms)} nodes={args.nodes} median={statistics.median(ms):.1f}ms "
        f"worst={ms[-1]:.1f}ms best={ms[0]:.1f}ms"
    )


def measure(
    stack: ExitStack,
    settings: Settings,
    api_client: client.ApiClient,
    namespace: str,
    args: argparse.Namespace,
) -> list[float]:
    """One sample per run: a new validator Ready → every earlier node told about it."""
    core = client.CoreV1Api(api_client)
    kubelet = FakeKubelet(api_client)
    block = f"127.{random.randint(64, 254)}.{random.randint(0, 254)}."  # noqa: S311
    metrics = Metrics()

    def add(index: int) -> tuple[StellarCoreStandIn, float]:
        ip = f"{block}{index + 2}"
        node = stack.enter_context(
            StellarCoreStandIn(host=ip, port=0, peer_port=11625, redial_seconds=0.5)
        )
        core.create_namespaced_pod(namespace, validator(f"v{index}", http_port=node.port))
        started = time.monotonic()
        kubelet.mark_ready(namespace=namespace, name=f"v{index}", ip=ip)
        return node, started

    nodes = [add(i)[0] for i in range(args.nodes)]
    samples: list[float] = []
    service = stack.enter_context(running_service(settings, api_client=api_client, metrics=metrics))
    wait_until(
        lambda: all(len(n.connects()) == args.nodes - 1 for n in nodes),
        timeout=30,
        message="the first round",
    )
    wait_until(lambda: settled(core, namespace, service), timeout=30, message="first settled")
    for run in range(args.runs):
        node, started = add(args.nodes + run)
        wanted = f"{block}{args.nodes + run + 2}:11625"

        def delivered(target: str = wanted, told: list[StellarCoreStandIn] = nodes) -> Any:
            stamps = [
                r.at
                for n in told
                for r in n.received
                if r.command == "connect"
                and f"{r.params.get('peer')}:{r.params.get('port')}" == target
            ]
            return stamps if len(stamps) == len(told) else None

        stamps = wait_until(delivered, timeout=20, interval=0.005, message=f"run {run}")
        samples.append(max(stamps) - started)
        nodes.append(node)
        # Let the round finish (annotations, events) before the next change.
        wait_until(
            lambda: settled(core, namespace, service), timeout=30, message="the round to finish"
        )
    return samples


def settled(core: client.CoreV1Api, namespace: str, service: Service) -> bool:
    """True once every pod carries the watcher's current hash as its observed hash."""
    assert service.watcher is not None
    current = service.watcher.snapshot.peers.hash
    pods = core.list_namespaced_pod(namespace).items
    return all(
        (p.metadata.annotations or {}).get(names.OBSERVED_HASH_ANNOTATION) == current for p in pods
    )


if __name__ == "__main__":
    main()
