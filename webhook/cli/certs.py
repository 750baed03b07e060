"""`stellar-peers certs generate|install`: the command-line face of the certs package.

`generate` writes ca.crt, ca.key, tls.crt and tls.key into a folder (keeping a
CA that is already there). `install` does the same into the TLS Secret in the
injector's namespace and puts the CA into the webhook configuration's caBundle.
Both are safe to re-run: nothing changes while the certificate still fits.
Exit codes: 0 done, 1 could not do it (files, cluster), 2 bad arguments.
"""

from __future__ import annotations

import ipaddress
import sys

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from certs import authority, files, install, rotation
from webhook.kube import api as kube
from webhook.settings import Settings


def _fail(message: str, code: int = 1) -> int:
    print(f"stellar-peers certs: {message}", file=sys.stderr)
    return code


def _expiry(bundle: files.Bundle) -> str:
    return authority.not_after(bundle.serving.cert_pem).strftime("%Y-%m-%d")


def generate(*, out: str, dns: list[str], ips: list[str]) -> int:
    try:
        existing = files.read_bundle(out)
    except OSError:
        existing = None
    bundle, action = rotation.refresh(existing, dns=dns, ips=ips)
    try:
        if action != "unchanged":
            files.write_bundle(out, bundle)
    except OSError as exc:
        return _fail(f"cannot write to {out}: {exc}")
    print(
        f"{action}: {out}/{files.TLS_CERT} for {', '.join(dns + ips)} "
        f"(valid until {_expiry(bundle)}), CA in {out}/{files.CA_CERT}"
    )
    return 0


def install_in_cluster(*, settings: Settings, dns: list[str], ips: list[str]) -> int:
    try:
        api_client = kube.api_client(settings)
    except ConfigException as exc:
        return _fail(f"no cluster connection: {exc}")
    where = f"{settings.namespace}/{install.secret_name(settings.service_name)}"
    try:
        bundle, action, patched = install.ensure(
            client.CoreV1Api(api_client),
            client.AdmissionregistrationV1Api(api_client),
            namespace=settings.namespace,
            secret=install.secret_name(settings.service_name),
            configuration_name=settings.webhook_config_name,
            dns=dns,
            ips=ips,
        )
    except ApiException as exc:
        if exc.status == 404 and "mutatingwebhookconfigurations" in str(exc.body):
            return _fail(
                f"MutatingWebhookConfiguration {settings.webhook_config_name} not "
                "found: apply manifests/ first, then run this again"
            )
        if exc.status == 404:
            return _fail(f"namespace {settings.namespace} not found: apply manifests/ first")
        if exc.status == 403:
            return _fail(f"permission denied ({exc.reason}): run as a cluster admin")
        return _fail(f"API server answered {exc.status} {exc.reason}")
    finally:
        api_client.close()
    print(f"{action}: Secret {where} (valid until {_expiry(bundle)})")
    print(f"caBundle: {patched} webhook(s) of {settings.webhook_config_name} updated")
    return 0


def main(*, action: str, out: str, dns: list[str], ips: list[str], settings: Settings) -> int:
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return _fail(f"--ip {ip!r} is not an IP address", 2)
    wanted = authority.service_dns_names(
        service=settings.service_name, namespace=settings.namespace
    )
    wanted += [name for name in dns if name not in wanted]
    if action == "generate":
        return generate(out=out, dns=wanted, ips=ips)
    if action == "install":
        return install_in_cluster(settings=settings, dns=wanted, ips=ips)
    return _fail(f"unknown action {action!r}: expected generate or install", 2)
