"""Where `stellar-peers check` finds the serving certificate it judges.

The TLS Secret first (what the injector serves once it made or was given
one), else the certificate file (an installation that mounts its own), else
whatever the webhook configuration's URL serves (`serve --local`, or a
webhook outside the cluster), verified against that configuration's caBundle.
"""

from __future__ import annotations

import base64
import binascii
import socket
import ssl
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import install
from webhook.kube.rest import Rest, path
from webhook.settings import Settings


def served(url: str, ca_bundle: bytes, *, timeout: float) -> bytes:
    """The certificate the webhook URL serves, verified against `ca_bundle`, as PEM."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url!r}")
    context = ssl.create_default_context(cadata=ca_bundle.decode("ascii"))
    port = parts.port or 443
    with (
        socket.create_connection((parts.hostname, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ValueError(f"{url} served no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode("ascii")


def _from_webhook(rest: Rest, settings: Settings, *, timeout: float) -> tuple[bytes, str] | None:
    configuration = rest.get(
        path(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            name=settings.webhook_config_name,
        ),
        timeout=timeout,
    )
    for hook in configuration.get("webhooks") or ():
        client_config = hook.get("clientConfig") or {}
        url = client_config.get("url")
        if isinstance(url, str) and url:
            try:
                ca_bundle = base64.b64decode(client_config.get("caBundle") or "", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"the caBundle of {hook.get('name')} is not base64") from exc
            return served(url, ca_bundle, timeout=timeout), f"served at {url}"
    return None


def find(api: client.ApiClient, settings: Settings, *, timeout: float) -> tuple[bytes, str] | None:
    """(PEM, where it came from): the Secret, else the file, else what the webhook URL serves."""
    rest = Rest(api)
    name = install.secret_name(settings.service_name)
    try:
        secret = rest.get(
            path("v1", "secrets", namespace=settings.namespace, name=name), timeout=timeout
        )
        encoded = (secret.get("data") or {}).get("tls.crt")
        if encoded:
            source = f"Secret {settings.namespace}/{install.secret_name(settings.service_name)}"
            return base64.b64decode(encoded), source
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise
    try:
        with open(settings.cert_file, "rb") as handle:
            return handle.read(), f"file {settings.cert_file}"
    except FileNotFoundError:
        pass
    return _from_webhook(rest, settings, timeout=timeout)
