"""Which expected peers a node holds, and why not, from what the node really answers."""

from __future__ import annotations

import orjson

from tests.standin import PUBNET, TESTNET, StellarCoreStandIn
from webhook import names
from webhook.core.admin_protocol import ASKED, Outcome, Result
from webhook.core.reload import connection
from webhook.core.reload.connection import Limits, PeersSeen, limits, read_peers, verdict

A, B, C = "10.0.0.2:11625", "10.0.0.3:11625", "10.0.0.4:11625"


def seen(authenticated: set[str] = set(), pending: set[str] = set(), out: int = 0) -> PeersSeen:  # noqa: B006
    return PeersSeen(frozenset(authenticated), frozenset(pending), out)


def judge(s: PeersSeen, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "expected": [A, B, C],
        "seen": s,
        "connects": {A: ASKED, B: ASKED, C: ASKED},
        "network": TESTNET,
        "peer_networks": {},
        "node_limits": Limits(),
    }
    args.update(kw)
    return verdict(**args)  # type: ignore[arg-type]


def test_read_peers_of_the_standin_null_directions_and_authenticated_objects() -> None:
    with (
        StellarCoreStandIn(host="127.0.0.1", port=0, peer_port=0) as one,
        StellarCoreStandIn(host="127.0.0.1", port=0, peer_port=0) as two,
    ):
        empty = one.answer("/peers")[2]
        assert "null" in empty
        assert read_peers(empty) == seen()
        one.answer(f"/connect?peer=127.0.0.1&port={two.peer_port}")
        deadline_polls = 200
        body = ""
        for _ in range(deadline_polls):
            body = one.answer("/peers")[2]
            if read_peers(body).authenticated:
                break
            two._stopping.wait(0.05)
        assert read_peers(body) == seen({f"127.0.0.1:{two.peer_port}"}, out=1)


def test_every_peer_connected_is_settled() -> None:
    v = judge(seen({A, B, C}, out=3))
    assert v == {"connected": 3, "expected": 3, "missing": {}, "settled": True}


def test_asked_is_not_connected() -> None:
    v = judge(seen({A}, pending={B}, out=1))
    assert v["missing"] == {B: "pending", C: "not-connected"}
    assert not v["settled"]
    assert connection.says_why(Result(Outcome.TRANSIENT, "peers-missing"), v) is False


def test_the_nodes_limits_explain_the_rest() -> None:
    other = judge(seen({A}), peer_networks={B: PUBNET, C: TESTNET})
    assert other["missing"] == {B: "other-network", C: "not-connected"}
    full = judge(seen({A, "10.9.9.9:11625"}, out=2), node_limits=Limits(target_peer_connections=2))
    assert full["missing"] == {B: "slots-full", C: "slots-full"}
    assert full["settled"]
    only = judge(seen({A}), node_limits=Limits(preferred_peers_only=True))
    assert only["missing"] == {B: "preferred-only", C: "preferred-only"}
    assert only["settled"]


def test_connect_answers_that_say_why() -> None:
    gone = Result(
        Outcome.FAILED, "exception", "Could not resolve 'x:1': Host not found (authoritative)"
    )
    later = Result(
        Outcome.FAILED,
        "exception",
        "Could not resolve 'y:1': Host not found (non-authoritative), try again later",
    )
    v = judge(seen({A}), connects={B: gone, C: later})
    assert v["missing"] == {B: "unresolvable", C: "pending"}
    assert not connection.says_why(Result(Outcome.TRANSIENT, "peers-missing"), v)
    v = judge(seen({A, C}), connects={B: gone})
    assert connection.says_why(Result(Outcome.FAILED, "peers-missing"), v)


def test_a_name_is_asked_but_not_verifiable() -> None:
    v = judge(seen({A, B}), expected=[A, B, "core.example.org:11625"])
    assert v["missing"] == {"core.example.org:11625": "by-name"}
    assert v["settled"]


def test_limits_read_from_the_pods_annotations() -> None:
    assert limits({}) == Limits(8, False)
    declared = {
        names.TARGET_PEER_CONNECTIONS_ANNOTATION: "3",
        names.PREFERRED_PEERS_ONLY_ANNOTATION: "True",
    }
    assert limits(declared) == Limits(3, True)
    assert limits({names.TARGET_PEER_CONNECTIONS_ANNOTATION: "x"}).target_peer_connections == 8


def test_status_annotation_names_ports_counts_and_reasons_and_stays_small() -> None:
    expected = [f"10.1.{i // 250}.{i % 250}:11625" for i in range(100)]
    v = judge(seen(), expected=expected, connects={})
    doc = orjson.loads(
        connection.status_annotation(v, hash="sha256:x", http_port=11626, peer_port=11625)
    )
    assert doc["ports"] == {"http": 11626, "peer": 11625}
    assert (doc["connected"], doc["expected"], doc["settled"]) == (0, 100, False)
    assert len(doc["missing"]) == connection.MAX_LISTED
    assert doc["moreMissing"] == 84
    assert doc["missing"][0] == {"peer": expected[0], "reason": "not-connected"}


def test_state_counts_use_only_the_bounded_states() -> None:
    counts = connection.state_counts(judge(seen({A}), peer_networks={B: PUBNET}))
    assert set(counts) == set(connection.STATES)
    assert (counts["connected"], counts["other-network"], counts["not-connected"]) == (1, 1, 1)
