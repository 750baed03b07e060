"""The reload plan: which validators a round reaches, how, and what each lacks.

Pure: from the watcher's snapshot (the peer set and the running injected
validators) to one `NodePlan` per node; `missing_peers` from a node's answer
to the `connect`s it needs. `webhook.controllers.reload` carries the plans out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from webhook import names
from webhook.core import admin_protocol
from webhook.core.admin_protocol import Result
from webhook.core.peerset import networks
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.pod import (
    admin_port,
    controller_owner,
    core_conf,
    peer_port,
    pod_ip,
    target_container,
)
from webhook.core.reload.connection import Limits, PeersSeen, limits
from webhook.settings import RELOAD_MODES, ReloadMode, Settings


class Snapshot(Protocol):
    """What the peer watcher hands over: the set, and the running injected validators."""

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
    peer_port: int | None
    container: str
    conf: str  # `--conf` for `stellar-core http-command` ("" for its default)
    mode: ReloadMode
    hash: str
    owner: tuple[str, str] | None  # (kind, name) of the controlling owner
    current: bool  # the pod's observed-hash annotation is `hash` already
    rolled_out: bool  # the pod was created from a template with `hash` (rollout mode)
    limits: Limits = field(default_factory=Limits)
    status: str = ""  # its `stellar.org/peers-connection-status` annotation as it is
    network: str = networks.UNKNOWN  # whose set it is handed (`networks.split`)


def reload_mode(annotations: Mapping[str, Any], *, default: ReloadMode) -> ReloadMode:
    """The pod's annotation when it names a mode, else the default."""
    wanted = str(annotations.get(names.RELOAD_MODE_ANNOTATION, "")).strip().lower()
    for mode in RELOAD_MODES:
        if wanted == mode:
            return mode  # type: ignore[return-value]
    return default


