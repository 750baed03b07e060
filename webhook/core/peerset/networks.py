"""Networks: which Stellar network each peer is on, one peer set per network, the snippets.

A node is never handed a peer of another network (nodes of different networks
never authenticate). A pod's network is its `stellar.org/network` label, else
the name of the passphrase its node reports in `info.network` (learned by
`webhook.controllers.identity`), else the `default_network` setting. A
StellarNode's comes from its spec, a static peer's from `host:port@network`;
when those say nothing, the peer is of `default_network`, else of the one
network the cluster's pods are on (so a single-network cluster works as it
always did). What is left is `unknown`: one set of its own, handed only to
its members. No I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from webhook import names
from webhook.core.peerset.peers import Peer, PeerSet

UNKNOWN = names.UNKNOWN_NETWORK


@dataclass(frozen=True)
class Identity:
    """What a node said of itself: its network's name and its full public key ("" if not)."""

    network: str = ""
    public_key: str = ""


def with_identity(peer: Peer, identity: Identity | None, *, default_network: str) -> Peer:
    """A pod's peer with its network (label, else learned, else default) and its key."""
    learned = identity or Identity()
    network = peer.network or learned.network or default_network
    if network == peer.network and learned.public_key == peer.public_key:
        return peer
    return dataclasses.replace(peer, network=network, public_key=learned.public_key)


def place(peers: Iterable[Peer], *, default_network: str) -> list[Peer]:
    """Give StellarNode and static peers that name no network one (see the module doc)."""
    listed = list(peers)
    pod_networks = {p.network or UNKNOWN for p in listed if p.source == "pod"}
    sole = next(iter(pod_networks)) if len(pod_networks) == 1 else ""
    fallback = default_network or (sole if sole != UNKNOWN else "")
    if not fallback:
        return listed
    return [
        p if p.network or p.source == "pod" else dataclasses.replace(p, network=fallback)
        for p in listed
    ]


def network_of(peer: Peer) -> str:
    return peer.network or UNKNOWN


def split(peers: PeerSet) -> dict[str, PeerSet]:
    """One set per network (`unknown` included), each in the set's own order."""
    return peers.by_network


def network_keys(network: str) -> dict[str, str]:
    """The ConfigMap keys of one network's set."""
    return {
        "txt": names.KEY_NETWORK_TXT.format(network),
        "csv": names.KEY_NETWORK_CSV.format(network),
        "count": names.KEY_NETWORK_COUNT.format(network),
        "known": names.KEY_NETWORK_KNOWN_PEERS.format(network),
        "keys": names.KEY_NETWORK_PREFERRED_KEYS.format(network),
        "validators": names.KEY_NETWORK_VALIDATORS.format(network),
    }


def known_peers_cfg(strings: Iterable[str]) -> str:
    quoted = ", ".join(f'"{s}"' for s in strings)
    return f"KNOWN_PEERS = [{quoted}]\n"


def preferred_peer_keys_cfg(peers: PeerSet) -> str:
    """`PREFERRED_PEER_KEYS = ["G...", ...]`: the known keys, sorted, once each."""
    keys = sorted({p.public_key for p in peers.peers if p.public_key})
    quoted = ", ".join(f'"{k}"' for k in keys)
    return f"PREFERRED_PEER_KEYS = [{quoted}]\n"


def validators_cfg(peers: PeerSet) -> str:
    """One `[[VALIDATORS]]` block per node whose key is known, in the set's order.

    NAME is `namespace/pod`; HOME_DOMAIN only where the pod's annotation sets it
    (stellar-core wants one per validator: add it where it is missing).
    """
    blocks = []
    for p in peers.peers:
        if not p.public_key:
            continue
        name = f"{p.namespace}/{p.name}" if p.namespace else p.name
        lines = ["[[VALIDATORS]]", f'NAME="{name}"']
        if p.home_domain:
            lines.append(f'HOME_DOMAIN="{p.home_domain}"')
        lines += [f'PUBLIC_KEY="{p.public_key}"', f'ADDRESS="{p.peer_string}"']
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def render_networks(peers: PeerSet) -> dict[str, str]:
    """The per-network keys of every known network (the `unknown` set has none)."""
    data: dict[str, str] = {}
    for network, members in split(peers).items():
        if network == UNKNOWN:
            continue
        keys = network_keys(network)
        data[keys["txt"]] = members.text
        data[keys["csv"]] = ",".join(members.strings)
        data[keys["count"]] = str(len(members.strings))
        data[keys["known"]] = known_peers_cfg(members.strings)
        data[keys["keys"]] = preferred_peer_keys_cfg(members)
        data[keys["validators"]] = validators_cfg(members)
    return data


def single(peers: PeerSet) -> bool:
    """True while every peer is of one network (or none is known): the unqualified keys
    then hold the whole set, as they did before networks."""
    return len(split(peers)) <= 1


def mismatch(label: str, identity: Identity | None) -> str:
    """The network the node reports when its label says another one, else ""."""
    reported = identity.network if identity else ""
    return reported if label and reported and reported != label else ""
