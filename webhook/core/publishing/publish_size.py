"""Which keys go into which `stellar-peers` ConfigMap, given their sizes.

A ConfigMap holds at most 1 MiB, and `peers.json` is most of the bytes (about
160 a peer, where `peers.txt` takes 17). Pods read `peers.txt` and the
per-network files, never `peers.json`, so the mirrors leave it out once it
passes 512 KiB; the canonical ConfigMap keeps the full detail, in binaryData
as gzip (`peers.json.gz`) once the plain keys pass 1 MiB. Only a set that does
not fit even then is not published (the last good one stays). No I/O here.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook import names
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing.publish import configmap_body, encoded_size

Mode = Literal["full", "lean-mirrors", "compressed"]


@dataclass(frozen=True)
class Content:
    """One ConfigMap's keys: `data`, and `binary_data` base64-encoded as the API carries it."""

    data: Mapping[str, str]
    binary_data: Mapping[str, str] = field(default_factory=dict)
    size: int = 0  # bytes counted against the 1 MiB limit


@dataclass(frozen=True)
class Layout:
    """The canonical ConfigMap's content and the mirrors'; None for both when even the
    compressed canonical one does not fit."""

    canonical: Content | None
    mirror: Content | None
    mode: Mode
    json_bytes: int  # the plain `peers.json`
    full_bytes: int  # every key in plain text, as the canonical one holds them below 1 MiB
    compressed_bytes: int = 0  # the same with `peers.json` gzipped; 0 when not needed


def layout(
    data: Mapping[str, str],
    *,
    limit: int = names.CONFIGMAP_MAX_BYTES,
    mirror_json_limit: int = names.MIRROR_JSON_MAX_BYTES,
) -> Layout:
    """Where `render(peers)`'s keys go (see the module doc)."""
    json_text = data.get(names.KEY_JSON, "")
    json_bytes = len(json_text.encode())
    full_bytes = encoded_size(data)
    lean = {k: v for k, v in data.items() if k != names.KEY_JSON}
    lean_bytes = encoded_size(lean)
    if full_bytes <= limit:
        canonical = Content(data=dict(data), size=full_bytes)
        if json_bytes <= mirror_json_limit:
            return Layout(canonical, canonical, "full", json_bytes, full_bytes)
        return Layout(
            canonical, Content(data=lean, size=lean_bytes), "lean-mirrors", json_bytes, full_bytes
        )
    packed = gzip.compress(json_text.encode(), compresslevel=6, mtime=0)
    size = encoded_size(lean, {names.KEY_JSON_GZ: packed})
    if size > limit:
        return Layout(None, None, "compressed", json_bytes, full_bytes, size)
    binary = {names.KEY_JSON_GZ: base64.b64encode(packed).decode()}
    return Layout(
        Content(data=lean, binary_data=binary, size=size),
        Content(data=lean, size=lean_bytes),
        "compressed",
        json_bytes,
        full_bytes,
        size,
    )


def configmap_bodies(
    peers: PeerSet, shaped: Layout, *, canonical: str
) -> dict[str, dict[str, Any]]:
    """The ConfigMap to write, by kind (`canonical`, `mirror`; none when nothing fits)."""
    contents = {"canonical": shaped.canonical, "mirror": shaped.mirror}
    return {
        kind: configmap_body(
            peers,
            name=names.CONFIGMAP_NAME,
            namespace="",
            annotations={names.CANONICAL_ANNOTATION: canonical},
            data=content.data,
            binary_data=content.binary_data,
        )
        for kind, content in contents.items()
        if content is not None
    }


@dataclass(frozen=True)
class Notice:
    """What to tell an operator when the layout changes: an Event and a log line."""

    reason: str
    event_type: Literal["Normal", "Warning"]
    message: str


def notice(previous: Mode, current: Layout, *, canonical: str) -> Notice | None:
    """The Event for a change of mode (none when the mode stays, or the set did not fit:
    that has its own `PeerSetTooLarge`)."""
    if current.canonical is None or current.mode == previous:
        return None
    kib = current.json_bytes // 1024
    if current.mode == "full":
        return Notice(
            "PeersJsonRestored",
            "Normal",
            f"peers.json ({kib} KiB) fits again: the canonical ConfigMap {canonical} and every "
            "mirror hold it as plain data",
        )
    mirrors = (
        f"mirrors in the enabled namespaces leave peers.json ({kib} KiB) out; pods read "
        "peers.txt and the per-network files, which every mirror keeps"
    )
    if current.mode == "lean-mirrors":
        return Notice(
            "PeersJsonCanonicalOnly",
            "Normal",
            f"peers.json passed {names.MIRROR_JSON_MAX_BYTES // 1024} KiB: {mirrors}; scripts "
            f"that read peers.json read it from {canonical}",
        )
    namespace, _, name = canonical.partition("/")
    read = (
        f"kubectl -n {namespace} get configmap {name} "
        "-o jsonpath='{.binaryData.peers\\.json\\.gz}' | base64 -d | gunzip"
    )
    return Notice(
        "PeersJsonCompressed",
        "Warning",
        f"the peer set takes {current.full_bytes} bytes in plain text, over the 1 MiB ConfigMap "
        f"limit: {canonical} now holds peers.json gzip-compressed in binaryData key "
        f"{names.KEY_JSON_GZ} (the ConfigMap now takes {current.compressed_bytes} bytes) "
        f"and has no plain peers.json key; read it with: {read}. The {mirrors}",
    )
