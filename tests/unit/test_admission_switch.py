"""When a keeper may remove the other mode's object during a switch (pure rules)."""

from __future__ import annotations

from typing import Any

from webhook.core.injection.admission_switch import (
    may_remove_policy,
    may_remove_webhook,
    settle_seconds,
    strictly_newer,
    webhook_in_force,
)
from webhook.settings import Settings


def made(at: str, *, uid: str = "u1", ca: str | None = "Q0E=") -> dict[str, Any]:
    config: dict[str, Any] = {"caBundle": ca} if ca else {}
    return {
        "metadata": {"creationTimestamp": at, "uid": uid},
        "webhooks": [{"name": "peers.stellar.org", "clientConfig": config}],
    }


EARLY, LATE = "2026-12-07T07:00:00Z", "2026-12-07T07:00:01Z"


def test_newer_is_a_later_second_and_a_tie_is_not_newer() -> None:
    assert strictly_newer(made(LATE), made(EARLY))
    assert not strictly_newer(made(EARLY), made(LATE))
    assert not strictly_newer(made(EARLY), made(EARLY))
    assert not strictly_newer(None, made(EARLY))
    assert not strictly_newer({"metadata": {}}, made(EARLY))


def test_a_webhook_is_in_force_only_with_a_ca_in_every_webhook() -> None:
    assert webhook_in_force(made(EARLY))
    assert not webhook_in_force(made(EARLY, ca=None))
    assert not webhook_in_force(None)
    assert not webhook_in_force({"metadata": {}, "webhooks": []})


def test_policy_mode_removes_the_webhook_only_once_the_policy_settled() -> None:
    webhook, policy = made(EARLY), made(LATE)
    for pinned in (True, False):
        assert not may_remove_webhook(
            policy_settled=False, configuration=webhook, policy=policy, pinned=pinned
        )
        assert may_remove_webhook(
            policy_settled=True, configuration=webhook, policy=policy, pinned=pinned
        )
        assert not may_remove_webhook(
            policy_settled=True, configuration=None, policy=policy, pinned=pinned
        )


def test_policy_mode_leaves_a_webhook_applied_after_its_policy_for_a_switch() -> None:
    newer, untrusted = made(LATE), made(LATE, ca=None)
    policy = made(EARLY)
    # Pinned to policy mode: its manifests hold no webhook configuration, so a newer one
    # was applied on purpose (the webhook overlay), caBundle or not yet.
    assert not may_remove_webhook(policy_settled=True, configuration=newer, policy=policy,
                                  pinned=True)  # fmt: skip
    assert not may_remove_webhook(policy_settled=True, configuration=untrusted, policy=policy,
                                  pinned=True)  # fmt: skip
    # auto: the base manifests bring one back on every apply; it stays only once someone
    # serves it (a caBundle: webhook-mode replicas are up).
    assert not may_remove_webhook(policy_settled=True, configuration=newer, policy=policy,
                                  pinned=False)  # fmt: skip
    assert may_remove_webhook(policy_settled=True, configuration=untrusted, policy=policy,
                              pinned=False)  # fmt: skip
    # The same second: not known to be newer, so a fresh install's leftover goes.
    assert may_remove_webhook(
        policy_settled=True, configuration=made(EARLY), policy=made(EARLY), pinned=True
    )


def test_webhook_mode_removes_the_policy_only_once_the_webhook_settled() -> None:
    webhook, policy = made(LATE, uid="w"), made(EARLY)

    def may(configuration: dict[str, Any] | None, seconds: float, **kw: Any) -> bool:
        return may_remove_policy(
            configuration=configuration,
            in_force_seconds=seconds,
            settle_seconds=30.0,
            policy=kw.get("policy", policy),
        )

    assert not may(webhook, 0.0)
    assert not may(webhook, 29.9)
    assert may(webhook, 30.0)
    assert not may(None, 60.0)
    assert not may(made(LATE, uid="w", ca=None), 60.0)
    assert not may(webhook, 60.0, policy=None)


def test_webhook_mode_leaves_a_policy_applied_after_its_webhook() -> None:
    assert not may_remove_policy(
        configuration=made(EARLY, uid="w"),
        in_force_seconds=60.0,
        settle_seconds=30.0,
        policy=made(LATE),
    )


def test_the_settle_covers_a_look_and_the_readiness_probe() -> None:
    assert settle_seconds(Settings(cert_sync_seconds=10.0)) == 30.0
