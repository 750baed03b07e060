"""The MutatingWebhookConfiguration of `serve --local`: built from the settings, registered
and removed by the process itself; the manifests' one is checked against it.

The namespace selector comes from `core.selector`, shared with the admission policy.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.core.selector import namespace_selector
from webhook.settings import Settings

__all__ = [
    "TIMEOUT_SECONDS",
    "WEBHOOK_NAME",
    "register",
    "unregister",
    "webhook_configuration",
]

# The webhook's name inside its configuration (the API server wants a qualified name).
WEBHOOK_NAME: Final = "peers.stellar.org"
TIMEOUT_SECONDS: Final = 5


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
