"""Offline manifests: `stellar-peers inject -f` and `explain -f`, and the CLI around them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from webhook import names
from webhook.cli import main as cli
from webhook.cli import offline as documents
from webhook.core.injection import mutation
from webhook.settings import Settings

SETTINGS = Settings()
IMAGE = "stellar/stellar-core:22.1.0"


def template(image: str = IMAGE, **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "validator"}, **metadata},
        "spec": {"containers": [{"name": "stellar-core", "image": image}]},
    }


def pod(name: str = "validator-0", image: str = IMAGE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": template(image)["spec"],
    }


def workload(kind: str, name: str = "validator", image: str = IMAGE) -> dict[str, Any]:
    if kind == "CronJob":
        spec: dict[str, Any] = {
            "schedule": "@daily",
            "jobTemplate": {"spec": {"template": template(image)}},
        }
    else:
        spec = {"replicas": 1, "template": template(image)}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def inject(*docs: Any) -> list[Any]:
    return list(
        yaml.safe_load_all(documents.inject_text(yaml.safe_dump_all(docs), settings=SETTINGS))
    )


def webhook_result(p: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores after applying the webhook's ops with a real JSONPatch."""
    _, ops = mutation.patch_for(p, settings=SETTINGS)
    result: dict[str, Any] = jsonpatch.apply_patch(p, ops)
    return result


def test_inject_text_pod_equals_webhook_ops_applied_by_jsonpatch() -> None:
    p = pod()
    [out] = inject(p)
    assert out == webhook_result(p)
    assert out["metadata"]["labels"][names.INJECTED_LABEL] == "true"


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"])
def test_inject_text_workload_template_is_mutated(kind: str) -> None:
    doc = workload(kind)
    [out] = inject(doc)
    assert out["spec"]["template"] == webhook_result(doc["spec"]["template"])
    assert out["spec"]["replicas"] == 1
    assert out["metadata"] == doc["metadata"]


def test_inject_text_cronjob_job_template_is_mutated() -> None:
    doc = workload("CronJob")
    [out] = inject(doc)
    inner = out["spec"]["jobTemplate"]["spec"]["template"]
    assert inner == webhook_result(doc["spec"]["jobTemplate"]["spec"]["template"])
    assert out["spec"]["schedule"] == "@daily"


def test_inject_text_other_kinds_and_non_validators_pass_through() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"template": template()},
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "b"},
    }
    horizon = workload("Deployment", image="stellar/stellar-horizon:2")
    no_template = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert inject(service, config_map, horizon, no_template) == [
        service,
        config_map,
        horizon,
        no_template,
    ]


def test_inject_text_keeps_document_order_and_drops_empty_documents() -> None:
    text = "---\n" + yaml.safe_dump(pod("a")) + "---\n---\n" + yaml.safe_dump(pod("b"))
    out = list(yaml.safe_load_all(documents.inject_text(text, settings=SETTINGS)))
    assert [d["metadata"]["name"] for d in out] == ["a", "b"]


def test_inject_text_list_items() -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [pod("a"), workload("Deployment"), {"kind": "Service"}],
    }
    [out] = inject(listed)
    assert out["items"][0] == webhook_result(pod("a"))
    assert names.STATUS_ANNOTATION in out["items"][1]["spec"]["template"]["metadata"]["annotations"]
    assert out["items"][2] == {"kind": "Service"}


def test_inject_text_typed_list_items_without_kind() -> None:
    item = pod("a")
    del item["kind"], item["apiVersion"]
    deployment = workload("Deployment")
    del deployment["kind"]
    [pods, deployments] = inject(
        {"apiVersion": "v1", "kind": "PodList", "items": [item]},
        {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment]},
    )
    assert pods["items"][0] == webhook_result(item)
    assert "kind" not in pods["items"][0]
    assert deployments["items"][0]["spec"]["template"] == webhook_result(template())


def test_inject_text_is_idempotent() -> None:
    once = documents.inject_text(
        yaml.safe_dump_all([pod(), workload("StatefulSet")]), settings=SETTINGS
    )
    assert documents.inject_text(once, settings=SETTINGS) == once


def test_inject_text_prints_script_as_block_and_keeps_key_order() -> None:
    text = documents.inject_text(yaml.safe_dump(pod(), sort_keys=False), settings=SETTINGS)
    assert text.startswith("apiVersion: v1\nkind: Pod\n")
    assert "- |" in text


