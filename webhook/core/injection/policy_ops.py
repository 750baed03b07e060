"""The JSONPatch half of the policy: the ops that write `policy_cel`'s plan into the pod.

Mirrors `injection._ops`: each item appended at the end of its list, a missing list or
object added whole; an older version's items are first removed by index. Values are
typed CEL initializers (`Object.spec...`), the form the API server turns into JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from webhook import names
from webhook.core.injection import patch
from webhook.core.injection.policy_cel import CURRENT_RE, hook_script, lit
from webhook.settings import Settings

_ENV: Final = "Object.spec.containers.env"
_FROM: Final = f"{_ENV}.valueFrom"
_LIFE: Final = "Object.spec.containers.lifecycle"


def _objects(settings: Settings) -> dict[str, str]:
    """The items to add, as typed CEL object initializers."""

    def from_map(key: str) -> str:
        return (
            f"{_FROM}{{configMapKeyRef: {_FROM}.configMapKeyRef{{"
            f"name: {lit(names.CONFIGMAP_NAME)}, key: {key}, optional: true}}}}"
        )

    env = [
        f"{_ENV}{{name: {lit(names.ENV_PEERS_FILE)}, value: {lit(names.PEERS_FILE)}}}",
        f"{_ENV}{{name: {lit(names.ENV_PEERS)}, valueFrom: {from_map('variables.csvKey')}}}",
        f"{_ENV}{{name: {lit(names.ENV_PEER_COUNT)}, valueFrom: {from_map('variables.countKey')}}}",
        f"{_ENV}{{name: {lit(names.ENV_POD_IP)}, valueFrom: {_FROM}{{fieldRef: "
        f"{_FROM}.fieldRef{{apiVersion: 'v1', fieldPath: 'status.podIP'}}}}}}",
        f"{_ENV}{{name: {lit(names.ENV_NETWORK)}, value: variables.net}}",
    ]
    post_start = (
        f"{_LIFE}.postStart{{exec: {_LIFE}.postStart.exec{{command: "
        f"['/bin/sh', '-c', {hook_script(settings)}]}}}}"
    )
    return {
        "volume": (
            f"Object.spec.volumes{{name: {lit(names.VOLUME_NAME)}, configMap: "
            f"Object.spec.volumes.configMap{{name: {lit(names.CONFIGMAP_NAME)}, optional: true}}}}"
        ),
        "mount": (
            f"Object.spec.containers.volumeMounts{{name: {lit(names.VOLUME_NAME)}, "
            f"mountPath: {lit(names.MOUNT_PATH)}, readOnly: true}}"
        ),
        "env": " + ".join(
            f"(variables.envState[{i}] == 'add' ? [{item}] : [])" for i, item in enumerate(env)
        ),
        "postStart": post_start,
        "lifecycle": f"{_LIFE}{{postStart: {post_start}}}",
    }


def _in(names_list: str, field: str) -> Callable[[str], str]:
    """A `drop` for `_removals`: the item's `field` is one of `names_list`."""
    return lambda item: f"{item}.{field} in {names_list}"


def _op(op: str, path: str, value: str | None = None) -> str:
    tail = "" if value is None else f", value: {value}"
    return f"JSONPatch{{op: {lit(op)}, path: {path}{tail}}}"


def _removals(path: str, items: str, drop: Callable[[str], str]) -> str:
    """`remove` ops for the items of `items` that `drop` names, last first (so each index
    still holds when its turn comes). Existing items are typed values the API server
    cannot write back into a patch, so a stripped list is never replaced whole."""
    remove = _op("remove", f"{path} + '/' + string(i)")
    return f"lists.range(size({items})).filter(i, {drop(f'{items}[i]')}).reverse().map(i, {remove})"


def _append(
    at: str, key: str, base0: str, stripped: str, drop: Callable[[str], str], new: str
) -> str:
    """Ops that strip from `at/key` what an older version added, then append `new`."""
    path = f"{at} + '/{key}'"
    each, whole = _op("add", path + " + '/-'", "x"), _op("add", path, new)
    return (
        f"(({stripped}) ? {_removals(path, base0, drop)} : [])"
        f" + (size({base0}) > 0 ? ({new}).map(x, {each})"
        f" : (size({new}) > 0 ? [{whole}] : []))"
    )


