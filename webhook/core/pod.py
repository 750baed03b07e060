"""Pod facts read defensively from raw pod dicts: one copy of each.

The webhook, the peer set and the reload controller all ask the same
questions of a pod (which container is Stellar's, which port is named what,
its IP, whether it runs, whether it is Ready); they ask here so the answers cannot drift.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from webhook import names
from webhook.address import is_dns_label, port_number

__all__ = [
    "admin_port",
    "choose_container",
    "controller_owner",
    "core_conf",
    "image_repository",
    "ip",
    "is_ready",
    "is_running",
    "label_network",
    "named_port",
    "peer_ip",
    "peer_port",
    "pod_ip",
    "port_number",
    "read_status",
    "target_container",
]

Obj = Mapping[str, Any]


def as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def image_repository(image: Any) -> str:
    """The image without tag or digest; a registry's `:port` is kept.

    `registry:5000/stellar/stellar-core:21.0@sha256:ab..` -> `registry:5000/stellar/stellar-core`
    """
    if not isinstance(image, str):
        return ""
    name = image.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    return name


def named_port(container: Any, name: str) -> int | None:
    """The container's port called `name` (`peer`, `http`), or None."""
    for port in as_list(as_dict(container).get("ports")):
        if isinstance(port, Mapping) and port.get("name") == name:
            number = port_number(port.get("containerPort"))
            if number is not None:
                return number
    return None


# Container port names by precedence (stellar/helm-charts: `core` and `core-peer`).
ADMIN_PORT_NAMES = ("http", "core")
PEER_PORT_NAMES = ("peer", "core-peer")


def _first_named_port(container: Any, wanted: tuple[str, ...]) -> int | None:
    for name in wanted:
        number = named_port(container, name)
        if number is not None:
            return number
    return None


def admin_port(container: Any) -> int:
    """The admin (HTTP) port: the port named `http` or `core`, else 11626."""
    return _first_named_port(container, ADMIN_PORT_NAMES) or names.DEFAULT_HTTP_PORT


def peer_port(container: Any, annotations: Mapping[str, Any]) -> int | None:
    """The peer port: named `peer` or `core-peer`, else the `stellar.org/peer-port`
    annotation, else 11625; None when the annotation is there and is no port."""
    named = _first_named_port(container, PEER_PORT_NAMES)
    if named is not None:
        return named
    if names.PEER_PORT_ANNOTATION in annotations:
        return port_number(annotations[names.PEER_PORT_ANNOTATION])
    return names.DEFAULT_PEER_PORT


def core_conf(container: Any) -> str:
    """The config file the node runs with: env `STELLAR_CORE_CONF` (a plain value), else
    the container's own `--conf FILE` (stellar/helm-charts: `/config/stellar-core.cfg`), also
    inside a `sh -c` script (the last one: `exec stellar-core run --conf F` ends such scripts),
    else "" (stellar-core's default, `stellar-core.cfg` in the working directory)."""
    spec = as_dict(container)
    for env in as_list(spec.get("env")):
        env = as_dict(env)
        if env.get("name") == names.ENV_CORE_CONF and as_str(env.get("value")):
            return as_str(env.get("value"))
    argv = [as_str(a) for a in as_list(spec.get("command")) + as_list(spec.get("args"))]
    for i, arg in enumerate(argv):
        if arg == "--conf" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--conf="):
            return arg.removeprefix("--conf=")
    in_scripts = [m for arg in argv for m in _SCRIPT_CONF.findall(arg)]
    return in_scripts[-1] if in_scripts else ""


# `--conf FILE` inside a shell script; only plain path characters, so nothing else rides along.
_SCRIPT_CONF = re.compile(r"(?<![\w-])--conf(?:=|[ \t]+)([A-Za-z0-9_./-]+)(?=$|[\s;&|)])")


def ip(value: Any) -> str | None:
    """`value` as a normalised IP address, or None when it is not one."""
    try:
        return str(ipaddress.ip_address(as_str(value)))
    except ValueError:
        return None


def peer_ip(value: Any) -> str | None:
    """`value` as an IPv4 address a node can be told of, or None.

    stellar-core resolves and dials IPv4 only (`PeerBareAddress::resolve`), so an
    IPv6 address is never published, mounted or sent in a `connect`.
    """
    found = ip(value)
    return found if found is not None and ipaddress.ip_address(found).version == 4 else None


def pod_ip(pod: Obj) -> str | None:
    """The pod's IPv4 address (`podIP`, else the IPv4 one of a dual-stack pod's
    `podIPs`), or None: an IPv6-only pod is no peer (`peer_ip`)."""
    status = as_dict(pod.get("status"))
    listed = (as_dict(item).get("ip") for item in as_list(status.get("podIPs")))
    for value in (status.get("podIP"), *listed):
        found = peer_ip(value)
        if found is not None:
            return found
    return None


