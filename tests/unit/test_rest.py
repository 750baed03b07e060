"""The raw API layer's own rules: URL paths and query parameter names as the generated client's."""

from __future__ import annotations

import pytest

from webhook.kube.rest import path, query_name


def test_path_of_core_and_group_collections_and_objects() -> None:
    assert path("v1", "namespaces") == "/api/v1/namespaces"
    assert path("v1", "namespaces", name="stellar-system") == "/api/v1/namespaces/stellar-system"
    assert path("v1", "pods") == "/api/v1/pods"
    assert (
        path("v1", "configmaps", namespace="ns", name="stellar-peers")
        == "/api/v1/namespaces/ns/configmaps/stellar-peers"
    )
    assert (
        path("coordination.k8s.io/v1", "leases", namespace="ns", name="l")
        == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"
    )
    assert (
        path("v1", "pods", namespace="ns", name="p", subresource="eviction")
        == "/api/v1/namespaces/ns/pods/p/eviction"
    )


def test_path_segments_are_quoted() -> None:
    # Names are DNS labels in practice; whatever else arrives stays inside its segment.
    assert path("v1", "configmaps", namespace="a/b", name="c d") == (
        "/api/v1/namespaces/a%2Fb/configmaps/c%20d"
    )


def test_query_names_as_the_api_spells_them() -> None:
    assert query_name("label_selector") == "labelSelector"
    assert query_name("field_selector") == "fieldSelector"
    assert query_name("allow_watch_bookmarks") == "allowWatchBookmarks"
    assert query_name("timeout_seconds") == "timeoutSeconds"
    assert query_name("resource_version") == "resourceVersion"
    assert query_name("field_manager") == "fieldManager"
    assert query_name("_continue") == "continue"
    assert query_name("watch") == "watch"
    assert query_name("limit") == "limit"


def test_every_call_without_a_timeout_gets_the_one_call_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes import client

    from webhook.kube.api import CALL_TIMEOUT_SECONDS, TimedApiClient

    seen: list[object] = []
    monkeypatch.setattr(
        client.ApiClient,
        "call_api",
        lambda self, *a, _request_timeout=None, **k: seen.append(_request_timeout),
    )
    api = TimedApiClient()
    api.call_api("GET", "/api/v1/pods")
    api.call_api("GET", "/api/v1/pods", _request_timeout=3)
    assert seen == [CALL_TIMEOUT_SECONDS, 3]
