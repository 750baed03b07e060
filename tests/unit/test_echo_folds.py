"""Echoes of our own ConfigMap writes: folded for the publisher, never a new peer set.

Every mirror write comes back as a watch event of a `stellar-peers` ConfigMap, a
hundred a round at 100 namespaces. Such a fold cannot change the peer set, the
validators or the enabled namespaces, so the watcher offers the last peer set with
the new state (drift repair reads it) instead of working the set out again, and the
identity learner plans again only the pods that changed.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from kubernetes import client

from tests.kubelet import container_statuses
from webhook import names
from webhook.controllers import identity as identity_module
from webhook.controllers import watcher as watcher_module
from webhook.controllers.configmaps import Fold
from webhook.controllers.identity import IdentityLearner
from webhook.controllers.links import LinkWatcher
from webhook.controllers.watcher import PeerWatcher
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing import watched
from webhook.core.publishing.watched import (
    KIND_CONFIGMAP,
    KIND_NAMESPACE,
    KIND_POD,
    fold_kinds,
    moves_peers,
    trim,
)
from webhook.core.reload import reload_plan
from webhook.core.reload.reload_plan import Reachable, plan_round
from webhook.metrics import Metrics
from webhook.settings import Settings

Event = Mapping[str, Any]


def raw_pod(name: str, namespace: str, ip: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "labels": {names.INJECTED_LABEL: "true"},
        },
        "spec": {"containers": [{"name": "core", "image": "stellar/stellar-core:22"}]},
        "status": {
            "podIP": ip,
            "phase": "Running",
            "containerStatuses": container_statuses(["core"], ready=True),
        },
    }


def pod_event(name: str, namespace: str, ip: str, kind: str = "MODIFIED") -> Event:
    return {"type": kind, "object": trim(raw_pod(name, namespace, ip), kind=KIND_POD)}


def configmap_event(namespace: str, version: str) -> Event:
    raw = {
        "metadata": {
            "name": names.CONFIGMAP_NAME,
            "namespace": namespace,
            "uid": f"cm-{namespace}",
            "resourceVersion": version,
        },
        "data": {"peers.txt": f"10.0.0.{version}:11625\n"},
    }
    return {"type": "MODIFIED", "object": trim(raw, kind=KIND_CONFIGMAP)}


def listed(kind: str, objects: list[dict[str, Any]]) -> Event:
    return {"type": "LISTED", "kind": kind, "objects": objects}


NAMESPACES = ("a", "b", "c")


def start_events() -> list[Event]:
    spaces = [
        trim({"metadata": {"name": ns}, "status": {"phase": "Active"}}, kind=KIND_NAMESPACE)
        for ns in NAMESPACES
    ]
    pods = [
        trim(raw_pod(f"v{i}", ns, f"10.1.{n}.{i + 1}"), kind=KIND_POD)
        for n, ns in enumerate(NAMESPACES)
        for i in range(4)
    ]
    return [listed(KIND_NAMESPACE, spaces), listed(KIND_POD, pods)]


# --- the pure part -------------------------------------------------------------


def test_fold_kinds_names_the_kinds_changed_and_keeps_an_unchanged_state() -> None:
    state, kinds = fold_kinds({}, start_events())
    assert kinds == {KIND_NAMESPACE, KIND_POD}
    again, none = fold_kinds(state, start_events())
    assert again is state
    assert none == frozenset()
    _, echoed = fold_kinds(state, [configmap_event("a", "7")])
    assert echoed == {KIND_CONFIGMAP}


def test_only_configmaps_leave_the_peer_set_as_it_is() -> None:
    assert not moves_peers({KIND_CONFIGMAP})
    assert not moves_peers(())
    assert moves_peers({KIND_CONFIGMAP, KIND_POD})
    assert moves_peers({KIND_NAMESPACE})


# --- the watcher ---------------------------------------------------------------


class Counted:
    """Counts calls of a function a module imported, then calls it."""

    def __init__(self, wrapped: Callable[..., Any]) -> None:
        self.wrapped = wrapped
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.wrapped(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counted]:
    counters = {
        "peer_set": Counted(watched.peer_set),
        "validators": Counted(watched.validators),
        "plan_round": Counted(reload_plan.plan_round),
    }
    monkeypatch.setattr(watcher_module, "peer_set", counters["peer_set"])
    monkeypatch.setattr(watcher_module, "validators", counters["validators"])
    monkeypatch.setattr(reload_plan, "plan_round", counters["plan_round"])
    return counters


def make_watcher(offered: list[Fold], monkeypatch: pytest.MonkeyPatch) -> PeerWatcher:
    """A watcher whose identity learner has had every node answer (nobody waits)."""
    settings = Settings()
    api = client.ApiClient()
    metrics = Metrics()
    identity = IdentityLearner(settings=settings, api_client=api)
    monkeypatch.setattr(identity, "first_pass_pending", lambda: False)
    monkeypatch.setattr(identity, "pending", frozenset)
    links = LinkWatcher(settings=settings, api_client=api, metrics=metrics)
    return PeerWatcher(
        settings=settings,
        api_client=api,
        metrics=metrics,
        identity=identity,
        links=links,
        on_fold=offered.append,
    )


def step(watcher: PeerWatcher, events: list[Event]) -> None:
    """What one pass of the publish loop does with a debounced burst."""
    for event in events:
        watcher.sources._queue(event)
    if watcher._fold():
        watcher._publish()


def test_an_echo_only_fold_offers_the_last_set_with_the_new_state(
    counted: dict[str, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[Fold] = []
    watcher = make_watcher(offered, monkeypatch)
    step(watcher, start_events())
    first = offered[-1]
    assert len(first.peers.peers) == 12
    before = {name: c.calls for name, c in counted.items()}

    step(watcher, [configmap_event(ns, "5") for ns in NAMESPACES])

    assert {name: c.calls for name, c in counted.items()} == before  # nothing worked out again
    echoed = offered[-1]
    assert echoed is not first
    assert echoed.peers is first.peers
    assert echoed.enabled == first.enabled
    assert echoed.state is watcher._state  # drift repair reads the ConfigMaps as they are now
    assert ("ConfigMap", "a", names.CONFIGMAP_NAME) in echoed.state


def test_a_pod_change_is_worked_out_again_and_planned_alone(
    counted: dict[str, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[Fold] = []
    watcher = make_watcher(offered, monkeypatch)
    step(watcher, start_events())
    planned = watcher.identity._reachable.planned
    peer_sets = counted["peer_set"].calls

    step(watcher, [configmap_event("a", "6"), pod_event("v0", "b", "10.9.9.9")])

    assert counted["peer_set"].calls == peer_sets + 1
    assert "10.9.9.9:11625" in {p.peer_string for p in offered[-1].peers.peers}
    assert watcher.identity._reachable.planned == planned + 1  # the moved pod alone


def test_an_echo_is_not_offered_while_a_first_pass_holds_publishing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new leader's links not answered yet: no fold goes out, as before the shortcut."""
    offered: list[Fold] = []
    watcher = make_watcher(offered, monkeypatch)
    step(watcher, start_events())
    count = len(offered)
    monkeypatch.setattr(watcher.links, "first_pass_pending", lambda: True)
    step(watcher, [configmap_event("a", "8")])
    assert len(offered) == count


