"""The injector's own certificates in the cluster: get or create the TLS Secret, trust its CA.

Every replica calls `obtain` at start and then now and then. A missing Secret
is created with a new CA by whichever replica gets there first: the create is
atomic (409 for everyone else, who then read the winner's). One replica (the
Lease holder, `may_renew`) renews a due or unfit certificate, writing with the
resourceVersion it read so two writers cannot both win. Before a replica
serves a CA's certificate it makes sure the webhook configuration's caBundle
holds that CA (the patch is idempotent), so the API server never meets a
certificate it does not trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal, Protocol

from kubernetes.client.exceptions import ApiException

from certs import files, install, rotation

Outcome = Literal["created", "adopted", "renewed", "unchanged", "waiting"]


class Objects(Protocol):
    """The API as raw JSON by URL path (`webhook.kube.rest.Rest`): no generated API class,
    whose first use costs the service tens of MB."""

    def get(self, url_path: str) -> dict[str, Any]: ...

    def create(self, url_path: str, body: Any) -> dict[str, Any]: ...

    def replace(self, url_path: str, body: Any) -> dict[str, Any]: ...

    def patch(self, url_path: str, body: Any) -> dict[str, Any]: ...


class StepFailed(RuntimeError):
    """One API call failed; the message names the call and the answer, `status` is kept."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        raise StepFailed(f"{what}: API answered {exc.status} {exc.reason}", exc.status) from exc


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the certificate lives and what it must name."""

    namespace: str
    secret: str
    configuration_name: str
    dns: list[str]
    ips: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Obtained:
    bundle: files.Bundle | None  # None: nothing servable yet ("waiting")
    outcome: Outcome
    patched: int = 0  # webhooks whose caBundle changed


WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def _secrets(target: Target) -> str:
    return f"/api/v1/namespaces/{target.namespace}/secrets"


def _read(api: Objects, target: Target) -> tuple[files.Bundle | None, str | None]:
    """(bundle, resourceVersion): (None, None) when missing, (None, version) when incomplete."""
    try:
        return install.bundle_of(api.get(f"{_secrets(target)}/{target.secret}"))
    except ApiException as exc:
        if exc.status == 404:
            return None, None
        raise


def _patch_ca_bundle(
    api: Objects, target: Target, *, new_ca: bytes, only_if_missing: bool = False
) -> int:
    """`install.patch_ca_bundle` over `api`: how many webhooks changed."""
    one = f"{WEBHOOK_CONFIGURATIONS}/{target.configuration_name}"
    ops = install.ca_bundle_ops(api.get(one), new_ca=new_ca, only_if_missing=only_if_missing)
    if ops:
        api.patch(one, ops)
    return len(ops) // 2


def _create_or_adopt(api: Objects, target: Target) -> Obtained:
    """The API server creates an object at most once: one replica makes it, the rest read it."""
    fresh, _ = rotation.refresh(None, dns=target.dns, ips=target.ips)
    body = install.secret_body(namespace=target.namespace, secret=target.secret, bundle=fresh)
    try:
        api.create(_secrets(target), body)
        return Obtained(fresh, "created")
    except ApiException as exc:
        if exc.status != 409:
            raise
    won, _ = _read(api, target)
    return Obtained(won, "adopted" if won is not None else "waiting")


def obtain(
    api: Objects,
    *,
    target: Target,
    may_renew: bool,
    renew_before: timedelta = rotation.RENEW_BEFORE,
) -> Obtained:
    """The bundle to serve now, with its CA in the caBundle; may create or renew the Secret.

    Raises StepFailed when the API cannot be read or written (a 409 from a
    renewal that lost a race among them: the caller tries again later).
    """
    secret = f"Secret {target.namespace}/{target.secret}"
    webhook = f"MutatingWebhookConfiguration {target.configuration_name}"
    with _step(f"read {secret}"):
        bundle, version = _read(api, target)
    if version is None:
        found = _create_or_adopt(api, target)
    elif may_renew:
        renewed, action = rotation.refresh(
            bundle, dns=target.dns, ips=target.ips, renew_before=renew_before
        )
        if action == "unchanged":
            found = Obtained(renewed, "unchanged")
        else:
            # caBundle first: the new CA is trusted before anyone serves its certificate.
            with _step(f"put the new CA in the caBundle of {webhook}"):
                _patch_ca_bundle(api, target, new_ca=renewed.ca_cert)
            with _step(f"renew {secret}"):
                body = install.secret_body(
                    namespace=target.namespace,
                    secret=target.secret,
                    bundle=renewed,
                    resource_version=version,
                )
                api.replace(f"{_secrets(target)}/{target.secret}", body)
            found = Obtained(renewed, "renewed")
    elif bundle is not None and rotation.usable(bundle, dns=target.dns, ips=target.ips):
        found = Obtained(bundle, "unchanged")
    else:
        found = Obtained(None, "waiting")  # unfit, and renewing it is the leader's job
    if found.bundle is None:
        return found
    with _step(f"put the CA in the caBundle of {webhook}"):
        patched = _patch_ca_bundle(api, target, new_ca=found.bundle.ca_cert, only_if_missing=True)
    return dataclasses.replace(found, patched=patched)


def follow(api: Objects, *, target: Target) -> files.Bundle | None:
    """The pair to serve for a replica that neither creates, renews nor trusts (policy
    mode, while a webhook configuration of ours still exists): the Secret's when it holds
    a usable one; None when it is missing, not readable (RBAC) or unfit."""
    try:
        bundle, _ = _read(api, target)
    except ApiException as exc:
        if exc.status == 403:
            return None
        raise StepFailed(
            f"read Secret {target.namespace}/{target.secret}: API answered {exc.status} "
            f"{exc.reason}",
            exc.status,
        ) from exc
    if bundle is not None and rotation.usable(bundle, dns=target.dns, ips=target.ips):
        return bundle
    return None
