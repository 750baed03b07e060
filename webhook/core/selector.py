"""Namespace selectors: the `--namespace-selector` string as a Kubernetes LabelSelector.

Both admission modes scope themselves with it (the webhook configuration's and the
admission policy's `namespaceSelector`), so a bad one stops the process before
anything is registered or applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from webhook.settings import Settings

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"

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


def namespace_selector(settings: Settings) -> dict[str, Any]:
    """The configured selector, never matching our own namespace or kube-system.

    Injecting into our own namespace could block the injector's own pods behind
    itself; kube-system must never depend on us.
    """
    selector = label_selector(settings.namespace_selector)
    excluded = sorted({settings.namespace, "kube-system"})
    selector.setdefault("matchExpressions", []).append(
        {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": excluded}
    )
    return selector
