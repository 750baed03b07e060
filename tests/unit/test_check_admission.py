"""The admission line `status` prints, from what is installed (pure)."""

from __future__ import annotations

from webhook.cli.check_admission import describe_installed

NAME = "stellar-peer-injector"
WHY = "admission_mode is auto and the API server serves MutatingAdmissionPolicy v1"


def found(webhook: bool | str, policy: bool | str, binding: bool | str) -> dict[str, bool | str]:
    return {
        "mutatingwebhookconfigurations": webhook,
        "mutatingadmissionpolicies": policy,
        "mutatingadmissionpolicybindings": binding,
    }


def test_a_policy_without_its_binding_is_not_in_force() -> None:
    line = describe_installed(NAME, found(False, True, False), chosen="policy", why=WHY)
    assert line.startswith("admission: none in force"), line


def test_what_is_installed_wins_over_the_settings_and_says_both() -> None:
    line = describe_installed(NAME, found(True, False, False), chosen="policy", why=WHY)
    assert line == (
        f"admission: webhook mode (MutatingWebhookConfiguration {NAME} installed; "
        f"these settings would pick policy: {WHY})"
    )


def test_agreeing_settings_keep_their_reason() -> None:
    line = describe_installed(NAME, found(False, True, True), chosen="policy", why=WHY)
    assert line.startswith(f"admission: policy mode ({WHY}; MutatingAdmissionPolicy {NAME}")


def test_what_cannot_be_read_falls_back_to_the_settings_and_says_why() -> None:
    line = describe_installed(NAME, found("403 Forbidden", True, True), chosen="policy", why=WHY)
    assert line.startswith(f"admission: policy mode by these settings ({WHY}); cannot read")
    assert "403 Forbidden" in line
