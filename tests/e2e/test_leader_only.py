"""A deposed leader stops at once: its reload round is cancelled when the Lease is taken.

The injector runs as `serve` wires it (`tests/service.running_service`: the
reload controller a leader-only `Runnable` started by `webhook.kube.leader.start`),
against the real API server and slow stellar-core stand-ins, so a round lasts
seconds; another holder then writes the Lease.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack

from kubernetes import client

from tests.e2e.conftest import injector_apart
from tests.e2e.test_reload import RELOAD_COMMANDS, loopback_block, start_node
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook import names
from webhook.kube.leader import micro_time, now_utc
from webhook.settings import Settings


def test_a_deposed_leader_stops_its_reload_round_at_once(
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
        # The validators' namespace is not the injector's own (which is never enabled).
        settings = stack.enter_context(injector_apart(core, settings))
        label_enabled(core, namespace, settings)
        # Every admin answer takes a second: a round over four nodes lasts several.
        standins = [
            start_node(stack, core, kubelet, namespace, f"v{i}", f"{block}{i + 2}", delay_seconds=1)
            for i in range(4)
        ]

        def asked(commands: frozenset[str] | None = None) -> int:
            return sum(
                1 for n in standins for r in n.received if commands is None or r.command in commands
            )

        with running_service(settings, ready_within=30) as service:
            assert service.leader is not None
            elector = service.leader
            wait_until(elector.is_leader, timeout=10, message="the elector to lead")
            wait_until(
                lambda: asked(RELOAD_COMMANDS) >= 4,
                timeout=60,  # the identity learner asks each node first
                message="the round to be under way",
            )
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
