"""The real control plane: brought up once per session (or reused), a namespace per test.

`scripts/cluster.sh up` starts etcd, kube-apiserver and kube-controller-manager
on 127.0.0.1. If this session started it, it stops it at the end, unless
STELLAR_KEEP_CLUSTER=1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.kubelet import FakeKubelet
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.cluster)


@dataclasses.dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    api_client: client.ApiClient
    bin_dir: str

    @property
    def kubectl(self) -> str:
        return os.path.join(self.bin_dir, "kubectl")


def _cluster_running() -> bool:
    return subprocess.run([str(CLUSTER_SH), "status"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started_here = False
    if not _cluster_running():
        subprocess.run([str(CLUSTER_SH), "up"], check=True)
        started_here = True
    kubeconfig = subprocess.run(
        [str(CLUSTER_SH), "kubeconfig"], check=True, capture_output=True, text=True
    ).stdout.strip()
    bin_dir = subprocess.run(
        [str(CLUSTER_SH), "bin"], check=True, capture_output=True, text=True
    ).stdout.strip()
    api_client = config.new_client_from_config(config_file=kubeconfig)
    api_client.configuration.connection_pool_maxsize = 32
    yield Cluster(kubeconfig=kubeconfig, api_client=api_client, bin_dir=bin_dir)
    api_client.close()
    if started_here and os.environ.get("STELLAR_KEEP_CLUSTER") != "1":
        subprocess.run([str(CLUSTER_SH), "down"], check=False)


@pytest.fixture
def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client)


@pytest.fixture
def apps(cluster: Cluster) -> client.AppsV1Api:
    return client.AppsV1Api(cluster.api_client)


@pytest.fixture
def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api_client)


@pytest.fixture
def apiext(cluster: Cluster) -> client.ApiextensionsV1Api:
    return client.ApiextensionsV1Api(cluster.api_client)


@pytest.fixture
def admreg(cluster: Cluster) -> client.AdmissionregistrationV1Api:
    return client.AdmissionregistrationV1Api(cluster.api_client)


@pytest.fixture
def coordination(cluster: Cluster) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(cluster.api_client)


@pytest.fixture
def rbac(cluster: Cluster) -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(cluster.api_client)


def make_namespace(core: client.CoreV1Api, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"stellar-e2e": "true"}}})
    return name


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace for one test; deleted (in the background) afterwards."""
    name = make_namespace(core)
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@contextlib.contextmanager
def injector_apart(core: client.CoreV1Api, settings: Settings) -> Iterator[Settings]:
    """`settings` with a fresh namespace of the injector's own: it never serves that one
    (`webhook.core.selector.is_enabled`), so validators live in the test's `namespace`."""
    own = make_namespace(core, "injector")
    try:
        yield dataclasses.replace(settings, namespace=own)
    finally:
        core.delete_namespace(own, propagation_policy="Background")


@pytest.fixture
def kubelet(cluster: Cluster) -> FakeKubelet:
    return FakeKubelet(cluster.api_client)


@pytest.fixture
def settings(cluster: Cluster, namespace: str) -> Settings:
    """Settings scoped to this test: its namespace is the system namespace, its own selector."""
    run_id = uuid.uuid4().hex[:10]
    return Settings(
        kubeconfig=cluster.kubeconfig,
        namespace=namespace,
        # A label of this test's own, without the real enable label: an injector
        # running with default settings on the same API server (the demo) must
        # not see, inject or mirror into this test's namespaces.
        namespace_selector=f"stellar-test={run_id}",
        leader_election=False,
        debounce_seconds=0.05,
        port=0,
        metrics_port=0,
        webhook_config_name=f"stellar-peer-injector-{run_id}",
        # The webhook's tests: this API server serves policies, so auto would pick those.
        admission_mode="webhook",
    )
