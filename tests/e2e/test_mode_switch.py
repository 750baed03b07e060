"""Switching admission modes on the real kube-apiserver: no validator admitted uninjected.

During a switch (an overlay re-applied, a rolling update) replicas of both modes run and
the Lease may pass between them. The keepers' passes in the order such leaders would run
them never leave the cluster with neither the policy nor a webhook configuration in force,
in either direction; and a policy-mode replica is not ready while a webhook configuration
of ours exists that it cannot answer, then answers it from the TLS Secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files, install
from tests.background import Background
from tests.e2e.conftest import Cluster, make_namespace
from tests.e2e.test_webhook import (
    InProcessServer,
    create_pod,
    is_injected,
    local_certificates,
    narrowed,
)
from tests.kube import label_enabled, validator_pod
from tests.polling import wait_until
from webhook.admission import server
from webhook.cli.registration import webhook_configuration
from webhook.cli.wiring import wire
from webhook.controllers import certificates
from webhook.controllers.admission_policy import Seen, remove_policy, sync_once
from webhook.core.injection import policy
from webhook.kube.rest import Rest
from webhook.metrics import Metrics
from webhook.settings import Settings


@dataclasses.dataclass
class Switch:
    settings: Settings
    enabled: str
    ca: bytes
    url: str
    core: client.CoreV1Api
    admreg: client.AdmissionregistrationV1Api
    custom: client.CustomObjectsApi
    rest: Rest

    def apply_webhook(self) -> None:
        """What `kubectl apply` of a webhook-mode overlay does (the caBundle already in it)."""
        body = webhook_configuration(
            settings=self.settings, ca_bundle=self.ca, client_config={"url": self.url}
        )
        self.admreg.create_mutating_webhook_configuration(narrowed(body, [self.enabled]))

    def webhook(self) -> bool:
        try:
            self.admreg.read_mutating_webhook_configuration(self.settings.webhook_config_name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def policy(self) -> bool:
        try:
            self.custom.get_cluster_custom_object(
                policy.GROUP, "v1", policy.POLICY_RESOURCE, self.settings.webhook_config_name
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def injected(self) -> bool:
        probe = validator_pod("probe")
        return is_injected(create_pod(self.core, self.enabled, probe, dry_run="All"))

    def assert_in_force(self) -> None:
        """One of the two objects exists, and what it says is what the API server does."""
        assert self.webhook() or self.policy(), "neither a webhook configuration nor a policy"
        wait_until(self.injected, timeout=20, message="a validator pod to be injected")


@pytest.fixture
def switch(cluster: Cluster, settings: Settings, tmp_path: Path) -> Iterator[Switch]:
    folder = tmp_path / "tls"
    ca = local_certificates(folder)
    chosen = dataclasses.replace(
        settings,
        cert_file=str(folder / files.TLS_CERT),
        key_file=str(folder / files.TLS_KEY),
    )
    core = client.CoreV1Api(cluster.api_client)
    enabled = make_namespace(core, "switch")
    label_enabled(core, enabled, chosen)
    running = InProcessServer(chosen)  # the replicas that answer the webhook
    admreg = client.AdmissionregistrationV1Api(cluster.api_client)
    rest = Rest(cluster.api_client)
    try:
        yield Switch(
            settings=chosen,
            enabled=enabled,
            ca=ca,
            url=running.url,
            core=core,
            admreg=admreg,
            custom=client.CustomObjectsApi(cluster.api_client),
            rest=rest,
        )
    finally:
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(chosen.webhook_config_name)
        remove_policy(rest, chosen)
        running.close()
        core.delete_namespace(enabled, propagation_policy="Background")


SETTLE = 1.0  # seconds; the service's is cert_sync_seconds + 20 s


def _past_the_settle() -> None:
    time.sleep(SETTLE + 0.1)


def _next_second() -> None:
    """creationTimestamp has whole seconds: what comes next is created in a later one."""
    time.sleep(1.1)


def test_webhook_to_policy_and_back_with_the_lease_passing_between_modes(switch: Switch) -> None:
    settings, rest = switch.settings, switch.rest
    switch.apply_webhook()
    switch.assert_in_force()

    # Webhook → policy. The new (policy-mode) leader applies the policy and keeps the
    # webhook configuration until the policy has been in place for a pass.
    policy_leader = Seen(SETTLE)
    assert sync_once(rest, settings, "policy", policy_leader) == [
        f"created {policy.POLICY_RESOURCE}",
        f"created {policy.BINDING_RESOURCE}",
    ]
    assert switch.webhook()
    switch.assert_in_force()
    assert sync_once(rest, settings, "policy", policy_leader) == [
        "deleted mutatingwebhookconfigurations"
    ]
    switch.assert_in_force()
    # An old webhook-mode replica takes the Lease back: it must not remove the policy
    # (no webhook configuration is in force), twice over.
    old_leader = Seen(SETTLE)
    for _ in range(2):
        assert sync_once(rest, settings, "webhook", old_leader) == []
        _past_the_settle()
    switch.assert_in_force()
    assert switch.policy()

    # Policy → webhook: the webhook overlay applied, newer than the policy.
    _next_second()
    switch.apply_webhook()
    # The old policy-mode leader leaves the newer webhook configuration alone.
    assert sync_once(rest, settings, "policy", policy_leader) == []
    assert switch.webhook()
    # The new webhook-mode leader removes the policy only once the webhook configuration
    # has been in force for the settle (here 1 s; replicas of the old mode had the time
    # to serve it or turn unready).
    webhook_leader = Seen(SETTLE)
    assert sync_once(rest, settings, "webhook", webhook_leader) == []
    assert switch.policy()
    _past_the_settle()
    assert sorted(sync_once(rest, settings, "webhook", webhook_leader)) == sorted(
        [f"deleted {policy.BINDING_RESOURCE}", f"deleted {policy.POLICY_RESOURCE}"]
    )
    switch.assert_in_force()
    # An old policy-mode leader taking the Lease back now puts its policy back and, once
    # it is in force, removes the webhook configuration: the switch goes back, but at
    # every step one of the two is in force.
    stale = Seen(SETTLE)
    for _ in range(2):
        sync_once(rest, settings, "policy", stale)
        switch.assert_in_force()


def test_auto_mode_removes_a_webhook_configuration_the_base_manifests_bring_back(
    switch: Switch,
) -> None:
    """`kubectl apply -k manifests/` (auto) on a policy-mode install re-creates our webhook
    configuration, without a caBundle: newer than the policy, but nobody serves it, so the
    leader removes it once the policy is settled (a pinned policy mode would keep it: a
    switch to webhook mode)."""
    auto = dataclasses.replace(switch.settings, admission_mode="auto")
    leader = Seen(SETTLE)
    sync_once(switch.rest, auto, "policy", leader)
    _next_second()
    body = webhook_configuration(
        settings=auto, ca_bundle=b"", client_config={"url": "https://127.0.0.1:1/mutate"}
    )
    for hook in body["webhooks"]:
        hook["clientConfig"].pop("caBundle", None)
    switch.admreg.create_mutating_webhook_configuration(narrowed(body, [switch.enabled]))
    pinned = dataclasses.replace(auto, admission_mode="policy")
    assert sync_once(switch.rest, pinned, "policy", leader) == []
    assert sync_once(switch.rest, auto, "policy", leader) == [
        "deleted mutatingwebhookconfigurations"
    ]
    switch.assert_in_force()


def _secret_for_127(settings: Settings) -> tuple[bytes, dict[str, Any]]:
    """The TLS Secret a webhook-mode install left, its pair also valid for 127.0.0.1."""
    ca = authority.make_ca()
    target = certificates.target(settings)
    serving = authority.make_serving(ca=ca, dns_names=target.dns, ips=["127.0.0.1"])
    body = install.secret_body(
        namespace=settings.namespace,
        secret=target.secret,
        bundle=files.Bundle(ca_cert=ca.cert_pem, serving=serving),
    )
    return ca.cert_pem, body


def _review(port: int, ca: bytes) -> dict[str, Any]:
    context = ssl.create_default_context(cadata=ca.decode())
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "switch-probe",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "switch",
            "object": validator_pod("probe"),
        },
    }
    try:
        connection.request(
            "POST", "/mutate", orjson.dumps(review), {"Content-Type": "application/json"}
        )
        answer: dict[str, Any] = orjson.loads(connection.getresponse().read())
    finally:
        connection.close()
    return answer


def test_policy_replica_is_unready_while_a_webhook_it_cannot_answer_exists(
    cluster: Cluster, core: client.CoreV1Api, settings: Settings, tmp_path: Path
) -> None:
    """A new replica in policy mode, while the old install's webhook configuration still
    routes reviews to it: not ready until it serves the webhook from the TLS Secret."""
    chosen = dataclasses.replace(
        settings,
        admission_mode="policy",
        cert_file=str(tmp_path / "tls" / files.TLS_CERT),
        key_file=str(tmp_path / "tls" / files.TLS_KEY),
        policy_sync_seconds=3600,  # the keeper's first pass only: it keeps the webhook
        cert_sync_seconds=0.5,
    )
    admreg = client.AdmissionregistrationV1Api(cluster.api_client)
    admreg.create_mutating_webhook_configuration(
        webhook_configuration(
            settings=chosen, ca_bundle=b"-", client_config={"url": "https://127.0.0.1:1/mutate"}
        )
    )
    service = wire(
        settings=chosen,
        metrics=Metrics(),
        api_client=cluster.api_client,
        renew_certificates=True,
        admission=("policy", "admission_mode is policy"),
    )
    assert service.watcher is not None
    listeners = server.bind(settings=chosen)

    async def main(stop: asyncio.Event) -> None:
        await asyncio.gather(
            server.serve(
                settings=chosen,
                metrics=Metrics(),
                readiness=service.ready,
                stop=stop,
                listeners=listeners,
                certificate_ready=service.certificate_ready,
            ),
            *service.parts(stop),
        )

    try:
        with Background(main, what="a policy-mode replica"):
            watcher = service.watcher
            wait_until(lambda: watcher.ready, timeout=30, message="the watcher to list")
            wait_until(
                lambda: policy_applied(cluster, chosen), timeout=30, message="the keeper's pass"
            )
            # Its watcher has listed: before the fix it was ready here, serving no TLS.
            assert not service.ready(), service.detail()
            assert "certificate" in service.detail()
            ca, secret = _secret_for_127(chosen)
            core.create_namespaced_secret(chosen.namespace, secret)
            wait_until(service.ready, timeout=30, message="ready once it serves the webhook")
            answer = wait_until(
                lambda: _answered(listeners.port, ca), timeout=10, message="a TLS answer"
            )
            assert answer["response"]["allowed"] is True
            assert answer["response"]["patchType"] == "JSONPatch"
    finally:
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(chosen.webhook_config_name)
        remove_policy(Rest(cluster.api_client), chosen)


def policy_applied(cluster: Cluster, settings: Settings) -> bool:
    try:
        client.CustomObjectsApi(cluster.api_client).get_cluster_custom_object(
            policy.GROUP, "v1", policy.BINDING_RESOURCE, settings.webhook_config_name
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _answered(port: int, ca: bytes) -> dict[str, Any] | None:
    try:
        return _review(port, ca)
    except OSError:
        return None
