"""Which namespaces are enabled: one answer for admission, the watcher and `check`."""

from __future__ import annotations

from typing import Any

from webhook.core.publishing.watched import KIND_NAMESPACE, enabled_namespaces, trim
from webhook.core.selector import is_enabled, namespace_selector
from webhook.settings import Settings

SETTINGS = Settings(namespace="injector")


def namespace(name: str, phase: str = "Active") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}}, "status": {"phase": phase}}


def test_kube_system_and_our_own_namespace_are_never_enabled() -> None:
    assert not is_enabled(namespace("kube-system"), settings=SETTINGS)
    assert not is_enabled(namespace("injector"), settings=SETTINGS)
    assert is_enabled(namespace("validators"), settings=SETTINGS)


def test_a_terminating_namespace_is_not_enabled() -> None:
    assert not is_enabled(namespace("validators", "Terminating"), settings=SETTINGS)
    gone = namespace("validators")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not is_enabled(gone, settings=SETTINGS)


def test_the_watcher_never_mirrors_into_a_labeled_kube_system_or_own_namespace() -> None:
    """The watcher once kept every namespace its selector watch returned, so a labeled
    kube-system got a mirror (and its pods counted) that the webhook never serves."""
    state = {
        (KIND_NAMESPACE, "", name): trim(namespace(name), kind=KIND_NAMESPACE)
        for name in ("kube-system", "injector", "validators")
    }
    assert enabled_namespaces(state, settings=SETTINGS) == frozenset({"validators"})


def test_the_admission_selector_excludes_the_same_namespaces() -> None:
    [*_, excluded] = namespace_selector(SETTINGS)["matchExpressions"]
    assert excluded["values"] == ["injector", "kube-system"]
