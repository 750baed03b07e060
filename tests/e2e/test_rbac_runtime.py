"""The product under manifests/' RBAC: run as its ServiceAccount; every call it makes granted.

Two views of one question. First the watcher, Lease elector and reload
controller (`serve.components`, as `serve` wires them) run with a token of the
ServiceAccount that manifests/ binds, with the StellarNode CRD installed: they
must list every source, turn ready and publish. Then the same parts run with a
recording client while they do everything they do in a cluster (pods and
StellarNodes with their pods and Services, mirrors, the audit, reloads of two
stand-in nodes, the Lease); every request recorded must be granted by the
rules in manifests/base, evaluated from the YAML (`tests.rbac_rules`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import orjson
import pytest
from kubernetes import client

from tests.background import Background
from tests.e2e.conftest import Cluster
from tests.e2e.test_rbac import Installed, installed  # noqa: F401 (the fixture)
from tests.e2e.test_reload import loopback_block, start_node
from tests.e2e.test_watcher import ensure_crd, peers_txt, stellar_node
from tests.kube import label_enabled, validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.rbac_rules import Recorder, refused, rendered_rbac
from webhook import names
from webhook.cli import serve
from webhook.metrics import Metrics
from webhook.settings import Settings


@contextlib.contextmanager
def running_components(
    settings: Settings, api_client: client.ApiClient
) -> Iterator[serve.Components]:
    """`serve.components` (elector, watcher, reload) on a loop of their own, stopped after."""
    stop = asyncio.Event()
    parts = serve.components(settings=settings, metrics=Metrics(), api_client=api_client, stop=stop)

    async def main(stop: asyncio.Event) -> None:
        await asyncio.gather(*parts.parts)

    with Background(main, what="the components", stop_within=20, stop=stop):
        yield parts


def product_settings(cluster: Cluster, system: str) -> Settings:
    run_id = uuid.uuid4().hex[:10]
    return Settings(
        kubeconfig=cluster.kubeconfig,
        namespace=system,
        namespace_selector=f"stellar-test={run_id}",
        leader_election=True,
        lease_duration_seconds=6,
        lease_renew_seconds=1,
        debounce_seconds=0.05,
        reload_timeout_seconds=0.5,
        reload_retries=2,
        port=0,
        metrics_port=0,
        webhook_config_name=f"stellar-peer-injector-{run_id}",
    )


def add_stellarnode_with_service(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """A StellarNode reached through its Service; the Service's cluster IP."""
    custom = client.CustomObjectsApi(core.api_client)
    custom.create_namespaced_custom_object(
        names.STELLARNODE_GROUP,
        names.STELLARNODE_VERSION,
        namespace,
        names.STELLARNODE_PLURAL,
        stellar_node(name),
    )
    service = core.create_namespaced_service(
        namespace,
        {"metadata": {"name": name}, "spec": {"ports": [{"name": "peer", "port": 11625}]}},
    )
    return str(service.spec.cluster_ip)


def test_components_as_the_service_account_turn_ready_and_publish_with_the_crd(
    cluster: Cluster,
    installed: Installed,  # noqa: F811
    kubelet: FakeKubelet,
) -> None:
    admin = client.CoreV1Api(installed.admin)
    ensure_crd(client.ApiextensionsV1Api(installed.admin))
    settings = product_settings(cluster, installed.system)
    label_enabled(admin, installed.other, settings)
    pod = validator_pod("v-sa")
    pod["metadata"]["labels"][names.INJECTED_LABEL] = "true"
    admin.create_namespaced_pod(installed.other, pod)
    kubelet.mark_ready(namespace=installed.other, name="v-sa", ip="127.0.3.1")
    cluster_ip = add_stellarnode_with_service(admin, installed.other, "sn-sa")
    expected = "".join(f"{p}\n" for p in sorted(["127.0.3.1:11625", f"{cluster_ip}:11625"]))
    with running_components(settings, installed.sa_api) as parts:
        wait_until(parts.ready, timeout=30, message="the injector, as its ServiceAccount, ready")
        for namespace in (installed.system, installed.other):
            wait_until(
                lambda ns=namespace: peers_txt(admin, ns) == expected,
                timeout=30,
                message=f"{namespace}/stellar-peers written by the ServiceAccount",
            )


def test_every_call_the_components_make_is_granted_by_the_manifests(
    cluster: Cluster, core: client.CoreV1Api, kubelet: FakeKubelet, namespace: str, app: str
) -> None:
    ensure_crd(client.ApiextensionsV1Api(cluster.api_client))
    settings = product_settings(cluster, namespace)
    label_enabled(core, app, settings)
    api_client = client.ApiClient(cluster.api_client.configuration)
    recorder = Recorder(api_client)
    block = loopback_block()
    with ExitStack() as nodes, running_components(settings, api_client) as parts:
        wait_until(parts.ready, timeout=30, message="the injector ready")
        for index in (1, 2):
            start_node(nodes, core, kubelet, app, f"v{index}", f"{block}{index}")

        def observed_everywhere() -> bool:
            for name in ("v1", "v2"):
                found = core.read_namespaced_pod(name, app).metadata.annotations or {}
                if names.OBSERVED_HASH_ANNOTATION not in found:
                    return False
            return True

        # Before the StellarNode: nothing listens at its Service's cluster IP, so once it
        # is in their set the nodes never hold every peer (and get no observed hash).
        wait_until(observed_everywhere, timeout=60, message="both nodes reloaded and recorded")
        cluster_ip = add_stellarnode_with_service(core, app, "sn")
        uninjected = validator_pod("plain")  # admitted without injection: the audit's find
        core.create_namespaced_pod(app, uninjected)
        expected = sorted([f"{block}1:11625", f"{block}2:11625", f"{cluster_ip}:11625"])
        text = "".join(f"{p}\n" for p in expected)
        for where in (namespace, app):
            wait_until(
                lambda ns=where: peers_txt(core, ns) == text,
                timeout=30,
                message=f"{where}/stellar-peers to hold {expected}",
            )

        def judged_everywhere() -> bool:
            # After the StellarNode: each node holds its fellow and is told the Service
            # address, which nothing listens on here: judged again, annotated, not settled.
            for name in ("v1", "v2"):
                found = core.read_namespaced_pod(name, app).metadata.annotations or {}
                status = orjson.loads(found.get(names.CONNECTION_STATUS_ANNOTATION, "{}"))
                if (status.get("connected"), status.get("expected")) != (1, 2):
                    return False
            return True

        wait_until(judged_everywhere, timeout=60, message="both nodes reloaded and judged")
    api_client.close()
    verbs = {(c.verb, c.resource) for c in recorder.calls}
    for needed in (
        ("list", "services"),
        ("watch", "pods"),
        ("update", "leases"),
        ("patch", "pods"),
    ):
        assert needed in verbs, f"{needed} not recorded: the run did not exercise it"
    assert (
        refused(recorder.calls, rendered_rbac(), namespaces={names.SYSTEM_NAMESPACE: namespace})
        == []
    )


@pytest.fixture
def app(core: client.CoreV1Api) -> Iterator[str]:
    name = f"app-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"stellar-e2e": "true"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")
