"""The reload plan: which validators a round reaches, how, and what each lacks.

Pure: from the watcher's snapshot (the peer set and the Ready injected
validators) to one `NodePlan` per node; `missing_peers` from a node's answer
to the `connect`s it needs. `webhook.controllers.reload` carries the plans out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from webhook import names
from webhook.core import stellar_admin
from webhook.core.peers import Peer, PeerSet
from webhook.core.pod import admin_port, pod_ip, target_container
from webhook.core.stellar_admin import Result
from webhook.settings import RELOAD_MODES, ReloadMode, Settings


class Snapshot(Protocol):
    """What the peer watcher hands over: the set, and the Ready injected validators."""

    @property
    def peers(self) -> PeerSet: ...

    @property
    def validators(self) -> Sequence[Mapping[str, Any]]: ...


@dataclass(frozen=True)
class NodePlan:
    """One validator to bring up to `hash`, and how."""

    namespace: str
    name: str
    uid: str
    ip: str  # from the pod's status, validated; the only host ever dialled
    http_port: int
    container: str
    mode: ReloadMode
    hash: str
    owner: tuple[str, str] | None  # (kind, name) of the controlling owner
    current: bool  # the pod's observed-hash annotation is `hash` already
    rolled_out: bool  # the pod was created from a template with `hash` (rollout mode)


def reload_mode(annotations: Mapping[str, Any], *, default: ReloadMode) -> ReloadMode:
    """The pod's annotation when it names a mode, else the default."""
    wanted = str(annotations.get(names.RELOAD_MODE_ANNOTATION, "")).strip().lower()
    for mode in RELOAD_MODES:
        if wanted == mode:
            return mode  # type: ignore[return-value]
    return default


def controller_owner(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    for ref in metadata.get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None


def plan_round(snapshot: Snapshot, *, settings: Settings) -> list[NodePlan]:
    """One plan per validator with a valid IP and a target container, in snapshot order."""
    digest = snapshot.peers.hash
    plans = []
    for pod in snapshot.validators:
        metadata = pod.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        ip = pod_ip(pod)
        # The container the webhook injected, as the watcher reads it.
        container = target_container(pod)
        if ip is None or container is None:
            continue
        mode = reload_mode(annotations, default=settings.reload_mode)
        plans.append(
            NodePlan(
                namespace=str(metadata.get("namespace", "")),
                name=str(metadata.get("name", "")),
                uid=str(metadata.get("uid", "")),
                ip=ip,
                http_port=admin_port(container),
                container=str(container.get("name", "")),
                mode=mode,
                hash=digest,
                owner=controller_owner(metadata),
                current=annotations.get(names.OBSERVED_HASH_ANNOTATION) == digest,
                rolled_out=annotations.get(names.PEERS_HASH_ANNOTATION) == digest,
            )
        )
    return plans


def missing_peers(peer_set: PeerSet, connected: Collection[str], *, own_ip: str) -> list[Peer]:
    """Peers of the set the node lacks: not itself, not connected, one per address."""
    seen: set[str] = set()
    missing = []
    for address, peer in peer_set.by_address:
        if peer.ip == own_ip or address in connected or address in seen:
            continue
        if not stellar_admin.is_peer_host(peer.ip):
            continue  # stellar-core would refuse it; it must never reach a URL or a command
        seen.add(address)
        missing.append(peer)
    return missing


def exec_command(*, host: str, port: int) -> list[str]:
    """`stellar-core http-command 'connect?peer=..&port=..'` as an exec argv (no shell)."""
    return ["stellar-core", "http-command", stellar_admin.connect_command(host=host, port=port)]


PEERS_EXEC_COMMAND = ("stellar-core", "http-command", "peers")


@dataclass(frozen=True)
class NodeOutcome:
    plan: NodePlan
    result: Result
    connected: int = 0  # connects sent and accepted
