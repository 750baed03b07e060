"""The pod rules every part shares: the status annotation and the target container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from webhook import names
from webhook.core.injection import mutation
from webhook.core.peerset.peers import PeerSet
from webhook.core.pod import choose_container, controller_owner, read_status, target_container
from webhook.core.reload.reload_plan import plan_round
from webhook.settings import Settings

CUSTOM = Settings(image_pattern=r"(^|/)my-core$")


def custom_pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A validator whose node runs an image only the custom pattern knows, behind a sidecar."""
    return {
        "metadata": {
            "name": "v1",
            "namespace": "ns",
            "uid": "uid-v1",
            "labels": {names.INJECTED_LABEL: "true"},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {"name": "sidecar", "image": "example/stellar-core-exporter:1"},
                {"name": "node", "image": "registry:5000/example/my-core:22"},
            ]
        },
        "status": {"podIP": "10.0.0.1"},
    }


@dataclass(frozen=True)
class Snap:
    peers: PeerSet
    validators: tuple[dict[str, Any], ...]


def test_read_status_is_none_for_absent_unreadable_or_non_object() -> None:
    key = names.STATUS_ANNOTATION
    assert read_status({}) is None
    assert read_status({key: "{"}) is None
    assert read_status({key: "[1]"}) is None
    assert read_status({key: 7}) is None
    assert read_status({key: '{"container": "c"}'}) == {"container": "c"}


def test_choose_container_follows_the_annotation_then_the_pattern_then_the_first() -> None:
    containers = custom_pod()["spec"]["containers"]
    chosen = choose_container(containers, {}, image_matches=CUSTOM.image_matches)
    assert (chosen or {}).get("name") == "node"
    named = {names.CONTAINER_ANNOTATION: "sidecar"}
    chosen = choose_container(containers, named, image_matches=CUSTOM.image_matches)
    assert (chosen or {}).get("name") == "sidecar"
    missing = {names.CONTAINER_ANNOTATION: "gone"}
    assert choose_container(containers, missing, image_matches=CUSTOM.image_matches) is None
    chosen = choose_container(containers, {}, image_matches=lambda _: False)
    assert (chosen or {}).get("name") == "sidecar"


def test_the_webhook_and_the_reload_plan_target_the_same_container_by_the_users_pattern() -> None:
    """The reload plan once picked containers by a hard-coded `stellar-core` suffix, not by
    the settings' pattern, for a pod whose status annotation does not say which."""
    pod = custom_pod()
    decision = mutation.decide(pod, settings=CUSTOM)
    assert (decision.inject, decision.container) == (True, "node")
    [plan] = plan_round(Snap(PeerSet(()), (pod,)), settings=CUSTOM)
    assert plan.container == decision.container


def test_the_status_annotation_names_the_target_container() -> None:
    status = orjson.dumps({"container": "sidecar"}).decode()
    chosen = target_container(custom_pod({names.STATUS_ANNOTATION: status}))
    assert (chosen or {}).get("name") == "sidecar"


def test_the_controlling_owner_is_the_reference_marked_controller() -> None:
    owned = {
        "ownerReferences": [
            "not a reference",
            {"kind": "ConfigMap", "name": "c"},
            {"kind": "ReplicaSet", "name": "core-6d4f", "controller": True},
        ]
    }
    assert controller_owner(owned) == ("ReplicaSet", "core-6d4f")
    assert controller_owner({"ownerReferences": [{"kind": "Job", "name": "j"}]}) is None
    assert controller_owner({}) is None
