"""The real API server accepts every pod our ops produce, and keeps what we added.

For each golden input that injects, the webhook's ops are applied with a real
JSONPatch implementation and the result is created with a server-side dry run:
validation and defaulting run in full, nothing is stored.
"""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import pytest
from kubernetes import client

from tests.unit.test_golden import cases, input_pod
from webhook import names
from webhook.core.injection import mutation
from webhook.settings import Settings

SETTINGS = Settings()
INJECTING = [case for case in cases() if mutation.decide(input_pod(case), settings=SETTINGS).inject]


def test_some_golden_cases_inject() -> None:
    assert len(INJECTING) >= 10


def _create_dry_run(core: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    """Create through the API server without storing it; the answer is the defaulted pod."""
    response = core.create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)
    created: dict[str, Any] = json.loads(response.data)
    return created


@pytest.mark.parametrize("case", INJECTING)
def test_injected_golden_pod_is_accepted(case: str, core: client.CoreV1Api, namespace: str) -> None:
    pod = input_pod(case)
    pod["metadata"]["namespace"] = namespace
    decision, ops = mutation.patch_for(pod, settings=SETTINGS)
    assert ops, f"{case} injects but produced no ops"
    patched = jsonpatch.apply_patch(pod, ops)

    created = _create_dry_run(core, namespace, patched)

    metadata = created["metadata"]
    assert metadata["namespace"] == namespace
    assert metadata["labels"][names.INJECTED_LABEL] == "true"
    status = json.loads(metadata["annotations"][names.STATUS_ANNOTATION])
    assert status["container"] == decision.container
    added = status["added"]

    volumes = {v["name"]: v for v in created["spec"].get("volumes", [])}
    for name in added["volumes"]:
        assert volumes[name]["configMap"]["name"] == names.CONFIGMAP_NAME
        assert volumes[name]["configMap"]["optional"] is True

    [container] = [c for c in created["spec"]["containers"] if c["name"] == decision.container]
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    for path in added["volumeMounts"]:
        assert mounts[path]["name"] == names.VOLUME_NAME
        assert mounts[path]["readOnly"] is True
        assert "subPath" not in mounts[path]

    env = {e["name"]: e for e in container.get("env", [])}
    assert added["env"], "every case adds some env"
    for name in added["env"]:
        assert patched_env(patched, decision.container)[name] == env[name]

    post_start = container.get("lifecycle", {}).get("postStart")
    if added["postStart"]:
        expected = patched_container(patched, decision.container)["lifecycle"]["postStart"]
        assert post_start == expected
    else:
        assert post_start == patched_container(pod, decision.container)["lifecycle"]["postStart"]

    # Injecting what the server returns changes nothing: the live pod is already current.
    assert mutation.patch_for(created, settings=SETTINGS)[1] == []


def patched_container(pod: dict[str, Any], name: str | None) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    return found


def patched_env(pod: dict[str, Any], name: str | None) -> dict[str, Any]:
    return {e["name"]: e for e in patched_container(pod, name).get("env", [])}


def test_dry_run_rejects_a_pod_mounting_two_volumes_at_one_path(
    core: client.CoreV1Api, namespace: str
) -> None:
    """The check has teeth: the clash our skip rules avoid is refused by the server."""
    pod = input_pod("collision-mount-path")
    container = pod["spec"]["containers"][0]
    container["volumeMounts"].append(
        {"name": names.VOLUME_NAME, "mountPath": names.MOUNT_PATH, "readOnly": True}
    )
    pod["spec"]["volumes"].append(
        {"name": names.VOLUME_NAME, "configMap": {"name": names.CONFIGMAP_NAME}}
    )
    with pytest.raises(client.ApiException) as raised:
        _create_dry_run(core, namespace, pod)
    assert raised.value.status == 422
    assert "mountPath" in raised.value.body
