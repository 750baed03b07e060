"""`check`'s view of the admission mode: which one is in force and why, and in policy
mode that the policy and its binding are there and a dry-run pod comes back injected."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.controllers import admission_policy
from webhook.core.injection import policy
from webhook.kube import api as kube
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

if TYPE_CHECKING:
    from webhook.cli.check import Result


_FAILURES: tuple[type[BaseException], ...] = (*kube.FAILURES, ValueError)


def mode(api: client.ApiClient, settings: Settings) -> tuple[policy.Mode, str]:
    """The mode the injector runs in, by the same rule (and API discovery) as `serve`."""
    served = None
    if settings.admission_mode != "webhook":
        served = admission_policy.discover(Rest(api))
    return policy.active_mode(settings, served=served)


def check_policy(
    api: client.ApiClient, settings: Settings, *, probe: Callable[..., Result]
) -> Result:
    from webhook.cli.check import Result

    name = "policy"
    rest = Rest(api)
    api_version = f"{policy.GROUP}/v1"
    wanted: dict[str, Any] = {
        policy.POLICY_RESOURCE: policy.policy(settings),
        policy.BINDING_RESOURCE: policy.binding(settings),
    }
    for plural, body in wanted.items():
        where = f"{body['kind']} {settings.webhook_config_name}"
        try:
            current = rest.get(path(api_version, plural, name=settings.webhook_config_name))
        except _FAILURES as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                return Result(name, False, f"{where} not found: is an injector replica leading?")
            return Result(name, False, f"cannot read {where}: {kube.describe_failure(exc)}")
        if not policy.same_spec(current, body):
            return Result(
                name,
                False,
                f"{where} differs from what these settings render: the leader puts it "
                f"back within {settings.policy_sync_seconds:g}s, unless its settings differ",
            )
    return probe(api, settings, name=name, by=f"policy {settings.webhook_config_name}")


def line(settings: Settings, api: client.ApiClient | None) -> str:
    """`admission: <mode> mode (<why>)` for status and explain; without a client (offline
    explain) the setting alone, since the pod is the same in either mode."""
    if api is None:
        if settings.admission_mode == "auto":
            return (
                "admission: auto (policy where the API server serves MutatingAdmissionPolicy v1, "
                "else webhook); either injects the pod shown"
            )
        return f"admission: {settings.admission_mode} mode (admission_mode); the pod is the same"
    chosen, why = mode(api, settings)
    return f"admission: {chosen} mode ({why})"


def installed_line(settings: Settings, api: client.ApiClient) -> str:
    """`status`'s line: the mode of what is installed, which the settings this CLI was run
    with need not share (an overlay picks the mode, `status` runs with defaults)."""
    chosen, why = mode(api, settings)
    found = installed(Rest(api), settings.webhook_config_name)
    return describe_installed(settings.webhook_config_name, found, chosen=chosen, why=why)


def installed(rest: Rest, name: str) -> dict[str, bool | str]:
    """For our webhook configuration, policy and binding of `name`: there or not, or why
    it cannot be told. A resource the API server does not serve counts as absent."""
    api_version = f"{policy.GROUP}/v1"
    found: dict[str, bool | str] = {}
    for plural in (admission_policy.WEBHOOKS, policy.POLICY_RESOURCE, policy.BINDING_RESOURCE):
        try:
            rest.get(path(api_version, plural, name=name))
            found[plural] = True
        except _FAILURES as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                found[plural] = False
            else:
                found[plural] = kube.describe_failure(exc)
    return found


def describe_installed(
    name: str, found: dict[str, bool | str], *, chosen: policy.Mode, why: str
) -> str:
    """The admission line from what is installed; the settings' choice where they agree."""
    unreadable = [f"{plural}: {v}" for plural, v in found.items() if isinstance(v, str)]
    if unreadable:
        return (
            f"admission: {chosen} mode by these settings ({why}); cannot read what is "
            f"installed ({'; '.join(unreadable)})"
        )
    webhook = found[admission_policy.WEBHOOKS] is True
    in_policy = found[policy.POLICY_RESOURCE] is True and found[policy.BINDING_RESOURCE] is True
    if webhook and in_policy:
        return (
            f"admission: switching modes (MutatingWebhookConfiguration and "
            f"MutatingAdmissionPolicy {name} both installed; the leader removes the one its "
            f"mode does not use)"
        )
    if not webhook and not in_policy:
        return (
            f"admission: none in force (no MutatingWebhookConfiguration or "
            f"MutatingAdmissionPolicy with binding named {name}): validator pods are admitted "
            f"uninjected; is an injector replica leading?"
        )
    actual: policy.Mode = "policy" if in_policy else "webhook"
    what = (
        f"MutatingAdmissionPolicy {name} and its binding installed"
        if in_policy
        else f"MutatingWebhookConfiguration {name} installed"
    )
    if actual == chosen:
        return f"admission: {actual} mode ({why}; {what})"
    return f"admission: {actual} mode ({what}; these settings would pick {chosen}: {why})"
