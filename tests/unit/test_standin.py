"""The stellar-core stand-in answers like stellar-core's admin port."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from tests.standin import (
    BOOTING,
    MUST_SPECIFY,
    WELCOME,
    StellarCoreStandIn,
    parse_params,
    url_decode,
)

HOST = "127.0.0.31"


def get(node: StellarCoreStandIn, path: str, timeout: float = 2.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(node.host, node.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def node() -> StellarCoreStandIn:
    with StellarCoreStandIn(host=HOST, port=0) as standin:
        yield standin


def test_standin_connect_answers_connect_to_and_adds_the_peer(node: StellarCoreStandIn) -> None:
    assert get(node, "/connect?peer=10.0.0.7&port=11625") == (200, "Connect to: 10.0.0.7:11625")
    status, body = get(node, "/peers")
    peers = json.loads(body)
    assert status == 200
    assert [p["address"] for p in peers["authenticated_peers"]["outbound"]] == ["10.0.0.7:11625"]
    assert set(peers["authenticated_peers"]["outbound"][0]) == {
        "address",
        "elapsed",
        "latency",
        "ver",
        "olver",
        "id",
    }
    assert node.connects() == ["10.0.0.7:11625"]


def test_standin_peers_with_no_peers_are_null_like_jsoncpp(node: StellarCoreStandIn) -> None:
    peers = json.loads(get(node, "/peers")[1])
    assert peers == {
        "authenticated_peers": {"inbound": None, "outbound": None},
        "pending_peers": {"inbound": None, "outbound": None},
    }


@pytest.mark.parametrize(
    "path",
    ["/connect", "/connect?peer=10.0.0.7", "/connect?port=1", "/connect?peer=10.0.0.7&port="],
)
def test_standin_connect_without_both_params_must_specify(
    node: StellarCoreStandIn, path: str
) -> None:
    assert get(node, path) == (200, MUST_SPECIFY)


def test_standin_connect_with_a_bad_port_answers_an_exception(node: StellarCoreStandIn) -> None:
    status, body = get(node, "/connect?peer=10.0.0.7&port=abc")
    assert status == 200
    assert json.loads(body) == {"exception": "Cannot parse peer address '10.0.0.7:abc'"}
    assert node.connects() == []


def test_standin_decodes_the_whole_uri_like_http_command_sends_it(node: StellarCoreStandIn) -> None:
    # `stellar-core http-command` escapes every non-alphanumeric character after '?'.
    assert get(node, "/connect?peer%3d10%2e0%2e0%2e8%26port%3d11625") == (
        200,
        "Connect to: 10.0.0.8:11625",
    )


def test_standin_unknown_command_is_the_welcome_page(node: StellarCoreStandIn) -> None:
    assert get(node, "/config-reload") == (200, WELCOME)
    node.welcome_status = 404
    assert get(node, "/") == (404, WELCOME)


def test_standin_info_is_json_with_a_state(node: StellarCoreStandIn) -> None:
    info = json.loads(get(node, "/info")[1])
    assert info["info"]["state"] == "Synced!"


def test_standin_refuses_connections_until_started() -> None:
    node = StellarCoreStandIn(host=HOST, port=0)
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        free_port = probe.getsockname()[1]
    node.port = free_port
    with pytest.raises(ConnectionRefusedError):
        get(node, "/info")
    with node:
        assert get(node, "/info")[0] == 200


def test_standin_boots_for_a_number_of_requests() -> None:
    with StellarCoreStandIn(host=HOST, port=0, booting_requests=2) as node:
        assert get(node, "/info") == (200, BOOTING)
        assert get(node, "/connect?peer=10.0.0.7&port=11625") == (200, BOOTING)
        assert get(node, "/info")[1].startswith("{")
        assert "Synced!" in get(node, "/info")[1]
        assert node.connects() == []


def test_standin_boots_for_some_seconds() -> None:
    with StellarCoreStandIn(host=HOST, port=0, booting_seconds=0.3) as node:
        assert get(node, "/info") == (200, BOOTING)
        deadline = time.monotonic() + 3
        while get(node, "/info")[1] == BOOTING:
            assert time.monotonic() < deadline, "still booting after its boot time"
        assert "Synced!" in get(node, "/info")[1]


def test_standin_delay_makes_answers_slow() -> None:
    with StellarCoreStandIn(host=HOST, port=0, delay_seconds=0.3) as node:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            get(node, "/info", timeout=0.1)
        assert time.monotonic() - started < 0.3


def test_standin_records_every_request_from_many_threads(node: StellarCoreStandIn) -> None:
    threads = [
        threading.Thread(target=get, args=(node, f"/connect?peer=10.0.1.{i}&port=11625"))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(node.paths) == sorted(f"/connect?peer=10.0.1.{i}&port=11625" for i in range(20))
    assert len(node.connected) == 20


def test_url_decode_and_parse_params_follow_stellar_core() -> None:
    assert url_decode("/a%3Db+c") == "/a=b c"
    assert url_decode("/a%zz") is None
    assert parse_params("?peer=&port=1") == {"peer": "", "port": "1"}
    assert parse_params("?peer=x&port=") == {"peer": "x"}
