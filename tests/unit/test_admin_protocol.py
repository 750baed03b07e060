"""Classifying stellar-core's admin answers, and the client against the stand-in."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import admin_client
from tests.polling import wait_until
from tests.standin import (
    BOOTING,
    MUST_SPECIFY,
    PUBNET,
    TESTNET,
    WELCOME,
    StellarCoreStandIn,
    random_seed,
    styled,
    validator_config,
)
from webhook.core import admin_protocol
from webhook.core.admin_protocol import Outcome, classify_connect, parse_peers
from webhook.stellar import admin

HOST = "127.0.0.32"
STANDIN_SCRIPT = Path(__file__).resolve().parents[1] / "standin.py"


def test_classify_connect_success_only_for_its_own_text() -> None:
    assert classify_connect(200, "Connect to: 10.0.0.1:11625", host="10.0.0.1", port=11625).ok
    other = classify_connect(200, "Connect to: 10.0.0.2:11625", host="10.0.0.1", port=11625)
    assert other.outcome is Outcome.FAILED


@pytest.mark.parametrize(
    ("status", "body", "outcome", "reason"),
    [
        (200, WELCOME, Outcome.FAILED, "unknown-command"),
        (404, WELCOME, Outcome.FAILED, "unknown-command"),
        (200, MUST_SPECIFY, Outcome.FAILED, "must-specify"),
        (200, '{"exception": "Cannot parse peer address \'x:abc\'"}', Outcome.FAILED, "exception"),
        (200, BOOTING, Outcome.TRANSIENT, "booting"),
        (200, "", Outcome.FAILED, "unexpected-answer"),
        (500, "oops", Outcome.FAILED, "http-500"),
    ],
)
def test_classify_connect_failures(status: int, body: str, outcome: Outcome, reason: str) -> None:
    result = classify_connect(status, body, host="10.0.0.1", port=11625)
    assert (result.outcome, result.reason) == (outcome, reason)


def test_classify_error_refused_and_timeout_are_transient() -> None:
    assert admin_protocol.classify_error(ConnectionRefusedError()).transient
    assert admin_protocol.classify_error(TimeoutError()).transient


def test_parse_peers_reads_strings_objects_and_nulls() -> None:
    body = """{
       "authenticated_peers" : {
          "inbound" : null,
          "outbound" : [ { "address" : "10.0.0.2:11625", "elapsed" : 3, "id" : "GA",
                           "latency" : 1, "olver" : 35, "ver" : "v21" } ]
       },
       "pending_peers" : { "inbound" : [ "10.0.0.9:40000" ], "outbound" : [ "10.0.0.3:11625" ] }
    }"""
    assert parse_peers(body) == {"10.0.0.2:11625", "10.0.0.3:11625", "10.0.0.9:40000"}


@pytest.mark.parametrize("body", [WELCOME, BOOTING, "[]", "not json", '{"info": {}}'])
def test_parse_peers_refuses_anything_else(body: str) -> None:
    with pytest.raises(admin_protocol.AnswerError):
        parse_peers(body)


def test_connect_path_encodes_and_refuses_odd_hosts() -> None:
    assert (
        admin_protocol.connect_path(host="10.0.0.1", port=11625)
        == "/connect?peer=10.0.0.1&port=11625"
    )
    assert admin_protocol.connect_command(host="core-1.example.org", port=1) == (
        "connect?peer=core-1.example.org&port=1"
    )
    for bad in ["10.0.0.1&port=1", "a b", "", "x/y", "$(reboot)"]:
        with pytest.raises(ValueError, match="peer host"):
            admin_protocol.connect_path(host=bad, port=1)


@pytest.mark.parametrize("ip", ["example.org", "10.0.0.1/evil", "10.0.0.1:80", ""])
def test_get_refuses_a_host_that_is_not_an_ip(ip: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        asyncio.run(admin.get(ip=ip, port=11626, path="/info", time_limit=1))


def test_client_connects_and_lists_peers_on_the_standin() -> None:
    with (
        StellarCoreStandIn(host=HOST, port=0) as node,
        StellarCoreStandIn(host="127.0.0.33", port=0) as other,
    ):
        peer_host, _, peer_port = other.peer_address.rpartition(":")
        result = asyncio.run(
            admin_client.connect(
                ip=node.host,
                port=node.port,
                peer_host=peer_host,
                peer_port=int(peer_port),
                time_limit=2,
            )
        )
        assert result.ok

        def listed() -> set[str]:
            found, addresses = asyncio.run(
                admin_client.peers(ip=node.host, port=node.port, time_limit=2)
            )
            assert found.ok
            return addresses

        assert wait_until(listed, message="the peer listed") == {other.peer_address}


def test_client_reports_booting_refused_and_timeout_as_transient() -> None:
    with socket.socket() as s:
        s.bind((HOST, 0))
        closed_port = s.getsockname()[1]
    refused = asyncio.run(
        admin_client.connect(
            ip=HOST, port=closed_port, peer_host="10.0.0.5", peer_port=1, time_limit=1
        )
    )
    assert (refused.outcome, refused.reason) == (Outcome.TRANSIENT, "refused")
    with StellarCoreStandIn(host=HOST, port=0, booting_requests=1) as node:
        booting, _ = asyncio.run(admin_client.peers(ip=node.host, port=node.port, time_limit=1))
        assert (booting.outcome, booting.reason) == (Outcome.TRANSIENT, "booting")
    with StellarCoreStandIn(host=HOST, port=0, delay_seconds=1) as node:
        slow = asyncio.run(
            admin_client.connect(
                ip=node.host, port=node.port, peer_host="10.0.0.5", peer_port=1, time_limit=0.1
            )
        )
        assert (slow.outcome, slow.reason) == (Outcome.TRANSIENT, "timeout")


def test_client_reports_the_welcome_page_as_failed() -> None:
    with StellarCoreStandIn(host=HOST, port=0, welcome_status=404) as node:
        status, body = asyncio.run(
            admin.get(ip=node.host, port=node.port, path="/config-reload", time_limit=1)
        )
    assert (status, body) == (404, WELCOME)


def test_http_command_output_body_drops_its_log_lines() -> None:
    printed = (
        "2024-05-01T10:00:00.123 GABCD [default INFO] Config from /etc/stellar.cfg\n"
        "Connect to: 10.0.0.1:11625\n"
    )
    logged = (
        "2024-05-01T10:00:00.123 GABCD [default INFO] Config from /etc/stellar.cfg\n"
        "2024-05-01T10:00:00.130 GABCD [default INFO] Connect to: 10.0.0.1:11625\n"
    )
    for output in (printed, logged):
        answer = admin_protocol.parse_http_command_output(output).body
        assert classify_connect(200, answer, host="10.0.0.1", port=11625).ok
    peers_json = (
        '{\n   "authenticated_peers" : { "inbound" : null, "outbound" : null },\n'
        '   "pending_peers" : { "inbound" : null, "outbound" : [ "10.0.0.2:11625" ] }\n}\n'
    )
    answer = admin_protocol.parse_http_command_output(
        printed.splitlines()[0] + "\n" + peers_json
    ).body
    assert parse_peers(answer) == {"10.0.0.2:11625"}


# What the node says of its peers and itself, as the stand-in writes it (jsoncpp)


def test_connect_to_is_asked_not_connected() -> None:
    result = classify_connect(200, "Connect to: 10.0.0.1:11625", host="10.0.0.1", port=11625)
    assert (result.outcome, result.reason) == (Outcome.SUCCESS, "asked")


def test_authenticated_addresses_leave_out_pending_and_read_null() -> None:
    body = styled(
        {
            "authenticated_peers": {
                "inbound": [{"address": "10.0.0.4:11625", "id": "GAAAA"}],
                "outbound": None,
            },
            "pending_peers": {"inbound": ["10.0.0.9:0"], "outbound": ["10.0.0.3:11625"]},
        }
    )
    assert admin_protocol.authenticated_addresses(body) == {"10.0.0.4:11625"}
    assert parse_peers(body) == {"10.0.0.4:11625", "10.0.0.9:0", "10.0.0.3:11625"}
    empty = styled(
        {
            "authenticated_peers": {"inbound": None, "outbound": None},
            "pending_peers": {"inbound": None, "outbound": None},
        }
    )
    assert admin_protocol.authenticated_addresses(empty) == set()
    with pytest.raises(admin_protocol.AnswerError) as booting:
        admin_protocol.authenticated_addresses(BOOTING)
    assert booting.value.result.reason == "booting"


def test_authenticated_addresses_of_real_peers_on_the_standin() -> None:
    with (
        StellarCoreStandIn(host="127.0.0.34", port=0) as node,
        StellarCoreStandIn(host="127.0.0.35", port=0) as good,
        StellarCoreStandIn(host="127.0.0.36", port=0, network_passphrase=PUBNET) as other,
    ):
        for peer in (good, other):
            host, _, port = peer.peer_address.rpartition(":")
            asyncio.run(
                admin.get(
                    ip=node.host, port=node.port, path=f"/connect?peer={host}&port={port}",
                    time_limit=2,
                )
            )  # fmt: skip

        def connected() -> set[str]:
            _, body = asyncio.run(
                admin.get(ip=node.host, port=node.port, path="/peers", time_limit=2)
            )
            return admin_protocol.authenticated_addresses(body)

        assert wait_until(connected, message="the good peer") == {good.peer_address}
        wait_until(lambda: any("wrong network" in w for _, w in node.events()), message="drop")
        assert connected() == {good.peer_address}


def test_parse_info_reads_state_network_and_key_from_jsoncpp() -> None:
    with StellarCoreStandIn(host=HOST, port=0, version="25.1.0", booting_requests=1) as node:
        _, booting = asyncio.run(
            admin.get(ip=node.host, port=node.port, path="/info", time_limit=2)
        )
        result, info = asyncio.run(admin_client.info(ip=node.host, port=node.port, time_limit=2))
        _, quorum = asyncio.run(
            admin.get(ip=node.host, port=node.port, path="/quorum?fullkeys=true", time_limit=2)
        )
    assert '"state" : "Booting"' in booting
    assert admin_protocol.node_state(booting) == "Booting"
    assert admin_protocol.parse_info(booting).state not in admin_protocol.PAST_BOOTING
    assert result.ok
    assert info == admin_protocol.NodeInfo(
        state="Synced!", network=TESTNET, node=node.public_key[:5]
    )
    assert info.state in admin_protocol.PAST_BOOTING
    assert admin_protocol.node_key(quorum) == node.public_key


@pytest.mark.parametrize("body", [BOOTING, WELCOME, '{"info": {}}', "[]"])
def test_parse_info_refuses_anything_else(body: str) -> None:
    with pytest.raises(admin_protocol.AnswerError):
        admin_protocol.parse_info(body)


def test_network_name_is_short_and_bounded() -> None:
    assert admin_protocol.network_name(PUBNET) == "pubnet"
    assert admin_protocol.network_name(TESTNET) == "testnet"
    name = admin_protocol.network_name("Standalone Network ; February 2017")
    assert name.startswith("net-")
    assert len(name) == 12
    assert name == admin_protocol.network_name("Standalone Network ; February 2017")
    assert name != admin_protocol.network_name("Standalone Network ; February 2018")


# What `stellar-core http-command` writes (the stand-in's command line does it like the real one)


def run_http_command(tmp_path: Path, port: int, command: str) -> tuple[str, str]:
    conf = tmp_path / "stellar-core.cfg"
    conf.write_text(validator_config(random_seed(), http_port=port))
    done = subprocess.run(
        [sys.executable, "-I", str(STANDIN_SCRIPT), "http-command", command, "--conf", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0  # whatever happened
    return done.stdout, done.stderr


def test_http_command_output_with_headers_and_logs(tmp_path: Path) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        out, err = run_http_command(tmp_path, node.port, "connect?peer=10.0.0.1&port=11625")
        peers_out, peers_err = run_http_command(tmp_path, node.port, "peers")
    assert out.startswith("Content-Length: ")
    assert "Using QUORUM_SET: {\n" in err  # the config log: stderr only
    parsed = admin_protocol.parse_http_command_output(out, err)
    assert parsed.status == 200
    assert parsed.body == "Connect to: 10.0.0.1:11625"
    assert parsed.headers["content-type"] == "application/json"
    assert classify_connect(200, parsed.body, host="10.0.0.1", port=11625).ok
    verdict, answer = admin_protocol.command_verdict(peers_out, peers_err)
    assert verdict is None
    assert admin_protocol.authenticated_addresses(answer) == set()
    assert admin_protocol.parse_http_command_output(peers_out).body == answer


# What v25.2.0's `http-command info` wrote, measured (STELLAR.md): the config log, with the
# quorum set as multi-line JSON, on stderr; headers, a blank line and the body on stdout.
V25_STDERR = (
    "2026-12-07T10:00:00.101 [default INFO] Config from /config/stellar-core.cfg\n"
    "2026-12-07T10:00:00.102 [default INFO] Using QUORUM_SET: {\n"
    '   "t" : 2,\n'
    '   "v" : [ "n1", "n2", "n3" ]\n'
    "}\n"
)
V25_STDOUT = (
    "Content-Length: 58\r\nContent-Type: application/json\r\n\n"
    '{\n   "info" : {\n      "network" : "N",\n      "state" : "Synced!"\n   }\n}\n'
)


def info_state(stdout: str, stderr: str = "") -> str | None:
    """`info.state` as exec mode reads it from `http-command`'s output, or None."""
    verdict, body = admin_protocol.command_verdict(stdout, stderr)
    if verdict is not None:
        return None
    try:
        return admin_protocol.parse_info(body).state
    except admin_protocol.AnswerError:
        return None


