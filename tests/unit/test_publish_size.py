"""ConfigMap keys by size: mirrors without peers.json past 512 KiB, the canonical one with
it gzipped past 1 MiB, nothing new past that; and which keys a write keeps or drops."""

from __future__ import annotations

import base64
import dataclasses
import gzip
from typing import Any

import orjson

from webhook import names
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.publishing.publish import (
    configmap_body,
    content_digest,
    is_our_key,
    merged,
    render,
)
from webhook.core.publishing.publish_plan import plan, with_own_writes
from webhook.core.publishing.publish_size import Layout, layout, notice
from webhook.core.publishing.watched import KIND_CONFIGMAP, trim

CANONICAL = "stellar-system/stellar-peers"


def peers(count: int, *, network: str = "") -> PeerSet:
    return PeerSet(
        peers=tuple(
            Peer(
                "bench-0123456789",
                f"validator-{i:05d}",
                "validator",
                f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                11625,
                "pod",
                network=network,
            )
            for i in range(count)
        )
    )


def gunzip(content_b64: str) -> bytes:
    return gzip.decompress(base64.b64decode(content_b64))


def test_a_small_set_is_written_whole_everywhere() -> None:
    data = render(peers(10))
    shaped = layout(data)
    assert shaped.mode == "full"
    assert shaped.canonical is not None
    assert shaped.canonical.data == data
    assert shaped.mirror == shaped.canonical
    assert not shaped.canonical.binary_data


def test_mirrors_drop_peers_json_past_its_limit_and_keep_the_rest() -> None:
    data = render(peers(40, network="testnet"))
    json_bytes = len(data[names.KEY_JSON])
    shaped = layout(data, mirror_json_limit=json_bytes - 1)
    assert shaped.mode == "lean-mirrors"
    assert shaped.canonical is not None
    assert shaped.canonical.data == data
    assert shaped.mirror is not None
    assert names.KEY_JSON not in shaped.mirror.data
    assert shaped.mirror.data == {k: v for k, v in data.items() if k != names.KEY_JSON}
    assert "peers-testnet.txt" in shaped.mirror.data
    # At the limit itself it stays.
    assert layout(data, mirror_json_limit=json_bytes).mode == "full"


def test_past_the_limit_the_canonical_holds_peers_json_gzipped() -> None:
    data = render(peers(40))
    plain = sum(len(k) + len(v) for k, v in data.items())
    shaped = layout(data, limit=plain - 1)
    assert shaped.mode == "compressed"
    assert shaped.canonical is not None
    assert shaped.mirror is not None
    assert names.KEY_JSON not in shaped.canonical.data
    assert names.KEY_TXT in shaped.canonical.data
    restored = orjson.loads(gunzip(shaped.canonical.binary_data[names.KEY_JSON_GZ]))
    assert restored == orjson.loads(data[names.KEY_JSON])
    assert restored[0]["peerString"] == "10.0.0.0:11625"
    assert shaped.compressed_bytes == shaped.canonical.size < plain
    assert names.KEY_JSON not in shaped.mirror.data
    assert not shaped.mirror.binary_data


def test_the_gzip_is_the_same_for_the_same_set() -> None:
    data = render(peers(40))
    first, again = layout(data, limit=100), layout(data, limit=100)
    assert first.canonical is None  # 100 bytes is too small even compressed
    small = sum(len(k) + len(v) for k, v in data.items()) - 1
    assert layout(data, limit=small).canonical == layout(data, limit=small).canonical
    assert again == first


def test_a_set_that_does_not_fit_even_compressed_is_not_laid_out() -> None:
    shaped = layout(render(peers(40)), limit=100)
    assert shaped.canonical is None
    assert shaped.mirror is None
    assert shaped.compressed_bytes > 100


def test_five_thousand_peers_fit_with_room_to_spare() -> None:
    data = render(peers(5000))
    shaped = layout(data)
    assert shaped.full_bytes > names.CONFIGMAP_MAX_BYTES  # did not fit before
    assert shaped.mode == "compressed"
    assert shaped.compressed_bytes < names.CONFIGMAP_MAX_BYTES // 2
    assert shaped.mirror is not None
    assert shaped.mirror.size < names.CONFIGMAP_MAX_BYTES // 3


def test_the_limit_moves_to_about_sixteen_thousand_peers() -> None:
    # The figures docs/reference.md gives: lean mirrors from ~3,300, compressed from ~4,900.
    assert layout(render(peers(3250))).mode == "full"
    assert layout(render(peers(4850))).mode == "lean-mirrors"
    assert layout(render(peers(16000))).canonical is not None
    assert layout(render(peers(16500))).canonical is None


def test_three_and_a_half_thousand_peers_keep_peers_json_in_the_canonical_only() -> None:
    shaped = layout(render(peers(3500)))
    assert shaped.json_bytes > names.MIRROR_JSON_MAX_BYTES
    assert shaped.mode == "lean-mirrors"


def at(mode: str) -> Layout:
    data = render(peers(40))
    plain = sum(len(k) + len(v) for k, v in data.items())
    limits = {
        "full": {},
        "lean-mirrors": {"mirror_json_limit": 10},
        "compressed": {"limit": plain - 1},
    }[mode]
    shaped = layout(data, **limits)
    assert shaped.mode == mode
    return shaped


