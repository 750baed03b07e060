"""A private control plane for the heavy benchmarks, apart from the shared one tests use.

`scripts/cluster.sh` takes its state folder and ports from the environment, so
a second etcd + kube-apiserver + kube-controller-manager runs beside the
shared one without touching it. `scripts/bench.sh` starts one for the whole
run and passes its kubeconfig in `BENCH_KUBECONFIG`; a benchmark run on its
own starts (and stops) its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kubernetes import client, config

from tests.bench.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
KUBECONFIG_ENV = "BENCH_KUBECONFIG"
PORT_NAMES = ("ETCD_PORT", "ETCD_PEER_PORT", "APISERVER_PORT", "KCM_PORT")


def private_environment(state: str) -> dict[str, str]:
    """cluster.sh's environment for a control plane in `state` on free ports."""
    ports: set[int] = set()
    while len(ports) < len(PORT_NAMES):
        ports.add(free_port())
    assigned = dict(zip(PORT_NAMES, map(str, ports), strict=True))
    return {**os.environ, "STELLAR_CLUSTER_DIR": state, **assigned}


@contextlib.contextmanager
def private_cluster() -> Iterator[str]:
    """The kubeconfig of a private control plane: `$BENCH_KUBECONFIG`, or one started here."""
    given = os.environ.get(KUBECONFIG_ENV)
    if given:
        yield given
        return
    state = tempfile.mkdtemp(prefix="stellar-bench-cluster-")
    env = private_environment(state)
    try:
        subprocess.run([str(CLUSTER_SH), "up"], check=True, env=env)
        yield os.path.join(state, "kubeconfig")
    finally:
        subprocess.run([str(CLUSTER_SH), "down"], check=False, env=env)


def api_client(kubeconfig: str, *, qps_pool: int = 64) -> client.ApiClient:
    """A client with a connection pool big enough for a thread pool of `qps_pool` workers.

    The Python client has no client-side rate limit, so "high QPS" is a matter
    of enough pooled keep-alive connections.
    """
    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = qps_pool
    # The pool size is read when the REST client is built.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = qps_pool
    return api


def kubectl() -> str:
    bin_dir = subprocess.run(
        [str(CLUSTER_SH), "bin"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return os.path.join(bin_dir, "kubectl")
