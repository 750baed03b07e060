"""Another cluster's API server, reached through a link's kubeconfig: the client, one
named object's list-then-watch, and the review of what the credential may do.

Every call has a timeout (the client is a `TimedApiClient`; watches name theirs),
and a watch stream is shut down when its reader is cancelled, as in
`webhook.kube.watch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.kube.api import TimedApiClient
from webhook.kube.rest import Rest, path
from webhook.kube.watch import CONNECT_TIMEOUT_SECONDS, STALL_SLACK_SECONDS, _lines, _shutdown


def remote_client(kubeconfig: Mapping[str, Any]) -> client.ApiClient:
    """A client for the cluster a kubeconfig (as a dict) names; ConfigException when bad."""
    configuration = client.Configuration()
    config.load_kube_config_from_dict(
        config_dict=dict(kubeconfig), client_configuration=configuration, persist_config=False
    )
    return TimedApiClient(configuration=configuration)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


async def read_named(rest: Rest, *, namespace: str, name: str) -> tuple[dict[str, Any] | None, str]:
    """(the ConfigMap or None, the list's resourceVersion), by a list with a name field
    selector: what a Role limited by `resourceNames` allows for list and watch."""
    listed = await asyncio.to_thread(
        rest.get,
        path("v1", "configmaps", namespace=namespace),
        field_selector=f"metadata.name={name}",
    )
    items = listed.get("items") or []
    version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
    return (items[0] if items else None), version


async def watch_named(
    rest: Rest, *, namespace: str, name: str, since: str, timeout_seconds: int
) -> AsyncIterator[dict[str, Any]]:
    """One watch request on one named ConfigMap: its events (BOOKMARK included) until the
    server ends it; Gone on 410, ApiException on any other error event."""
    response = await asyncio.to_thread(
        rest.response,
        "GET",
        path("v1", "configmaps", namespace=namespace),
        query={
            "fieldSelector": f"metadata.name={name}",
            "watch": "true",
            "resourceVersion": since,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        },
        timeout=(CONNECT_TIMEOUT_SECONDS, timeout_seconds + STALL_SLACK_SECONDS),
    )
    lines = _lines(response)
    try:
        while True:
            line = await asyncio.to_thread(next, lines, None)
            if line is None:
                return
            event = orjson.loads(line)
            if not isinstance(event, dict):
                continue
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise ApiException(status=obj.get("code"), reason=str(obj.get("message")))
            yield event
    finally:
        _shutdown(response)


async def review_rules(rest: Rest, *, namespace: str) -> dict[str, Any]:
    """The SelfSubjectRulesReview status of the credential in `namespace`."""
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    answer = await asyncio.to_thread(
        rest.create, path("authorization.k8s.io/v1", "selfsubjectrulesreviews"), body
    )
    status: dict[str, Any] = answer.get("status") or {}
    return status


async def may(rest: Rest, *, verb: str, group: str, resource: str, namespace: str) -> bool:
    """A SelfSubjectAccessReview: may the credential do this ("" namespace: everywhere)?"""
    attributes = {"verb": verb, "group": group, "resource": resource}
    if namespace:
        attributes["namespace"] = namespace
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = await asyncio.to_thread(
        rest.create, path("authorization.k8s.io/v1", "selfsubjectaccessreviews"), body
    )
    return bool((answer.get("status") or {}).get("allowed"))
