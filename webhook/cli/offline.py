"""Manifests offline: `stellar-peers inject -f` and `explain -f`.

Owns reading multi-document YAML, finding the pods and pod templates in it, and
printing them back. Every pod goes through `mutation.patch_for` and then
`patch.apply`: the very ops the webhook would send, applied here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from webhook.core.injection import mutation, patch
from webhook.core.peerset import networks
from webhook.core.peerset.peers import Peer
from webhook.core.pod import label_network, read_status
from webhook.settings import Settings

# Where each workload keeps the pod template its pods are made from.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class DocumentError(ValueError):
    """The input is not YAML, or a document in it is not a Kubernetes object."""


def inject_text(text: str, *, settings: Settings) -> str:
    """Every pod and pod template in `text` as the webhook would mutate it; the rest as is."""
    documents = [_inject(doc, settings=settings) for doc in load(text)]
    return dump(documents)


def explain_text(text: str, *, settings: Settings) -> str:
    """One line per object in `text`: whether it would be injected, and why."""
    lines: list[str] = []
    for doc in load(text):
        lines.extend(_explain(doc, settings=settings))
    return "".join(f"{line}\n" for line in lines)


def explain_pod(pod: dict[str, Any], *, settings: Settings, published: Peer | None = None) -> str:
    """The line for one pod, e.g. a live pod read from the API server, with its entry of
    the published `peers.json` (network and key) when it has one."""
    line = describe(pod, settings=settings, label=_label(pod, "Pod"))
    if published is not None:
        line += f"; published network {published.network or networks.UNKNOWN}"
        line += f", key {published.public_key or '-'}"
    return f"{line}\n"


def describe(pod: dict[str, Any], *, settings: Settings, label: str) -> str:
    """`Kind/name: inject (reason) into container "c", peer port P, admin port H`,
    with the items left alone, or `Kind/name: skip (reason)`."""
    decision = mutation.decide(pod, settings=settings)
    if not decision.inject:
        return f"{label}: skip ({decision.reason})"
    network = label_network(pod)
    line = (
        f'{label}: inject ({decision.reason}) into container "{decision.container}", '
        f"peer port {decision.peer_port}, admin port {decision.http_port}"
    )
    if network:  # unlabeled: the network its node reports, learned once it runs
        line += f", network {network} (label)"
    mutated = mutation.mutate(pod, decision, settings=settings)
    status = read_status(mutated["metadata"]["annotations"]) or {}
    skipped = [f"{s['item']} ({s['reason']})" for s in status.get("skipped", [])]
    if skipped:
        line += "; leaves " + ", ".join(skipped)
    return line


def load(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream; each must be a mapping."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {exc}") from exc
    for number, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            raise DocumentError(
                f"document {number} is a {type(doc).__name__}, not a Kubernetes object"
            )
    return documents


def dump(documents: list[Any]) -> str:
    """Multi-document YAML in the input's key order, one line per value (no folding);
    multi-line strings as `|` blocks."""
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=float("inf")
    )


def _inject(doc: Any, *, settings: Settings, kind: Any = None) -> Any:
    """`doc` mutated; `kind` stands in for the kind that items of a typed list lack."""
    if not isinstance(doc, dict):
        return doc
    kind = doc.get("kind", kind)
    if _is_list(kind) and isinstance(doc.get("items"), list):
        result = dict(doc)
        result["items"] = [
            _inject(item, settings=settings, kind=_item_kind(kind)) for item in doc["items"]
        ]
        return result
    if kind == "Pod":
        _, ops = mutation.patch_for(doc, settings=settings)
        return patch.apply(doc, ops) if ops else doc
    path = TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    template = _get(doc, path) if path else None
    if path is None or not isinstance(template, dict):
        return doc
    _, ops = mutation.patch_for(template, settings=settings)
    if not ops:
        return doc
    pointer = "".join(f"/{patch.escape(part)}" for part in path)
    return patch.apply(doc, [{**op, "path": pointer + op["path"]} for op in ops])


def _explain(doc: Any, *, settings: Settings, kind: Any = None) -> Iterator[str]:
    if not isinstance(doc, dict):
        return
    kind = doc.get("kind", kind)
    if _is_list(kind) and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _explain(item, settings=settings, kind=_item_kind(kind))
        return
    label = _label(doc, kind if isinstance(kind, str) and kind else "Object")
    path = TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    if kind == "Pod":
        yield describe(doc, settings=settings, label=label)
    elif path is not None and isinstance(_get(doc, path), dict):
        yield describe(_get(doc, path), settings=settings, label=label)
    else:
        yield f"{label}: skip (not-a-pod)"


def _is_list(kind: Any) -> bool:
    return isinstance(kind, str) and kind.endswith("List")


def _item_kind(list_kind: str) -> str | None:
    """Items of a typed list (`PodList`) carry no kind of their own: the list's tells it."""
    return None if list_kind == "List" else list_kind.removesuffix("List")


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _label(doc: dict[str, Any], kind: str) -> str:
    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name") or (
        f"{metadata['generateName']}*" if metadata.get("generateName") else "<unnamed>"
    )
    return f"{kind}/{name}"


class _Dumper(yaml.SafeDumper):
    """SafeDumper that prints multi-line strings (the postStart script) as `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