def mutation(settings: Settings) -> str:
    """The JSONPatch expression: nothing unless `variables.inject`."""
    v = "variables."
    o = _objects(settings)
    at = f"'/spec/containers/' + string({v}tIdx)"
    old_at = f"'/spec/containers/' + string({v}oIdx)"
    old = f"{v}ctrs[{v}oIdx]"
    set_post = _op("add", at + " + '/lifecycle/postStart'", o["postStart"])
    set_lifecycle = _op("add", at + " + '/lifecycle'", o["lifecycle"])
    old_env = _removals(old_at + " + '/env'", f"{old}.env", _in(f"{v}oldEnv", "name"))
    old_mounts = _removals(
        old_at + " + '/volumeMounts'", f"{old}.volumeMounts", _in(f"{v}oldMounts", "mountPath")
    )
    drop_post = _op("remove", old_at + " + '/lifecycle/postStart'")
    drop_lifecycle = _op("remove", old_at + " + '/lifecycle'")
    label_key, status_key = lit(names.INJECTED_LABEL), lit(names.STATUS_ANNOTATION)
    add_label = _op("add", lit("/metadata/labels/" + patch.escape(names.INJECTED_LABEL)), "'true'")
    new_labels = _op("add", "'/metadata/labels'", "{" + label_key + ": 'true'}")
    add_status = _op(
        "add",
        lit("/metadata/annotations/" + patch.escape(names.STATUS_ANNOTATION)),
        f"{v}statusText",
    )
    new_annotations = _op("add", "'/metadata/annotations'", "{" + status_key + f": {v}statusText}}")
    ops = [
        _append(
            "''",
            "spec/volumes",
            f"{v}vols0",
            f"{v}older",
            _in(f"{v}oldVolumes", "name"),
            f"({v}addVol ? [{o['volume']}] : [])",
        ),
        _append(
            at,
            "volumeMounts",
            f"{v}tMounts0",
            f"{v}tStripped",
            _in(f"{v}oldMounts", "mountPath"),
            f"({v}addMount ? [{o['mount']}] : [])",
        ),
        _append(
            at, "env", f"{v}tEnv0", f"{v}tStripped", _in(f"{v}oldEnv", "name"), f"({o['env']})"
        ),
        # postStart: set, into the lifecycle the container has, or a new one
        f"({v}ownPost ? [] : has({v}t.lifecycle) ? [{set_post}] : [{set_lifecycle}])",
        # an older status named another container: strip that one too
        f"({v}oIdx >= 0 && {v}oIdx != {v}tIdx ? ("
        f"(has({old}.env) ? {old_env} : [])"
        f" + (has({old}.volumeMounts) ? {old_mounts} : [])"
        f" + ({v}oldPost && has({old}.lifecycle) && has({old}.lifecycle.postStart) ? "
        f"(has({old}.lifecycle.preStop) || has({old}.lifecycle.stopSignal)"
        f" ? [{drop_post}] : [{drop_lifecycle}]) : [])"
        ") : [])",
        f"({v}labelled ? [] : has(object.metadata.labels) ? [{add_label}] : [{new_labels}])",
        f"(has(object.metadata.annotations) ? [{add_status}] : [{new_annotations}])",
    ]
    return f"!{v}inject ? [] : " + "\n + ".join(ops)


def match_condition() -> str:
    """Cheap guard, idempotent under reinvocation: not opted out, not injected by this version."""
    ann = "object.metadata.annotations"
    status, opt = lit(names.STATUS_ANNOTATION), lit(names.INJECT_ANNOTATION)
    return (
        f"!has({ann}) || (!({status} in {ann} && {ann}[{status}].matches({lit(CURRENT_RE)}))"
        f" && !({opt} in {ann} && {ann}[{opt}].trim().lowerAscii() == 'false'))"
    )
