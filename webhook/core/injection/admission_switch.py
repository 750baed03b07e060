"""A switch between admission modes: when a keeper may remove the other mode's object.

During a switch (an overlay re-applied, a rolling update) replicas of both modes run,
and the Lease may pass between them. Neither keeper removes the other mode's object
until its own mode is in force, and neither removes one newer than its own: that one
was applied on purpose after ours, so a switch towards it is under way. Whatever the
order of leaders, the cluster keeps the policy or the webhook configuration in force.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from webhook.settings import Settings

# The manifests' readiness probe (period 5 s, failureThreshold 2) and the endpoints update.
READINESS_SECONDS: Final = 20.0


def created(obj: dict[str, Any] | None) -> datetime | None:
    """The object's creationTimestamp (None: no object, or none the server gave)."""
    stamp = ((obj or {}).get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def strictly_newer(obj: dict[str, Any] | None, than: dict[str, Any] | None) -> bool:
    """Whether `obj` was created after `than` (the API server's one clock for both; its
    timestamps have whole seconds, so a tie is not newer)."""
    mine, theirs = created(obj), created(than)
    return mine is not None and theirs is not None and mine > theirs


def webhook_in_force(configuration: dict[str, Any] | None) -> bool:
    """Whether a MutatingWebhookConfiguration can be called: it exists and every webhook
    in it trusts a CA (without a caBundle the API server refuses the TLS handshake)."""
    if not configuration:
        return False
    hooks = configuration.get("webhooks") or []
    return bool(hooks) and all(
        isinstance(hook, dict) and (hook.get("clientConfig") or {}).get("caBundle")
        for hook in hooks
    )


def may_remove_webhook(
    *,
    policy_settled: bool,
    configuration: dict[str, Any] | None,
    policy: dict[str, Any] | None,
    pinned: bool,
) -> bool:
    """Policy mode: remove our webhook configuration only once the policy and binding were
    already in place at the start of this pass (applied and read back at least one period
    ago, so the API server has loaded them). One newer than the policy stays when it is
    in force or the mode is pinned (`pinned`: admission_mode policy, whose manifests hold
    no webhook configuration): it was applied on purpose, a switch to webhook mode is
    under way. Under `auto` the base manifests re-create it on every apply: it goes."""
    if configuration is None or not policy_settled:
        return False
    switching = strictly_newer(configuration, policy) and (
        pinned or webhook_in_force(configuration)
    )
    return not switching


def may_remove_policy(
    *,
    configuration: dict[str, Any] | None,
    in_force_seconds: float,
    settle_seconds: float,
    policy: dict[str, Any] | None,
) -> bool:
    """Webhook mode: remove our policy only once our webhook configuration has been in
    force for `settle_seconds` (`settle_seconds(settings)`: replicas of the old mode had
    the time to start serving it or turn unready), and only when the policy is not newer
    than the configuration (a switch to policy mode is under way)."""
    return (
        policy is not None
        and webhook_in_force(configuration)
        and in_force_seconds >= settle_seconds
        and not strictly_newer(policy, configuration)
    )


def settle_seconds(settings: Settings) -> float:
    """How long webhook mode waits, once our webhook configuration is in force, before it
    removes the policy: a policy-mode replica looks for the configuration once per
    `cert_sync_seconds`, then serves it or turns unready, and its readiness probe (every
    5 s, two failures) and the endpoints' update take up to about 20 s more."""
    return settings.cert_sync_seconds + READINESS_SECONDS
