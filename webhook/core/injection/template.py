"""What a pod's injection is built from, as bytes: the pods of one template share them.

A ReplicaSet's pods differ only in per-pod fields (name, generateName, uid, the
ServiceAccount token volume's random `kube-api-access-xxxxx` name) that neither
`injection.decide` nor the patch reads, so the webhook reuses the answer built for
the first one (`webhook.admission.answers`). Equal keys must mean equal answers:
every other field is in the key as it came, with its presence (an absent field and a
null one give different ops); a token name is replaced only where it is a volume's
or a mount's name, the only places the answer reads it (compared with our own names,
which it never equals), else the pod gets no key and is answered afresh, as is a pod
carrying a status annotation (its patch is a diff of the whole pod).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

from webhook import names

# Set per pod by the API server, or left to it; read by neither decision nor patch.
PER_POD: Final = frozenset(
    {"name", "generateName", "uid", "creationTimestamp", "resourceVersion", "managedFields"}
)
_TOKEN: Final = re.compile(r"kube-api-access-[a-z0-9]{5}")
_PLACEHOLDER: Final = b'"kube-api-access-*"'
_CONTAINER_LISTS: Final = ("containers", "initContainers", "ephemeralContainers")


def key(pod: Mapping[str, Any]) -> bytes | None:
    """The bytes the answer for `pod` is a function of; None: answer it afresh."""
    metadata = pod.get("metadata")
    spec = pod.get("spec")
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        return None
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and names.STATUS_ANNOTATION in annotations:
        # Re-injecting over an older version's status is a diff of the whole pod, whose
        # ops may carry any field (list items shift): always built afresh.
        return None
    kept = {k: v for k, v in metadata.items() if k not in PER_POD}
    try:
        raw = orjson.dumps([pod.get("kind", "Pod"), kept, spec])
    except TypeError:  # orjson.JSONEncodeError: not from a parsed body
        return None
    for name in _token_volumes(spec):
        quoted = orjson.dumps(name)
        if raw.count(quoted) != _uses(spec, name):
            return None  # the name appears somewhere else too: no shortcut
        raw = raw.replace(quoted, _PLACEHOLDER)
    return raw


def _token_volumes(spec: Mapping[str, Any]) -> Iterator[str]:
    volumes = spec.get("volumes")
    for volume in volumes if isinstance(volumes, list) else ():
        name = volume.get("name") if isinstance(volume, dict) else None
        if isinstance(name, str) and _TOKEN.fullmatch(name):
            yield name


def _uses(spec: Mapping[str, Any], name: str) -> int:
    """How often `name` is a volume's or a mount's name."""
    found = sum(
        1 for v in spec.get("volumes") or () if isinstance(v, dict) and v.get("name") == name
    )
    for field in _CONTAINER_LISTS:
        containers = spec.get(field)
        for container in containers if isinstance(containers, list) else ():
            mounts = container.get("volumeMounts") if isinstance(container, dict) else None
            for mount in mounts if isinstance(mounts, list) else ():
                if isinstance(mount, dict) and mount.get("name") == name:
                    found += 1
    return found
