"""The MutatingWebhookConfiguration of `serve --local`: built from the settings, registered
and removed by the process itself; the manifests' one is checked against it.

The namespace selector is parsed from `--namespace-selector` (equality and set terms,
as kubectl takes them), so a bad one stops the process before anything is registered.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.settings import Settings

# The webhook's name inside its configuration (the API server wants a qualified name).
WEBHOOK_NAME: Final = "peers.stellar.org"
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
TIMEOUT_SECONDS: Final = 5

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


def webhook_configuration(
    *, settings: Settings, ca_bundle: bytes, client_config: dict[str, Any]
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration, as in manifests/ but for any client config."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": settings.webhook_config_name,
            "labels": {"app.kubernetes.io/name": "stellar-peer-injector"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "clientConfig": {**client_config, "caBundle": base64.b64encode(ca_bundle).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                # A webhook that is down must not block validator pods; the
                # watcher reports validators admitted without injection.
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "namespaceSelector": namespace_selector(settings),
                "sideEffects": "None",
                "timeoutSeconds": TIMEOUT_SECONDS,
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }


def register(api: client.AdmissionregistrationV1Api, body: dict[str, Any]) -> None:
    """Create the configuration, or replace one left by an earlier run."""
    name = body["metadata"]["name"]
    try:
        api.create_mutating_webhook_configuration(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = api.read_mutating_webhook_configuration(name)
        replacement = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": current.metadata.resource_version},
        }
        api.replace_mutating_webhook_configuration(name, replacement)


def unregister(api: client.AdmissionregistrationV1Api, name: str) -> None:
    try:
        api.delete_mutating_webhook_configuration(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