def is_ready(pod: Obj) -> bool:
    """Ready condition True and not terminating: shown by `status`; membership of the peer
    set does not wait for it (`is_running`)."""
    if as_dict(pod.get("metadata")).get("deletionTimestamp"):
        return False
    conditions = as_list(as_dict(pod.get("status")).get("conditions"))
    return any(
        as_dict(c).get("type") == "Ready" and as_dict(c).get("status") == "True" for c in conditions
    )


def is_running(pod: Obj) -> bool:
    """A peer by DESIGN.md "Bootstrap": Running, not terminating, its target container
    running and started (`started` is False only while a startup probe holds it), Ready
    or not. A validator often turns Ready only once it has met its peers, so a set that
    waited for Ready could wait forever; a container that is waiting (crash-looping,
    restarting) is no peer."""
    if as_dict(pod.get("metadata")).get("deletionTimestamp"):
        return False
    status = as_dict(pod.get("status"))
    if status.get("phase") != "Running":
        return False
    container = target_container(pod)
    if container is None:
        return False
    for item in as_list(status.get("containerStatuses")):
        entry = as_dict(item)
        if entry.get("name") == container.get("name"):
            running = "running" in as_dict(entry.get("state"))
            return running and entry.get("started") is not False
    return False


def container_states(status: Obj) -> list[dict[str, Any]]:
    """Each container's status as `is_running` reads it, and nothing that changes while it
    runs (`ready`, probes, restart counts): a pod whose readiness flaps stays the same."""
    kept = []
    for item in as_list(status.get("containerStatuses")):
        entry = as_dict(item)
        state: dict[str, Any] = {"running": {}} if "running" in as_dict(entry.get("state")) else {}
        kept.append({"name": entry.get("name"), "started": entry.get("started"), "state": state})
    return kept


# Whether an image repository makes a container a validator's (`Settings.image_matches`).
ImageMatches = Callable[[str], bool]

_DEFAULT_IMAGE = re.compile(names.DEFAULT_IMAGE_PATTERN)


def default_image_matches(repository: str) -> bool:
    """The default `image_pattern`, for readers that hold no settings (`status`, the peer
    set): they read injected pods, whose status annotation names the container the
    user's pattern chose, so it decides only for a pod without one."""
    return _DEFAULT_IMAGE.search(repository) is not None


def choose_container(
    containers: Sequence[Mapping[str, Any]],
    annotations: Mapping[str, Any],
    *,
    image_matches: ImageMatches,
) -> Mapping[str, Any] | None:
    """DESIGN.md "Validator selection", the one copy: the container annotation
    `stellar.org/inject-container` names (None when it names none), else the first whose
    image repository matches the image pattern, else the first (None when there is none)."""
    wanted = annotations.get(names.CONTAINER_ANNOTATION)
    if wanted not in (None, ""):
        return next((c for c in containers if c.get("name") == wanted), None)
    for container in containers:
        if image_matches(image_repository(container.get("image"))):
            return container
    return containers[0] if containers else None


def target_container(
    pod: Obj, *, image_matches: ImageMatches = default_image_matches
) -> Mapping[str, Any] | None:
    """The container the webhook injected (its status annotation says which), else the one
    `choose_container` picks."""
    containers = [as_dict(c) for c in as_list(as_dict(pod.get("spec")).get("containers"))]
    annotations = as_dict(as_dict(pod.get("metadata")).get("annotations"))
    injected = _injected_container(annotations)
    for container in containers if injected else ():
        if container.get("name") == injected:
            return container
    return choose_container(containers, annotations, image_matches=image_matches)


def read_status(annotations: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parsed status annotation (what the webhook injected, and where), or None when
    absent or unreadable: the one reader, for admission and everything after it."""
    raw = annotations.get(names.STATUS_ANNOTATION)
    if not isinstance(raw, str):
        return None
    try:
        status = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return status if isinstance(status, dict) else None


def _injected_container(annotations: Mapping[str, Any]) -> str:
    return as_str((read_status(annotations) or {}).get("container"))


def controller_owner(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controlling owner, or None: what a rollout restarts
    and what recreates a pod the audit evicts."""
    for ref in as_list(metadata.get("ownerReferences")):
        if isinstance(ref, Mapping) and ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None


def label_network(pod: Obj) -> str:
    """The pod's `stellar.org/network` label when it is a network name, else ""."""
    labels = as_dict(as_dict(pod.get("metadata")).get("labels"))
    value = as_str(labels.get(names.NETWORK_LABEL))
    return value if is_dns_label(value) else ""
