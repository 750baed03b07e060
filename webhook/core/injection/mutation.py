"""Injection: whether a pod is a validator, and the same pod with peer discovery added.

Owns the decision (`decide`), the mutation (`mutate`), the status annotation
that makes re-invocation safe, and `patch_for`, the one entry point that the
webhook and the offline CLI share; what is added is `additions.plan`'s to say.
Plain dicts in, plain dicts out: no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from webhook import names
from webhook.core import pod as pod_facts
from webhook.core.injection import additions, patch
from webhook.core.pod import image_repository
from webhook.settings import Settings

Reason = Literal[
    "validator-label",
    "validator-image",
    "not-a-validator",
    "opted-out",
    "already-injected",
    "not-a-pod",
    "no-containers",
    "container-not-found",
    "malformed-pod",
]

STATUS_VERSION: Final = additions.STATUS_VERSION


@dataclass(frozen=True)
class Decision:
    """Whether to inject, why (a stable short word), and where."""

    inject: bool
    reason: Reason
    container: str | None = None
    peer_port: int = names.DEFAULT_PEER_PORT
    http_port: int = names.DEFAULT_HTTP_PORT


def decide(pod: Mapping[str, Any], *, settings: Settings) -> Decision:
    """Decide whether `pod` gets peer discovery; the first rule that applies wins.

    1. `not-a-pod`: not an object, or its `kind` is set to something else than Pod
       (a pod template has no kind and counts as a pod).
    2. `malformed-pod`: a field we read has the wrong type. We never raise on odd specs;
       the API server's own validation will speak about them.
    3. `no-containers`.
    4. `opted-out`: annotation `stellar.org/inject-peers: "false"`.
    5. `already-injected`: the status annotation records this very version.
    6. `validator-label` (label `stellar.org/node-type=validator`, any case), else
       `validator-image` (a container's image repository matches the pattern), else
       `not-a-validator`. Init containers neither count nor are ever changed.
    7. `container-not-found`: annotation `stellar.org/inject-container` names no container.

    The namespace is not checked here: the webhook's namespaceSelector makes the API
    server call us only for enabled namespaces.
    """
    if not isinstance(pod, dict) or pod.get("kind", "Pod") != "Pod":
        return Decision(inject=False, reason="not-a-pod")
    if _malformed(pod):
        return Decision(inject=False, reason="malformed-pod")
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    containers: list[dict[str, Any]] = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        return Decision(inject=False, reason="no-containers")
    if str(annotations.get(names.INJECT_ANNOTATION, "")).strip().lower() == "false":
        return Decision(inject=False, reason="opted-out")
    status = pod_facts.read_status(annotations)
    if status is not None and status.get("version") == STATUS_VERSION:
        return Decision(inject=False, reason="already-injected")

    node_type = labels.get(names.NODE_TYPE_LABEL)
    reason: Reason
    if isinstance(node_type, str) and node_type.lower() == "validator":
        reason = "validator-label"
    elif any(settings.image_matches(image_repository(c.get("image"))) for c in containers):
        reason = "validator-image"
    else:
        return Decision(inject=False, reason="not-a-validator")

    target = pod_facts.choose_container(
        containers, annotations, image_matches=settings.image_matches
    )
    if target is None:
        return Decision(inject=False, reason="container-not-found")

    # An annotation that is no port still injects: the hook needs no peer port of its own.
    peer_port = pod_facts.peer_port(target, annotations) or names.DEFAULT_PEER_PORT
    http_port = pod_facts.admin_port(target)
    return Decision(
        inject=True,
        reason=reason,
        container=target["name"],
        peer_port=peer_port,
        http_port=http_port,
    )


def mutate(pod: Mapping[str, Any], decision: Decision, *, settings: Settings) -> dict[str, Any]:
    """A deep copy of `pod` with the peers volume, mount, env, hook, label and status.

    Nothing the pod already has is overwritten: a colliding item is skipped and the
    status annotation says why. A status left by an older version is stripped first,
    so the result is the same as injecting the original pod.
    """
    result: dict[str, Any] = patch.clone(
        _injected(pod, decision, settings=settings) if decision.inject else dict(pod)
    )
    return result


def patch_for(
    pod: Mapping[str, Any], *, settings: Settings
) -> tuple[Decision, list[dict[str, Any]]]:
    """Decide, then the JSONPatch ops that inject (none when nothing changes): the
    webhook's hot path. Written straight from the plan of additions; a pod that carries
    an older version's status is first stripped of what that version added, which only
    the copy and `patch.diff` can express."""
    decision = decide(pod, settings=settings)
    if not decision.inject:
        return decision, []
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if pod_facts.read_status(annotations) is not None:
        return decision, patch_by_diff(pod, decision, settings=settings)
    return decision, _ops(pod, decision, settings=settings)


def patch_by_diff(
    pod: Mapping[str, Any], decision: Decision, *, settings: Settings
) -> list[dict[str, Any]]:
    """The ops as the diff of the pod and its injected copy: what `patch_for` must equal
    once applied (the tests' oracle), and its way for re-injecting an older version.
    The copy shares its untouched parts with `pod`, so the diff skips them by identity."""
    return patch.diff(pod, _injected(pod, decision, settings=settings))


def _ops(pod: Mapping[str, Any], decision: Decision, *, settings: Settings) -> list[dict[str, Any]]:
    """The plan for a pod without an older status, as ops on the pod as it is: each
    item is an `add` at the end of its list, a list or object that is missing is added
    whole, and one that is null is replaced whole (as `patch.diff` would write it)."""
    spec = pod["spec"]
    index, container = next(
        (i, c) for i, c in enumerate(spec["containers"]) if c.get("name") == decision.container
    )
    metadata = pod.get("metadata")
    labels = (metadata or {}).get("labels") or {}
    todo = _plan(spec, container, labels, decision, settings=settings)
    ops: list[dict[str, Any]] = []
    at = f"/spec/containers/{index}"
    _append(ops, "/spec", spec, "volumes", todo.volumes)
    _append(ops, at, container, "volumeMounts", todo.mounts)
    _append(ops, at, container, "env", todo.env)
    if todo.post_start is not None:
        lifecycle = container.get("lifecycle")
        if isinstance(lifecycle, dict):
            _put(ops, f"{at}/lifecycle", lifecycle, "postStart", todo.post_start)
        else:
            _put(ops, at, container, "lifecycle", {"postStart": todo.post_start})
    new = {
        "annotations": {names.STATUS_ANNOTATION: todo.status},
        "labels": {names.INJECTED_LABEL: "true"} if todo.label else {},
    }
    if not isinstance(metadata, dict):
        _put(ops, "", pod, "metadata", new)
        return ops
    for key, entries in new.items():
        current = metadata.get(key)
        if not isinstance(current, dict):
            _put(ops, "/metadata", metadata, key, entries)
            continue
        for name, value in entries.items():
            _put(ops, f"/metadata/{key}", current, name, value)
    return ops


def _append(
    ops: list[dict[str, Any]],
    path: str,
    parent: Mapping[str, Any],
    key: str,
    items: list[dict[str, Any]],
) -> None:
    if not items:
        return
    current = parent.get(key)
    if not isinstance(current, list):
        _put(ops, path, parent, key, items)
        return
    for offset, item in enumerate(items, start=len(current)):
        ops.append({"op": "add", "path": f"{path}/{key}/{offset}", "value": item})


def _put(
    ops: list[dict[str, Any]], path: str, parent: Mapping[str, Any], key: str, value: Any
) -> None:
    """`parent[key] = value` as an op: `add` when absent, `replace` when different."""
    pointer = f"{path}/{patch.escape(key)}"
    if key not in parent:
        ops.append({"op": "add", "path": pointer, "value": value})
    elif not patch.same(parent[key], value):
        ops.append({"op": "replace", "path": pointer, "value": value})


def _plan(
    spec: Mapping[str, Any],
    container: Mapping[str, Any],
    labels: Mapping[str, Any],
    decision: Decision,
    *,
    settings: Settings,
) -> additions.Plan:
    return additions.plan(
        spec,
        container,
        labels,
        container_name=decision.container or "",
        http_port=decision.http_port,
        timeout_seconds=settings.hook_timeout_seconds,
    )


def _injected(pod: Mapping[str, Any], decision: Decision, *, settings: Settings) -> dict[str, Any]:
    """`mutate` without the deep copy: every object it changes is copied first, the rest
    is shared with `pod`, which is left as it was."""
    result = dict(pod)
    metadata = result["metadata"] = dict(result.get("metadata") or {})
    annotations = metadata["annotations"] = dict(metadata.get("annotations") or {})
    labels = metadata["labels"] = dict(metadata.get("labels") or {})
    spec = result["spec"] = dict(result["spec"])
    if isinstance(spec.get("volumes"), list):
        spec["volumes"] = list(spec["volumes"])
    old = pod_facts.read_status(annotations)
    touched = {decision.container, _text(old.get("container")) if old else None}
    spec["containers"] = [
        _own_container(c) if c.get("name") in touched else c for c in spec["containers"]
    ]
    if old is not None:
        _strip(spec, labels, old)

    container = next(c for c in spec["containers"] if c.get("name") == decision.container)
    todo = _plan(spec, container, labels, decision, settings=settings)
    if todo.volumes:
        _list_at(spec, "volumes").extend(todo.volumes)
    if todo.mounts:
        _list_at(container, "volumeMounts").extend(todo.mounts)
    if todo.env:
        _list_at(container, "env").extend(todo.env)
    if todo.post_start is not None:
        _dict_at(container, "lifecycle")["postStart"] = todo.post_start
    if todo.label:
        labels[names.INJECTED_LABEL] = "true"
    annotations[names.STATUS_ANNOTATION] = todo.status
    return result


def _own_container(container: dict[str, Any]) -> dict[str, Any]:
    """A copy of `container` whose lists and lifecycle may be changed in place."""
    copy = dict(container)
    for key in ("env", "volumeMounts"):
        if isinstance(copy.get(key), list):
            copy[key] = list(copy[key])
    if isinstance(copy.get("lifecycle"), dict):
        copy["lifecycle"] = dict(copy["lifecycle"])
    return copy


def _strip(spec: dict[str, Any], labels: dict[str, Any], status: dict[str, Any]) -> None:
    """Remove what an older version's status says it added (like Istio's stripPod)."""
    added = status.get("added")
    if not isinstance(added, dict):
        return
    volumes = set(_strings(added.get("volumes")))
    if volumes and spec.get("volumes"):
        spec["volumes"] = [v for v in spec["volumes"] if _text(v.get("name")) not in volumes]
    for container in spec["containers"]:
        if container.get("name") != status.get("container"):
            continue
        mounts = set(_strings(added.get("volumeMounts")))
        if mounts and container.get("volumeMounts"):
            container["volumeMounts"] = [
                m for m in container["volumeMounts"] if _text(m.get("mountPath")) not in mounts
            ]
        env = set(_strings(added.get("env")))
        if env and container.get("env"):
            container["env"] = [e for e in container["env"] if _text(e.get("name")) not in env]
        lifecycle = container.get("lifecycle")
        if added.get("postStart") is True and isinstance(lifecycle, dict):
            lifecycle.pop("postStart", None)
            if not lifecycle:
                del container["lifecycle"]
    if added.get("label") is True:
        labels.pop(names.INJECTED_LABEL, None)


def _malformed(pod: dict[str, Any]) -> bool:
    """True when a field that decide or mutate reads has a type they cannot handle."""
    metadata = pod.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return True
        for key in ("labels", "annotations"):
            if not _dict_or_none(metadata.get(key)):
                return True
    spec = pod.get("spec")
    if spec is None:
        return False
    if not isinstance(spec, dict) or not _list_of_dicts(spec.get("volumes")):
        return True
    containers = spec.get("containers")
    if not _list_of_dicts(containers):
        return True
    for container in containers or ():
        if not isinstance(container.get("name"), str):
            return True
        image = container.get("image")
        if image is not None and not isinstance(image, str):
            return True
        for key in ("ports", "env", "volumeMounts"):
            if not _list_of_dicts(container.get(key)):
                return True
        if not _dict_or_none(container.get("lifecycle")):
            return True
    return False


def _dict_at(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """`parent[key]`, made an empty dict first when missing or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _list_at(parent: dict[str, Any], key: str) -> list[Any]:
    """`parent[key]`, made an empty list first when missing or null."""
    value = parent.get(key)
    if not isinstance(value, list):
        value = parent[key] = []
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _dict_or_none(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _list_of_dicts(value: Any) -> bool:
    # map(isinstance, ...) runs in C: no Python frame per item on every admission.
    return value is None or (isinstance(value, list) and all(map(isinstance, value, _DICTS)))


_DICTS: Final = itertools.repeat(dict)
