"""The stellar-core stand-in behaves as STELLAR.md says stellar-core does, unkind parts included."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests import standin_keys
from tests.polling import wait_until
from tests.standin import (
    BOOTING,
    MUST_SPECIFY,
    PUBNET,
    WELCOME,
    QuorumSet,
    StellarCoreStandIn,
    escape_command,
    node_from_config,
    parse_params,
    public_key,
    random_seed,
    styled,
    url_decode,
    validator_config,
)

HOST = "127.0.0.31"
SCRIPT = Path(__file__).resolve().parents[1] / "standin.py"


def get(node: StellarCoreStandIn, path: str, timeout: float = 5.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(node.host, node.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def raw_get(host: str, port: int, path: str) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def node() -> Iterator[StellarCoreStandIn]:
    with StellarCoreStandIn(host=HOST, port=0) as standin:
        yield standin


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def peers_of(node: StellarCoreStandIn, query: str = "") -> dict[str, Any]:
    return dict(json.loads(get(node, "/peers" + query)[1]))


def authenticated_out(node: StellarCoreStandIn) -> list[str]:
    return [p["address"] for p in peers_of(node)["authenticated_peers"]["outbound"] or []]


def ask_connect(node: StellarCoreStandIn, other: StellarCoreStandIn) -> str:
    host, _, port = other.peer_address.rpartition(":")
    return get(node, f"/connect?peer={host}&port={port}")[1]


def reason_seen(node: StellarCoreStandIn, text: str) -> bool:
    return any(text in what for _, what in node.events())


# the admin port


def test_connect_answers_connect_to_and_the_peer_authenticates_later(
    stack: ExitStack,
) -> None:
    a = stack.enter_context(StellarCoreStandIn(host="127.0.0.31", port=0, node_seed=random_seed()))
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.32", port=0, node_seed=random_seed()))
    assert ask_connect(a, b) == f"Connect to: {b.peer_address}"
    wait_until(lambda: authenticated_out(a) == [b.peer_address], message="a -> b authenticated")
    entry = peers_of(a)["authenticated_peers"]["outbound"][0]
    assert set(entry) == {"address", "elapsed", "latency", "ver", "olver", "flow_control", "id"}
    assert entry["id"] == b.public_key[:5]
    assert peers_of(a, "?fullkeys=true")["authenticated_peers"]["outbound"][0]["id"] == (
        b.public_key
    )
    inbound = wait_until(lambda: peers_of(b)["authenticated_peers"]["inbound"], message="inbound")
    assert [p["address"] for p in inbound] == [a.peer_address]  # ip:listening port
    assert a.connects() == [b.peer_address]


def test_connect_lists_the_peer_as_pending_before_it_answers(stack: ExitStack) -> None:
    """`OverlayManagerImpl::connectTo` adds the peer to the pending list before the
    command answers: a `peers` read right after `Connect to:` shows it (here it never
    gets further: nothing listens there)."""
    a = stack.enter_context(StellarCoreStandIn(host="127.0.0.33", port=0, dial_only="any"))
    with socket.socket() as held:  # a port that accepts nothing: the dial stays pending
        held.bind(("127.0.0.34", 0))
        held.listen(0)
        port = held.getsockname()[1]
        answer = get(a, f"/connect?peer=127.0.0.34&port={port}")[1]
        assert answer == f"Connect to: 127.0.0.34:{port}"
        assert peers_of(a)["pending_peers"]["outbound"] == [f"127.0.0.34:{port}"]


def test_peers_with_no_peers_are_null_like_jsoncpp(node: StellarCoreStandIn) -> None:
    assert peers_of(node) == {
        "authenticated_peers": {"inbound": None, "outbound": None},
        "pending_peers": {"inbound": None, "outbound": None},
    }


def test_answers_are_jsoncpp_styled_with_a_space_before_the_colon(node: StellarCoreStandIn) -> None:
    body = get(node, "/info")[1]
    assert '\n      "state" : "Synced!"' in body
    assert body.startswith('{\n   "info" : {\n      "build" : ')
    assert '"inbound" : null' in get(node, "/peers")[1]


def test_styled_writes_like_jsoncpp_styledwriter() -> None:
    assert styled({"b": [1, 2], "a": {}, "c": [], "d": [{"x": None}]}) == (
        '{\n   "a" : {},\n   "b" : [ 1, 2 ],\n   "c" : [],\n   "d" : [\n      {\n'
        '         "x" : null\n      }\n   ]\n}\n'
    )


def test_replies_are_http_1_0_and_close(node: StellarCoreStandIn) -> None:
    reply = raw_get(node.host, node.port, "/info")
    assert reply.startswith(b"HTTP/1.0 200 OK\r\nContent-Length: ")
    assert b"\r\nContent-Type: application/json\r\n\r\n{" in reply


def test_info_carries_network_state_and_node_key(stack: ExitStack) -> None:
    seed = random_seed()
    node = stack.enter_context(
        StellarCoreStandIn(host=HOST, port=0, network_passphrase=PUBNET, node_seed=seed)
    )
    info = json.loads(get(node, "/info")[1])["info"]
    assert info["network"] == PUBNET
    assert info["state"] == "Synced!"
    assert info["quorum"]["node"] == public_key(seed)[:5]
    assert json.loads(get(node, "/quorum?fullkeys=true")[1])["node"] == public_key(seed)
    assert json.loads(get(node, "/quorum")[1])["node"] == public_key(seed)[:5]
    assert (
        json.loads(get(node, "/info?fullkeys=true")[1])["info"]["quorum"]["node"]
        == (public_key(seed)[:5])
    )


def test_node_key_is_the_ed25519_key_of_its_seed() -> None:
    seed = random_seed()
    key = public_key(f"{seed} self")  # a second word only names the key
    assert key == public_key(seed) == standin_keys.public_key_of(seed)
    assert key != public_key(random_seed())
    assert public_key(None) != public_key(None)  # random without a seed
    with pytest.raises(ValueError, match="invalid seed"):
        public_key("SDEMO")
    with pytest.raises(ValueError, match="invalid seed"):
        StellarCoreStandIn(node_seed="SDEMO")


@pytest.mark.parametrize(
    "path",
    ["/connect", "/connect?peer=10.0.0.7", "/connect?port=1", "/connect?peer=10.0.0.7&port="],
)
def test_connect_without_both_params_must_specify(node: StellarCoreStandIn, path: str) -> None:
    assert get(node, path) == (200, MUST_SPECIFY)


def test_connect_with_a_bad_port_answers_an_exception(node: StellarCoreStandIn) -> None:
    status, body = get(node, "/connect?peer=10.0.0.7&port=abc")
    assert status == 200
    assert json.loads(body) == {"exception": "Cannot parse peer address '10.0.0.7:abc'"}
    assert node.connects() == []


def test_connect_resolves_names_itself(stack: ExitStack) -> None:
    node = stack.enter_context(
        StellarCoreStandIn(host=HOST, port=0, hosts={"core-1.example": "127.0.0.99"})
    )
    assert json.loads(get(node, "/connect?peer=nowhere.example&port=11625")[1]) == {
        "exception": "Could not resolve 'nowhere.example:11625': Host not found (authoritative)"
    }
    assert get(node, "/connect?peer=core-1.example&port=11625")[1] == (
        "Connect to: core-1.example:11625"
    )
    assert node.connects() == ["127.0.0.99:11625"]


def test_decodes_the_whole_uri_like_http_command_sends_it(node: StellarCoreStandIn) -> None:
    path = escape_command("connect?peer=10.0.0.8&port=11625")
    assert path == "/connect?peer%3d10%2e0%2e0%2e8%26port%3d11625"
    assert get(node, path) == (200, "Connect to: 10.0.0.8:11625")


def test_unknown_command_is_the_welcome_page_with_404(node: StellarCoreStandIn) -> None:
    assert get(node, "/config-reload") == (404, WELCOME)
    reply = raw_get(node.host, node.port, "/")
    assert reply.startswith(b"HTTP/1.0 404 Not Found\r\n")
    assert b"Content-Type: text/html" in reply


def test_before_v15_2_the_welcome_page_is_200(stack: ExitStack) -> None:
    node = stack.enter_context(StellarCoreStandIn(host=HOST, port=0, version="15.1.0"))
    assert get(node, "/config-reload") == (200, WELCOME)


def test_refuses_connections_until_started() -> None:
    node = StellarCoreStandIn(host=HOST, port=free_port(HOST))
    with pytest.raises(ConnectionRefusedError):
        get(node, "/info")
    with node:
        assert get(node, "/info")[0] == 200


def test_v25_2_boots_with_the_error_answer_for_every_command() -> None:
    with StellarCoreStandIn(host=HOST, port=0, booting_requests=2) as node:
        assert get(node, "/info") == (200, BOOTING)
        assert get(node, "/connect?peer=10.0.0.7&port=11625") == (200, BOOTING)
        assert json.loads(get(node, "/info")[1])["info"]["state"] == "Synced!"
        assert node.connects() == []


def test_before_v25_2_info_says_booting() -> None:
    with StellarCoreStandIn(host=HOST, port=0, version="25.1.0", booting_requests=2) as node:
        assert json.loads(get(node, "/info")[1])["info"]["state"] == "Booting"
        assert '"state" : "Booting"' in get(node, "/info")[1]
        assert json.loads(get(node, "/info")[1])["info"]["state"] == "Synced!"


def test_boots_for_some_seconds() -> None:
    with StellarCoreStandIn(host=HOST, port=0, booting_seconds=0.3) as node:
        assert get(node, "/info") == (200, BOOTING)
        wait_until(lambda: get(node, "/info")[1] != BOOTING, timeout=5, message="booted")
        assert "Synced!" in get(node, "/info")[1]


def test_a_hanging_boot_accepts_and_answers_nothing_then_answers() -> None:
    with StellarCoreStandIn(host=HOST, port=0, hang_seconds=1.5) as node:
        with pytest.raises(TimeoutError):
            get(node, "/info", timeout=0.3)  # accepted (not refused), no answer
        wait_until(lambda: get(node, "/info", timeout=1)[0] == 200, timeout=10, message="answers")


def test_records_every_request_from_many_threads(node: StellarCoreStandIn) -> None:
    threads = [
        threading.Thread(target=get, args=(node, f"/connect?peer=10.0.1.{i}&port=11625"))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(node.paths) == sorted(f"/connect?peer=10.0.1.{i}&port=11625" for i in range(20))
    # 10.0.1.x is outside STANDIN_DIAL_ONLY: no packet leaves, nothing authenticates.
    assert node.authenticated() == set()


def test_url_decode_and_parse_params_follow_stellar_core() -> None:
    assert url_decode("/a%3Db+c") == "/a=b c"
    assert url_decode("/a%zz") is None
    assert parse_params("?peer=&port=1") == {"peer": "", "port": "1"}
    assert parse_params("?peer=x&port=") == {"peer": "x"}


# peers that authenticate, or say why not


def test_nodes_of_another_network_never_authenticate(stack: ExitStack) -> None:
    a = stack.enter_context(StellarCoreStandIn(host="127.0.0.33", port=0, redial_seconds=0.2))
    b = stack.enter_context(
        StellarCoreStandIn(host="127.0.0.34", port=0, network_passphrase=PUBNET)
    )
    assert ask_connect(a, b) == f"Connect to: {b.peer_address}"
    wait_until(lambda: reason_seen(a, "wrong network passphrase"), message="the remote's drop")
    wait_until(lambda: sum("wrong network" in w for _, w in b.events()) >= 3, message="redials")
    assert a.authenticated() == set()
    assert b.authenticated() == set()
    assert peers_of(a)["authenticated_peers"] == {"inbound": None, "outbound": None}


def test_preferred_only_rejects_a_peer_that_is_not_preferred(stack: ExitStack) -> None:
    seed = random_seed()
    a = stack.enter_context(StellarCoreStandIn(host="127.0.0.35", port=0, node_seed=seed))
    b = stack.enter_context(
        StellarCoreStandIn(host="127.0.0.36", port=0, preferred_peers_only=True)
    )
    assert ask_connect(a, b).startswith("Connect to: ")
    wait_until(lambda: reason_seen(b, "peer rejected"), message="b rejects a")
    assert a.authenticated() == set()
    assert b.authenticated() == set()
    # Preferred by key, the same peer is accepted.
    c = stack.enter_context(
        StellarCoreStandIn(
            host="127.0.0.37",
            port=0,
            preferred_peers_only=True,
            preferred_peer_keys=[public_key(seed)],
        )
    )
    ask_connect(a, c)
    wait_until(lambda: c.peer_address in a.authenticated(), message="a -> c authenticated")


def test_full_outbound_slots_answer_connect_to_and_never_authenticate(stack: ExitStack) -> None:
    # OverlayManagerImpl: `connect` still dials; the peer is refused at authentication.
    a = stack.enter_context(
        StellarCoreStandIn(host="127.0.0.38", port=0, target_peer_connections=1)
    )
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.39", port=0))
    c = stack.enter_context(StellarCoreStandIn(host="127.0.0.40", port=0))
    ask_connect(a, b)
    wait_until(lambda: a.authenticated() == {b.peer_address}, message="a -> b")
    assert ask_connect(a, c) == f"Connect to: {c.peer_address}"
    wait_until(lambda: reason_seen(a, "peer rejected"), message="a refuses c at authentication")
    wait_until(lambda: reason_seen(c, "dropped by remote: peer rejected"), message="c told")
    wait_until(lambda: c.authenticated() == set(), message="c left without a")
    assert a.authenticated() == {b.peer_address}


def test_a_preferred_peer_evicts_a_non_preferred_one_from_full_slots(stack: ExitStack) -> None:
    c = StellarCoreStandIn(host="127.0.0.50", port=0, peer_port=free_port("127.0.0.50"))
    a = stack.enter_context(
        StellarCoreStandIn(
            host="127.0.0.48",
            port=0,
            target_peer_connections=1,
            preferred_peers=[c.peer_address],  # not up yet: redialed
            redial_seconds=0.3,
        )
    )
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.49", port=0))
    ask_connect(a, b)
    wait_until(lambda: a.authenticated() == {b.peer_address}, message="a -> b")
    stack.enter_context(c)
    wait_until(lambda: a.authenticated() == {c.peer_address}, message="c evicts b")
    wait_until(lambda: reason_seen(b, "preferred peer selected instead"), message="b told")


def test_a_node_told_to_connect_to_itself_drops_it(node: StellarCoreStandIn) -> None:
    ask_connect(node, node)
    wait_until(lambda: reason_seen(node, "connecting to self"), message="the self drop")
    assert node.authenticated() == set()


def test_the_same_node_key_twice_is_dropped(stack: ExitStack) -> None:
    a = stack.enter_context(StellarCoreStandIn(host="127.0.0.41", port=0))
    same = random_seed()
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.42", port=0, node_seed=same))
    c = stack.enter_context(StellarCoreStandIn(host="127.0.0.43", port=0, node_seed=same))
    ask_connect(a, b)
    wait_until(lambda: a.authenticated() == {b.peer_address}, message="a -> b")
    ask_connect(a, c)
    wait_until(lambda: reason_seen(a, "connecting already-connected peer"), message="dup drop")
    assert a.authenticated() == {b.peer_address}


def test_a_stopped_peer_leaves_the_list(stack: ExitStack) -> None:
    a = stack.enter_context(StellarCoreStandIn(host="127.0.0.44", port=0))
    b = StellarCoreStandIn(host="127.0.0.45", port=0).start()
    ask_connect(a, b)
    wait_until(lambda: a.authenticated() == {b.peer_address}, message="a -> b")
    b.stop()
    wait_until(lambda: a.authenticated() == set(), message="b gone")


# the command line


def write_config(path: Path, port: int, **extra: Any) -> Path:
    """A validator config stellar-core accepts, `extra` keys on top."""
    path.write_text(validator_config(random_seed(), http_port=port, **extra))
    return path


def http_command(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "http-command", *args],
        cwd=cwd,
        capture_output=True,
        timeout=30,
    )


def test_http_command_prints_headers_then_the_body(tmp_path: Path) -> None:
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        write_config(tmp_path / "stellar-core.cfg", node.port)
        done = http_command(tmp_path, "connect?peer=10.0.0.9&port=11625")
        assert done.returncode == 0
        body = "Connect to: 10.0.0.9:11625"
        assert done.stdout == (
            f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n\n{body}\n".encode()
        )
        assert b"Config from stellar-core.cfg" in done.stderr
        assert node.paths == ["/connect?peer%3d10%2e0%2e0%2e9%26port%3d11625"]


LOG_PREFIX = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \[default INFO\] "


def test_http_command_logs_its_config_and_quorum_set_on_stderr_only(tmp_path: Path) -> None:
    """STELLAR.md, measured on v25.2.0: `Config from FILE`, then `Using QUORUM_SET: {` (or
    `Generated QUORUM_SET: {`) and the quorum set as multi-line JSON, on stderr; stdout has
    the headers, a blank line and the body, nothing else (CommandLine.cpp getConfig, line
    578; Config.cpp processConfig, lines 2086 and 2107)."""
    other = public_key(random_seed())
    conf = tmp_path / "stellar-core.cfg"
    with StellarCoreStandIn(host="127.0.0.1", port=0) as node:
        conf.write_text(
            validator_config(random_seed(), validators={"n2": other}, http_port=node.port)
        )
        done = http_command(tmp_path, "info")
    assert done.stdout.startswith(b"Content-Length: ")
    assert b"QUORUM_SET" not in done.stdout
    expected = (
        LOG_PREFIX
        + r"Config from stellar-core\.cfg\n"
        + LOG_PREFIX
        + r'Using QUORUM_SET: \{\n   "t" : 2,\n   "v" : \[ "self", "n2" \]\n\}\n\n'
    )
    assert re.fullmatch(expected, done.stderr.decode()), done.stderr
    validators = "".join(
        f'[[VALIDATORS]]\nNAME="v{i}"\nHOME_DOMAIN="a.example"\n'
        f'PUBLIC_KEY="{public_key(random_seed())}"\nHISTORY="cp /tmp/{i}/{{0}} {{1}}"\n'
        for i in range(3)
    )
    conf.write_text(
        f'NODE_SEED="{random_seed()}"\nNODE_IS_VALIDATOR=true\nNODE_HOME_DOMAIN="a.example"\n'
        f"HTTP_PORT={free_port('127.0.0.1')}\n"
        '[[HOME_DOMAINS]]\nHOME_DOMAIN="a.example"\nQUALITY="HIGH"\n' + validators
    )
    generated = http_command(tmp_path, "info")
    log = generated.stderr.decode()
    assert generated.stdout == b""
    assert "[default INFO] Generated QUORUM_SET: {\n" in log
    assert '"t" : 3,' in log  # self and v0..v2, one domain: a simple majority of 4
    assert "[default INFO] Assigning calculated value of 1 to FAILURE_SAFETY\n" in log


# consensus as `info` shows it (STELLAR.md, "Measured on v25.2.0")


def state_of(node: StellarCoreStandIn) -> tuple[str, int, int]:
    info = json.loads(get(node, "/info")[1])["info"]
    return info["state"], info["ledger"]["num"], info["peers"]["authenticated_count"]


def three_validators(stack: ExitStack, **options: Any) -> list[StellarCoreStandIn]:
    """Three validators whose quorum set is the three of them, 2 needed."""
    seeds = [random_seed() for _ in range(3)]
    qset = QuorumSet(2, tuple(public_key(s) for s in seeds))
    names = {public_key(s): f"n{i}" for i, s in enumerate(seeds, 1)}
    hosts = [f"127.0.0.{i}" for i in (61, 62, 63)]
    return [
        stack.enter_context(
            StellarCoreStandIn(
                host=host, port=0, node_seed=seed, quorum_set=qset, names=names, **options
            )
        )
        for host, seed in zip(hosts, seeds, strict=True)
    ]


def test_synced_at_ledger_1_right_after_start_then_joining_scp_alone(stack: ExitStack) -> None:
    # Measured: ~0.1 s after start `info` says "Synced!" at ledger 1 with 0 peers, ~35 s
    # later "Joining SCP" (HerderImpl::trackingHeartBeat, CONSENSUS_STUCK_TIMEOUT_SECONDS).
    a, _, _ = three_validators(stack, start_window_seconds=1.0)
    assert state_of(a) == ("Synced!", 1, 0)
    wait_until(lambda: state_of(a)[0] == "Joining SCP", timeout=10, message="out of sync")
    assert state_of(a) == ("Joining SCP", 1, 0)
    assert StellarCoreStandIn().start_window_seconds == 35.0


def test_synced_again_once_it_meets_a_quorum_of_its_validators(stack: ExitStack) -> None:
    # Past the window, `Synced!` again once its quorum set is met (itself counts).
    a, b, c = three_validators(stack, start_window_seconds=0.5, ledger_seconds=0.2)
    wait_until(lambda: state_of(a)[0] == "Joining SCP", timeout=10, message="a out of sync")
    assert not a.quorum_met()
    ask_connect(a, b)
    wait_until(lambda: state_of(a)[0] == "Synced!", timeout=10, message="a meets a quorum")
    wait_until(lambda: state_of(a)[1] > 1, timeout=10, message="ledgers close")
    assert state_of(b)[0] == "Synced!"  # b hears from a (inbound) and itself
    assert state_of(c)[0] == "Joining SCP"  # nobody talks to c


def test_losing_the_quorum_keeps_synced_for_a_window_then_joins_scp(stack: ExitStack) -> None:
    a, b, _ = three_validators(stack, start_window_seconds=3.0, redial_seconds=60)
    ask_connect(a, b)
    wait_until(a.quorum_met, timeout=10, message="a meets a quorum")
    b.stop()
    wait_until(lambda: not a.quorum_met(), timeout=10, message="b gone")
    wait_until(lambda: state_of(a)[0] == "Joining SCP", timeout=15, message="out of sync")


def test_a_restart_with_data_kept_starts_at_its_ledger_and_redials_its_peers(
    stack: ExitStack, tmp_path: Path
) -> None:
    # Measured: peers learned by `connect` are kept in the database and dialled again
    # after a restart, which says `Synced!` at its old ledger for the start window.
    database = str(tmp_path / "stellar.db")
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.64", port=0))
    with StellarCoreStandIn(host="127.0.0.65", port=0, database=database, ledger_seconds=0.1) as a:
        ask_connect(a, b)
        wait_until(lambda: a.authenticated() == {b.peer_address}, message="a -> b")
        wait_until(lambda: a.ledger >= 3, timeout=10, message="ledgers close")
    kept = json.loads(Path(database).read_text())
    assert kept["peers"] == {b.peer_address: False}
    assert kept["ledger"] >= 3
    again = stack.enter_context(
        StellarCoreStandIn(
            host="127.0.0.65",
            port=0,
            database=database,
            redial_seconds=0.2,
            start_window_seconds=60,
            quorum_set=QuorumSet(1, (b.public_key,)),  # not met before it redials b
        )
    )
    assert state_of(again)[:2] == ("Synced!", kept["ledger"])
    wait_until(lambda: again.authenticated() == {b.peer_address}, message="redialed b")
    assert again.connects() == []  # nobody told it


def test_new_db_resets_the_database(tmp_path: Path) -> None:
    database = tmp_path / "stellar.db"
    database.write_text(json.dumps({"ledger": 40, "peers": {"127.0.0.9:11625": False}}))
    write_config(tmp_path / "stellar-core.cfg", 11626, DATABASE=f"sqlite3://{database}")
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "new-db"], cwd=tmp_path, capture_output=True, timeout=30
    )
    assert done.returncode == 0
    assert json.loads(database.read_text()) == {"ledger": 1, "peers": {}}
    in_memory = tomllib.loads(validator_config(random_seed()))
    assert node_from_config(in_memory, {}, None).database is None


def test_peers_ids_are_quorum_set_names_else_a_key_prefix_unless_fullkeys(
    stack: ExitStack,
) -> None:
    # Measured: `peers` shows "id" as the name the quorum set gives a key ("n1"), or a
    # 5-character prefix, unless fullkeys=true (Config::toShortString).
    a, b, _ = three_validators(stack)
    stranger = stack.enter_context(StellarCoreStandIn(host="127.0.0.66", port=0))
    ask_connect(a, b)
    ask_connect(a, stranger)
    wait_until(lambda: len(authenticated_out(a)) == 2, message="a -> b, stranger")
    ids = {p["address"]: p["id"] for p in peers_of(a)["authenticated_peers"]["outbound"]}
    assert ids == {b.peer_address: "n2", stranger.peer_address: stranger.public_key[:5]}
    full = peers_of(a, "?fullkeys=true")["authenticated_peers"]["outbound"]
    assert {p["id"] for p in full} == {b.public_key, stranger.public_key}
    assert json.loads(get(a, "/info")[1])["info"]["quorum"]["node"] == "n1"


def test_preferred_peer_keys_make_a_peer_preferred_by_key_in_full_slots(
    stack: ExitStack,
) -> None:
    # OverlayManagerImpl::isPreferred: PREFERRED_PEER_KEYS by key; acceptAuthenticatedPeer:
    # in full slots a preferred peer evicts a non-preferred one, a non-preferred one is
    # refused; Peer::updatePeerRecordAfterEcho keeps it as preferred in the database.
    seed = random_seed()
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.67", port=0))
    c = stack.enter_context(StellarCoreStandIn(host="127.0.0.68", port=0, node_seed=seed))
    d = stack.enter_context(StellarCoreStandIn(host="127.0.0.69", port=0))
    a = stack.enter_context(
        StellarCoreStandIn(
            host="127.0.0.70",
            port=0,
            target_peer_connections=1,
            preferred_peer_keys=[public_key(seed)],
        )
    )
    ask_connect(a, b)
    wait_until(lambda: a.authenticated() == {b.peer_address}, message="a -> b")
    ask_connect(a, c)
    wait_until(lambda: a.authenticated() == {c.peer_address}, message="c (by key) evicts b")
    wait_until(
        lambda: reason_seen(a, "preferred peer selected instead"), message="b's eviction said"
    )
    ask_connect(a, d)
    wait_until(lambda: reason_seen(a, "peer rejected"), message="d refused: slots full")
    assert a.authenticated() == {c.peer_address}
    assert a._peer_db[c.peer_address] is True


def test_standin_state_fixes_the_state(stack: ExitStack) -> None:
    fixed = stack.enter_context(StellarCoreStandIn(host=HOST, port=0, state="Catching up"))
    assert state_of(fixed)[0] == "Catching up"
    config = tomllib.loads(validator_config(random_seed(), STANDIN_STATE="Joining SCP"))
    assert node_from_config(config, {}, None).state == "Joining SCP"
    assert node_from_config(config, {"STANDIN_STATE": "Synced!"}, None).state == "Synced!"


def test_run_standalone_has_no_overlay_commands(stack: ExitStack) -> None:
    # CommandHandler.cpp line 100: connect, peers, quorum only when RUN_STANDALONE=false.
    node = stack.enter_context(StellarCoreStandIn(host=HOST, port=0, run_standalone=True))
    assert get(node, "/connect?peer=127.0.0.9&port=11625") == (404, WELCOME)
    assert get(node, "/info")[0] == 200


def test_http_command_failures_are_logged_and_exit_0(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    conf = write_config(tmp_path / "other.cfg", port)
    refused = http_command(tmp_path, "info", "--conf", str(conf))
    assert (refused.returncode, refused.stdout) == (0, b"")
    assert f"http failed(1) port: {port} command: info".encode() in refused.stderr
    with StellarCoreStandIn(host="127.0.0.1", port=port):
        unknown = http_command(tmp_path, "bogus", "--conf", str(conf))
    assert (unknown.returncode, unknown.stdout) == (0, b"")
    assert f"http failed(404) port: {port} command: bogus".encode() in unknown.stderr


def test_run_reads_the_config_and_logs_each_request(tmp_path: Path) -> None:
    port = free_port("127.0.0.46")
    seed = random_seed()
    conf = tmp_path / "stellar-core.cfg"
    conf.write_text(
        validator_config(
            seed,
            name="n1",
            http_port=port,
            peer_port=free_port("127.0.0.46"),
            STANDIN_BIND_HOST="127.0.0.46",
            STANDIN_VERSION="25.1.0",
        )
    )
    with subprocess.Popen(
        [sys.executable, "-I", str(SCRIPT), "run", "--console"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            node = StellarCoreStandIn(host="127.0.0.46", port=port)
            info = wait_until(lambda: json.loads(get(node, "/info?x=1")[1]), message="run answers")
            # Its quorum set names its key `n1`: toShortString gives the name.
            assert info["info"]["quorum"]["node"] == "n1"
            full = json.loads(get(node, "/quorum?fullkeys=true")[1])
            assert full["node"] == public_key(seed)
        finally:
            proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == ""  # stellar-core logs to the console's stderr
    assert "[default INFO] Config from stellar-core.cfg\n" in err
    assert f"{public_key(seed)[:5]} [Http INFO] /info?x=1\n" in err


def test_config_binds_the_admin_port_like_stellar_core() -> None:
    local = node_from_config(
        tomllib.loads(validator_config(random_seed(), http_port=11700)), {}, None
    )
    public = node_from_config(
        tomllib.loads(validator_config(random_seed(), PUBLIC_HTTP_PORT=True)),
        {"STANDIN_VERSION": "15.1.0"},
        None,
    )
    assert (local.host, local.port, local.peer_port) == ("127.0.0.1", 11700, 11625)
    assert (public.host, public.port, public.welcome_status) == ("0.0.0.0", 11626, 200)
    assert public.boot_answer == "state"


def test_version_and_new_db_run_without_a_node(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "version"], capture_output=True, text=True, timeout=30
    )
    assert (version.returncode, version.stdout) == (0, "v25.2.0 (standin)\n")
    write_config(tmp_path / "stellar-core.cfg", 11626)
    new_db = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "new-db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert new_db.returncode == 0
    assert "Config from stellar-core.cfg" in new_db.stderr
    missing = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "run", "--conf", str(tmp_path / "none.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1
    assert "No config file" in missing.stderr


def test_a_known_peer_name_that_does_not_resolve_is_skipped_and_the_rest_dialed(
    stack: ExitStack,
) -> None:
    """As in the example config (names of SDF's nodes, no DNS in a pod): the name is not
    dialed, the redial loop lives on, and a resolvable known peer still authenticates."""
    b = stack.enter_context(StellarCoreStandIn(host="127.0.0.32", port=0, node_seed=random_seed()))
    a = stack.enter_context(
        StellarCoreStandIn(
            host="127.0.0.31",
            port=0,
            node_seed=random_seed(),
            redial_seconds=0.2,
            known_peers=["core-testnet1.stellar.org", b.peer_address],
        )
    )
    wait_until(lambda: authenticated_out(a) == [b.peer_address], message="a -> b authenticated")
    wait_until(
        lambda: sum(1 for address, _ in a.events() if address == "core-testnet1.stellar.org") >= 2,
        message="the name skipped on two rounds",
    )
    assert any("Host not found" in what for _, what in a.events())
