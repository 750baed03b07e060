"""End-to-end pod creation through a real kube-apiserver, with and without our webhook.

On the private control plane: N validator pods are created one after another
in a namespace before our webhook is registered (the baseline), then again
once `stellar-peers serve --local` serves admission on 127.0.0.1 with a
certificate made on the spot and has registered a MutatingWebhookConfiguration
(`url` clientConfig, a namespaceSelector matching only this run's namespace,
a unique name, removed when it stops). While it is registered, creations in
the webhook's namespace alternate with creations in a namespace it does not
select, a second baseline under identical conditions. Latency is the client's
view of one `POST .../pods` (no kubelet: pods stay Pending). The webhook runs
without the watcher and reload controller, so only admission is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.bench import pods, procs
from tests.bench.cluster import api_client, private_cluster
from tests.bench.report import Row, emit, percentile
from webhook import names

HOST = "127.0.0.1"


def pod_body(index: int) -> dict[str, Any]:
    """A validator pod as a user (or a ReplicaSet) sends it: no status, no managed fields."""
    pod = pods.validator_pod(name=f"validator-{index:05d}")
    metadata = pod["metadata"]
    for key in ("ownerReferences", "managedFields", "generateName", "namespace"):
        metadata.pop(key, None)
    pod.pop("status", None)
    return copy.deepcopy(pod)


def create(core: client.CoreV1Api, namespace: str, index: int) -> tuple[float, bool]:
    """Seconds for one create, and whether the stored pod carries our label."""
    body = pod_body(index)
    started = time.perf_counter()
    response = core.create_namespaced_pod(namespace, body, _preload_content=False)
    elapsed = time.perf_counter() - started
    labels = orjson.loads(response.data)["metadata"].get("labels") or {}
    return elapsed, labels.get(names.INJECTED_LABEL) == "true"


def wait_for(condition: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ApiException):
            value = condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def make_namespace(core: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    # Pods are refused until the controller manager made the default ServiceAccount.
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=60,
        what=f"the default ServiceAccount in {name}",
    )


@contextlib.contextmanager
def webhook(*, kubeconfig: str, selector: str, config_name: str, log: Path) -> Iterator[None]:
    port, metrics_port = procs.free_port(), procs.free_port()
    argv = [
        str(procs.ROOT / ".venv" / "bin" / "stellar-peers"), "serve", "--local",
        "--host", HOST, "--port", str(port),
        "--metrics-host", HOST, "--metrics-port", str(metrics_port),
        "--kubeconfig", kubeconfig, "--namespace", "stellar-system",
        "--namespace-selector", selector, "--webhook-config-name", config_name,
        "--enable-watcher", "false", "--leader-election", "false", "--reload-mode", "none",
    ]  # fmt: skip
    with procs.running(argv, log=log) as process:
        procs.wait_for_port(HOST, port, process=process)
        yield


def summary(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


def measure(*, kubeconfig: str, count: int, folder: Path) -> list[Row]:
    api = api_client(kubeconfig)
    core = client.CoreV1Api(api)
    admreg = client.AdmissionregistrationV1Api(api)
    run = uuid.uuid4().hex[:8]
    selector = f"{names.ENABLE_LABEL}={names.ENABLE_VALUE},stellar-bench={run}"
    on, off = f"bench-on-{run}", f"bench-off-{run}"
    config_name = f"stellar-bench-{run}"
    with contextlib.suppress(ApiException):
        core.create_namespace({"metadata": {"name": "stellar-system"}})
    make_namespace(core, on, {names.ENABLE_LABEL: names.ENABLE_VALUE, "stellar-bench": run})
    make_namespace(core, off, {"stellar-bench-off": run})
    index = 0
    try:
        for _ in range(max(10, count // 10)):  # warm the API server's caches and connections
            create(core, on, index)
            index += 1
        without: list[float] = []
        for _ in range(count):
            elapsed, injected = create(core, on, index)
            index += 1
            if injected:
                raise RuntimeError("a pod was injected before the webhook was registered")
            without.append(elapsed)

        with_webhook: list[float] = []
        unselected: list[float] = []
        missed = 0
        with webhook(kubeconfig=kubeconfig, selector=selector, config_name=config_name,
                     log=folder / "serve.log"):  # fmt: skip
            # Registered once a probe pod comes back injected.
            def probe() -> bool:
                nonlocal index
                index += 1
                return create(core, on, index - 1)[1]

            wait_for(probe, timeout=60, what="the webhook to inject a probe pod")
            for _ in range(count):
                elapsed, injected = create(core, on, index)
                index += 1
                with_webhook.append(elapsed)
                missed += not injected
                elapsed, _ = create(core, off, index)
                index += 1
                unselected.append(elapsed)
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(config_name)
    finally:
        for namespace in (on, off):
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace, propagation_policy="Background")
        api.close()

    p50_with, p99_with = summary(with_webhook)
    p50_without, p99_without = summary(without)
    p50_unselected, p99_unselected = summary(unselected)
    note = f"{count} sequential creates each" + (
        f"; {missed} created without injection (webhook timed out?)" if missed else ""
    )
    return [
        Row(
            benchmark="apiserver: pod create p50, webhook registered",
            unit="ms",
            ours=p50_with,
            baseline=p50_without,
            baseline_name="no webhook",
            note=note,
        ),
        Row(
            benchmark="apiserver: pod create p99, webhook registered",
            unit="ms",
            ours=p99_with,
            baseline=p99_without,
            baseline_name="no webhook",
        ),
        Row(
            benchmark="apiserver: pod create p50, webhook vs unselected namespace",
            unit="ms",
            ours=p50_with,
            baseline=p50_unselected,
            baseline_name="same time, namespace not selected",
        ),
        Row(
            benchmark="apiserver: pod create p99, webhook vs unselected namespace",
            unit="ms",
            ours=p99_with,
            baseline=p99_unselected,
            baseline_name="same time, namespace not selected",
        ),
        Row(
            benchmark="apiserver: added latency per create, p50",
            unit="ms",
            ours=p50_with - p50_without,
        ),
        Row(
            benchmark="apiserver: added latency per create, p99",
            unit="ms",
            ours=p99_with - p99_without,
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 pods per case instead of 300")
    parser.add_argument("--count", type=int, default=None, help="pods per case")
    args = parser.parse_args(argv)
    count = args.count or (50 if args.quick else 300)
    print("== pod create through the API server, with and without the webhook")
    with (
        tempfile.TemporaryDirectory(prefix="stellar-bench-apiserver-") as tmp,
        private_cluster() as kubeconfig,
    ):
        rows = measure(kubeconfig=kubeconfig, count=count, folder=Path(tmp))
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
