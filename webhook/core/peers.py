"""Peers: the peer set as plain values, and the pure functions over it.

Owns what a peer is (from a pod, a StellarNode or a static `host:port`), the
watch-state reducer that the peer watcher folds events into, how a set of
peers is ordered, de-duplicated and hashed, and how it is rendered into the
`stellar-peers` ConfigMap. No I/O here: everything takes and returns dicts.

Scope of discovery: injected pods count only in injection-enabled namespaces
(the namespace label is the operator's consent, and a pod left over in a
namespace that lost the label must not keep feeding the set). StellarNodes
follow the same rule, so one label decides what a namespace contributes.
Static peers always count.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from webhook import names
from webhook.address import static_address
from webhook.core import injection
from webhook.core.pod import (
    as_dict as _dict,
)
from webhook.core.pod import (
    as_list as _list,
)
from webhook.core.pod import (
    as_str as _str,
)
from webhook.core.pod import ip as _ip
from webhook.core.pod import (
    is_ready,
    port_number,
    target_container,
)
from webhook.settings import Settings

Source = Literal["pod", "stellarnode", "static"]

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


@dataclass(frozen=True, order=True)
class Peer:
    namespace: str
    name: str
    node_type: str
    ip: str  # an IP address, or a DNS name for static peers
    port: int
    source: Source

    @property
    def peer_string(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class PeerSet:
    """Peers sorted by namespace then name; `hash` is `sha256:<hex>` of peers.txt."""

    peers: tuple[Peer, ...]

    # Computed once per set: a reload round asks every node for them.
    @functools.cached_property
    def strings(self) -> tuple[str, ...]:
        return tuple(sorted({p.peer_string for p in self.peers}))

    @functools.cached_property
    def by_address(self) -> tuple[tuple[str, Peer], ...]:
        """(`ip:port`, peer) pairs sorted by address."""
        return tuple(sorted(((p.peer_string, p) for p in self.peers), key=lambda pair: pair[0]))

    @functools.cached_property
    def text(self) -> str:
        return "".join(f"{s}\n" for s in self.strings)

    @functools.cached_property
    def hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.text.encode()).hexdigest()


# --- Reading raw objects defensively ---------------------------------------


def pod_peer_port(pod: Obj) -> int | None:
    """Port named `peer`, else the `stellar.org/peer-port` annotation, else 11625.

    An annotation that is no port makes the pod no peer (None): publishing a
    guessed port would send every node to a port nobody listens on.
    """
    container = target_container(pod)
    for port in _list(_dict(container).get("ports")):
        if _dict(port).get("name") == "peer":
            named = port_number(_dict(port).get("containerPort"))
            if named is not None:
                return named
    annotations = _dict(_dict(pod.get("metadata")).get("annotations"))
    if names.PEER_PORT_ANNOTATION in annotations:
        return port_number(annotations[names.PEER_PORT_ANNOTATION])
    return names.DEFAULT_PEER_PORT


def pod_peer(pod: Obj) -> Peer | None:
    """The peer a pod stands for while it is Ready, not terminating, and has an IP."""
    metadata = _dict(pod.get("metadata"))
    name, namespace = _str(metadata.get("name")), _str(metadata.get("namespace"))
    ip = _ip(_dict(pod.get("status")).get("podIP"))
    if not (name and namespace and ip and is_ready(pod)):
        return None
    port = pod_peer_port(pod)
    if port is None:
        return None
    node_type = _str(_dict(metadata.get("labels")).get(names.NODE_TYPE_LABEL)) or "validator"
    return Peer(namespace=namespace, name=name, node_type=node_type, ip=ip, port=port, source="pod")


def stellarnode_peer(node: Obj, *, ready_pod_ip: str | None, service_ip: str | None) -> Peer | None:
    """A StellarNode that is an active validator, reached at its Ready pod or its Service."""
    metadata, spec = _dict(node.get("metadata")), _dict(node.get("spec"))
    name, namespace = _str(metadata.get("name")), _str(metadata.get("namespace"))
    if not (name and namespace) or _str(spec.get("nodeType")).lower() != "validator":
        return None
    if spec.get("suspended") is True:
        return None
    ip = _ip(ready_pod_ip) or _ip(service_ip)
    if ip is None:
        return None
    config = _dict(spec.get("validatorConfig"))
    port = port_number(config["peerPort"]) if "peerPort" in config else names.DEFAULT_PEER_PORT
    if port is None:
        return None
    return Peer(
        namespace=namespace,
        name=name,
        node_type="validator",
        ip=ip,
        port=port,
        source="stellarnode",
    )


def static_peer(text: str) -> Peer:
    """Parse `host:port` (IPv4, RFC 1123 DNS name, or `[IPv6]:port`), or raise ValueError."""
    ip, port = static_address(text)
    return Peer(namespace="", name=text, node_type="validator", ip=ip, port=port, source="static")


def admitted_uninjected(pod: Obj, *, settings: Settings) -> bool:
    """A live validator the webhook would inject now but that carries no injection.

    Such a pod was admitted while the webhook was unreachable (failurePolicy
    Ignore): it runs without a peer list until it is recreated.
    """
    metadata = _dict(pod.get("metadata"))
    if metadata.get("deletionTimestamp") or _dict(pod.get("status")).get("phase") in (
        "Succeeded",
        "Failed",
    ):
        return False
    if _dict(metadata.get("labels")).get(names.INJECTED_LABEL) == "true":
        return False
    return injection.decide(pod, settings=settings).inject


# --- Trimming: keep only what the peer set and the reload controller need ---


def trim(obj: Obj, *, kind: str) -> dict[str, Any]:
    """A small copy of a raw object holding only the fields read downstream, tagged with `kind`."""
    metadata = _dict(obj.get("metadata"))
    meta: dict[str, Any] = {
        "name": _str(metadata.get("name")),
        "namespace": _str(metadata.get("namespace")),
    }
    if kind == KIND_NAMESPACE:
        return {
            "kind": kind,
            "metadata": meta,
            "status": {"phase": _dict(obj.get("status")).get("phase")},
        }
    if kind == KIND_CONFIGMAP:
        meta.update(
            uid=metadata.get("uid"),
            resourceVersion=metadata.get("resourceVersion"),
            labels=dict(_dict(metadata.get("labels"))),
            annotations=dict(_dict(metadata.get("annotations"))),
        )
        return {"kind": kind, "metadata": meta, "digest": content_digest(obj)}
    if kind == KIND_SERVICE:
        return {
            "kind": kind,
            "metadata": meta,
            "spec": {"clusterIP": _dict(obj.get("spec")).get("clusterIP")},
        }
    if kind == KIND_STELLARNODE:
        spec = _dict(obj.get("spec"))
        kept = {k: spec[k] for k in ("nodeType", "suspended") if k in spec}
        peer_port = _dict(spec.get("validatorConfig")).get("peerPort")
        if peer_port is not None:
            kept["validatorConfig"] = {"peerPort": peer_port}
        return {"kind": kind, "metadata": meta, "spec": kept}
    trimmed = {"kind": kind, **_trim_pod(obj, meta)}
    if kind == KIND_POD:
        # Computed once per event here rather than once per pod on every reconcile.
        trimmed["peer"] = pod_peer(trimmed)
    return trimmed


def _trim_pod(pod: Obj, meta: dict[str, Any]) -> dict[str, Any]:
    metadata, spec, status = (_dict(pod.get(k)) for k in ("metadata", "spec", "status"))
    annotations = _dict(metadata.get("annotations"))
    meta.update(
        uid=metadata.get("uid"),
        labels=dict(_dict(metadata.get("labels"))),
        annotations={k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS},
        ownerReferences=[
            {k: _dict(ref).get(k) for k in ("apiVersion", "kind", "name", "uid", "controller")}
            for ref in _list(metadata.get("ownerReferences"))
        ],
    )
    if metadata.get("deletionTimestamp"):
        meta["deletionTimestamp"] = metadata["deletionTimestamp"]
    containers = [
        {k: _dict(c)[k] for k in ("name", "image", "ports") if k in _dict(c)}
        for c in _list(spec.get("containers"))
    ]
    conditions = [
        {"type": _dict(c).get("type"), "status": _dict(c).get("status")}
        for c in _list(status.get("conditions"))
    ]
    return {
        "metadata": meta,
        "spec": {"containers": containers},
        "status": {
            "podIP": status.get("podIP"),
            "phase": status.get("phase"),
            "conditions": conditions,
        },
    }


def content_digest(configmap: Obj) -> str:
    """What we compare to decide whether a `stellar-peers` ConfigMap needs a write."""
    metadata = _dict(configmap.get("metadata"))
    content = {
        "data": _dict(configmap.get("data")),
        "hash": _dict(metadata.get("annotations")).get(names.PEERS_HASH_ANNOTATION),
        "owned": is_owned(configmap),
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def is_owned(configmap: Obj) -> bool:
    """Ours when it carries every owner label: anything else named stellar-peers is left alone."""
    labels = _dict(_dict(configmap.get("metadata")).get("labels"))
    return all(labels.get(k) == v for k, v in names.OWNER_LABELS.items())


# --- The reducer ------------------------------------------------------------


def key_of(obj: Obj) -> Key | None:
    metadata = _dict(obj.get("metadata"))
    kind, name = _str(obj.get("kind")), _str(metadata.get("name"))
    if not (kind and name):
        return None
    return (kind, _str(metadata.get("namespace")), name)


def fold_all(state: State, events: Iterable[Mapping[str, Any]]) -> State:
    """Apply watch events; return the same state when nothing changed.

    `ADDED`/`MODIFIED`/`DELETED` carry `object` (with `kind`); `LISTED` carries
    `kind` and `objects`, a full list that replaces everything of that kind
    (so objects deleted while no watch was open disappear on relist).

    The state is copied once rather than once per event.

    The watcher folds everything that arrived during a debounce window in one
    go: with thousands of pods, a copy per event would dominate a burst.
    """
    fresh = dict(state)
    changed = False
    for event in events:
        changed = _apply(fresh, event) or changed
    return fresh if changed else state


def _apply(state: dict[Key, Mapping[str, Any]], event: Mapping[str, Any]) -> bool:
    """Apply one event to a private copy in place; say whether anything changed."""
    kind = event.get("type")
    if kind == "LISTED":
        listed_kind = _str(event.get("kind"))
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
        return bool(stale or updated)
    obj = _dict(event.get("object"))
    key = key_of(obj)
    if key is None:
        return False
    if kind in ("ADDED", "MODIFIED") and state.get(key) != obj:
        state[key] = obj
        return True
    if kind == "DELETED" and key in state:
        del state[key]
        return True
    return False


def of_kind(state: State, kind: str) -> Iterable[Mapping[str, Any]]:
    return (obj for key, obj in state.items() if key[0] == kind)


def enabled_namespaces(state: State) -> frozenset[str]:
    """Namespaces seen through the selector-filtered namespace watch, unless terminating
    (nothing can be created in those, and their pods are on their way out)."""
    return frozenset(
        key[2]
        for key, obj in state.items()
        if key[0] == KIND_NAMESPACE and _dict(obj.get("status")).get("phase") != "Terminating"
    )


def _peer_of(pod: Obj) -> Peer | None:
    """The peer of a pod: precomputed by `trim`, or worked out from a raw pod."""
    return pod["peer"] if "peer" in pod else pod_peer(pod)


def validators(state: State, *, enabled: frozenset[str]) -> tuple[Mapping[str, Any], ...]:
    """Ready injected pods (trimmed, as dicts) in enabled namespaces, sorted by namespace, name."""
    found = [
        {k: v for k, v in obj.items() if k != "peer"}
        for key, obj in sorted(state.items())
        if key[0] == KIND_POD and key[1] in enabled and _peer_of(obj) is not None
    ]
    return tuple(found)


def peer_set(
    state: State, *, enabled_namespaces: frozenset[str], static: Iterable[Peer] = ()
) -> PeerSet:
    """Every peer, one per `ip:port` (pods win over StellarNodes over static), sorted."""
    candidates: list[Peer] = []
    for key, obj in state.items():
        if key[0] == KIND_POD and key[1] in enabled_namespaces:
            peer = _peer_of(obj)
            if peer is not None:
                candidates.append(peer)
    candidates.extend(_stellarnode_peers(state, enabled=enabled_namespaces))
    candidates.extend(static)
    rank = {"pod": 0, "stellarnode": 1, "static": 2}
    chosen: dict[str, Peer] = {}
    for peer in sorted(candidates, key=lambda p: (rank[p.source], p.namespace, p.name)):
        chosen.setdefault(peer.peer_string, peer)
    return PeerSet(peers=tuple(sorted(chosen.values(), key=lambda p: (p.namespace, p.name))))


def _stellarnode_peers(state: State, *, enabled: frozenset[str]) -> list[Peer]:
    pod_ips: dict[tuple[str, str], str] = {}
    for obj in of_kind(state, KIND_NODE_POD):
        metadata = _dict(obj.get("metadata"))
        labels = _dict(metadata.get("labels"))
        ip = _dict(obj.get("status")).get("podIP")
        if labels.get(NODE_NAME_LABEL) == NODE_NAME_VALUE and is_ready(obj) and _ip(ip):
            instance = (_str(metadata.get("namespace")), _str(labels.get(NODE_INSTANCE_LABEL)))
            pod_ips.setdefault(instance, _str(ip))
    service_ips = {
        (_str(obj["metadata"]["namespace"]), _str(obj["metadata"]["name"])): _str(
            _dict(obj.get("spec")).get("clusterIP")
        )
        for obj in of_kind(state, KIND_SERVICE)
    }
    peers = []
    for key, node in state.items():
        if key[0] != KIND_STELLARNODE or key[1] not in enabled:
            continue
        peer = stellarnode_peer(
            node, ready_pod_ip=pod_ips.get(key[1:]), service_ip=service_ips.get(key[1:])
        )
        if peer is not None:
            peers.append(peer)
    return peers


# --- Rendering --------------------------------------------------------------


def render(peers: PeerSet) -> dict[str, str]:
    """The ConfigMap's data, byte for byte as DESIGN.md describes it."""
    ordered = sorted(peers.peers, key=lambda p: (p.namespace, p.name))
    entries = [
        {
            "name": p.name,
            "namespace": p.namespace,
            "nodeType": p.node_type,
            "ip": p.ip,
            "port": p.port,
            "peerString": p.peer_string,
            "source": p.source,
        }
        for p in ordered
    ]
    strings = peers.strings
    quoted = ", ".join(f'"{s}"' for s in strings)
    return {
        names.KEY_JSON: orjson.dumps(entries).decode(),
        names.KEY_TXT: peers.text,
        names.KEY_CSV: ",".join(strings),
        names.KEY_COUNT: str(len(strings)),
        names.KEY_KNOWN_PEERS: f"KNOWN_PEERS = [{quoted}]\n",
    }


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
