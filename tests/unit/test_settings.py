"""Settings are built once, from the environment and flags, and refuse bad values."""

from __future__ import annotations

import pytest

from webhook.cli import main
from webhook.core.injection import hook
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Above the hook's own limit every injection would fail open.
        (["--hook-timeout-seconds", "90000"], "--hook-timeout-seconds 90000: allowed 1..86400"),
        (["--log-level", "LOUD"], "--log-level 'LOUD': allowed one of DEBUG, INFO"),
        (["--port", "70000"], "--port 70000: allowed 0..65535"),
        (["--watch-timeout-seconds", "0"], "--watch-timeout-seconds 0: allowed > 0"),
        (["--reload-timeout-seconds", "nan"], "--reload-timeout-seconds nan: allowed > 0"),
        (["--debounce-seconds", "-1"], "--debounce-seconds -1.0: allowed >= 0"),
        (["--lease-renew-seconds", "20"], "--lease-renew-seconds 20.0: allowed below"),
        (["--namespace", "Stellar_System"], "--namespace 'Stellar_System': allowed a namespace"),
        (["--lease-name", "a lease"], "--lease-name 'a lease': allowed an object name"),
        (["--service-name", "a.b"], "--service-name 'a.b': allowed a Service name"),
    ],
)
def test_settings_out_of_limits_name_setting_value_and_range(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({}, argv)
    assert str(caught.value).startswith(message), str(caught.value)


def test_settings_hook_timeout_limit_is_the_hooks() -> None:
    assert Settings(hook_timeout_seconds=hook.MAX_TIMEOUT_SECONDS).hook_timeout_seconds > 0
    with pytest.raises(SettingsError):
        Settings(hook_timeout_seconds=hook.MAX_TIMEOUT_SECONDS + 1)


def test_settings_log_level_any_case() -> None:
    assert Settings(log_level="debug").log_level == "debug"


def test_serve_stops_on_a_bad_setting_with_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["serve", "--hook-timeout-seconds", "90000"]) == 2
    assert "--hook-timeout-seconds 90000: allowed 1..86400" in capsys.readouterr().err
