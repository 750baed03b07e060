"""Settings are built once, from the environment and flags, and refuse bad values."""

from __future__ import annotations

import pytest

from webhook.settings import Settings, SettingsError


def test_settings_defaults_follow_design() -> None:
    settings = Settings.from_env({}, [])
    assert settings.namespace == "stellar-system"
    assert settings.namespace_selector == "stellar.org/peer-injection=enabled"
    assert settings.reload_mode == "http"
    assert settings.host == "127.0.0.1"


def test_settings_environment_then_flags_win() -> None:
    environ = {
        "STELLAR_INJECTOR_PORT": "9443",
        "STELLAR_INJECTOR_RELOAD_MODE": "exec",
        "STELLAR_INJECTOR_STATIC_PEERS": "core-a.example.org:11625, 192.0.2.7:11625",
        "STELLAR_INJECTOR_LEADER_ELECTION": "false",
        "STELLAR_INJECTOR_DEBOUNCE_SECONDS": "0.5",
    }
    settings = Settings.from_env(environ, ["--reload-mode", "rollout"])
    assert settings.port == 9443
    assert settings.reload_mode == "rollout"
    assert settings.static_peers == ("core-a.example.org:11625", "192.0.2.7:11625")
    assert settings.leader_election is False
    assert settings.debounce_seconds == 0.5


@pytest.mark.parametrize(
    ("environ", "argv", "needle"),
    [
        ({}, ["--reload-mode", "restart"], "--reload-mode"),
        ({}, ["--image-pattern", "("], "--image-pattern"),
        ({}, ["--port", "70000"], "--port"),
        ({"STELLAR_INJECTOR_PORT": "https"}, [], "STELLAR_INJECTOR_PORT"),
        ({"STELLAR_INJECTOR_LEADER_ELECTION": "maybe"}, [], "LEADER_ELECTION"),
        ({}, ["--lease-renew-seconds", "20"], "--lease-renew-seconds"),
        ({}, ["--reload-concurrency", "0"], "--reload-concurrency"),
    ],
)
def test_settings_bad_values_are_named(
    environ: dict[str, str], argv: list[str], needle: str
) -> None:
    with pytest.raises(SettingsError, match=needle.replace("-", r"\-")):
        Settings.from_env(environ, argv)


def test_settings_unknown_flag_is_refused() -> None:
    with pytest.raises(SystemExit):
        Settings.from_env({}, ["--no-such-flag", "1"])


def test_settings_image_pattern_matches_repository() -> None:
    settings = Settings()
    assert settings.image_matches("stellar/stellar-core")
    assert settings.image_matches("registry.example.org:5000/stellar/stellar-core")
    assert not settings.image_matches("stellar/stellar-core-exporter")
    assert not settings.image_matches("stellar/horizon")
