"""The injection of `core.injection` written in CEL, for a MutatingAdmissionPolicy.

The API server evaluates these expressions itself: the variables decide (the same rules,
in the same order, as `injection.decide`) and plan (as `additions.plan`); `policy_ops`
writes the plan as JSONPatch ops. Everything the settings fix (image pattern, hook timeout,
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
from typing import Final

from webhook import names
from webhook.address import DNS_LABEL_PATTERN
from webhook.core.injection import additions, hook
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


CURRENT_RE: Final = r'^\s*\{\s*"version"\s*:\s*"' + re.escape(additions.STATUS_VERSION) + '"'
_MOUNT_RE: Final = "^" + re.escape(names.MOUNT_PATH.rstrip("/")) + "/*$"
_CONTAINER_RE: Final = lit(r'"container"\s*:\s*"[^"]*"')
_OBJECT_RE: Final = lit(r"^\s*\{[\s\S]*\}\s*$")
_POST_RE: Final = lit(r'"postStart"\s*:\s*true')
_LABEL_RE: Final = lit(r'"label"\s*:\s*true')
_NETWORK_RE: Final = f"^{DNS_LABEL_PATTERN}$"


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
        ("current", f"{v}status.matches({lit(CURRENT_RE)})"),
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


def validator_condition(settings: Settings) -> str:
    """`variables.validator` as a match condition, on the object alone (conditions see no
    variables): a pod that is no validator skips the policy before any variable or the
    mutation is evaluated, e.g. every other pod of an enabled namespace."""
    node_type = lit(names.NODE_TYPE_LABEL)
    labels = "object.metadata.labels"
    repo = "(n.lastIndexOf(':') > n.lastIndexOf('/') ? n.substring(0, n.lastIndexOf(':')) : n)"
    return (
        f"(has({labels}) && {node_type} in {labels}"
        f" && {labels}[{node_type}].lowerAscii() == 'validator')"
        " || (has(object.spec.containers) && object.spec.containers.exists(c, has(c.image)"
        f" && [c.image.split('@')[0]].exists(n, {repo}.matches({lit(settings.image_pattern)}))))"
    )


def _value_same(value: str) -> str:
    return f"has(e.value) && e.value == {value} && !has(e.valueFrom)"


def variables(settings: Settings) -> list[dict[str, str]]:
    """The policy's `spec.variables`: each may read the ones before it."""
    return [{"name": n, "expression": e} for n, e in _variables(settings)]
