#!/usr/bin/env python3
"""Time from a validator pod turning Ready to the canonical ConfigMap listing it.

Runs the injector as `serve` wires it, in-process against the local control plane
(`scripts/cluster.sh up` first), then, N times: creates an injected validator
pod, marks it Ready (as the kubelet would), and waits on a watch of the
canonical `stellar-peers` ConfigMap until its peers.txt holds the new IP.
Prints every sample, the median and the worst.

    .venv/bin/python scripts/measure_convergence.py [--tries 20] [--debounce 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, watch  # noqa: E402

from tests.kubelet import FakeKubelet  # noqa: E402
from tests.service import running_service  # noqa: E402
from webhook import names  # noqa: E402
from webhook.kube import api as kube  # noqa: E402
from webhook.settings import Settings  # noqa: E402


class ConfigMapTail:
    """Records when each peers.txt content of one ConfigMap was first seen."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.seen: list[tuple[float, str]] = []
        self._core, self._namespace = core, namespace
        self._watch = watch.Watch()
        self._lock = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self._watch.stream(
                self._core.list_namespaced_config_map,
                self._namespace,
                field_selector=f"metadata.name={names.CONFIGMAP_NAME}",
                timeout_seconds=600,
            ):
                text = (event["object"].data or {}).get(names.KEY_TXT, "")
                with self._lock:
                    self.seen.append((time.monotonic(), text))
                    self._lock.notify_all()
        except Exception as exc:  # the socket is shut down on stop
            if not self._watch._stop:
                raise SystemExit(f"ConfigMap watch failed: {exc!r}") from exc

    def first_time_with(self, line: str, *, after: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for moment, text in self.seen:
                    if moment >= after and line in text.splitlines():
                        return moment
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SystemExit(f"{line} never reached the ConfigMap within {timeout}s")
                self._lock.wait(remaining)

    def stop(self) -> None:
        self._watch.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--debounce", type=float, default=Settings.debounce_seconds)
    parser.add_argument("--kubeconfig", default=str(ROOT / ".cluster" / "kubeconfig"))
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    settings = Settings(
        kubeconfig=args.kubeconfig,
        namespace=f"measure-sys-{run_id}",
        # A selector of its own: no other injector on this API server touches these namespaces.
        namespace_selector=f"stellar-measure={run_id}",
        leader_election=False,
        debounce_seconds=args.debounce,
    )
    api_client = kube.api_client(settings)
    core = client.CoreV1Api(api_client)
    kubelet = FakeKubelet(api_client)
    app = f"measure-app-{run_id}"
    core.create_namespace({"metadata": {"name": settings.namespace}})
    core.create_namespace(
        {
            "metadata": {
                "name": app,
                "labels": {"stellar-measure": run_id},
            }
        }
    )

    injector = contextlib.ExitStack()
    injector.enter_context(running_service(settings, ready_within=30))
    tail = ConfigMapTail(core, settings.namespace)
    samples: list[float] = []
    try:
        for i in range(args.tries):
            name, ip = f"v{i}", f"127.0.2.{i + 1}"
            core.create_namespaced_pod(
                app,
                {
                    "metadata": {"name": name, "labels": {names.INJECTED_LABEL: "true"}},
                    "spec": {
                        "containers": [{"name": "stellar-core", "image": "stellar/stellar-core:22"}]
                    },
                },
            )
            kubelet.mark_ready(namespace=app, name=name, ip=ip)
            ready_at = time.monotonic()  # the status write has been accepted
            seen_at = tail.first_time_with(f"{ip}:{names.DEFAULT_PEER_PORT}", after=0, timeout=30)
            samples.append(max(0.0, seen_at - ready_at))
            print(f"try {i + 1:2d}: {samples[-1] * 1000:7.1f} ms", flush=True)
    finally:
        tail.stop()
        injector.close()
        for namespace in (app, settings.namespace):
            core.delete_namespace(namespace, propagation_policy="Background")
    print(
        f"debounce {args.debounce * 1000:.0f} ms, {len(samples)} tries: "
        f"median {statistics.median(samples) * 1000:.1f} ms, "
        f"worst {max(samples) * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
