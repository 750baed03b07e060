"""The watcher's state: what it keeps of each object, and the reducer over it.

The peer watcher stores every object trimmed (only the fields read downstream)
under (kind, namespace, name); `fold_all` applies watch events and returns the
same state when nothing changed; `peer_set` and `validators` read the peer set
and the running injected validators (Ready or not) out of it. No I/O here.

Scope of discovery: injected pods count only in injection-enabled namespaces
(the namespace label is the operator's consent, and a pod left over in a
namespace that lost the label must not keep feeding the set). StellarNodes
follow the same rule, so one label decides what a namespace contributes.
Static peers always count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from webhook import names
from webhook.core.peerset import advertised
from webhook.core.peerset.networks import Identity, place, with_identity
from webhook.core.peerset.peers import Peer, PeerSet, pod_peer, stellarnode_peer
from webhook.core.pod import as_dict, as_list, as_str, container_states, is_running, pod_ip
from webhook.core.publishing.publish import content_digest, theirs
from webhook.core.selector import is_enabled
from webhook.settings import Settings

# State kinds: the peer watcher stores every object under (kind, namespace, name).
KIND_POD = "Pod"  # injected validator pods
KIND_NODE_POD = "StellarNodePod"  # pods run by the StellarNode operator
KIND_STELLARNODE = "StellarNode"
KIND_SERVICE = "Service"
KIND_NAMESPACE = "Namespace"  # only namespaces matching the selector are kept
KIND_CONFIGMAP = "ConfigMap"  # ConfigMaps named stellar-peers

NODE_NAME_LABEL = "app.kubernetes.io/name"
NODE_NAME_VALUE = "stellar-node"
NODE_INSTANCE_LABEL = "app.kubernetes.io/instance"
# Pod annotations never needed downstream and possibly large.
_DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})

Key = tuple[str, str, str]
State = Mapping[Key, Mapping[str, Any]]
Obj = Mapping[str, Any]


# --- Trimming: keep only what the peer set and the reload controller need ---


def _container(c: Mapping[str, Any]) -> dict[str, Any]:
    """What the peer set and the reload plan read: ports, and where the node's config is
    (`pod.core_conf` reads command, args and the STELLAR_CORE_CONF env)."""
    kept: dict[str, Any] = {
        k: c[k] for k in ("name", "image", "ports", "command", "args") if k in c
    }
    env = [e for e in as_list(c.get("env")) if as_dict(e).get("name") == names.ENV_CORE_CONF]
    if env:
        kept["env"] = env
    return kept


def trim(obj: Obj, *, kind: str) -> dict[str, Any]:
    """A small copy of a raw object holding only the fields read downstream, tagged with `kind`."""
    metadata = as_dict(obj.get("metadata"))
    meta: dict[str, Any] = {
        "name": as_str(metadata.get("name")),
        "namespace": as_str(metadata.get("namespace")),
    }
    if kind == KIND_NAMESPACE:
        return {
            "kind": kind,
            "metadata": meta,
            "status": {"phase": as_dict(obj.get("status")).get("phase")},
        }
    if kind == KIND_CONFIGMAP:
        meta.update(
            uid=metadata.get("uid"),
            resourceVersion=metadata.get("resourceVersion"),
            labels=dict(as_dict(metadata.get("labels"))),
            annotations=dict(as_dict(metadata.get("annotations"))),
        )
        others = theirs(obj)
        return {
            "kind": kind,
            "metadata": meta,
            "digest": content_digest(obj),
            # What other writers added, so an update from this trimmed copy keeps it.
            "data": others["data"],
            **({"binaryData": others["binaryData"]} if others["binaryData"] else {}),
        }
    if kind == KIND_SERVICE:
        return {
            "kind": kind,
            "metadata": meta,
            "spec": {"clusterIP": as_dict(obj.get("spec")).get("clusterIP")},
        }
    if kind == advertised.KIND_EXPOSED_SERVICE:
        return advertised.trim_service(obj)
    if kind == advertised.KIND_CLUSTER_NODE:
        return advertised.trim_node(obj)
    if kind == KIND_STELLARNODE:
        spec = as_dict(obj.get("spec"))
        wanted = ("nodeType", "suspended", "network", "networkPassphrase")
        kept = {k: spec[k] for k in wanted if k in spec}
        peer_port = as_dict(spec.get("validatorConfig")).get("peerPort")
        if peer_port is not None:
            kept["validatorConfig"] = {"peerPort": peer_port}
        return {"kind": kind, "metadata": meta, "spec": kept}
    trimmed = {"kind": kind, **_trim_pod(obj, meta)}
    if kind == KIND_POD:
        # Computed once per event here rather than once per pod on every reconcile.
        trimmed["peer"] = pod_peer(trimmed)
    return trimmed


def _trim_pod(pod: Obj, meta: dict[str, Any]) -> dict[str, Any]:
    metadata, spec, status = (as_dict(pod.get(k)) for k in ("metadata", "spec", "status"))
    annotations = as_dict(metadata.get("annotations"))
    meta.update(
        uid=metadata.get("uid"),
        labels=dict(as_dict(metadata.get("labels"))),
        annotations={k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS},
        ownerReferences=[
            {k: as_dict(ref).get(k) for k in ("apiVersion", "kind", "name", "uid", "controller")}
            for ref in as_list(metadata.get("ownerReferences"))
        ],
    )
    if metadata.get("deletionTimestamp"):
        meta["deletionTimestamp"] = metadata["deletionTimestamp"]
    containers = [_container(as_dict(c)) for c in as_list(spec.get("containers"))]
    kept = {k: spec[k] for k in ("hostNetwork", "nodeName") if k in spec}  # advertised address
    return {
        "metadata": meta,
        "spec": {"containers": containers, **kept},
        "status": {
            "podIP": status.get("podIP"),
            "podIPs": [{"ip": as_dict(i).get("ip")} for i in as_list(status.get("podIPs"))],
            "phase": status.get("phase"),
            # Not the conditions: membership follows the container, not the probe, and a
            # pod whose Ready flaps must not change the state (nor cause a write).
            "containerStatuses": container_states(status),
        },
    }


def key_of(obj: Obj) -> Key | None:
    metadata = as_dict(obj.get("metadata"))
    kind, name = as_str(obj.get("kind")), as_str(metadata.get("name"))
    if not (kind and name):
        return None
    return (kind, as_str(metadata.get("namespace")), name)


def fold_all(state: State, events: Iterable[Mapping[str, Any]]) -> State:
    """Apply watch events; return the same state when nothing changed.

    `ADDED`/`MODIFIED`/`DELETED` carry `object` (with `kind`); `LISTED` carries
    `kind` and `objects`, a full list that replaces everything of that kind
    (so objects deleted while no watch was open disappear on relist).
    """
    return fold_kinds(state, events)[0]


def fold_kinds(state: State, events: Iterable[Mapping[str, Any]]) -> tuple[State, frozenset[str]]:
    """`fold_all`, also saying which kinds changed (none: the same state).

    The state is copied once rather than once per event: the watcher folds
    everything that arrived during a debounce window in one go, and with
    thousands of pods a copy per event would dominate a burst.
    """
    fresh = dict(state)
    changed: set[str] = set()
    for event in events:
        kind = _apply(fresh, event)
        if kind is not None:
            changed.add(kind)
    return (fresh, frozenset(changed)) if changed else (state, frozenset())


def moves_peers(kinds: Iterable[str]) -> bool:
    """Whether a change to these kinds can change the peer set, the validators or the
    enabled namespaces. Only the `stellar-peers` ConfigMaps cannot: they are watched for
    the publisher (drift repair, what other writers added), and every write of ours
    comes back as their watch event, a hundred a round."""
    return any(kind != KIND_CONFIGMAP for kind in kinds)


def _apply(state: dict[Key, Mapping[str, Any]], event: Mapping[str, Any]) -> str | None:
    """Apply one event to a private copy in place; return the kind changed, if any."""
    kind = event.get("type")
    if kind == "LISTED":
        listed_kind = as_str(event.get("kind"))
        listed = {}
        for obj in event.get("objects") or ():
            key = key_of(obj)
            if key is not None and key[0] == listed_kind:
                listed[key] = obj
        stale = [k for k in state if k[0] == listed_kind and k not in listed]
        for k in stale:
            del state[k]
        updated = {k: v for k, v in listed.items() if state.get(k) != v}
        state.update(updated)
        return listed_kind if stale or updated else None
    obj = as_dict(event.get("object"))
    key = key_of(obj)
    if key is None:
        return None
    if kind in ("ADDED", "MODIFIED") and state.get(key) != obj:
        state[key] = obj
        return key[0]
    if kind == "DELETED" and key in state:
        del state[key]
        return key[0]
    return None


def of_kind(state: State, kind: str) -> Iterable[Mapping[str, Any]]:
    return (obj for key, obj in state.items() if key[0] == kind)


def enabled_namespaces(state: State, *, settings: Settings) -> frozenset[str]:
    """Namespaces seen through the selector-filtered namespace watch that
    `selector.is_enabled` keeps (a labeled kube-system or our own namespace is not)."""
    return frozenset(
        key[2]
        for key, obj in state.items()
        if key[0] == KIND_NAMESPACE and is_enabled(obj, settings=settings)
    )


def _peer_of(pod: Obj) -> Peer | None:
    """The peer of a pod: precomputed by `trim`, or worked out from a raw pod."""
    return pod["peer"] if "peer" in pod else pod_peer(pod)


def validators(state: State, *, enabled: frozenset[str]) -> tuple[Mapping[str, Any], ...]:
    """Injected pods whose node runs, Ready or not (trimmed), in enabled namespaces, sorted."""
    found = [
        {k: v for k, v in obj.items() if k != "peer"}
        for key, obj in sorted(state.items())
        if key[0] == KIND_POD and key[1] in enabled and _peer_of(obj) is not None
    ]
    return tuple(found)


def peer_set(
    state: State,
    *,
    enabled_namespaces: frozenset[str],
    static: Iterable[Peer] = (),
    identities: Mapping[str, Identity] | None = None,
    default_network: str = "",
    waiting: frozenset[str] = frozenset(),
    cluster_name: str = "",
    remote: Iterable[Peer] = (),
) -> PeerSet:
    """Every peer, one per `ip:port` (pods win over StellarNodes over static over remote),
    sorted, each with its network (`webhook.core.peerset.networks`), its advertised address
    (`webhook.core.peerset.advertised`) and `cluster_name` (static ones name none); `identities`
    are by pod uid, and pods whose uid is `waiting` (their node not asked yet) are left out
    for now."""
    learned = identities or {}
    exposed = exposures_of(state, enabled=enabled_namespaces)
    candidates: list[Peer] = []
    for key, obj in state.items():
        if key[0] == KIND_POD and key[1] in enabled_namespaces:
            peer = _peer_of(obj)
            if peer is not None:
                uid = as_str(as_dict(obj.get("metadata")).get("uid"))
                if uid in waiting:
                    continue
                identity = learned.get(uid)
                found = exposed.get((peer.namespace, peer.name))
                if found is not None and found.address:
                    peer = dataclasses.replace(peer, advertised=found.address)
                candidates.append(with_identity(peer, identity, default_network=default_network))
    candidates.extend(_stellarnode_peers(state, enabled=enabled_namespaces))
    candidates.extend(static)
    if cluster_name:  # static peers are outside every cluster: they name none
        candidates = [
            dataclasses.replace(p, cluster=cluster_name) if p.source != "static" else p
            for p in candidates
        ]
    candidates = place(candidates, default_network=default_network)
    candidates.extend(remote)  # placed by the cluster that owns them
    rank = {"pod": 0, "stellarnode": 1, "static": 2, "remote": 3}
    chosen: dict[str, Peer] = {}
    for peer in sorted(candidates, key=lambda p: (rank[p.source], p.namespace, p.name)):
        chosen.setdefault(peer.peer_string, peer)
    return PeerSet(peers=tuple(sorted(chosen.values(), key=lambda p: (p.namespace, p.name))))


def exposures_of(
    state: State, *, enabled: frozenset[str]
) -> dict[tuple[str, str], advertised.Exposure]:
    """The exposure (advertised address, or what is wrong) of each validator pod that
    has one, by (namespace, name)."""
    pods = []
    for key, obj in state.items():
        if key[0] == KIND_POD and key[1] in enabled:
            peer = _peer_of(obj)
            if peer is not None:
                pods.append((obj, peer.port))
    return advertised.exposures(
        pods,
        services=of_kind(state, advertised.KIND_EXPOSED_SERVICE),
        nodes=of_kind(state, advertised.KIND_CLUSTER_NODE),
    )


def _stellarnode_peers(state: State, *, enabled: frozenset[str]) -> list[Peer]:
    pod_ips: dict[tuple[str, str], str] = {}
    for obj in of_kind(state, KIND_NODE_POD):
        metadata = as_dict(obj.get("metadata"))
        labels = as_dict(metadata.get("labels"))
        ip = pod_ip(obj)
        if labels.get(NODE_NAME_LABEL) == NODE_NAME_VALUE and is_running(obj) and ip is not None:
            instance = (as_str(metadata.get("namespace")), as_str(labels.get(NODE_INSTANCE_LABEL)))
            pod_ips.setdefault(instance, ip)
    service_ips = {
        (as_str(obj["metadata"]["namespace"]), as_str(obj["metadata"]["name"])): as_str(
            as_dict(obj.get("spec")).get("clusterIP")
        )
        for obj in of_kind(state, KIND_SERVICE)
    }
    peers = []
    for key, node in state.items():
        if key[0] != KIND_STELLARNODE or key[1] not in enabled:
            continue
        peer = stellarnode_peer(
            node, running_pod_ip=pod_ips.get(key[1:]), service_ip=service_ips.get(key[1:])
        )
        if peer is not None:
            peers.append(peer)
    return peers
