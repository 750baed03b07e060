"""Publishing: the `stellar-peers` ConfigMap's content and ownership.

`render` is the data DESIGN.md describes byte for byte; `configmap_body` the
whole object; `content_digest` and `is_owned` what the publisher compares. No I/O here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from webhook import names
from webhook.address import DNS_LABEL_PATTERN
from webhook.core.peerset import networks
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.pod import as_dict

Obj = Mapping[str, Any]
# The data keys this injector writes; any other key in the ConfigMap belongs to someone else.
DATA_KEYS = (names.KEY_JSON, names.KEY_TXT, names.KEY_CSV, names.KEY_COUNT, names.KEY_KNOWN_PEERS)
# binaryData keys of ours: `peers.json` compressed, when the plain one does not fit.
BINARY_KEYS = (names.KEY_JSON_GZ,)
# The per-network keys (`peers-testnet.txt`, ...), one pattern for all of them.
_NETWORK_KEY = re.compile(
    "|".join(
        re.escape(template).replace(re.escape("{}"), DNS_LABEL_PATTERN)
        for template in (
            names.KEY_NETWORK_TXT,
            names.KEY_NETWORK_CSV,
            names.KEY_NETWORK_COUNT,
            names.KEY_NETWORK_KNOWN_PEERS,
            names.KEY_NETWORK_PREFERRED_KEYS,
            names.KEY_NETWORK_VALIDATORS,
        )
    )
)


def is_our_key(key: str) -> bool:
    """A data key this injector writes (DATA_KEYS and the per-network ones): ours are
    replaced or dropped as the set asks; any other key belongs to someone else."""
    return key in DATA_KEYS or _NETWORK_KEY.fullmatch(key) is not None


def theirs(configmap: Obj) -> dict[str, dict[str, Any]]:
    """The data and binaryData keys other writers added: kept on every write of ours."""
    data = as_dict(configmap.get("data"))
    binary = as_dict(configmap.get("binaryData"))
    return {
        "data": {k: v for k, v in data.items() if not is_our_key(k)},
        "binaryData": {k: v for k, v in binary.items() if k not in BINARY_KEYS},
    }


def content_digest(configmap: Obj) -> str:
    """What we compare to decide whether a `stellar-peers` ConfigMap needs a write."""
    metadata = as_dict(configmap.get("metadata"))
    data = as_dict(configmap.get("data"))
    binary = as_dict(configmap.get("binaryData"))
    content = {
        # Only our keys: a key another writer added is theirs, kept and never fought over.
        "data": {key: value for key, value in data.items() if is_our_key(key)},
        "binaryData": {key: binary[key] for key in BINARY_KEYS if key in binary},
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
    if p.advertised:
        entry["advertised"] = p.advertised
    if p.cluster:
        entry["cluster"] = p.cluster
    return entry


def configmap_body(
    peers: PeerSet,
    *,
    name: str,
    namespace: str,
    annotations: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    binary_data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole ConfigMap we write: owner labels, the hash annotation, the data
    (`render(peers)` unless a size layout, `publish_size`, chose other keys)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(names.OWNER_LABELS),
            "annotations": {**(annotations or {}), names.PEERS_HASH_ANNOTATION: peers.hash},
        },
        "data": dict(render(peers) if data is None else data),
    }
    if binary_data:
        body["binaryData"] = dict(binary_data)
    return body


def merged(current: Obj, body: Obj) -> dict[str, dict[str, Any]]:
    """The data and binaryData of a replace: other writers' keys as they are, ours as
    `body` has them (a key of ours `body` lacks, such as `peers.json` once it moved to
    `peers.json.gz`, is dropped)."""
    kept = theirs(current)
    return {
        "data": {**kept["data"], **as_dict(body.get("data"))},
        "binaryData": {**kept["binaryData"], **as_dict(body.get("binaryData"))},
    }


def encoded_size(data: Mapping[str, str], binary: Mapping[str, bytes] | None = None) -> int:
    """Bytes the API server counts against a ConfigMap's 1 MiB limit: the values (binary
    ones decoded), and the keys too, to be on the safe side."""
    text = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    return text + sum(len(k.encode()) + len(v) for k, v in (binary or {}).items())
