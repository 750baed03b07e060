"""Small helpers over the real API server shared by the e2e tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from webhook.settings import Settings


def selector_labels(selector: str) -> dict[str, str]:
    """`a=b,c=d` → {"a": "b", "c": "d"}: the labels that make a namespace match."""
    labels: dict[str, str] = {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        labels[key.strip()] = value.strip()
    return labels


def label_enabled(core: client.CoreV1Api, namespace: str, settings: Settings) -> None:
    """Label `namespace` so that it matches `settings.namespace_selector`."""
    core.patch_namespace(
        namespace, {"metadata": {"labels": selector_labels(settings.namespace_selector)}}
    )


def unlabel_enabled(core: client.CoreV1Api, namespace: str, settings: Settings) -> None:
    labels: dict[str, Any] = {key: None for key in selector_labels(settings.namespace_selector)}
    core.patch_namespace(namespace, {"metadata": {"labels": labels}})


def validator_pod(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    image: str = "stellar/stellar-core:22.1.0-2385.b2a8ecb62.focal",
) -> dict[str, Any]:
    """A stellar-core validator pod as a user would write it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels or {"app": "stellar-validator"},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "stellar-core",
                    "image": image,
                    "ports": [
                        {"name": "peer", "containerPort": 11625},
                        {"name": "http", "containerPort": 11626},
                    ],
                }
            ],
        },
    }