def test_something_learned_is_worked_out_again(
    counted: dict[str, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[Fold] = []
    watcher = make_watcher(offered, monkeypatch)
    step(watcher, start_events())
    peer_sets = counted["peer_set"].calls
    watcher.identity.changed.set()
    step(watcher, [configmap_event("a", "9")])
    assert counted["peer_set"].calls == peer_sets + 1


# --- the identity learner's plans ----------------------------------------------


def pods(count: int, *, moved: int | None = None) -> list[dict[str, Any]]:
    return [
        trim(raw_pod(f"v{i}", "ns", f"10.2.0.{i + 100 if i == moved else i + 1}"), kind=KIND_POD)
        for i in range(count)
    ]


def test_reachable_plans_only_the_pods_that_changed_and_equals_plan_round() -> None:
    settings = Settings()
    reachable = Reachable(settings=settings)
    first = reachable.plans(pods(6))
    assert reachable.planned == 6
    assert reachable.plans(pods(6)) == first
    assert reachable.planned == 6
    moved = pods(6, moved=2)
    again = reachable.plans(moved)
    assert reachable.planned == 7
    assert again == plan_round(reload_plan._Pods(PeerSet(()), moved), settings=settings)
    fewer = moved[:4]
    assert reachable.plans(fewer) == plan_round(
        reload_plan._Pods(PeerSet(()), fewer), settings=settings
    )
    assert reachable.planned == 7  # pods gone are dropped, the rest kept


def test_want_of_the_same_pods_plans_nothing(counted: dict[str, Counted]) -> None:
    learner = IdentityLearner(settings=Settings(), api_client=client.ApiClient())
    learner.want(pods(5))
    calls = counted["plan_round"].calls
    learner.want(pods(5))
    assert counted["plan_round"].calls == calls
    assert learner.pending() == {f"uid-ns-v{i}" for i in range(5)}


def test_a_pass_of_nodes_failing_again_wakes_no_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that never answers is asked again and again with backoff; only the first
    pass, or one that changes what the watcher reads, sets `changed`."""
    learner = IdentityLearner(settings=Settings(), api_client=client.ApiClient())

    async def no_answer(*args: Any, **kwargs: Any) -> tuple[None, None]:
        return None, None

    monkeypatch.setattr("webhook.stellar.admin.ask", no_answer)
    learner.want(pods(3))
    asyncio.run(learner.learn_once())
    assert learner.changed.is_set()  # the first pass: no longer pending
    learner.changed.clear()
    later = types.SimpleNamespace(monotonic=lambda: 1e12)  # every retry due
    monkeypatch.setattr(identity_module, "time", later)
    asyncio.run(learner.learn_once())
    assert learner.asked > 3
    assert not learner.changed.is_set()
    assert learner.pending() == frozenset()
