"""The leader's renewal, as `serve` wires it: a serving certificate near expiry is renewed.

The Secret holds a pair that expires in a day (inside the 30-day renewal
window); one round of the certificate controller on the leader replaces it
with a fresh pair from the same CA and keeps the CA in the webhook's caBundle;
a replica that is not the leader serves the still-valid pair and changes nothing.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta
from pathlib import Path

from kubernetes import client

from certs import authority, files, install
from tests.e2e.conftest import Cluster
from webhook.cli import serve as service
from webhook.controllers.certificates import CertificateController
from webhook.kube.leader import LeaderElector
from webhook.metrics import Metrics
from webhook.settings import Settings


def _secret_cert(core: client.CoreV1Api, settings: Settings) -> bytes:
    secret = core.read_namespaced_secret(
        install.secret_name(settings.service_name), settings.namespace
    )
    return base64.b64decode(secret.data[files.TLS_CERT])


def test_renewal_replaces_a_certificate_near_expiry(
    cluster: Cluster,
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    settings: Settings,
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(
        settings, cert_file=str(tmp_path / "tls.crt"), key_file=str(tmp_path / "tls.key")
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
    try:
        follower = LeaderElector(
            settings=dataclasses.replace(settings, leader_election=True),
            api_client=cluster.api_client,
            metrics=Metrics(),
        )
        assert not follower.is_leader()
        action = CertificateController(
            settings=settings, api_client=cluster.api_client, is_leader=follower.is_leader
        ).sync_once()
        assert action == "unchanged"
        assert _secret_cert(core, settings) == expiring.cert_pem
        assert (tmp_path / "tls.crt").read_bytes() == expiring.cert_pem

        leader = LeaderElector(settings=settings, api_client=cluster.api_client, metrics=Metrics())
        assert leader.is_leader()  # leader_election=False in the test settings: always leads
        controller = CertificateController(
            settings=settings, api_client=cluster.api_client, is_leader=leader.is_leader
        )
        action = controller.sync_once()
        assert action == "renewed"
        renewed = _secret_cert(core, settings)
        assert renewed != expiring.cert_pem
        assert authority.signed_by(renewed, ca.cert_pem)
        assert authority.remaining_validity(renewed) > timedelta(days=30)
        stored = admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
        bundle = base64.b64decode(stored.webhooks[0].client_config.ca_bundle)
        assert ca.cert_pem.strip() in bundle
        assert (tmp_path / "tls.crt").read_bytes() == renewed
        # A second pass finds nothing to do.
        assert controller.sync_once() == "unchanged"
    finally:
        service.unregister(admreg, settings.webhook_config_name)
