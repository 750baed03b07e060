"""What the reload controller remembers of each node: one record per pod, pruned in one place."""

from __future__ import annotations

import dataclasses

from webhook.core.admin_protocol import Outcome, Result
from webhook.core.peerset.peers import PeerSet
from webhook.core.reload import connection
from webhook.core.reload.connection import PeersSeen
from webhook.core.reload.reload_plan import NodeOutcome, NodePlan, Observation
from webhook.core.reload.reload_state import ReloadState

PUBNET = "Public Global Stellar Network ; September 2015"
TESTNET = "Test SDF Network ; September 2015"


def plan(uid: str, ip: str, *, digest: str = "sha256:a", current: bool = False) -> NodePlan:
    return NodePlan(
        namespace="ns",
        name=f"pod-{uid}",
        uid=uid,
        ip=ip,
        http_port=11626,
        peer_port=11625,
        container="stellar-core",
        conf="",
        mode="http",
        hash=digest,
        owner=None,
        current=current,
        rolled_out=False,
    )


def failed(node: NodePlan) -> NodeOutcome:
    """A node that says why it lacks a peer (its slots are full)."""
    verdict = {"connected": 0, "expected": 1, "missing": {"x": "slots-full"}, "settled": False}
    return NodeOutcome(node, Result(Outcome.FAILED, "peers-missing"), 0, verdict)


def test_a_pod_gone_from_the_round_leaves_nothing_behind() -> None:
    state = ReloadState()
    a, b = plan("a", "10.0.0.1"), plan("b", "10.0.0.2")
    state.begin([a, b], PeerSet(()))
    state.node(a).told.add("10.0.0.2:11625")
    state.reported(NodeOutcome(a, Result(Outcome.SUCCESS, "connected")))
    assert state.is_done(a)
    assert state.begin([b], PeerSet(())) == {"b"}
    assert not state.is_done(a)
    assert state.node(a).told == set()  # a fresh record: the old one was dropped


def test_a_node_that_says_why_is_given_up_after_some_rounds_per_hash() -> None:
    state = ReloadState()
    a = plan("a", "10.0.0.1")
    for _ in range(connection.GIVE_UP_ROUNDS):
        assert not state.gave_up(a)
        state.begin([a], PeerSet(()))
        state.judged(failed(a))
    assert state.gave_up(a)
    newer = dataclasses.replace(a, hash="sha256:b")
    assert not state.gave_up(newer)  # a new set is asked again
    state.judged(failed(newer))
    assert state.node(newer).rounds == 1


def test_the_network_a_pod_answered_is_forgotten_when_its_ip_changes() -> None:
    state = ReloadState()
    a, b = plan("a", "10.0.0.1"), plan("b", "10.0.0.2")
    state.begin([a, b], PeerSet(()))
    state.learned(a, PUBNET)
    state.learned(b, TESTNET)
    seen = PeersSeen(frozenset(), frozenset(), 0)
    judged = state.judge(
        Observation(b, Result(Outcome.SUCCESS, "listed"), seen, ("10.0.0.1:11625",))
    )
    assert judged.verdict is not None
    assert judged.verdict["missing"] == {"10.0.0.1:11625": "other-network"}
    moved = dataclasses.replace(a, ip="10.0.0.9")
    state.begin([moved, b], PeerSet(()))
    assert not state.network_known(moved)
    assert state.network_known(b)


def test_the_nodes_already_current_are_done_and_counted_behind_otherwise() -> None:
    state = ReloadState()
    a, b = plan("a", "10.0.0.1", current=True), plan("b", "10.0.0.2")
    state.begin([a, b], PeerSet(()))
    assert state.is_done(a)
    assert not state.is_done(b)
    assert state.behind([a, b]) == 1
