#!/usr/bin/env python3
"""Time from a new validator pod turning Ready to the last running validator told about it.

The whole path of `stellar-peers serve`: the peer watcher sees the pod Ready,
writes the ConfigMaps and hands the new peer set to the reload controller,
which sends stellar-core's `connect` to every running validator (stellar-core
admin stand-ins on 127.0.3.x). Five validators run; each try adds a sixth,
waits until all five received `connect` for it, then deletes it again.

    scripts/cluster.sh up
    .venv/bin/python scripts/measure_pipeline.py [--tries 20] [--debounce 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402

from tests.kube import validator_pod  # noqa: E402
from tests.kubelet import FakeKubelet  # noqa: E402
from tests.service import running_service  # noqa: E402
from tests.standin import StellarCoreStandIn  # noqa: E402
from webhook import names  # noqa: E402
from webhook.kube import api as kube  # noqa: E402
from webhook.settings import Settings  # noqa: E402

BASE = 5


def injected(name: str) -> dict[str, object]:
    pod = validator_pod(name)
    pod["metadata"]["labels"][names.INJECTED_LABEL] = "true"  # type: ignore[index]
    return pod


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--debounce", type=float, default=Settings.debounce_seconds)
    parser.add_argument("--kubeconfig", default=str(ROOT / ".cluster" / "kubeconfig"))
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    settings = Settings(
        kubeconfig=args.kubeconfig,
        namespace=f"pipeline-sys-{run_id}",
        namespace_selector=f"stellar-pipeline={run_id}",
        leader_election=False,
        debounce_seconds=args.debounce,
    )
    api_client = kube.api_client(settings)
    core = client.CoreV1Api(api_client)
    kubelet = FakeKubelet(api_client)
    app = f"pipeline-app-{run_id}"
    core.create_namespace({"metadata": {"name": settings.namespace}})
    core.create_namespace({"metadata": {"name": app, "labels": {"stellar-pipeline": run_id}}})

    injector = contextlib.ExitStack()
    injector.enter_context(running_service(settings, api_client=api_client, ready_within=30))
    nodes = [StellarCoreStandIn(host=f"127.0.3.{i + 1}").start() for i in range(BASE)]
    samples: list[float] = []
    try:
        for i, node in enumerate(nodes):
            core.create_namespaced_pod(app, injected(f"base-{i}"))
            kubelet.mark_ready(namespace=app, name=f"base-{i}", ip=node.host)
        for i in range(args.tries):
            name, ip = f"new-{i}", f"127.0.4.{i + 1}"
            with StellarCoreStandIn(host=ip):
                core.create_namespaced_pod(app, injected(name))
                kubelet.mark_ready(namespace=app, name=name, ip=ip)
                ready_at = time.monotonic()
                wanted = f"{ip}:{names.DEFAULT_PEER_PORT}"
                deadline = ready_at + 30
                while not all(wanted in n.connects() for n in nodes):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{wanted} was not sent to every node within 30 s")
                    time.sleep(0.002)
                samples.append(time.monotonic() - ready_at)
                print(f"try {i + 1:2d}: {samples[-1] * 1000:7.1f} ms", flush=True)
                core.delete_namespaced_pod(name, app, grace_period_seconds=0)
    finally:
        injector.close()
        for node in nodes:
            node.stop()
        for namespace in (app, settings.namespace):
            core.delete_namespace(namespace, propagation_policy="Background")
    print(
        f"pod Ready → last connect delivered, debounce {args.debounce * 1000:.0f} ms, "
        f"{len(samples)} tries: median {statistics.median(samples) * 1000:.1f} ms, "
        f"worst {max(samples) * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
