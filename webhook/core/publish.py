"""Publishing: the `stellar-peers` ConfigMap's content and ownership.

`render` is the data DESIGN.md describes byte for byte; `configmap_body` the
whole object; `content_digest` and `is_owned` what the publisher compares. No I/O here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from webhook import names
from webhook.core import networks
from webhook.core.peers import Peer, PeerSet
from webhook.core.pod import as_dict

Obj = Mapping[str, Any]
# The data keys this injector writes; any other key in the ConfigMap belongs to someone else.
DATA_KEYS = (names.KEY_JSON, names.KEY_TXT, names.KEY_CSV, names.KEY_COUNT, names.KEY_KNOWN_PEERS)


def content_digest(configmap: Obj) -> str:
    """What we compare to decide whether a `stellar-peers` ConfigMap needs a write."""
    metadata = as_dict(configmap.get("metadata"))
    data = as_dict(configmap.get("data"))
    content = {
        # Only our keys: a key another writer added is theirs, kept and never fought over.
        "data": {key: data[key] for key in DATA_KEYS if key in data},
        "hash": as_dict(metadata.get("annotations")).get(names.PEERS_HASH_ANNOTATION),
        "owned": is_owned(configmap),
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def is_owned(configmap: Obj) -> bool:
    """Ours when it carries every owner label: anything else named stellar-peers is left alone."""
    labels = as_dict(as_dict(configmap.get("metadata")).get("labels"))
    return all(labels.get(k) == v for k, v in names.OWNER_LABELS.items())


def render(peers: PeerSet) -> dict[str, str]:
    """The ConfigMap's data, byte for byte as DESIGN.md describes it."""
    ordered = sorted(peers.peers, key=lambda p: (p.namespace, p.name))
    entries = [_entry(p) for p in ordered]
    # With more than one network the unqualified keys would mix them: they stay empty.
    whole = peers if networks.single(peers) else PeerSet(())
    strings = whole.strings
    return {
        names.KEY_JSON: orjson.dumps(entries).decode(),
        names.KEY_TXT: whole.text,
        names.KEY_CSV: ",".join(strings),
        names.KEY_COUNT: str(len(strings)),
        names.KEY_KNOWN_PEERS: networks.known_peers_cfg(strings),
        **networks.render_networks(peers),
    }


def _entry(p: Peer) -> dict[str, Any]:
    """One `peers.json` entry; `network` and `publicKey` only once known."""
    entry: dict[str, Any] = {
        "name": p.name,
        "namespace": p.namespace,
        "nodeType": p.node_type,
        "ip": p.ip,
        "port": p.port,
        "peerString": p.peer_string,
        "source": p.source,
    }
    if p.network:
        entry["network"] = p.network
    if p.public_key:
        entry["publicKey"] = p.public_key
    return entry


def configmap_body(
    peers: PeerSet, *, name: str, namespace: str, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The whole ConfigMap we write: owner labels, the hash annotation, the rendered data."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(names.OWNER_LABELS),
            "annotations": {**(annotations or {}), names.PEERS_HASH_ANNOTATION: peers.hash},
        },
        "data": render(peers),
    }


def encoded_size(data: Mapping[str, str]) -> int:
    """Bytes the API server counts against a ConfigMap's 1 MiB limit (keys plus values)."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