def test_every_change_of_layout_is_told_once() -> None:
    assert notice("full", at("full"), canonical=CANONICAL) is None
    assert notice("compressed", at("compressed"), canonical=CANONICAL) is None
    lean = notice("full", at("lean-mirrors"), canonical=CANONICAL)
    assert lean is not None
    assert lean.reason == "PeersJsonCanonicalOnly"
    assert "peers.txt" in lean.message
    assert CANONICAL in lean.message
    packed = notice("lean-mirrors", at("compressed"), canonical=CANONICAL)
    assert packed is not None
    assert packed.event_type == "Warning"
    assert packed.reason == "PeersJsonCompressed"
    # Says where the list went and how to read it.
    assert "binaryData key peers.json.gz" in packed.message
    assert "kubectl -n stellar-system get configmap stellar-peers" in packed.message
    assert "gunzip" in packed.message
    back = notice("compressed", at("full"), canonical=CANONICAL)
    assert back is not None
    assert back.reason == "PeersJsonRestored"
    unfit = dataclasses.replace(at("compressed"), canonical=None, mirror=None)
    assert notice("full", unfit, canonical=CANONICAL) is None  # PeerSetTooLarge says it


def test_per_network_keys_are_ours_and_others_are_not() -> None:
    assert is_our_key("peers.json")
    assert is_our_key("peers-testnet.txt")
    assert is_our_key("validators-net-0a1b2c3d.cfg")
    assert is_our_key("peer_count-pubnet")
    assert not is_our_key("notes.txt")
    assert not is_our_key("peers-.txt")
    assert not is_our_key("peers-Testnet.txt")


def test_a_write_drops_keys_of_ours_the_set_no_longer_has_and_keeps_theirs() -> None:
    current: dict[str, Any] = {
        "data": {
            "peers.json": "[]",
            "peers-gone.txt": "1.1.1.1:1\n",
            "notes.txt": "theirs",
        },
        "binaryData": {"peers.json.gz": "AAAA", "theirs.bin": "QUJD"},
    }
    body = {"data": {"peers.txt": "2.2.2.2:2\n"}}
    assert merged(current, body) == {
        "data": {"notes.txt": "theirs", "peers.txt": "2.2.2.2:2\n"},
        "binaryData": {"theirs.bin": "QUJD"},
    }
    packed = {"data": {"peers.txt": ""}, "binaryData": {"peers.json.gz": "H4sI"}}
    assert merged(current, packed)["binaryData"] == {"theirs.bin": "QUJD", "peers.json.gz": "H4sI"}


def test_the_digest_sees_per_network_keys_and_our_binary_data() -> None:
    body = configmap_body(peers(3, network="testnet"), name="stellar-peers", namespace="ns")
    other_domain = {**body, "data": {**body["data"], "validators-testnet.cfg": "changed"}}
    assert content_digest(other_domain) != content_digest(body)
    packed = {**body, "binaryData": {"peers.json.gz": "H4sI"}}
    assert content_digest(packed) != content_digest(body)
    theirs = {**body, "data": {**body["data"], "notes.txt": "x"}, "binaryData": {"b": "QQ=="}}
    assert content_digest(theirs) == content_digest(body)
    # The watched copy keeps only other writers' keys, and the digest of the whole.
    trimmed = trim({**packed, "metadata": {**body["metadata"], "uid": "u"}}, kind=KIND_CONFIGMAP)
    assert trimmed["digest"] == content_digest(packed)
    assert "binaryData" not in trimmed
    assert trimmed["data"] == {}


def test_mirrors_are_planned_against_their_own_digest() -> None:
    def observed(namespace: str, digest: str) -> dict[str, Any]:
        metadata = {"name": "stellar-peers", "namespace": namespace, "uid": namespace}
        return {"metadata": {**metadata, "labels": dict(names.OWNER_LABELS)}, "digest": digest}

    state = {
        (KIND_CONFIGMAP, "stellar-system", "stellar-peers"): observed("stellar-system", "c"),
        (KIND_CONFIGMAP, "a", "stellar-peers"): observed("a", "m"),
        (KIND_CONFIGMAP, "b", "stellar-peers"): observed("b", "c"),
    }
    steps = plan(
        state,
        desired_digest="c",
        mirror_digest="m",
        system_namespace="stellar-system",
        enabled=["a", "b"],
        canonical=CANONICAL,
    )
    assert [(s.verb, s.namespace) for s in steps] == [("write", "b")]


def test_a_write_the_watch_has_not_echoed_yet_is_not_planned_again() -> None:
    def seen(version: str, digest: str) -> dict[str, Any]:
        metadata = {"name": "stellar-peers", "namespace": "a", "resourceVersion": version}
        return {"metadata": {**metadata, "labels": dict(names.OWNER_LABELS)}, "digest": digest}

    key = (KIND_CONFIGMAP, "a", "stellar-peers")
    written = {"a": ("1", seen("2", "new"))}

    def steps(state: dict[Any, Any]) -> list[tuple[str, str]]:
        overlaid, _ = with_own_writes(state, written)
        planned = plan(
            overlaid,
            desired_digest="new",
            system_namespace="a",
            enabled=["b"],
            canonical=CANONICAL,
        )
        return [(s.verb, s.namespace) for s in planned]

    # The watch still shows what our write replaced.
    assert steps({key: seen("1", "old")}) == [("write", "b")]
    assert with_own_writes({key: seen("1", "old")}, written)[1] == {"a"}
    # It caught up, or someone else wrote since: the watch wins.
    assert steps({key: seen("2", "new")}) == [("write", "b")]
    assert steps({key: seen("3", "theirs")}) == [("write", "a"), ("write", "b")]
    assert with_own_writes({key: seen("3", "theirs")}, written)[1] == set()
    # Deleted since (the watch shows none): written again.
    assert steps({}) == [("write", "a"), ("write", "b")]
