"""The reload benchmark's stand-ins answer as `tests.standin` does and keep its slot rules."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.bench.standins import HANDSHAKE_SECONDS, ModelStandIn, mesh

TARGET = 2


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def fleet(
    loop: asyncio.AbstractEventLoop, count: int, *, target: int = TARGET, first: int = 1
) -> list[ModelStandIn]:
    by_address: dict[str, ModelStandIn] = {}
    nodes = []
    for index in range(count):
        node = ModelStandIn(
            loop=loop,
            nodes=by_address,
            log=[],
            asked=Counter(),
            lock=threading.Lock(),
            host=f"127.0.1.{index + first}",
            port=21626,
            peer_port=11625,
            target_peer_connections=target,
            max_additional_peer_connections=target,
        ).start()
        by_address[node.peer_address] = node
        nodes.append(node)
    mesh(nodes, target)
    return nodes


def peers(node: ModelStandIn) -> dict[str, dict[str, object]]:
    status, content_type, body = node.answer("/peers")
    assert (status, content_type) == (200, "application/json")
    assert '"authenticated_peers" : {' in body  # jsoncpp's styled writer, not compact JSON
    return dict(json.loads(body))


def settle(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(HANDSHAKE_SECONDS * 20))


def addresses(listed: object) -> list[str]:
    assert isinstance(listed, list)
    return sorted(str(entry["address"]) for entry in listed)


def test_the_mesh_takes_every_slot_and_lists_peers_as_stellar_core(
    loop: asyncio.AbstractEventLoop,
) -> None:
    nodes = fleet(loop, 6)
    answer = peers(nodes[0])
    authenticated = answer["authenticated_peers"]
    assert addresses(authenticated["outbound"]) == ["127.0.1.2:11625", "127.0.1.3:11625"]
    assert addresses(authenticated["inbound"]) == ["127.0.1.5:11625", "127.0.1.6:11625"]
    entry = authenticated["outbound"][0]  # type: ignore[index]
    assert set(entry) == {"address", "elapsed", "flow_control", "id", "latency", "olver", "ver"}
    assert len(entry["id"]) == 5
    assert answer["pending_peers"] == {"inbound": None, "outbound": None}


def test_connect_answers_before_dialing_and_a_full_node_refuses_at_authentication(
    loop: asyncio.AbstractEventLoop,
) -> None:
    nodes = fleet(loop, 6)
    status, _, body = nodes[0].answer("/connect?peer=127.0.1.4&port=11625")
    assert (status, body) == (200, "Connect to: 127.0.1.4:11625")
    loop.run_until_complete(asyncio.sleep(0))  # the dial starts: pending, not authenticated
    assert peers(nodes[0])["pending_peers"]["outbound"] == ["127.0.1.4:11625"]
    settle(loop)
    assert "127.0.1.4:11625" not in nodes[0].authenticated()
    # Node 4's inbound slots are taken (by nodes 2 and 3): it refuses, node 1 is told.
    assert ("127.0.1.4:11625", "dropped by remote: peer rejected") in nodes[0].events()
    assert peers(nodes[0])["pending_peers"]["outbound"] is None


def test_a_node_with_free_slots_authenticates_and_nobody_listening_is_unreachable(
    loop: asyncio.AbstractEventLoop,
) -> None:
    nodes = fleet(loop, 2, target=2)  # one link each way: a slot left in both directions
    extra = fleet(loop, 1, target=2, first=3)[0]
    nodes[0]._nodes[extra.peer_address] = extra
    extra._nodes.update(nodes[0]._nodes)
    nodes[0].answer(f"/connect?peer={extra.host}&port=11625")
    nodes[0].answer("/connect?peer=127.0.2.1&port=11625")
    settle(loop)
    assert extra.peer_address in nodes[0].authenticated()
    assert nodes[0].peer_address in extra.authenticated()
    assert any(
        address == "127.0.2.1:11625" and why.startswith("unreachable")
        for address, why in nodes[0].events()
    )


def test_a_connect_without_port_is_answered_as_stellar_core_does(
    loop: asyncio.AbstractEventLoop,
) -> None:
    node = fleet(loop, 3)[0]
    status, _, body = node.answer("/connect?peer=127.0.1.2")
    assert status == 200
    assert body.startswith("Must specify a peer and port")
    assert node.answer("/nonsense")[0] == 404
