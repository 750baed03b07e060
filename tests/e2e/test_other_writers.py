"""What others own survives us: fields another writer adds to our ConfigMap, and the audit
going on after a round of it fails."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.e2e.test_watcher import add_validator, app_namespace, running, settings, wait_for_peers
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook import names
from webhook.cli.wiring import Service
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["app_namespace", "settings"]


def test_configmap_update_keeps_what_another_writer_added(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "v1", "127.0.3.101")
    with running(settings):
        wait_for_peers(core, app_namespace, ["127.0.3.101:11625"])
        core.patch_namespaced_config_map(
            names.CONFIGMAP_NAME,
            app_namespace,
            {
                "metadata": {
                    "labels": {"team": "ops"},
                    "annotations": {"example.org/owner": "ops"},
                },
                "data": {"notes.txt": "ours, not the injector's\n"},
            },
        )
        add_validator(core, kubelet, app_namespace, "v2", "127.0.3.102")
        wait_for_peers(core, app_namespace, ["127.0.3.101:11625", "127.0.3.102:11625"])
        kept = core.read_namespaced_config_map(names.CONFIGMAP_NAME, app_namespace)
        assert kept.metadata.labels["team"] == "ops"
        assert kept.metadata.annotations["example.org/owner"] == "ops"
        assert kept.data["notes.txt"] == "ours, not the injector's\n"
        version = kept.metadata.resource_version
        # Their key is not ours to compare: no write fights over it.
        add_validator(core, kubelet, app_namespace, "v3", None)  # not Ready: same peer set
        wait_until(
            lambda: (
                core.read_namespaced_config_map(
                    names.CONFIGMAP_NAME, app_namespace
                ).metadata.resource_version
                == version
            ),
            timeout=2,
            message="the ConfigMap to stay as it is",
        )


def test_the_audit_goes_on_after_a_round_fails(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_validator(core, kubelet, app_namespace, "missed", None, injected=False)
    metrics = Metrics()
    calls: list[int] = []

    def fail_first_round(service: Service) -> None:
        """A bug in the audit's first round (a bad object, a wrong state)."""
        assert service.audit is not None
        find = service.audit._find_uninjected

        def failing_once(namespaces: list[str]) -> list[dict[str, Any]]:
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("boom")
            return find(namespaces)

        monkeypatch.setattr(service.audit, "_find_uninjected", failing_once)

    with running_service(
        settings, metrics=metrics, observe=fail_first_round, audit_interval_seconds=0.2
    ):
        wait_until(
            lambda: metrics.uninjected_validators._value.get() == 1,
            timeout=15,
            message="the audit to count the uninjected validator after a failed round",
        )
    assert len(calls) >= 2
