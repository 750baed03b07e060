"""`patch_for` writes its ops straight from the plan; `patch.diff` of the injected copy is
the oracle: applied to the request, both give the same pod, for every golden file and
every pod the fuzzers make."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from tests.unit.test_fuzz_admission import VALIDATOR, corrupted_pods, pod_like
from tests.unit.test_injection import ODD_PODS
from webhook import __version__, names
from webhook.core.injection import mutation, patch
from webhook.settings import Settings

SETTINGS = Settings()
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def check_same_as_diff(pod: Any) -> list[dict[str, Any]]:
    """Assert the two ways agree; return the direct ops."""
    before = copy.deepcopy(pod)
    decision, ops = mutation.patch_for(pod, settings=SETTINGS)
    assert patch.equal(pod, before), "patch_for changed its input"
    if not decision.inject:
        assert ops == []
        return ops
    oracle = mutation.patch_by_diff(pod, decision, settings=SETTINGS)
    assert patch.equal(patch.apply(pod, ops), patch.apply(pod, oracle)), (ops, oracle)
    assert bool(ops) == bool(oracle)
    return ops


def golden_pods() -> list[tuple[str, Any]]:
    found = []
    for path in sorted(GOLDEN.glob("*.yaml")):
        text = path.read_text().replace("__VERSION__", __version__)
        found.append((path.name, yaml.safe_load(text)))
    return found


@pytest.mark.parametrize(("name", "pod"), golden_pods(), ids=[n for n, _ in golden_pods()])
def test_golden_pod_direct_patch_equals_the_diff(name: str, pod: Any) -> None:
    check_same_as_diff(pod)


def test_direct_patch_is_the_diff_op_for_op_on_a_typical_validator() -> None:
    """Not only the same result: the same ops (the diff's order aside)."""
    decision, ops = mutation.patch_for(VALIDATOR, settings=SETTINGS)
    oracle = mutation.patch_by_diff(VALIDATOR, decision, settings=SETTINGS)
    assert sorted(ops, key=lambda op: op["path"]) == sorted(oracle, key=lambda op: op["path"])


@pytest.mark.parametrize(
    "shape",
    [
        {"metadata": None},
        {"metadata": {}},
        {"metadata": {"labels": None, "annotations": None}},
        {"metadata": {"labels": {names.INJECTED_LABEL: "yes"}}},
        {"metadata": {"labels": {names.INJECTED_LABEL: "true"}}},
        {"metadata": {"annotations": {names.STATUS_ANNOTATION: 7}}},
        {"metadata": {"annotations": {names.STATUS_ANNOTATION: "not json"}}},
    ],
)
def test_missing_null_and_odd_metadata_patch_like_the_diff(shape: dict[str, Any]) -> None:
    pod = {"kind": "Pod", **shape, "spec": VALIDATOR["spec"]}
    assert check_same_as_diff(pod)


@pytest.mark.parametrize("field", ["env", "volumeMounts", "lifecycle"])
@pytest.mark.parametrize("value", [None, "absent"])
def test_missing_and_null_container_fields_patch_like_the_diff(field: str, value: Any) -> None:
    pod = copy.deepcopy(VALIDATOR)
    target = pod["spec"]["containers"][0]
    if value == "absent":
        target.pop(field, None)
    else:
        target[field] = value
    assert check_same_as_diff(pod)


@pytest.mark.parametrize("volumes", [None, "absent", []])
def test_missing_null_and_empty_volumes_patch_like_the_diff(volumes: Any) -> None:
    pod = copy.deepcopy(VALIDATOR)
    if volumes == "absent":
        del pod["spec"]["volumes"]
    else:
        pod["spec"]["volumes"] = volumes
    assert check_same_as_diff(pod)


def test_null_poststart_is_replaced_like_the_diff() -> None:
    pod = copy.deepcopy(VALIDATOR)
    pod["spec"]["containers"][0]["lifecycle"]["postStart"] = None
    ops = check_same_as_diff(pod)
    assert {op["op"] for op in ops if op["path"].endswith("/postStart")} == {"replace"}


FUZZ = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)


@FUZZ
@given(pod=corrupted_pods() | pod_like | ODD_PODS)
def test_fuzzed_pod_direct_patch_equals_the_diff(pod: Any) -> None:
    check_same_as_diff(pod)
