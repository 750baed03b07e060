"""Raw JSON calls to the API server on the one `ApiClient`: paths in, dicts out.

The client's generated API classes cost memory: `CoreV1Api` alone is about
20 MB once loaded and first called (hundreds of pydantic-validated methods),
and a response read through them becomes a tree of pydantic models. The
service calls a handful of endpoints, so it calls them here instead, through
the same `ApiClient` (its configuration, credentials, connection pool and
`TimedApiClient` timeout), with the same headers, query encoding and errors as
the generated methods: an `ApiException` with the status for every non-2xx
answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

# `_request_timeout` as the client takes it: seconds for the whole call, or (connect, read).
Timeout = float | tuple[float, float]

JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def path(
    api: str,
    plural: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a collection or an object: `api` is `v1` (core) or `group/version`."""
    segments = ["/api/v1" if api == "v1" else f"/apis/{api}"]
    if namespace is not None:
        segments.append(f"namespaces/{quote(namespace, safe='')}")
    segments.append(plural)
    if name is not None:
        segments.append(quote(name, safe=""))
    if subresource is not None:
        segments.append(subresource)
    return "/".join(segments)


def query_name(argument: str) -> str:
    """The generated client's keyword as the API's query parameter: `label_selector` →
    `labelSelector`, `_continue` → `continue`."""
    first, *rest = argument.lstrip("_").split("_")
    return first + "".join(word.capitalize() for word in rest)


class Rest:
    """The calls the service makes, raw: no API class is ever loaded, no model built."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def response(
        self,
        method: str,
        url_path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: Timeout | None = None,
    ) -> Any:
        """The unread urllib3 response of a 2xx answer (a watch streams from it)."""
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type or JSON
        request = self.api_client.param_serialize(
            method=method,
            resource_path=url_path,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        answer = self.api_client.call_api(*request, _request_timeout=timeout)
        if not 200 <= answer.status <= 299:
            answer.read()
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return answer.response

    def call(self, method: str, url_path: str, **kwargs: Any) -> dict[str, Any]:
        """One call, its answer parsed as a plain dict."""
        data: dict[str, Any] = orjson.loads(self.response(method, url_path, **kwargs).data)
        return data

    def get(self, url_path: str, *, timeout: Timeout | None = None, **query: Any) -> dict[str, Any]:
        """GET an object or a list; `query` in the generated client's keywords."""
        return self.call("GET", url_path, query=_query(query), timeout=timeout)

    def create(
        self, url_path: str, body: Any, *, timeout: Timeout | None = None, **query: Any
    ) -> dict[str, Any]:
        return self.call("POST", url_path, query=_query(query), body=body, timeout=timeout)

    def replace(
        self, url_path: str, body: Any, *, timeout: Timeout | None = None, **query: Any
    ) -> dict[str, Any]:
        return self.call("PUT", url_path, query=_query(query), body=body, timeout=timeout)

    def patch(
        self, url_path: str, body: Any, *, timeout: Timeout | None = None, **query: Any
    ) -> dict[str, Any]:
        """A JSON Patch when `body` is a list of operations, else a strategic merge patch
        (the generated client's choice)."""
        kind = JSON_PATCH if isinstance(body, list) else STRATEGIC_MERGE_PATCH
        return self.call(
            "PATCH", url_path, query=_query(query), body=body, content_type=kind, timeout=timeout
        )

    def delete(
        self, url_path: str, body: Any = None, *, timeout: Timeout | None = None, **query: Any
    ) -> dict[str, Any]:
        return self.call("DELETE", url_path, query=_query(query), body=body, timeout=timeout)

    def lister(self, url_path: str) -> Callable[..., Any]:
        """A list function for `webhook.kube.watch`: the generated `list_*` methods'
        keywords (selectors, `watch`, `_continue`, `_request_timeout`; `_preload_content`
        is always False here), answering the unread response."""

        def list_fn(
            *, _preload_content: bool = False, _request_timeout: Timeout | None = None, **query: Any
        ) -> Any:
            return self.response("GET", url_path, query=_query(query), timeout=_request_timeout)

        return list_fn


def _query(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {query_name(k): v for k, v in arguments.items()}
