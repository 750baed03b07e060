"""Leader election against the real API server: one writer at a time, a quick hand-over."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from kubernetes import client

from tests.e2e.test_watcher import add_validator, app_namespace, settings, wait_for_peers
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook.controllers.watcher import PeerWatcher
from webhook.kube.leader import LeaderElector, micro_time, now_utc
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["app_namespace", "settings"]  # fixtures shared with the watcher tests


@dataclass
class Replica:
    elector: LeaderElector
    watcher: PeerWatcher
    metrics: Metrics

    def writes(self) -> float:
        total = 0.0
        for metric in self.metrics.configmap_writes_total.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["result"] != "error":
                    total += sample.value
        return total


@contextlib.contextmanager
def replica(settings: Settings, identity: str) -> Iterator[Replica]:
    """One injector replica as `serve` wires it, on its own loop; stopped cleanly after."""
    settings = dataclasses.replace(settings, identity=identity)
    metrics = Metrics()
    with running_service(settings, metrics=metrics, ready_within=15) as service:
        assert service.leader is not None
        assert service.watcher is not None
        yield Replica(elector=service.leader, watcher=service.watcher, metrics=metrics)


def lease_holder(coordination: client.CoordinationV1Api, settings: Settings) -> str | None:
    lease = coordination.read_namespaced_lease(settings.lease_name, settings.namespace)
    holder: str | None = lease.spec.holder_identity
    return holder


def elected_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, leader_election=True, lease_duration_seconds=2.0, lease_renew_seconds=0.5
    )


def test_exactly_one_replica_writes_and_the_other_takes_over(
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
) -> None:
    settings = elected_settings(settings)
    add_validator(core, kubelet, app_namespace, "v1", "127.0.1.101")
    with contextlib.ExitStack() as later:
        with replica(settings, "replica-a") as a:
            wait_until(a.elector.is_leader, timeout=5, message="replica-a to lead")
            b = later.enter_context(replica(settings, "replica-b"))
            wait_for_peers(core, settings.namespace, ["127.0.1.101:11625"])
            wait_for_peers(core, app_namespace, ["127.0.1.101:11625"])
            add_validator(core, kubelet, app_namespace, "v2", "127.0.1.102")
            wait_for_peers(core, settings.namespace, ["127.0.1.101:11625", "127.0.1.102:11625"])
            assert a.elector.is_leader()
            assert not b.elector.is_leader()
            assert lease_holder(coordination, settings) == "replica-a"
            assert a.writes() >= 3  # canonical and mirror created, then the update
            assert b.writes() == 0
            assert (a.metrics.leader._value.get(), b.metrics.leader._value.get()) == (1, 0)
        # replica-a stopped and released the Lease: replica-b takes over well before expiry.
        wait_until(b.elector.is_leader, timeout=1.5, message="replica-b to take the Lease")
        add_validator(core, kubelet, app_namespace, "v3", "127.0.1.103")
        wait_for_peers(
            core,
            settings.namespace,
            ["127.0.1.101:11625", "127.0.1.102:11625", "127.0.1.103:11625"],
        )
        assert b.writes() >= 1
        assert lease_holder(coordination, settings) == "replica-b"
        lease = coordination.read_namespaced_lease(settings.lease_name, settings.namespace)
        assert lease.spec.lease_transitions == 1


def test_live_lease_is_respected_until_it_expires(
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
) -> None:
    settings = elected_settings(settings)
    coordination.create_namespaced_lease(
        settings.namespace,
        {
            "metadata": {"name": settings.lease_name},
            "spec": {
                "holderIdentity": "crashed-replica",
                "leaseDurationSeconds": 3,
                "renewTime": micro_time(now_utc()),
                "leaseTransitions": 4,
            },
        },
    )
    add_validator(core, kubelet, app_namespace, "v1", "127.0.1.111")
    with replica(settings, "replica-c") as c:
        assert not c.elector.is_leader()
        assert c.writes() == 0
        # The holder never renews: once renewTime + 3 s has passed, replica-c takes over.
        wait_until(c.elector.is_leader, timeout=8, message="replica-c to take the expired Lease")
        wait_for_peers(core, settings.namespace, ["127.0.1.111:11625"])
        lease = coordination.read_namespaced_lease(settings.lease_name, settings.namespace)
        assert lease.spec.holder_identity == "replica-c"
        assert lease.spec.lease_transitions == 5
    released = coordination.read_namespaced_lease(settings.lease_name, settings.namespace)
    assert not released.spec.holder_identity
