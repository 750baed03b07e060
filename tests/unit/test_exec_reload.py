"""exec mode against the stand-in's real `stellar-core http-command`: the argv the controller
sends, run as the container would run it, and its output read as the controller reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.standin import StellarCoreStandIn, random_seed, validator_config
from webhook.core import admin_protocol
from webhook.core.admin_protocol import Outcome, connect_command
from webhook.core.pod import core_conf
from webhook.core.reload import connection
from webhook.core.reload.reload_plan import exec_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A `stellar-core` on PATH that is the stand-in's command line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "stellar-core"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {ROOT / "tests" / "standin.py"} "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


def run_in_container(argv: list[str], bin_dir: Path, cwd: Path) -> tuple[str, str]:
    """Run `argv` as pods/exec does: stdout and stderr on channels of their own, exit
    status ignored."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.stdout.decode(), done.stderr.decode()


def config(tmp_path: Path, port: int) -> Path:
    conf = tmp_path / "config" / "stellar-core.cfg"
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(validator_config(random_seed(), http_port=port))
    return conf


def test_exec_peers_and_connect_read_from_real_http_command_output(
    tmp_path: Path, bin_dir: Path
) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        conf = config(tmp_path, node.port)
        output = run_in_container(
            exec_command("peers", conf=str(conf), seconds=5), bin_dir, tmp_path
        )
        assert "Content-Type: application/json" in output[0]
        assert "Config from" in output[1]
        verdict, body = admin_protocol.command_verdict(*output)
        assert verdict is None
        seen = connection.read_peers(body)
        assert seen.authenticated == frozenset()
        assert seen.outbound_authenticated == 0

        argv = exec_command(
            connect_command(host="127.0.0.9", port=11625), conf=str(conf), seconds=5
        )
        verdict, body = admin_protocol.command_verdict(*run_in_container(argv, bin_dir, tmp_path))
        assert verdict is None
        result = admin_protocol.classify_connect(200, body, host="127.0.0.9", port=11625)
        assert result == admin_protocol.ASKED
        assert node.connects() == ["127.0.0.9:11625"]


def test_exec_without_conf_uses_the_working_directory_default(
    tmp_path: Path, bin_dir: Path
) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        (tmp_path / "stellar-core.cfg").write_text(
            validator_config(random_seed(), http_port=node.port)
        )
        output = run_in_container(exec_command("info", conf="", seconds=5), bin_dir, tmp_path)
        verdict, body = admin_protocol.command_verdict(*output)
        assert verdict is None
        assert admin_protocol.parse_info(body).state == "Synced!"


def test_exec_refused_is_retry_later(tmp_path: Path, bin_dir: Path) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        port = node.port
    conf = config(tmp_path, port)  # nothing listens there any more
    output = run_in_container(exec_command("peers", conf=str(conf), seconds=5), bin_dir, tmp_path)
    verdict, _ = admin_protocol.command_verdict(*output)
    assert verdict is not None
    assert (verdict.outcome, verdict.reason) == (Outcome.TRANSIENT, "refused")


def test_exec_a_node_that_accepts_and_hangs_is_cut_by_the_watchdog(
    tmp_path: Path, bin_dir: Path
) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0, hang_seconds=30) as node:
        conf = config(tmp_path, node.port)
        # Left alone it would answer after 30 s: an answer at all means no watchdog.
        output = run_in_container(
            exec_command("peers", conf=str(conf), seconds=1), bin_dir, tmp_path
        )
    verdict, _ = admin_protocol.command_verdict(*output)
    assert verdict is not None
    assert (verdict.outcome, verdict.reason) == (Outcome.TRANSIENT, "no-answer")


def test_exec_booting_node_is_retry_later(tmp_path: Path, bin_dir: Path) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0, booting_requests=1) as node:
        conf = config(tmp_path, node.port)
        output = run_in_container(
            exec_command("peers", conf=str(conf), seconds=5), bin_dir, tmp_path
        )
    verdict, _ = admin_protocol.command_verdict(*output)
    assert verdict is not None
    assert (verdict.outcome, verdict.reason) == (Outcome.TRANSIENT, "booting")


def test_exec_argv_passes_values_as_parameters_not_code() -> None:
    argv = exec_command(
        connect_command(host="10.0.0.2", port=11625), conf="/config/x.cfg", seconds=3
    )
    assert argv[:2] == ["sh", "-c"]
    assert argv[3:] == ["sh", "--conf", "/config/x.cfg", "connect?peer=10.0.0.2&port=11625"]
    assert "10.0.0.2" not in argv[2]
    assert "x.cfg" not in argv[2]


def test_core_conf_from_env_else_the_containers_own_argument() -> None:
    helm = {"args": ["run", "--conf", "/config/stellar-core.cfg", "--console"]}
    assert core_conf(helm) == "/config/stellar-core.cfg"
    assert core_conf({"command": ["stellar-core", "run", "--conf=/etc/a.cfg"]}) == "/etc/a.cfg"
    env = {"env": [{"name": "STELLAR_CORE_CONF", "value": "/etc/b.cfg"}], **helm}
    assert core_conf(env) == "/etc/b.cfg"
    from_secret = {"env": [{"name": "STELLAR_CORE_CONF", "valueFrom": {}}]}
    assert core_conf(from_secret) == ""
