"""Kubernetes API connection: one place that builds the client from settings."""

from __future__ import annotations

from typing import Any

import orjson
from kubernetes import client, config

from webhook.settings import Settings


def api_client(settings: Settings) -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig named or the default one."""
    if settings.kubeconfig:
        return config.new_client_from_config(config_file=settings.kubeconfig)
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()


def read_pod(settings: Settings, *, namespace: str, name: str) -> dict[str, Any]:
    api = client.CoreV1Api(api_client(settings))
    response = api.read_namespaced_pod(name, namespace, _preload_content=False)
    pod: dict[str, Any] = orjson.loads(response.data)
    return pod
