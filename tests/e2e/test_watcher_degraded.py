"""One source that cannot list does not hold the injector back: it is reported and the rest runs."""

from __future__ import annotations

import dataclasses
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.test_watcher import add_validator, app_namespace, ensure_crd, peers_txt, settings
from tests.kube import validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook.cli.wiring import Service
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["app_namespace", "settings"]  # fixtures shared with test_watcher


def forbidden(*_args: Any, **_kwargs: Any) -> Any:
    raise ApiException(status=403, reason="Forbidden")


def test_a_source_refused_by_rbac_is_reported_and_the_rest_runs(
    core: client.CoreV1Api,
    apiext: client.ApiextensionsV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
) -> None:
    ensure_crd(apiext)
    add_validator(core, kubelet, app_namespace, "v", "127.0.4.1")
    core.create_namespaced_pod(app_namespace, validator_pod("plain"))  # admitted uninjected
    metrics = Metrics()

    def refuse_services(service: Service) -> None:
        """Services refused, as under an RBAC that lacks them."""
        assert service.watcher is not None
        service.watcher.sources.nodes = [
            dataclasses.replace(s, list_fn=forbidden) if s.name == "services" else s
            for s in service.watcher.sources.nodes
        ]

    with running_service(
        settings,
        metrics=metrics,
        ready_within=30,
        observe=refuse_services,
        audit_interval_seconds=0.5,
    ) as service:
        watcher = service.watcher
        assert watcher is not None
        assert "services" in watcher.detail()
        assert "grant list and watch on services" in watcher.detail()["services"]
        unavailable = metrics.watch_source_unavailable.labels(resource="services")
        assert unavailable._value.get() == 1
        wait_until(
            lambda: peers_txt(core, settings.namespace) == "127.0.4.1:11625\n",
            timeout=20,
            message="the pods' peers published without the Services",
        )
        wait_until(
            lambda: metrics.uninjected_validators._value.get() == 1,
            timeout=20,
            message="the audit to find the validator admitted uninjected",
        )


def test_a_refused_base_source_holds_writes_but_not_readiness(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "v", "127.0.4.2")

    def refuse_namespaces(service: Service) -> None:
        """Namespaces refused: the mirror plan cannot be made, so nothing is written."""
        assert service.watcher is not None
        service.watcher.sources.base = [
            dataclasses.replace(s, list_fn=forbidden) if s.name == "namespaces" else s
            for s in service.watcher.sources.base
        ]

    with running_service(settings, ready_within=30, observe=refuse_namespaces) as service:
        watcher = service.watcher
        assert watcher is not None
        assert "namespaces" in watcher.detail()
        wait_until(lambda: watcher._held_logged, timeout=20, message="publishing held")
        assert peers_txt(core, settings.namespace) is None
