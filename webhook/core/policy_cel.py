"""The injection of `core.injection` written in CEL, for a MutatingAdmissionPolicy.

The API server evaluates these expressions itself: `VARIABLES` decide (the same rules,
in the same order, as `injection.decide`) and plan (as `additions.plan`), `MUTATION`
writes the JSONPatch ops. Everything the settings fix (image pattern, hook timeout,
the contract's names) is written into the text here, so the policy needs no params.

What CEL reads differently from Python, and why it does not matter:
- the pod is typed: a field of the wrong type never reaches us, and null lists or maps
  are absent, as they are in the AdmissionReview the webhook reads;
- an older version's status annotation is read with regular expressions, not a JSON
  parser: exact for what any version wrote (orjson's compact JSON), not for a
  hand-written status with escaped quotes in names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Final

from webhook import names
from webhook.core import additions, hook, patch
from webhook.settings import Settings

# A port no script text holds: the hook's port is spliced in where it stood.
_PORT_MARK: Final = 54321
ENV_SLOTS: Final = 5  # the four env vars every pod gets, and STELLAR_NETWORK


def lit(text: str) -> str:
    """`text` as a CEL string literal (JSON's escapes are CEL's too, for ASCII)."""
    if not text.isascii():
        raise ValueError(f"not ASCII, cannot be written into CEL: {text!r}")
    return json.dumps(text)


def _json_text(value: object) -> str:
    """A JSON fragment exactly as the status annotation (orjson, compact) writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _skip(item: str, reason: str) -> str:
    return _json_text({"item": item, "reason": reason})


def hook_script(settings: Settings) -> str:
    """The hook's script as CEL: the text around the port, joined by the admin port."""
    script = hook.poststart_command(
        http_port=_PORT_MARK, timeout_seconds=settings.hook_timeout_seconds
    )[2]
    parts = script.split(str(_PORT_MARK))
    if len(parts) != 3:  # the template names the port twice (curl and wget)
        raise AssertionError("the hook script no longer holds the admin port twice")
    return f"[{', '.join(lit(p) for p in parts)}].join(string(variables.httpPort))"


def _get(key: str, where: str = "ann") -> str:
    """The pod's annotation (or label, `where="lab"`) `key`, else ''."""
    return f"(({lit(key)} in variables.{where}) ? variables.{where}[{lit(key)}] : '')"


_CURRENT_RE: Final = r'^\s*\{\s*"version"\s*:\s*"' + re.escape(additions.STATUS_VERSION) + '"'
_MOUNT_RE: Final = "^" + re.escape(names.MOUNT_PATH.rstrip("/")) + "/*$"
_CONTAINER_RE: Final = lit(r'"container"\s*:\s*"[^"]*"')
_OBJECT_RE: Final = lit(r"^\s*\{[\s\S]*\}\s*$")
_POST_RE: Final = lit(r'"postStart"\s*:\s*true')
_LABEL_RE: Final = lit(r'"label"\s*:\s*true')
_NETWORK_RE: Final = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def _old_list(key: str) -> str:
    """The strings an older status lists under `added.<key>` (its JSON, read by regex)."""
    pattern = lit('"' + key + '"' + r"\s*:\s*\[[^\]]*\]")
    found = f"variables.status.find({pattern})"
    parts = f"{found}.split('[')[1].split('\"')"
    return (
        f"{found} == '' ? [] : lists.range(size({parts})).filter(i, i % 2 == 1).map(i, {parts}[i])"
    )


def _env_state(name: str, same: str) -> str:
    """'add', or why the pod's own var of that name (the last one) is kept."""
    return (
        f"variables.tEnv.filter(e, e.name == {lit(name)})"
        f".map(e, ({same}) ? 'already-present' : 'name-taken').reverse() + ['add']"
    )


def _from_map_same(key: str) -> str:
    return (
        "!has(e.value) && has(e.valueFrom) && has(e.valueFrom.configMapKeyRef)"
        " && !has(e.valueFrom.fieldRef) && !has(e.valueFrom.secretKeyRef)"
        " && !has(e.valueFrom.resourceFieldRef)"
        f" && has(e.valueFrom.configMapKeyRef.name) && e.valueFrom.configMapKeyRef.name == "
        f"{lit(names.CONFIGMAP_NAME)} && e.valueFrom.configMapKeyRef.key == {key}"
        " && has(e.valueFrom.configMapKeyRef.optional) && e.valueFrom.configMapKeyRef.optional"
    )


def _network_key(template: str) -> str:
    before, after = template.split("{}")
    return f"{lit(before)} + variables.net + {lit(after)}"


