"""Which namespaces are enabled: the `--namespace-selector` string as a Kubernetes
LabelSelector, less the namespaces never served.

Both admission modes scope themselves with it (the webhook configuration's and the
admission policy's `namespaceSelector`), so a bad one stops the process before
anything is registered or applied; the watcher (mirrors, the peer set, the audit),
`check` and `status` ask `is_enabled` of what the selector's LIST or watch returns, so
all of them give the one answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from webhook.settings import Settings

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
KUBE_SYSTEM: Final = "kube-system"

_EQUALITY = re.compile(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*([^\s]*)\s*$")
_SET = re.compile(r"^\s*([^\s]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


class SelectorError(ValueError):
    """The namespace selector cannot be expressed as a Kubernetes LabelSelector."""


def _selector_terms(selector: str) -> Iterator[str]:
    """Split at commas that are not inside `( )`."""
    depth, start = 0, 0
    for index, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield selector[start:index]
            start = index + 1
    yield selector[start:]


def label_selector(selector: str) -> dict[str, Any]:
    """A label selector string (`a=b,c!=d,e in (f,g),!h`) as a LabelSelector object."""
    match_labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for term in (t.strip() for t in _selector_terms(selector)):
        if not term:
            continue
        if set_match := _SET.match(term):
            key, operator, values = set_match.groups()
            listed = sorted(v.strip() for v in values.split(",") if v.strip())
            expressions.append(
                {"key": key, "operator": "In" if operator == "in" else "NotIn", "values": listed}
            )
        elif equality := _EQUALITY.match(term):
            key, operator, value = equality.groups()
            if operator == "!=":
                expressions.append({"key": key, "operator": "NotIn", "values": [value]})
            else:
                match_labels[key] = value
        elif term.startswith("!"):
            expressions.append({"key": term[1:].strip(), "operator": "DoesNotExist"})
        elif re.fullmatch(r"[^\s=!(),]+", term):
            expressions.append({"key": term, "operator": "Exists"})
        else:
            raise SelectorError(f"--namespace-selector: cannot read {term!r}")
    result: dict[str, Any] = {}
    if match_labels:
        result["matchLabels"] = match_labels
    if expressions:
        result["matchExpressions"] = expressions
    return result


def excluded_namespaces(settings: Settings) -> frozenset[str]:
    """Never enabled, whatever their labels: our own namespace (injecting it could block
    the injector's own pods behind itself) and kube-system (it must never depend on us)."""
    return frozenset({settings.namespace, KUBE_SYSTEM})


def namespace_selector(settings: Settings) -> dict[str, Any]:
    """The configured selector, never matching an excluded namespace."""
    selector = label_selector(settings.namespace_selector)
    selector.setdefault("matchExpressions", []).append(
        {
            "key": NAMESPACE_NAME_LABEL,
            "operator": "NotIn",
            "values": sorted(excluded_namespaces(settings)),
        }
    )
    return selector


def is_enabled(namespace: Mapping[str, Any], *, settings: Settings) -> bool:
    """A namespace that matched the selector is enabled unless it is excluded or
    terminating (nothing can be created there, and its pods are on their way out)."""
    metadata = namespace.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or name in excluded_namespaces(settings):
        return False
    terminating = (namespace.get("status") or {}).get("phase") == "Terminating"
    return not (terminating or metadata.get("deletionTimestamp"))
