"""Kubernetes API connection: one place that builds the client from settings."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.kube.rest import Rest, path
from webhook.settings import Settings

# The watcher holds about seven long-lived watch connections and writes mirrors
# in parallel; urllib3's default pool of 4 would drop and re-open connections.
POOL_SIZE = 32

# Every call that does not name its own timeout gets this one (seconds, whole call): a
# hung API server, or an admission webhook hanging a write, must never hold a
# caller forever. Watches name theirs.
CALL_TIMEOUT_SECONDS = 10.0

# What a call to the API server can raise when the server or the network fails.
FAILURES: tuple[type[BaseException], ...] = (ApiException, urllib3.exceptions.HTTPError, OSError)


class TimedApiClient(client.ApiClient):  # type: ignore[misc]
    """An ApiClient whose calls without `_request_timeout` get `CALL_TIMEOUT_SECONDS`.

    One place for the rule, so no call path (ConfigMaps, Events, pods, workloads,
    the audit, evictions, the Lease) can be added without a timeout.
    """

    def call_api(self, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        timeout = CALL_TIMEOUT_SECONDS if _request_timeout is None else _request_timeout
        return super().call_api(*args, _request_timeout=timeout, **kwargs)


def api_client(settings: Settings) -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig named or the default one."""
    configuration = client.Configuration()
    if settings.kubeconfig:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    api = TimedApiClient(configuration=configuration)
    api.configuration.connection_pool_maxsize = POOL_SIZE
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = POOL_SIZE
    return api


def describe_failure(exc: BaseException) -> str:
    """One line for a failed call: the API's status and message, else the exception."""
    if isinstance(exc, ApiException):
        message = exc.reason or ""
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            message = str(orjson.loads(exc.body or b"").get("message") or message)
        return f"HTTP {exc.status}: {message}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def read_pod(settings: Settings, *, namespace: str, name: str) -> dict[str, Any]:
    """The pod as a plain dict, for `stellar-peers explain POD`."""
    api = api_client(settings)
    try:
        return Rest(api).get(path("v1", "pods", namespace=namespace, name=name))
    finally:
        api.close()
