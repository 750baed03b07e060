"""Answers reused per pod template: a cached answer is exactly the fresh one.

Every golden case and the benchmark's pods, each with a ServiceAccount token volume
as the API server adds it, answered once; then a sibling of the same template
(another name, generateName, uid, timestamps, managedFields and token volume name)
is answered from the cache and must equal its own fresh answer. Pods that differ in
anything the answer reads get answers of their own.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.bench import pods
from tests.unit.test_golden import cases, input_pod
from webhook.admission import review
from webhook.admission.answers import Answers
from webhook.core.injection import mutation, template
from webhook.settings import Settings

SETTINGS = Settings()


def fresh(pod: dict[str, Any]) -> tuple[mutation.Decision, str]:
    decision, ops = mutation.patch_for(copy.deepcopy(pod), settings=SETTINGS)
    return decision, review.encode_patch(ops) if ops else ""


def with_token(pod: dict[str, Any], suffix: str) -> dict[str, Any]:
    """`pod` as the ServiceAccount admission plugin leaves it: a projected token volume
    with a random name, mounted into every container."""
    pod = copy.deepcopy(pod)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return pod
    name = f"kube-api-access-{suffix}"
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        volumes.append({"name": name, "projected": {"sources": [{"serviceAccountToken": {}}]}})
    for container in spec.get("containers") or ():
        if isinstance(container, dict) and isinstance(container.get("volumeMounts"), list):
            container["volumeMounts"].append(
                {"name": name, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
            )
    return pod


def sibling(pod: dict[str, Any], index: int) -> dict[str, Any]:
    """Another pod of the same ReplicaSet: only per-pod fields differ (each token
    volume renamed, in its mounts too)."""
    other = copy.deepcopy(pod)
    spec = other.get("spec")
    volumes = spec.get("volumes") if isinstance(spec, dict) else None
    tokens = [v["name"] for v in volumes or () if "kube-api-access-" in v["name"]]
    renamed = {name: f"kube-api-access-z{index:03d}{n}" for n, name in enumerate(tokens)}
    for volume in volumes or ():
        volume["name"] = renamed.get(volume["name"], volume["name"])
    for container in (spec or {}).get("containers") or ():
        for mount in container.get("volumeMounts") or ():
            mount["name"] = renamed.get(mount["name"], mount["name"])
    metadata = other.get("metadata")
    if isinstance(metadata, dict):
        metadata["name"] = f"validator-7d9f8c6b5-{index:05d}"
        metadata["generateName"] = "validator-7d9f8c6b5-"
        metadata["uid"] = f"00000000-0000-0000-0000-{index:012d}"
        metadata["creationTimestamp"] = f"2026-12-07T07:{index % 60:02d}:00Z"
        metadata["resourceVersion"] = str(1000 + index)
        metadata["managedFields"] = [{"manager": "kube-controller-manager", "time": str(index)}]
    return other


def templates() -> dict[str, dict[str, Any]]:
    found = {f"golden/{case}": input_pod(case) for case in cases()}
    found["bench/validator"] = pods.validator_pod()
    found["bench/plain"] = pods.plain_pod()
    found["bench/large"] = pods.large_pod()
    return {
        name: pod if "kube-api-access-" in str(pod) else with_token(pod, "a1b2c")
        for name, pod in found.items()
    }


TEMPLATES = templates()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_a_cached_answer_equals_a_fresh_one_for_every_pod_of_the_template(name: str) -> None:
    pod = TEMPLATES[name]
    answers = Answers(settings=SETTINGS)
    assert answers.answer(copy.deepcopy(pod)) == fresh(pod)
    keyed = template.key(pod) is not None
    for index in range(3):
        other = sibling(pod, index)
        assert answers.answer(copy.deepcopy(other)) == fresh(other)
        # One build for the whole template (where the pod has a key at all).
        assert len(answers) == (1 if keyed else 0)


def test_the_benchmark_validator_and_the_golden_validators_are_keyed() -> None:
    """The shortcut applies where it matters: ReplicaSet-shaped validator pods."""
    assert template.key(TEMPLATES["bench/validator"]) is not None
    assert template.key(TEMPLATES["golden/plain-validator"]) is not None


def _variants(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The template with one field the answer reads changed each time."""
    out = []
    for change in (
        lambda p: p["metadata"].update(labels=None),
        lambda p: p["metadata"].pop("labels", None),
        lambda p: (
            p["metadata"].setdefault("labels", {}).update({"stellar.org/node-type": "validator"})
        ),
        lambda p: (
            p["metadata"]
            .setdefault("annotations", {})
            .update({"stellar.org/inject-peers": "false"})
        ),
        lambda p: (
            p["metadata"].setdefault("annotations", {}).update({"stellar.org/peer-port": "11700"})
        ),
        lambda p: p["spec"]["containers"][0].update(image="nginx:1.27"),
        lambda p: p["spec"]["containers"][0].update(name="core"),
        lambda p: p["spec"]["containers"][0].update(env=None),
        lambda p: p["spec"]["containers"][0].pop("env", None),
        lambda p: p["spec"]["volumes"].append({"name": "stellar-peers", "emptyDir": {}}),
        lambda p: p["spec"].update(volumes=None),
        lambda p: p.update(kind="Deployment"),
    ):
        variant = copy.deepcopy(pod)
        change(variant)
        out.append(variant)
    return out


def test_pods_that_differ_in_what_the_answer_reads_get_their_own_answers() -> None:
    base = TEMPLATES["bench/validator"]
    answers = Answers(settings=SETTINGS)
    answers.answer(copy.deepcopy(base))
    for variant in _variants(base):
        for _ in range(2):  # fresh, then from the cache
            assert answers.answer(copy.deepcopy(variant)) == fresh(variant)


def test_a_token_name_used_elsewhere_gives_no_key() -> None:
    """Only a volume's or a mount's name may be the token's: a container or an env
    value of that name is read by the answer (the status names the container)."""
    pod = copy.deepcopy(TEMPLATES["bench/validator"])
    pod["spec"]["containers"][0]["name"] = _token_of(TEMPLATES["bench/validator"])
    assert template.key(pod) is None
    pod = copy.deepcopy(TEMPLATES["bench/validator"])
    pod["spec"]["containers"][0].setdefault("env", []).append(
        {"name": "X", "value": _token_of(TEMPLATES["bench/validator"])}
    )
    assert template.key(pod) is None


def test_the_cache_is_bounded_and_keeps_the_recent() -> None:
    answers = Answers(settings=SETTINGS, size=2)
    first, second, third = (_labelled(TEMPLATES["bench/validator"], str(i)) for i in range(3))
    for pod in (first, second, first, third):
        answers.answer(pod)
    assert len(answers) == 2
    kept = {template.key(p) for p in (first, third)}
    assert set(answers._built) == kept


def _labelled(pod: dict[str, Any], value: str) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"].setdefault("labels", {})["tier"] = value
    return pod


def _token_of(pod: dict[str, Any]) -> str:
    name: str = next(v["name"] for v in pod["spec"]["volumes"] if "kube-api-access-" in v["name"])
    return name