def test_v25_http_command_answer_is_read_from_stdout_and_its_log_from_stderr() -> None:
    assert info_state(V25_STDOUT, V25_STDERR) == "Synced!"


def test_v25_http_command_merged_streams_do_not_parse() -> None:
    """Why exec mode reads two channels: merged (as it read them before), the quorum set's
    JSON becomes the answer and every reload of a real v25 node failed."""
    assert info_state(V25_STDERR + V25_STDOUT) is None


def test_http_command_failures_are_read_from_the_log(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    out, err = run_http_command(tmp_path, closed, "info")
    assert out == ""
    refused, _ = admin_protocol.command_verdict(out, err)
    assert refused is not None
    assert (refused.outcome, refused.reason) == (Outcome.TRANSIENT, "refused")
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        out, err = run_http_command(tmp_path, node.port, "config-reload")
    unknown, _ = admin_protocol.command_verdict(out, err)
    assert unknown is not None
    assert (unknown.outcome, unknown.reason) == (Outcome.FAILED, "unknown-command")
    nothing, _ = admin_protocol.command_verdict("")
    assert nothing is not None
    assert nothing.reason == "no-answer"


def test_http_command_output_of_versions_that_logged_the_answer() -> None:
    output = (
        "2024-05-01T10:00:00.123 [default INFO] Config from /config/stellar-core.cfg\n"
        "Content-Length: 26\r\nContent-Type: application/json\r\n\n"
        "2024-05-01T10:00:00.130 GABCD [default INFO] Connect to: 10.0.0.1:11625\n"
    )
    parsed = admin_protocol.parse_http_command_output(output)
    assert (parsed.status, parsed.body) == (200, "Connect to: 10.0.0.1:11625")


def test_the_hook_and_the_exec_reload_share_one_watchdog() -> None:
    from webhook.core.admin_protocol import bounded_function
    from webhook.core.injection import hook
    from webhook.core.reload import reload_plan

    [*_, script] = hook.poststart_command(http_port=11626, timeout_seconds=60)
    assert bounded_function(hook.ASK_SECONDS) in script
    [_, _, argv_script, *_] = reload_plan.exec_command("info", conf="", seconds=7)
    assert argv_script.startswith(bounded_function(7))
