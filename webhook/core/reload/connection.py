"""Whether a node holds the peers it should, and why not where it tells: pure.

`Connect to:` only means the node took the address. A peer is *connected* once the
node's `peers` lists it under `authenticated_peers` (at its listening port). After
the `connect`s and a bounded wait, `verdict` takes what the node said (its `peers`,
its `info.network`, each `connect` answer) and the limits the pod declares, and
names a reason for every expected peer that is not connected:

- `other-network`: the peer's node reports another `info.network` (they never connect);
- `preferred-only`: the pod says `stellar.org/preferred-peers-only: "true"`;
- `slots-full`: the node holds `TARGET_PEER_CONNECTIONS` authenticated outbound peers
  (the pod's `stellar.org/target-peer-connections`, else stellar-core's 8);
- `by-name`: a DNS-name peer, which `peers` lists by IP: asked, not verifiable;
- `unresolvable`: the node could not resolve the name (authoritative);
- `connect-failed`: `connect` answered something else that is not "asked";
- `pending`: still dialing at the end of the wait, or the name did not resolve *for
  now* (ask again later);
- `not-connected`: dialed and gone, the node does not say why.

The first four are limits of the node: with only those missing the node is up to
date (`settled`), and gets `stellar.org/peers-observed-hash`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from webhook import names
from webhook.core import admin_protocol
from webhook.core.admin_protocol import Outcome, Result

DEFAULT_TARGET_PEER_CONNECTIONS = 8  # stellar-core's Config.cpp
EXPLAINED = ("other-network", "preferred-only", "slots-full", "by-name")
REASONS = (*EXPLAINED, "unresolvable", "connect-failed", "pending", "not-connected")
# Every value of the `state` label of `stellar_peer_connections`: bounded.
STATES = ("connected", *REASONS)
MAX_LISTED = 16  # missing peers named in the status annotation; the rest are counted
GIVE_UP_ROUNDS = 5  # rounds a node that says why is asked per peer set


@dataclass(frozen=True)
class Limits:
    """What the pod declares of its node's config (stellar-core does not expose it)."""

    target_peer_connections: int = DEFAULT_TARGET_PEER_CONNECTIONS
    preferred_peers_only: bool = False


def limits(annotations: Mapping[str, Any]) -> Limits:
    raw = str(annotations.get(names.TARGET_PEER_CONNECTIONS_ANNOTATION, "")).strip()
    target = int(raw) if raw.isascii() and raw.isdigit() else DEFAULT_TARGET_PEER_CONNECTIONS
    only = str(annotations.get(names.PREFERRED_PEERS_ONLY_ANNOTATION, "")).strip().lower()
    return Limits(target_peer_connections=target, preferred_peers_only=only == "true")


@dataclass(frozen=True)
class PeersSeen:
    """A node's `peers` answer: who is authenticated, who is pending."""

    authenticated: frozenset[str]
    pending: frozenset[str]
    outbound_authenticated: int


def read_peers(body: str) -> PeersSeen:
    """`peers` taken apart; AnswerError when the body is not a `peers` answer."""
    authenticated = admin_protocol.authenticated_addresses(body)
    everyone = admin_protocol.parse_peers(body)
    obj = orjson.loads(body)
    groups = obj.get("authenticated_peers") if isinstance(obj, dict) else None
    outbound = groups.get("outbound") if isinstance(groups, dict) else None
    return PeersSeen(
        authenticated=frozenset(authenticated),
        pending=frozenset(everyone - authenticated),
        outbound_authenticated=len(outbound) if isinstance(outbound, list) else 0,
    )


def is_name(host: str) -> bool:
    return admin_protocol.is_peer_host(host) and not host.replace(".", "").isdigit()


def connect_reason(result: Result) -> str | None:
    """Why a `connect` answer means the peer will not come, or None (asked, or later)."""
    if result.ok or result.transient:
        return None
    if result.reason == "exception" and "resolve" in result.detail:
        if "try again later" in result.detail:
            return "pending"  # (non-authoritative): the name may resolve next time
        return "unresolvable"
    return "connect-failed"


def verdict(
    *,
    expected: Iterable[str],
    seen: PeersSeen,
    connects: Mapping[str, Result],
    network: str,
    peer_networks: Mapping[str, str],
    node_limits: Limits,
) -> dict[str, Any]:
    """`{connected, expected, missing: {peer: reason}, settled}` for one node.

    `expected` are `host:port` strings (itself left out); `peer_networks` maps a peer
    address to its node's `info.network`, where known.
    """
    missing: dict[str, str] = {}
    wanted = sorted(set(expected))
    for address in wanted:
        if address in seen.authenticated:
            continue
        host = address.rpartition(":")[0]
        other = peer_networks.get(address, "")
        asked = connects.get(address)
        if network and other and other != network:
            missing[address] = "other-network"
        elif asked is not None and connect_reason(asked) is not None:
            missing[address] = str(connect_reason(asked))
        elif is_name(host):
            missing[address] = "by-name"
        elif node_limits.preferred_peers_only:
            missing[address] = "preferred-only"
        elif seen.outbound_authenticated >= node_limits.target_peer_connections:
            missing[address] = "slots-full"
        elif address in seen.pending:
            missing[address] = "pending"
        else:
            missing[address] = "not-connected"
    return {
        "connected": len(wanted) - len(missing),
        "expected": len(wanted),
        "missing": missing,
        "settled": all(reason in EXPLAINED for reason in missing.values()),
    }


def says_why(result: Result, node_verdict: Mapping[str, Any] | None) -> bool:
    """A node that keeps saying the same is asked only a few rounds per peer set.

    Transient answers (refused, timeout, booting, still pending) are not its word.
    """
    if node_verdict is None:
        return result.outcome is Outcome.FAILED
    return not node_verdict["settled"] and "pending" not in node_verdict["missing"].values()


def status_annotation(
    node_verdict: Mapping[str, Any], *, hash: str, http_port: int, peer_port: int | None
) -> str:
    """The `stellar.org/peers-connection-status` value: small, compact JSON."""
    missing = sorted(node_verdict["missing"].items())
    doc: dict[str, Any] = {
        "hash": hash,
        "ports": {"http": http_port, "peer": peer_port},
        "connected": node_verdict["connected"],
        "expected": node_verdict["expected"],
        "settled": node_verdict["settled"],
        "missing": [{"peer": peer, "reason": reason} for peer, reason in missing[:MAX_LISTED]],
    }
    if len(missing) > MAX_LISTED:
        doc["moreMissing"] = len(missing) - MAX_LISTED
    return orjson.dumps(doc).decode()


def state_counts(node_verdict: Mapping[str, Any]) -> dict[str, int]:
    """Peers by `state` label (`connected` or a reason) for the metric."""
    counts = dict.fromkeys(STATES, 0)
    counts["connected"] = int(node_verdict["connected"])
    for reason in node_verdict["missing"].values():
        counts[reason] += 1
    return counts


def summary(node_verdict: Mapping[str, Any]) -> str:
    """`3 of 5 connected; 2 other-network (10.0.0.4:11625, ...)` for Events and logs."""
    text = f"{node_verdict['connected']} of {node_verdict['expected']} connected"
    by_reason: dict[str, list[str]] = {}
    for peer, reason in sorted(node_verdict["missing"].items()):
        by_reason.setdefault(reason, []).append(peer)
    for reason, peers in sorted(by_reason.items()):
        shown = ", ".join(peers[:3]) + (", ..." if len(peers) > 3 else "")
        text += f"; {len(peers)} {reason} ({shown})"
    return text
