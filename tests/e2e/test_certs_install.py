"""`stellar-peers certs install` against the real API server: Secret and caBundle."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, install
from webhook.cli import certs as command
from webhook.cli.registration import webhook_configuration
from webhook.settings import Settings


@pytest.fixture
def configuration(admreg: client.AdmissionregistrationV1Api, settings: Settings) -> Iterator[bytes]:
    """Our webhook configuration, already trusting an older CA; returns that CA."""
    old_ca = authority.make_ca().cert_pem
    body = webhook_configuration(
        settings=settings,
        ca_bundle=old_ca,
        client_config={"url": "https://127.0.0.1:1/mutate"},
    )
    # Only a namespace that cannot exist: this configuration must never match real pods.
    body["webhooks"][0]["namespaceSelector"]["matchLabels"] = {"stellar-test": "never-matches"}
    admreg.create_mutating_webhook_configuration(body)
    yield old_ca
    admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)


def ca_bundle(admreg: client.AdmissionregistrationV1Api, settings: Settings) -> list[bytes]:
    stored = admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
    return authority.split_pem_bundle(base64.b64decode(stored.webhooks[0].client_config.ca_bundle))


def secret_data(core: client.CoreV1Api, settings: Settings) -> dict[str, bytes]:
    secret = core.read_namespaced_secret(
        install.secret_name(settings.service_name), settings.namespace
    )
    assert secret.type == "kubernetes.io/tls"
    return {key: base64.b64decode(value) for key, value in secret.data.items()}


def run_install(settings: Settings) -> int:
    return command.main(action="install", out="unused", dns=[], ips=[], settings=settings)


def test_install_writes_secret_and_keeps_previous_ca(
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    settings: Settings,
    configuration: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_install(settings) == 0
    data = secret_data(core, settings)
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert authority.signed_by(data["tls.crt"], data["ca.crt"])
    dns, _ = authority.san_names(data["tls.crt"])
    assert f"{settings.service_name}.{settings.namespace}.svc" in dns
    assert ca_bundle(admreg, settings) == [data["ca.crt"], configuration]
    assert "created" in capsys.readouterr().out

    # Re-running changes nothing.
    assert run_install(settings) == 0
    assert secret_data(core, settings) == data
    assert ca_bundle(admreg, settings) == [data["ca.crt"], configuration]
    assert "unchanged" in capsys.readouterr().out

    # A new CA pushes the oldest one out: never more than two.
    core.delete_namespaced_secret(install.secret_name(settings.service_name), settings.namespace)
    assert run_install(settings) == 0
    newest = secret_data(core, settings)["ca.crt"]
    assert newest != data["ca.crt"]
    assert ca_bundle(admreg, settings) == [newest, data["ca.crt"]]


def test_install_renews_serving_cert_with_same_ca_when_names_change(
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    settings: Settings,
    configuration: bytes,
) -> None:
    assert run_install(settings) == 0
    first = secret_data(core, settings)
    assert (
        command.main(
            action="install", out="unused", dns=["webhook.example.org"], ips=[], settings=settings
        )
        == 0
    )
    second = secret_data(core, settings)
    assert second["ca.crt"] == first["ca.crt"]
    assert second["tls.crt"] != first["tls.crt"]
    assert "webhook.example.org" in authority.san_names(second["tls.crt"])[0]
    assert ca_bundle(admreg, settings) == [first["ca.crt"], configuration]


def test_install_without_configuration_says_so(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    admreg: client.AdmissionregistrationV1Api,
) -> None:
    with pytest.raises(ApiException):
        admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
    assert run_install(settings) == 1
    assert "apply manifests/ first" in capsys.readouterr().err


def test_install_into_missing_namespace_says_so(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = dataclasses.replace(settings, namespace=f"{settings.namespace}-absent")
    assert run_install(elsewhere) == 1
    assert "not found" in capsys.readouterr().err
