"""Installing certificates in the cluster: the TLS Secret and the webhooks' caBundle.

The Secret (`kubernetes.io/tls`, named `<service>-tls` in the injector's
namespace) holds `tls.crt`, `tls.key`, `ca.crt` and `ca.key`; serving pods
write only the first two to disk. The caBundle of every webhook in our
MutatingWebhookConfiguration becomes the new CA followed by the previous one,
so replicas still serving a certificate from the old CA stay trusted until
they reload. `ensure` does both for `stellar-peers certs install`; the
injector itself goes through `certs.bootstrap` (create-if-absent, versioned
replace).
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files, rotation


def secret_name(service: str) -> str:
    """The TLS Secret's name for the injector's Service."""
    return f"{service}-tls"


def _decoded(data: dict[str, str] | None, key: str) -> bytes | None:
    raw = (data or {}).get(key)
    if not raw:
        return None
    try:
        return base64.b64decode(raw)
    except (binascii.Error, ValueError):
        return None


def bundle_of(found: dict[str, Any]) -> tuple[files.Bundle | None, str]:
    """(bundle, resourceVersion) of a Secret as the API answers it; None when incomplete."""
    version = str(found["metadata"]["resourceVersion"])
    data = found.get("data")
    ca_cert = _decoded(data, files.CA_CERT)
    cert = _decoded(data, files.TLS_CERT)
    key = _decoded(data, files.TLS_KEY)
    if ca_cert is None or cert is None or key is None:
        return None, version
    bundle = files.Bundle(
        ca_cert=ca_cert,
        serving=authority.KeyPair(cert, key),
        ca_key=_decoded(data, files.CA_KEY),
    )
    return bundle, version


def read_secret(core: client.CoreV1Api, *, namespace: str, secret: str) -> files.Bundle | None:
    """The bundle stored in Secret `namespace/secret`, or None when missing or incomplete."""
    try:
        found = core.read_namespaced_secret(secret, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return bundle_of(orjson.loads(found.data))[0]


def secret_body(
    *, namespace: str, secret: str, bundle: files.Bundle, resource_version: str | None = None
) -> dict[str, Any]:
    data = {
        files.TLS_CERT: bundle.serving.cert_pem,
        files.TLS_KEY: bundle.serving.key_pem,
        files.CA_CERT: bundle.ca_cert,
    }
    if bundle.ca_key is not None:
        data[files.CA_KEY] = bundle.ca_key
    metadata: dict[str, Any] = {
        "name": secret,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": "stellar-peer-injector"},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version  # a replace then fails on a newer write
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": metadata,
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def write_secret(
    core: client.CoreV1Api, *, namespace: str, secret: str, bundle: files.Bundle
) -> None:
    """Replace the Secret, or create it when missing.

    Replace comes first: in the cluster the injector may update its own Secret
    but not create Secrets.
    """
    body = secret_body(namespace=namespace, secret=secret, bundle=bundle)
    try:
        core.replace_namespaced_secret(secret, namespace, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(namespace, body)


def _trusts(bundle: bytes, ca: bytes) -> bool:
    try:
        return bool(bundle.strip()) and set(authority.split_pem_bundle(ca)) <= set(
            authority.split_pem_bundle(bundle)
        )
    except ValueError:
        return False


def ca_bundle_ops(
    configuration: dict[str, Any], *, new_ca: bytes, only_if_missing: bool = False
) -> list[dict[str, Any]]:
    """JSONPatch ops setting each webhook's caBundle to new CA + previous, at most two CAs.

    `only_if_missing` leaves a caBundle that already holds the CA as it is
    (a replica still serving the older of two trusted CAs must not reorder
    them). A `test` on each webhook's name makes the patch fail rather than
    touch the wrong entry if the list changed since it was read.
    """
    ops: list[dict[str, Any]] = []
    for index, hook in enumerate(configuration.get("webhooks") or []):
        client_config = hook.get("clientConfig") or {}
        previous = base64.b64decode(client_config.get("caBundle") or "")
        if only_if_missing and _trusts(previous, new_ca):
            continue
        merged = authority.merge_ca_bundle(new_ca=new_ca, previous=previous)
        encoded = base64.b64encode(merged).decode()
        if encoded == client_config.get("caBundle"):
            continue
        ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": hook["name"]})
        ops.append(
            {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": encoded}
        )
    return ops


def patch_ca_bundle(
    admreg: client.AdmissionregistrationV1Api,
    *,
    configuration_name: str,
    new_ca: bytes,
    only_if_missing: bool = False,
) -> int:
    """Put `new_ca` in front of every webhook's caBundle; returns how many webhooks changed."""
    name = configuration_name
    raw = admreg.read_mutating_webhook_configuration(name, _preload_content=False)
    configuration: dict[str, Any] = orjson.loads(raw.data)
    ops = ca_bundle_ops(configuration, new_ca=new_ca, only_if_missing=only_if_missing)
    if ops:
        admreg.patch_mutating_webhook_configuration(name, ops)
    return len(ops) // 2


def ensure(
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    *,
    namespace: str,
    secret: str,
    configuration_name: str,
    dns: list[str],
    ips: list[str],
    renew_before: timedelta = rotation.RENEW_BEFORE,
) -> tuple[files.Bundle, rotation.Action, int]:
    """Make the Secret and caBundle current: (bundle, what happened, webhooks patched).

    The caBundle is patched before the Secret is written, so the API server
    already trusts a new CA when the replicas start serving its certificate.
    """
    bundle, action = rotation.refresh(
        read_secret(core, namespace=namespace, secret=secret),
        dns=dns,
        ips=ips,
        renew_before=renew_before,
    )
    patched = patch_ca_bundle(admreg, configuration_name=configuration_name, new_ca=bundle.ca_cert)
    if action != "unchanged":
        write_secret(core, namespace=namespace, secret=secret, bundle=bundle)
    return bundle, action, patched
