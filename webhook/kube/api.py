"""Kubernetes API connection: one place that builds the client from settings."""

from __future__ import annotations

from typing import Any

import orjson
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.settings import Settings

# The watcher holds about seven long-lived watch connections and writes mirrors
# in parallel; urllib3's default pool of 4 would drop and re-open connections.
POOL_SIZE = 32

# What a call to the API server can raise when the server or the network fails.
FAILURES: tuple[type[BaseException], ...] = (ApiException, urllib3.exceptions.HTTPError, OSError)


def api_client(settings: Settings) -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig named or the default one."""
    if settings.kubeconfig:
        api = config.new_client_from_config(config_file=settings.kubeconfig)
    else:
        try:
            config.load_incluster_config()
            api = client.ApiClient()
        except config.ConfigException:
            api = config.new_client_from_config()
    api.configuration.connection_pool_maxsize = POOL_SIZE
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = POOL_SIZE
    return api


def read_pod(settings: Settings, *, namespace: str, name: str) -> dict[str, Any]:
    api = client.CoreV1Api(api_client(settings))
    response = api.read_namespaced_pod(name, namespace, _preload_content=False)
    pod: dict[str, Any] = orjson.loads(response.data)
    return pod
