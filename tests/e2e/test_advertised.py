"""Advertised addresses against the real API server: Services, Nodes and pods in,
`advertised` in peers.json and Events out, while nodes keep each other's pod IPs."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kubernetes import client

from tests.e2e.test_watcher import add_validator, app_namespace, running, settings, wait_for_peers
from tests.kube import validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from webhook import names
from webhook.cli import check_beyond
from webhook.kube import api as kube
from webhook.settings import Settings

__all__ = ["app_namespace", "settings"]  # fixtures, reused


@pytest.fixture
def node(core: client.CoreV1Api) -> Iterator[str]:
    """A Node object (no kubelet behind it) with an ExternalIP and an InternalIP."""
    name = f"e2e-node-{uuid.uuid4().hex[:8]}"
    core.create_node({"metadata": {"name": name}})
    addresses = [
        {"type": "InternalIP", "address": "192.168.77.5"},
        {"type": "ExternalIP", "address": "203.0.113.77"},
    ]
    core.patch_node_status(name, {"status": {"addresses": addresses}})
    yield name
    core.delete_node(name)


def lb_service(name: str, selector: dict[str, str], *, port: int = 11625) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "selector": selector,
            "ports": [{"name": "peer", "port": port, "targetPort": "peer"}],
        },
    }


def entries(core: client.CoreV1Api, namespace: str) -> dict[str, dict[str, Any]]:
    data = core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace).data or {}
    return {e["name"]: e for e in orjson.loads(data.get(names.KEY_JSON) or "[]")}


def warnings(core: client.CoreV1Api, namespace: str, pod: str) -> list[str]:
    found = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}")
    return [e.message for e in found.items if e.reason == "AdvertisedAddress"]


def test_advertised_addresses_from_services_nodes_and_annotation(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
    node: str,
) -> None:
    def add(name: str, ip: str, **extra: Any) -> None:
        add_validator(core, kubelet, app_namespace, name, None, labels={"app": name}, **extra)
        kubelet.mark_ready(namespace=app_namespace, name=name, ip=ip)

    core.create_namespaced_pod(app_namespace, _host_network_pod("v-host", node))
    kubelet.mark_ready(namespace=app_namespace, name="v-host", ip="127.0.0.41")
    add("v-lb", "127.0.0.42")
    add(
        "v-anno",
        "127.0.0.43",
        annotations={names.ADVERTISED_ADDRESS_ANNOTATION: "core.example.org:11625"},
    )
    add("v-pending", "127.0.0.44")
    add("v-wrong-port", "127.0.0.45")
    add("v-plain", "127.0.0.46")
    lb = core.create_namespaced_service(app_namespace, lb_service("v-lb", {"app": "v-lb"}))
    core.patch_namespaced_service_status(
        lb.metadata.name,
        app_namespace,
        {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.42"}]}}},
    )
    core.create_namespaced_service(app_namespace, lb_service("v-pending", {"app": "v-pending"}))
    core.create_namespaced_service(
        app_namespace, lb_service("v-wrong", {"app": "v-wrong-port"}, port=11700)
    )
    settings = dataclasses.replace(settings, cluster_name="east")
    with running(settings):
        pod_ips = [f"127.0.0.{n}:11625" for n in range(41, 47)]
        # Nodes inside the cluster are still handed each other by pod IP.
        wait_for_peers(core, app_namespace, pod_ips)

        def advertised() -> dict[str, str | None]:
            return {n: e.get("advertised") for n, e in entries(core, settings.namespace).items()}

        expected = {
            "v-host": "203.0.113.77:11625",
            "v-lb": "198.51.100.42:11625",
            "v-anno": "core.example.org:11625",
            "v-pending": None,
            "v-wrong-port": None,
            "v-plain": None,
        }
        wait_until(lambda: advertised() == expected, timeout=15, message="advertised addresses")
        assert {e["cluster"] for e in entries(core, settings.namespace).values()} == {"east"}
        pending = wait_until(
            lambda: warnings(core, app_namespace, "v-pending"), message="pending LB Event"
        )
        assert "pending" in pending[0]
        wrong = wait_until(
            lambda: warnings(core, app_namespace, "v-wrong-port"), message="port Event"
        )
        assert "port 11700" in wrong[0]
        assert "PEER_PORT 11625" in wrong[0]
        assert not warnings(core, app_namespace, "v-plain")

        # `check` says the same, decided afresh from the live objects.
        name, ok, detail = check_beyond.advertised(
            kube.api_client(settings), settings, [app_namespace]
        )
        assert (name, ok) == ("advertised", False)
        assert f"{app_namespace}/v-pending: Service {app_namespace}/v-pending" in detail
        assert f"{app_namespace}/v-wrong-port:" in detail

        # The pending LoadBalancer gets its address: published, without a restart.
        core.patch_namespaced_service_status(
            "v-pending",
            app_namespace,
            {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}}},
        )
        expected["v-pending"] = "lb.example.net:11625"
        wait_until(lambda: advertised() == expected, timeout=15, message="the LB's hostname")
        # A second Service for one pod: reported, and its address no longer guessed.
        core.create_namespaced_service(app_namespace, lb_service("v-lb-2", {"app": "v-lb"}))
        expected["v-lb"] = None
        wait_until(lambda: advertised() == expected, timeout=15, message="two Services")
        several = wait_until(
            lambda: [m for m in warnings(core, app_namespace, "v-lb") if "several" in m],
            message="several-Services Event",
        )
        assert f"{app_namespace}/v-lb, {app_namespace}/v-lb-2" in several[0]


def _host_network_pod(name: str, node: str) -> dict[str, Any]:
    body = validator_pod(name, labels={"app": name})
    body["metadata"]["labels"][names.INJECTED_LABEL] = "true"
    body["spec"]["hostNetwork"] = True
    body["spec"]["nodeName"] = node
    return body
