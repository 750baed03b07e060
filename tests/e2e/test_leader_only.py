"""A deposed leader stops at once: its reload round is cancelled when the Lease is taken.

The elector and the reload controller run as `serve` wires them (a leader-only
`Runnable` started by `webhook.kube.leader.start`), against the real API server
and slow stellar-core stand-ins, so a round lasts seconds; another holder then
writes the Lease.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import ExitStack
from typing import Any

from kubernetes import client

from tests.background import Background
from tests.e2e.test_reload import loopback_block, snapshot_of, start_node
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from webhook import names
from webhook.controllers.reload import ReloadController
from webhook.kube.leader import LeaderElector, Runnable, micro_time, now_utc, start
from webhook.metrics import Metrics
from webhook.settings import Settings


def test_a_deposed_leader_stops_its_reload_round_at_once(
    cluster: Any,
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    settings: Settings,
) -> None:
    settings = dataclasses.replace(
        settings,
        identity="old-leader",
        leader_election=True,
        lease_duration_seconds=2.0,
        lease_renew_seconds=0.5,
        reload_timeout_seconds=3.0,
        reload_connect_wait_seconds=5.0,
    )
    block = loopback_block()
    with ExitStack() as stack:
        # Every admin answer takes a second: a round over four nodes lasts several.
        standins = [
            start_node(stack, core, kubelet, namespace, f"v{i}", f"{block}{i + 2}", delay_seconds=1)
            for i in range(4)
        ]
        metrics = Metrics()
        elector = LeaderElector(settings=settings, api_client=cluster.api_client, metrics=metrics)
        reload = ReloadController(settings=settings, api_client=cluster.api_client, metrics=metrics)
        runnable = Runnable("reload", reload.run, leader_only=True)

        async def main(stop: asyncio.Event) -> None:
            await asyncio.gather(elector.run(stop), *start([runnable], leader=elector, stop=stop))

        with Background(main, what="the elector and the controller", stop_within=15) as run:
            wait_until(elector.is_leader, timeout=10, message="the elector to lead")
            run.call(reload.notify, snapshot_of(core, namespace))

            def asked() -> int:
                return sum(len(n.received) for n in standins)

            wait_until(lambda: asked() >= 4, timeout=15, message="the round to be under way")
            # Another holder takes the Lease in the middle of the round.
            lease = coordination.read_namespaced_lease(settings.lease_name, settings.namespace)
            lease.spec.holder_identity = "usurper"
            lease.spec.renew_time = micro_time(now_utc())
            lease.spec.lease_duration_seconds = 60
            coordination.replace_namespaced_lease(settings.lease_name, settings.namespace, lease)
            wait_until(lambda: not elector.is_leader(), timeout=10, message="leadership to end")
            time.sleep(1.5)  # what was already sent arrives (each answer takes 1 s)
            after_loss = asked()
            # A round left running would go on asking (connects, then peers again) for seconds.
            time.sleep(4)
            assert asked() == after_loss, "the deposed leader kept asking nodes"
            for i in range(4):
                pod = core.read_namespaced_pod(f"v{i}", namespace)
                assert names.CONNECTION_STATUS_ANNOTATION not in (pod.metadata.annotations or {})