def workload(metadata: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(namespace, kind, name) of the workload that owns the pod, the same across its
    rollouts: a Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>`."""
    owner = controller_owner(metadata)
    if owner is None:
        return None
    kind, name = owner
    template_hash = str((metadata.get("labels") or {}).get("pod-template-hash", ""))
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        kind, name = "Deployment", name.removesuffix(f"-{template_hash}")
    return str(metadata.get("namespace", "")), kind, name


def rollout_hash(
    peer_set: PeerSet, *, own: Collection[tuple[str, str]], own_ips: Collection[str]
) -> str:
    """The hash a rollout-mode pod is judged by: the set without the workload's own pods.

    A restart gives those pods new addresses; counting them would call for another
    restart, and so on forever. Their new pods learn each other from the file anyway.
    """
    others = tuple(
        p
        for p in peer_set.peers
        if not (p.source == "pod" and ((p.namespace, p.name) in own or p.ip in own_ips))
    )
    return PeerSet(others).hash


def plan_round(snapshot: Snapshot, *, settings: Settings) -> list[NodePlan]:
    """One plan per validator with a valid IP and a target container, in snapshot order.

    Each pod is handed only its own network's set (`networks.split`; `unknown` while it
    is no member of the set): in rollout mode it is judged by that set's `rollout_hash`,
    in every other by that set's hash.
    """
    sets = networks.split(snapshot.peers)
    # Remote entries are another cluster's pods: a name alike says nothing of ours.
    own = {
        (p.namespace, p.name): networks.network_of(p)
        for p in snapshot.peers.peers
        if p.source != "remote"
    }
    siblings, addresses = _workloads(snapshot.validators)
    hashes: dict[tuple[tuple[str, str, str], str], str] = {}
    plans = []
    for pod in snapshot.validators:
        metadata = pod.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        ip = pod_ip(pod)
        # The container the webhook injected, as the watcher reads it.
        container = target_container(pod, image_matches=settings.image_matches)
        if ip is None or container is None:
            continue
        mode = reload_mode(annotations, default=settings.reload_mode)
        me = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        network = own.get(me, networks.UNKNOWN)
        given = sets.get(network, PeerSet(()))
        digest = given.hash
        if mode == "rollout":
            key = workload(metadata)
            if key is None:
                digest = rollout_hash(given, own={me}, own_ips={ip})
            else:
                if (key, network) not in hashes:
                    hashes[(key, network)] = rollout_hash(
                        given, own=siblings[key], own_ips=addresses[key]
                    )
                digest = hashes[(key, network)]
        plans.append(
            NodePlan(
                namespace=str(metadata.get("namespace", "")),
                name=str(metadata.get("name", "")),
                uid=str(metadata.get("uid", "")),
                ip=ip,
                http_port=admin_port(container),
                peer_port=peer_port(container, annotations),
                container=str(container.get("name", "")),
                conf=core_conf(container),
                mode=mode,
                hash=digest,
                owner=controller_owner(metadata),
                current=annotations.get(names.OBSERVED_HASH_ANNOTATION) == digest,
                rolled_out=annotations.get(names.PEERS_HASH_ANNOTATION) == digest,
                limits=limits(annotations),
                status=str(annotations.get(names.CONNECTION_STATUS_ANNOTATION, "")),
                network=network,
            )
        )
    return plans


Workload = tuple[str, str, str] | None


def _workloads(
    validators: Sequence[Mapping[str, Any]],
) -> tuple[dict[Workload, set[tuple[str, str]]], dict[Workload, set[str]]]:
    """Each workload's pods, as (namespace, name), and their addresses."""
    siblings: dict[Workload, set[tuple[str, str]]] = {}
    addresses: dict[Workload, set[str]] = {}
    for pod in validators:
        metadata = pod.get("metadata") or {}
        key = workload(metadata)
        siblings.setdefault(key, set()).add(
            (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        )
        addresses.setdefault(key, set()).add(pod_ip(pod) or "")
    return siblings, addresses


def handed(peer_set: PeerSet, plan: NodePlan) -> PeerSet:
    """The part of the set the node is handed: its own network's."""
    return networks.split(peer_set).get(plan.network, PeerSet(()))


def missing_peers(peer_set: PeerSet, connected: Collection[str], *, own_ip: str) -> list[Peer]:
    """Peers of the set the node lacks: not itself, not connected, one per address."""
    seen: set[str] = set()
    missing = []
    for address, peer in peer_set.by_address:
        if peer.ip == own_ip or address in connected or address in seen:
            continue
        if not admin_protocol.is_peer_host(peer.ip):
            continue  # stellar-core would refuse it; it must never reach a URL or a command
        seen.add(address)
        missing.append(peer)
    return missing


def exec_command(command: str, *, conf: str, seconds: int) -> list[str]:
    """`stellar-core http-command [--conf FILE] CMD` as an exec argv, bounded in the container.

    `admin_protocol.bounded_function` kills it after `seconds`. The shell gets the values
    as positional parameters, never as code.
    """
    bounded = admin_protocol.bounded_function(seconds)
    watchdog = f'{bounded}; bounded stellar-core http-command "$@"; exit 0'
    return ["sh", "-c", watchdog, "sh", *(["--conf", conf] if conf else []), command]


@dataclass(frozen=True)
class NodeOutcome:
    plan: NodePlan
    result: Result
    connected: int = 0  # connects sent and accepted ("asked")
    verdict: Mapping[str, Any] | None = None  # `connection.verdict`, when the node was asked


@dataclass(frozen=True)
class Observation:
    """What a node said in a round, before it is judged (`connection.verdict`)."""

    plan: NodePlan
    result: Result  # how asking went; not ok: no `peers` to judge
    seen: PeersSeen | None = None
    expected: tuple[str, ...] = ()
    connects: Mapping[str, Result] = field(default_factory=dict)
    asked: int = 0  # connects the node took ("asked")


@dataclass(frozen=True)
class _Pods:
    """A `Snapshot` of pods alone: no peer set, so only how to reach each node is planned."""

    peers: PeerSet
    validators: Sequence[Mapping[str, Any]]


class Reachable:
    """Each pod's `NodePlan` against no peer set (how to reach its node), worked out again
    only for pods that changed since the last call.

    The identity learner asks on every fold that moved a pod; planning all of a thousand
    (each IP parsed) each time was most of a fold's cost. Only the reaching fields are
    meant: `hash` is that of no set, and a rollout pod's is judged among the pods
    planned with it.
    """

    def __init__(self, *, settings: Settings) -> None:
        self._settings = settings
        self._seen: tuple[Mapping[str, Any], ...] = ()
        self._plans: list[NodePlan] = []
        self._by_pod: dict[tuple[str, str], tuple[Mapping[str, Any], NodePlan | None]] = {}
        self.planned = 0  # pods planned so far, for tests

    def plans(self, validators: Sequence[Mapping[str, Any]]) -> list[NodePlan]:
        """One plan per pod with a valid IP and a target container, in the given order."""
        given = tuple(validators)
        if given == self._seen:
            return list(self._plans)
        keys = [_pod_key(pod) for pod in given]
        changed = [
            pod
            for key, pod in zip(keys, given, strict=True)
            if key not in self._by_pod or self._by_pod[key][0] != pod
        ]
        fresh = {
            (p.namespace, p.name): p
            for p in plan_round(_Pods(PeerSet(()), changed), settings=self._settings)
        }
        self.planned += len(changed)
        changed_keys = {_pod_key(pod) for pod in changed}
        by_pod = {
            key: (pod, fresh.get(key) if key in changed_keys else self._by_pod[key][1])
            for key, pod in zip(keys, given, strict=True)
        }
        self._seen, self._by_pod = given, by_pod
        self._plans = [plan for _, plan in by_pod.values() if plan is not None]
        return list(self._plans)


def _pod_key(pod: Mapping[str, Any]) -> tuple[str, str]:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))
