"""Classifying stellar-core's admin answers, and the client against the stand-in."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.standin import BOOTING, MUST_SPECIFY, WELCOME, StellarCoreStandIn
from webhook.core import stellar_admin
from webhook.core.stellar_admin import Outcome, classify_connect, parse_peers

HOST = "127.0.0.32"


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
    assert stellar_admin.classify_error(ConnectionRefusedError()).transient
    assert stellar_admin.classify_error(TimeoutError()).transient


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
    with pytest.raises(stellar_admin.AnswerError):
        parse_peers(body)


def test_connect_path_encodes_and_refuses_odd_hosts() -> None:
    assert (
        stellar_admin.connect_path(host="10.0.0.1", port=11625)
        == "/connect?peer=10.0.0.1&port=11625"
    )
    assert stellar_admin.connect_command(host="core-1.example.org", port=1) == (
        "connect?peer=core-1.example.org&port=1"
    )
    for bad in ["10.0.0.1&port=1", "a b", "", "x/y", "$(reboot)"]:
        with pytest.raises(ValueError, match="peer host"):
            stellar_admin.connect_path(host=bad, port=1)


@pytest.mark.parametrize("ip", ["example.org", "10.0.0.1/evil", "10.0.0.1:80", ""])
def test_get_refuses_a_host_that_is_not_an_ip(ip: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        asyncio.run(stellar_admin.get(ip=ip, port=11626, path="/info", time_limit=1))


def test_client_connects_and_lists_peers_on_the_standin() -> None:
    async def scenario(node: StellarCoreStandIn) -> tuple[stellar_admin.Result, set[str]]:
        result = await stellar_admin.connect(
            ip=node.host, port=node.port, peer_host="10.0.0.5", peer_port=11625, time_limit=2
        )
        assert result.ok
        return await stellar_admin.peers(ip=node.host, port=node.port, time_limit=2)

    with StellarCoreStandIn(host=HOST, port=0) as node:
        listed, connected = asyncio.run(scenario(node))
    assert listed.ok
    assert connected == {"10.0.0.5:11625"}


def test_client_reports_booting_refused_and_timeout_as_transient() -> None:
    with socket.socket() as s:
        s.bind((HOST, 0))
        closed_port = s.getsockname()[1]
    refused = asyncio.run(
        stellar_admin.connect(
            ip=HOST, port=closed_port, peer_host="10.0.0.5", peer_port=1, time_limit=1
        )
    )
    assert (refused.outcome, refused.reason) == (Outcome.TRANSIENT, "refused")
    with StellarCoreStandIn(host=HOST, port=0, booting_requests=1) as node:
        booting, _ = asyncio.run(stellar_admin.peers(ip=node.host, port=node.port, time_limit=1))
        assert (booting.outcome, booting.reason) == (Outcome.TRANSIENT, "booting")
    with StellarCoreStandIn(host=HOST, port=0, delay_seconds=1) as node:
        slow = asyncio.run(
            stellar_admin.connect(
                ip=node.host, port=node.port, peer_host="10.0.0.5", peer_port=1, time_limit=0.1
            )
        )
        assert (slow.outcome, slow.reason) == (Outcome.TRANSIENT, "timeout")


def test_client_reports_the_welcome_page_as_failed() -> None:
    with StellarCoreStandIn(host=HOST, port=0, welcome_status=404) as node:
        status, body = asyncio.run(
            stellar_admin.get(ip=node.host, port=node.port, path="/config-reload", time_limit=1)
        )
    assert (status, body) == (404, WELCOME)


def test_command_answer_drops_http_command_log_lines() -> None:
    printed = (
        "2024-05-01T10:00:00.123 GABCD [default INFO] Config from /etc/stellar.cfg\n"
        "Connect to: 10.0.0.1:11625\n"
    )
    logged = (
        "2024-05-01T10:00:00.123 GABCD [default INFO] Config from /etc/stellar.cfg\n"
        "2024-05-01T10:00:00.130 GABCD [default INFO] Connect to: 10.0.0.1:11625\n"
    )
    for output in (printed, logged):
        answer = stellar_admin.command_answer(output)
        assert classify_connect(200, answer, host="10.0.0.1", port=11625).ok
    peers_json = (
        '{\n   "authenticated_peers" : { "inbound" : null, "outbound" : null },\n'
        '   "pending_peers" : { "inbound" : null, "outbound" : [ "10.0.0.2:11625" ] }\n}\n'
    )
    answer = stellar_admin.command_answer(printed.splitlines()[0] + "\n" + peers_json)
    assert parse_peers(answer) == {"10.0.0.2:11625"}
