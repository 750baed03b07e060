"""The leader's renewal, as `serve` wires it: a serving certificate near expiry is renewed.

The Secret holds a pair that expires in a day (inside the 30-day renewal
window). A replica that is not the leader (the Lease held by another) installs
and serves the still-valid pair and changes nothing; once it wins the Lease,
its leader-only renewal replaces the pair with a fresh one from the same CA,
keeps the CA in the webhook's caBundle and installs it.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from datetime import timedelta
from pathlib import Path

from kubernetes import client

from certs import authority, files, install
from tests.e2e.conftest import Cluster
from tests.polling import wait_until
from tests.service import running_service
from webhook.cli import serve as service
from webhook.kube.leader import micro_time, now_utc
from webhook.settings import Settings


def _secret_cert(core: client.CoreV1Api, settings: Settings) -> bytes:
    secret = core.read_namespaced_secret(
        install.secret_name(settings.service_name), settings.namespace
    )
    return base64.b64decode(secret.data[files.TLS_CERT])


def _hold_lease(coordination: client.CoordinationV1Api, settings: Settings, holder: str) -> None:
    spec = {"holderIdentity": holder, "leaseDurationSeconds": 3600}
    spec["renewTime"] = spec["acquireTime"] = micro_time(now_utc())
    lease = {"metadata": {"name": settings.lease_name}, "spec": spec}
    coordination.create_namespaced_lease(settings.namespace, lease)


def test_renewal_replaces_a_certificate_near_expiry(
    cluster: Cluster,
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    admreg: client.AdmissionregistrationV1Api,
    settings: Settings,
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(
        settings,
        cert_file=str(tmp_path / "tls.crt"),
        key_file=str(tmp_path / "tls.key"),
        cert_sync_seconds=0.5,
        identity="replica",
        leader_election=True,
        lease_duration_seconds=2.0,
        lease_renew_seconds=0.5,
    )
    ca = authority.make_ca()
    dns = authority.service_dns_names(service=settings.service_name, namespace=settings.namespace)
    expiring = authority.make_serving(ca=ca, dns_names=dns, validity=timedelta(days=1))
    install.write_secret(
        core,
        namespace=settings.namespace,
        secret=install.secret_name(settings.service_name),
        bundle=files.Bundle(ca_cert=ca.cert_pem, serving=expiring, ca_key=ca.key_pem),
    )
    body = service.webhook_configuration(
        settings=settings,
        ca_bundle=ca.cert_pem,
        client_config={"url": "https://127.0.0.1:9/mutate"},  # never called: no pods here
    )
    service.register(admreg, body)
    _hold_lease(coordination, settings, "other")
    try:
        with running_service(
            settings, api_client=cluster.api_client, renew_certificates=True
        ) as running:
            # A follower: installs what the Secret holds (ready means it is on disk).
            assert running.leader is not None
            assert not running.leader.is_leader()
            assert (tmp_path / "tls.crt").read_bytes() == expiring.cert_pem
            time.sleep(2)  # four of its rounds: a follower that renewed would have by now
            assert _secret_cert(core, settings) == expiring.cert_pem
            # Handed the Lease, it renews.
            coordination.delete_namespaced_lease(settings.lease_name, settings.namespace)

            def renewed_cert() -> bytes | None:
                cert = _secret_cert(core, settings)
                return cert if cert != expiring.cert_pem else None

            renewed = wait_until(
                renewed_cert, timeout=30, message="the new leader to renew the pair"
            )
            assert running.leader.is_leader()
            assert authority.signed_by(renewed, ca.cert_pem)
            assert authority.remaining_validity(renewed) > timedelta(days=30)
            stored = admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
            bundle = base64.b64decode(stored.webhooks[0].client_config.ca_bundle)
            assert ca.cert_pem.strip() in bundle
            wait_until(
                lambda: (tmp_path / "tls.crt").read_bytes() == renewed,
                timeout=10,
                message="the renewed pair on disk",
            )
    finally:
        service.unregister(admreg, settings.webhook_config_name)
