"""Policy mode: the MutatingAdmissionPolicy and binding that make the API server inject.

Rendered from the settings alone (a pure function: the injector applies the result,
tests compare it), and which admission mode is active, and why. The CEL itself is
`policy_cel`'s; the pod it produces is the webhook's, field for field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal

from webhook.core.injection import policy_cel, policy_ops
from webhook.core.selector import namespace_selector
from webhook.settings import Settings

API_VERSION: Final = "admissionregistration.k8s.io/v1"
GROUP: Final = "admissionregistration.k8s.io"
POLICY_RESOURCE: Final = "mutatingadmissionpolicies"
BINDING_RESOURCE: Final = "mutatingadmissionpolicybindings"
LABELS: Final = {"app.kubernetes.io/name": "stellar-peer-injector"}

Mode = Literal["webhook", "policy"]


def policy(settings: Settings) -> dict[str, Any]:
    """The MutatingAdmissionPolicy: pods created in enabled namespaces, injected as the
    webhook would. `failurePolicy: Ignore` like the webhook's: a CEL error (none is
    expected) must not block validator pods; the watcher reports pods left uninjected."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": settings.webhook_config_name, "labels": dict(LABELS)},
        "spec": {
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "matchPolicy": "Equivalent",
                "namespaceSelector": namespace_selector(settings),
            },
            # Cheap exits first: the reinvoked and the opted out, then whatever is no
            # validator (most pods of an enabled namespace), before any variable is read.
            "matchConditions": [
                {
                    "name": "not-injected-by-this-version",
                    "expression": policy_ops.match_condition(),
                },
                {"name": "a-validator", "expression": policy_cel.validator_condition(settings)},
            ],
            "variables": policy_cel.variables(settings),
            "mutations": [
                {
                    "patchType": "JSONPatch",
                    "jsonPatch": {"expression": policy_ops.mutation(settings)},
                }
            ],
        },
    }


def binding(settings: Settings) -> dict[str, Any]:
    """The binding that puts the policy in force; the policy itself scopes namespaces."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": settings.webhook_config_name, "labels": dict(LABELS)},
        "spec": {"policyName": settings.webhook_config_name},
    }


def serves_policy(resources: Iterable[str]) -> bool:
    """Whether `admissionregistration.k8s.io/v1`'s discovered resources hold both kinds."""
    found = set(resources)
    return POLICY_RESOURCE in found and BINDING_RESOURCE in found


def active_mode(settings: Settings, *, served: bool | None) -> tuple[Mode, str]:
    """The mode in force and why. `served`: whether discovery lists the policy API
    (None: not asked, or the API server did not answer)."""
    if settings.admission_mode == "webhook":
        return "webhook", "admission_mode is webhook"
    if settings.admission_mode == "policy":
        if served is False:
            return "policy", (
                "admission_mode is policy, but the API server does not serve "
                f"{API_VERSION} MutatingAdmissionPolicy (Kubernetes 1.36+): nothing injects"
            )
        return "policy", "admission_mode is policy"
    if served:
        return "policy", f"admission_mode is auto and the API server serves {API_VERSION} policies"
    if served is None:
        return "webhook", "admission_mode is auto and API discovery did not answer"
    return "webhook", (
        f"admission_mode is auto and the API server does not serve {API_VERSION} policies"
    )


def same_spec(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether an object read back already says what `wanted` says (the API server adds
    defaults and metadata; only the fields we set are compared)."""
    if current is None:
        return False
    metadata = current.get("metadata") or {}
    owners = wanted["metadata"].get("ownerReferences")
    return (
        _contains(current.get("spec"), wanted["spec"])
        and _contains(metadata.get("labels"), wanted["metadata"]["labels"])
        and (owners is None or _contains(metadata.get("ownerReferences"), owners))
    )


def _contains(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_contains(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)
