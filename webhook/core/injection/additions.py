"""What injection adds to a pod, decided once and rendered twice.

`plan` reads the pod and says which items to add and which to skip (and why);
it changes nothing. `injection` applies a plan to a copy of the pod (`mutate`)
or writes it straight out as JSONPatch ops (`patch_for`), so the rules about
collisions live here only. Plain dicts in, plain dicts out: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from webhook import __version__, names
from webhook.core.injection import hook, patch
from webhook.core.pod import label_network

STATUS_VERSION: Final = __version__


# The injected items, built from the contract's names; each call makes fresh objects
# (cheaper than copying a constant, and the caller may change them).
def volume() -> dict[str, Any]:
    return {
        "name": names.VOLUME_NAME,
        "configMap": {"name": names.CONFIGMAP_NAME, "optional": True},
    }


def volume_mount() -> dict[str, Any]:
    return {"name": names.VOLUME_NAME, "mountPath": names.MOUNT_PATH, "readOnly": True}


def _from_config_map(key: str) -> dict[str, Any]:
    return {"configMapKeyRef": {"name": names.CONFIGMAP_NAME, "key": key, "optional": True}}


def env_vars(labels: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The env of a pod: a pod labeled `stellar.org/network` reads its network's keys
    (and names its network for the hook); any other the unqualified ones, which hold
    the whole set only while the cluster has one network, so env never mixes networks."""
    network = label_network({"metadata": {"labels": labels}})
    csv, count = (
        (names.KEY_NETWORK_CSV.format(network), names.KEY_NETWORK_COUNT.format(network))
        if network
        else (names.KEY_CSV, names.KEY_COUNT)
    )
    env: list[dict[str, Any]] = [
        {"name": names.ENV_PEERS_FILE, "value": names.PEERS_FILE},
        {"name": names.ENV_PEERS, "valueFrom": _from_config_map(csv)},
        {"name": names.ENV_PEER_COUNT, "valueFrom": _from_config_map(count)},
        # apiVersion is what the API server would default it to: a re-read pod compares equal.
        {
            "name": names.ENV_POD_IP,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
        },
    ]
    if network:
        env.append({"name": names.ENV_NETWORK, "value": network})
    return env


@dataclass(frozen=True)
class Plan:
    """The items to append or set (fresh objects, owned by the caller) and the status."""

    volumes: list[dict[str, Any]]  # appended to spec.volumes
    mounts: list[dict[str, Any]]  # appended to the target container's volumeMounts
    env: list[dict[str, Any]]  # appended to the target container's env
    post_start: dict[str, Any] | None  # set as lifecycle.postStart, unless None
    label: bool  # set the injected label to "true"
    status: str  # the status annotation's value


def plan(
    spec: Mapping[str, Any],
    container: Mapping[str, Any],
    labels: Mapping[str, Any],
    *,
    container_name: str,
    http_port: int,
    timeout_seconds: int,
) -> Plan:
    """What to add to `container` (of `spec`) and to the pod's labels. Nothing the pod
    already has is overwritten: a colliding item is skipped and the status says why."""
    added: dict[str, Any] = {
        "volumes": [],
        "volumeMounts": [],
        "env": [],
        "postStart": False,
        "label": False,
    }
    skipped: list[dict[str, str]] = []
    volumes, mounts = _volume_and_mount(spec, container, added, skipped)
    env = _env(container, labels, added, skipped)

    post_start: dict[str, Any] | None = None
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict) and lifecycle.get("postStart") is not None:
        skipped.append({"item": "postStart", "reason": "has-own-poststart"})
    else:
        command = hook.poststart_command(http_port=http_port, timeout_seconds=timeout_seconds)
        post_start = {"exec": {"command": command}}
        added["postStart"] = True

    label = labels.get(names.INJECTED_LABEL) != "true"
    added["label"] = label
    status = {
        "version": STATUS_VERSION,
        "container": container_name,
        "added": added,
        "skipped": skipped,
    }
    return Plan(
        volumes=volumes,
        mounts=mounts,
        env=env,
        post_start=post_start,
        label=label,
        status=orjson.dumps(status).decode(),
    )


def _volume_and_mount(
    spec: Mapping[str, Any],
    container: Mapping[str, Any],
    added: dict[str, Any],
    skipped: list[dict[str, str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ConfigMap volume and its mount go together: we add no volume that nothing
    mounts, and never mount a `stellar-peers` volume that is not our ConfigMap."""
    volume_item = f"volume:{names.VOLUME_NAME}"
    mount_item = f"volumeMount:{names.MOUNT_PATH}"
    volumes = spec.get("volumes") or []
    existing = next((v for v in volumes if v.get("name") == names.VOLUME_NAME), None)
    if existing is not None and not _is_our_volume(existing):
        skipped.append({"item": volume_item, "reason": "name-taken"})
        skipped.append({"item": mount_item, "reason": "volume-not-ours"})
        return [], []

    mounts = container.get("volumeMounts") or []
    at_path = next((m for m in mounts if _same_path(m.get("mountPath"), names.MOUNT_PATH)), None)
    mount_skip: str | None = None
    if at_path is not None:
        mount_skip = "already-present" if at_path.get("name") == names.VOLUME_NAME else "path-taken"
    elif any(m.get("name") == names.VOLUME_NAME for m in mounts):
        mount_skip = "volume-mounted-elsewhere"

    new_volumes: list[dict[str, Any]] = []
    if existing is not None:
        skipped.append({"item": volume_item, "reason": "already-present"})
    elif mount_skip == "path-taken":
        skipped.append({"item": volume_item, "reason": "not-mounted"})
    else:
        new_volumes.append(volume())
        added["volumes"].append(names.VOLUME_NAME)

    new_mounts: list[dict[str, Any]] = []
    if mount_skip is not None:
        skipped.append({"item": mount_item, "reason": mount_skip})
    else:
        new_mounts.append(volume_mount())
        added["volumeMounts"].append(names.MOUNT_PATH)
    return new_volumes, new_mounts


def _is_our_volume(volume: dict[str, Any]) -> bool:
    config_map = volume.get("configMap")
    return isinstance(config_map, dict) and config_map.get("name") == names.CONFIGMAP_NAME


def _env(
    container: Mapping[str, Any],
    labels: Mapping[str, Any],
    added: dict[str, Any],
    skipped: list[dict[str, str]],
) -> list[dict[str, Any]]:
    env = container.get("env")
    present = {e["name"]: e for e in env or () if isinstance(e.get("name"), str)}
    new: list[dict[str, Any]] = []
    for var in env_vars(labels):
        name = var["name"]
        if name in present:
            reason = "already-present" if patch.equal(present[name], var) else "name-taken"
            skipped.append({"item": f"env:{name}", "reason": reason})
        else:
            new.append(var)
            added["env"].append(name)
    return new


def _same_path(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.rstrip("/") == b.rstrip("/")