def _variables(settings: Settings) -> list[tuple[str, str]]:
    v = "variables."
    status_key = lit(names.STATUS_ANNOTATION)
    pod_ip_same = (
        "!has(e.value) && has(e.valueFrom) && has(e.valueFrom.fieldRef)"
        " && !has(e.valueFrom.configMapKeyRef) && e.valueFrom.fieldRef.fieldPath == 'status.podIP'"
        " && has(e.valueFrom.fieldRef.apiVersion) && e.valueFrom.fieldRef.apiVersion == 'v1'"
    )
    csv = f"(variables.net == '' ? {lit(names.KEY_CSV)} : {_network_key(names.KEY_NETWORK_CSV)})"
    count = (
        f"(variables.net == '' ? {lit(names.KEY_COUNT)} : {_network_key(names.KEY_NETWORK_COUNT)})"
    )
    volume_item = f"volume:{names.VOLUME_NAME}"
    mount_skip = lit(_skip(f"volumeMount:{names.MOUNT_PATH}", "").removesuffix('"}'))
    status_head = lit('{"version":' + _json_text(additions.STATUS_VERSION) + ',"container":"')
    return [
        # the decision (injection.decide)
        ("ann", "has(object.metadata.annotations) ? object.metadata.annotations : {}"),
        ("lab", "has(object.metadata.labels) ? object.metadata.labels : {}"),
        ("ctrs", "has(object.spec.containers) ? object.spec.containers : []"),
        ("status", f"({status_key} in {v}ann) ? {v}ann[{status_key}] : ''"),
        ("current", f"{v}status.matches({lit(_CURRENT_RE)})"),
        (
            "optedOut",
            f"{_get(names.INJECT_ANNOTATION)}.trim().lowerAscii() == 'false'",
        ),
        ("bare", f"{v}ctrs.map(c, has(c.image) ? c.image.split('@')[0] : '')"),
        (
            "repos",
            f"{v}bare.map(n, n.lastIndexOf(':') > n.lastIndexOf('/')"
            " ? n.substring(0, n.lastIndexOf(':')) : n)",
        ),
        (
            "byImage",
            f"lists.range(size({v}repos))"
            f".filter(i, {v}repos[i].matches({lit(settings.image_pattern)}))",
        ),
        ("wanted", _get(names.CONTAINER_ANNOTATION)),
        (
            "validator",
            f"{_get(names.NODE_TYPE_LABEL, 'lab')}"
            f".lowerAscii() == 'validator' || size({v}byImage) > 0",
        ),
        (
            "tIdx",
            f"{v}wanted != '' ? {v}ctrs.map(c, c.name).indexOf({v}wanted)"
            f" : (size({v}byImage) > 0 ? {v}byImage[0] : 0)",
        ),
        (
            "inject",
            f"size({v}ctrs) > 0 && !{v}optedOut && !{v}current && {v}validator && {v}tIdx >= 0",
        ),
        # an older version's status: what it added is stripped first (injection._strip)
        (
            "older",
            f"{v}status != '' && !{v}current && {v}status.matches({_OBJECT_RE})",
        ),
        ("oldVolumes", f"{v}older ? ({_old_list('volumes')}) : []"),
        ("oldMounts", f"{v}older ? ({_old_list('volumeMounts')}) : []"),
        ("oldEnv", f"{v}older ? ({_old_list('env')}) : []"),
        ("oldPost", f"{v}older && {v}status.matches({_POST_RE})"),
        ("oldLabel", f"{v}older && {v}status.matches({_LABEL_RE})"),
        (
            "oIdx",
            f"{v}older ? {v}ctrs.map(c, c.name).indexOf("
            f"({v}status.find({_CONTAINER_RE}) == '' ? '' : "
            f"{v}status.find({_CONTAINER_RE}).split('\"')[3])) : -1",
        ),
        ("vols0", "has(object.spec.volumes) ? object.spec.volumes : []"),
        ("vols", f"{v}vols0.filter(x, !(x.name in {v}oldVolumes))"),
        ("t", f"{v}ctrs[{v}tIdx]"),
        ("tStripped", f"{v}tIdx == {v}oIdx"),
        ("tEnv0", f"has({v}t.env) ? {v}t.env : []"),
        (
            "tEnv",
            f"{v}tStripped ? {v}tEnv0.filter(e, !(e.name in {v}oldEnv)) : {v}tEnv0",
        ),
        ("tMounts0", f"has({v}t.volumeMounts) ? {v}t.volumeMounts : []"),
        (
            "tMounts",
            f"{v}tStripped ? {v}tMounts0.filter(m, !(m.mountPath in {v}oldMounts)) : {v}tMounts0",
        ),
        (
            "ownPost",
            f"has({v}t.lifecycle) && has({v}t.lifecycle.postStart)"
            f" && !({v}tStripped && {v}oldPost)",
        ),
        (
            "labelled",
            f"{_get(names.INJECTED_LABEL, 'lab')} == 'true' && !{v}oldLabel",
        ),
        # the plan (additions.plan)
        (
            "httpPort",
            "((has(variables.t.ports) ? variables.t.ports : []).filter(p, has(p.name)"
            " && p.containerPort >= 1 && p.containerPort <= 65535)"
            ".map(p, p.name == 'http' ? [p.containerPort] : [])"
            ".flatten() + (has(variables.t.ports) ? variables.t.ports : []).filter(p, has(p.name)"
            " && p.containerPort >= 1 && p.containerPort <= 65535)"
            ".map(p, p.name == 'core' ? [p.containerPort] : []).flatten()"
            f" + [{names.DEFAULT_HTTP_PORT}])[0]",
        ),
        ("existing", f"{v}vols.filter(x, x.name == {lit(names.VOLUME_NAME)})"),
        (
            "volTaken",
            f"size({v}existing) > 0 && !(has({v}existing[0].configMap)"
            f" && has({v}existing[0].configMap.name)"
            f" && {v}existing[0].configMap.name == {lit(names.CONFIGMAP_NAME)})",
        ),
        ("atPath", f"{v}tMounts.filter(m, m.mountPath.matches({lit(_MOUNT_RE)}))"),
        (
            "mountSkip",
            f"{v}volTaken ? 'volume-not-ours' : size({v}atPath) > 0 ? "
            f"({v}atPath[0].name == {lit(names.VOLUME_NAME)} ? 'already-present' : 'path-taken')"
            f" : {v}tMounts.exists(m, m.name == {lit(names.VOLUME_NAME)})"
            " ? 'volume-mounted-elsewhere' : ''",
        ),
        (
            "addVol",
            f"!{v}volTaken && size({v}existing) == 0 && {v}mountSkip != 'path-taken'",
        ),
        ("addMount", f"{v}mountSkip == ''"),
        (
            "volSkips",
            f"({v}volTaken ? [{lit(_skip(volume_item, 'name-taken'))}]"
            f" : size({v}existing) > 0 ? [{lit(_skip(volume_item, 'already-present'))}]"
            f" : {v}mountSkip == 'path-taken' ? [{lit(_skip(volume_item, 'not-mounted'))}] : [])"
            f" + ({v}mountSkip == '' ? [] : ["
            f"{mount_skip} + {v}mountSkip + '\"}}'])",
        ),
        (
            "net",
            f"{_get(names.NETWORK_LABEL, 'lab')}"
            f".matches({lit(_NETWORK_RE)}) ? "
            f"{_get(names.NETWORK_LABEL, 'lab')} : ''",
        ),
        (
            "envNames",
            "["
            + ", ".join(
                lit(n)
                for n in (
                    names.ENV_PEERS_FILE,
                    names.ENV_PEERS,
                    names.ENV_PEER_COUNT,
                    names.ENV_POD_IP,
                    names.ENV_NETWORK,
                )
            )
            + "]",
        ),
        ("csvKey", csv),
        ("countKey", count),
        (
            "envState",
            "["
            + ", ".join(
                [
                    f"({_env_state(names.ENV_PEERS_FILE, _value_same(lit(names.PEERS_FILE)))})[0]",
                    f"({_env_state(names.ENV_PEERS, _from_map_same('variables.csvKey'))})[0]",
                    f"({_env_state(names.ENV_PEER_COUNT, _from_map_same(f'{v}countKey'))})[0]",
                    f"({_env_state(names.ENV_POD_IP, pod_ip_same)})[0]",
                    f"variables.net == '' ? 'none' : "
                    f"({_env_state(names.ENV_NETWORK, _value_same('variables.net'))})[0]",
                ]
            )
            + "]",
        ),
        (
            "envAdded",
            f"lists.range({ENV_SLOTS}).filter(i, {v}envState[i] == 'add').map(i, {v}envNames[i])",
        ),
        (
            "envSkips",
            f"lists.range({ENV_SLOTS}).filter(i, {v}envState[i] == 'already-present'"
            f" || {v}envState[i] == 'name-taken')"
            f'.map(i, \'{{"item":"env:\' + {v}envNames[i] + \'","reason":"\' + {v}envState[i]'
            " + '\"}')",
        ),
        (
            "statusText",
            f"{status_head}"
            f' + {v}t.name + \'","added":{{"volumes":[\''
            f" + ({v}addVol ? {lit(_json_text(names.VOLUME_NAME))} : '')"
            " + '],\"volumeMounts\":['"
            f" + ({v}addMount ? {lit(_json_text(names.MOUNT_PATH))} : '')"
            f" + '],\"env\":[' + {v}envAdded.map(n, '\"' + n + '\"').join(',')"
            f" + '],\"postStart\":' + ({v}ownPost ? 'false' : 'true')"
            f" + ',\"label\":' + ({v}labelled ? 'false' : 'true')"
            f" + '}},\"skipped\":[' + ({v}volSkips + {v}envSkips"
            f" + ({v}ownPost ? [{lit(_skip('postStart', 'has-own-poststart'))}] : [])).join(',')"
            " + ']}'",
        ),
    ]


def _value_same(value: str) -> str:
    return f"has(e.value) && e.value == {value} && !has(e.valueFrom)"


def variables(settings: Settings) -> list[dict[str, str]]:
    """The policy's `spec.variables`: each may read the ones before it."""
    return [{"name": n, "expression": e} for n, e in _variables(settings)]


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
        f"!has({ann}) || (!({status} in {ann} && {ann}[{status}].matches({lit(_CURRENT_RE)}))"
        f" && !({opt} in {ann} && {ann}[{opt}].trim().lowerAscii() == 'false'))"
    )