def test_inject_text_keeps_timestamps_and_odd_values() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
        "  creationTimestamp: 2024-01-02T03:04:05Z\n"
        "spec:\n  containers:\n  - name: stellar-core\n    image: stellar/stellar-core\n"
    )
    [out] = yaml.safe_load_all(documents.inject_text(text, settings=SETTINGS))
    assert str(out["metadata"]["creationTimestamp"]).startswith("2024-01-02 03:04:05")
    assert out["metadata"]["labels"][names.INJECTED_LABEL] == "true"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\n  bad: [indent", "not valid YAML"),
        ("kind: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "document 1 is a list"),
        ("kind: Pod\n---\nplain words\n", "document 2 is a str"),
    ],
)
def test_inject_text_malformed_input_raises_document_error(text: str, message: str) -> None:
    with pytest.raises(documents.DocumentError, match=message):
        documents.inject_text(text, settings=SETTINGS)
    with pytest.raises(documents.DocumentError, match=message):
        documents.explain_text(text, settings=SETTINGS)


def test_explain_text_one_line_per_object() -> None:
    opted = pod("opted")
    opted["metadata"]["annotations"] = {names.INJECT_ANNOTATION: "false"}
    generated = pod()
    generated["metadata"] = {"generateName": "validator-"}
    own_hook = pod("own-hook")
    own_hook["spec"]["containers"][0]["lifecycle"] = {"postStart": {"exec": {"command": ["x"]}}}
    text = yaml.safe_dump_all(
        [
            workload("Deployment"),
            opted,
            generated,
            own_hook,
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}},
            {"kind": "List", "items": [pod("in-list", image="busybox")]},
        ]
    )
    assert documents.explain_text(text, settings=SETTINGS).splitlines() == [
        'Deployment/validator: inject (validator-image) into container "stellar-core", '
        "peer port 11625, admin port 11626",
        "Pod/opted: skip (opted-out)",
        'Pod/validator-*: inject (validator-image) into container "stellar-core", '
        "peer port 11625, admin port 11626",
        'Pod/own-hook: inject (validator-image) into container "stellar-core", '
        "peer port 11625, admin port 11626; leaves postStart (has-own-poststart)",
        "Service/svc: skip (not-a-pod)",
        "Pod/in-list: skip (not-a-validator)",
    ]


def test_explain_pod_of_a_live_injected_pod() -> None:
    live = webhook_result(pod())
    assert documents.explain_pod(live, settings=SETTINGS) == (
        "Pod/validator-0: skip (already-injected)\n"
    )


# The CLI, as a user runs it


def test_cli_inject_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod()))
    assert cli.main(["inject", "-f", str(path)]) == 0
    [out] = yaml.safe_load_all(capsys.readouterr().out)
    assert out == webhook_result(pod())


def test_cli_inject_stdin_honours_flags(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(pod(image="acme/my-core:1"))))
    assert cli.main(["inject", "-f", "-", "--image-pattern", "my-core$"]) == 0
    [out] = yaml.safe_load_all(capsys.readouterr().out)
    assert out["metadata"]["labels"][names.INJECTED_LABEL] == "true"


def test_cli_inject_bad_yaml_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: [unclosed\n")
    assert cli.main(["inject", "-f", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "stellar-peers inject: not valid YAML" in captured.err


def test_cli_inject_missing_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["inject", "-f", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err


def test_cli_explain_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all([workload("StatefulSet"), pod("web", image="nginx")]))
    assert cli.main(["explain", "-f", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        'StatefulSet/validator: inject (validator-image) into container "stellar-core", '
        "peer port 11625, admin port 11626",
        "Pod/web: skip (not-a-validator)",
        "admission: auto (policy where the API server serves MutatingAdmissionPolicy v1, "
        "else webhook); either injects the pod shown",
    ]


def test_inject_text_strings_survive_the_round_trip() -> None:
    odd = [
        "  leading",
        "trailing  \nx",
        "multi\nline\n",
        "é ✓",
        "x" * 200 + " y" * 50,
        "- not a list",
    ]
    p = pod()
    p["spec"]["containers"][0]["args"] = odd
    [out] = inject(p)
    assert out["spec"]["containers"][0]["args"] == odd
