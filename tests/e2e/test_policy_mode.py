"""Policy mode on the real kube-apiserver: the keeper's passes, and `serve` in policy mode.

The keeper's pass (`sync_once`) applies the policy and binding, removes the webhook
configuration of the same name a pass later (the order of a mode switch:
test_mode_switch.py), changes nothing once all is in place (the API server's defaults
do not count as a difference), and puts back a policy that was deleted or edited; only
our policy is ever removed. `sync_once` is driven alone (a named seam,
docs/development.md): the tests count passes; the keeper's loop under the Lease runs
as `wire` builds it in test_mode_switch.py and under `serve` below. `serve --local` in
policy mode injects without any TLS port, its pods stay injected once it is killed,
and a clean exit removes what it applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import Cluster, make_namespace
from tests.e2e.private_cluster import ServeProcess
from tests.e2e.test_webhook import create_pod, is_injected
from tests.kube import label_enabled, validator_pod
from tests.polling import wait_until
from webhook.cli.registration import webhook_configuration
from webhook.controllers.admission_policy import discover, remove_policy, sync_once
from webhook.core.injection import policy
from webhook.kube.rest import Rest
from webhook.settings import Settings

API = f"{policy.GROUP}/v1"


@pytest.fixture
def policy_settings(settings: Settings) -> Iterator[Settings]:
    chosen = dataclasses.replace(settings, admission_mode="policy", policy_sync_seconds=0.5)
    yield chosen
    custom = client.CustomObjectsApi(_api(chosen))
    for plural in (policy.BINDING_RESOURCE, policy.POLICY_RESOURCE):
        with contextlib.suppress(ApiException):  # gone already: the test removed it
            custom.delete_cluster_custom_object(
                policy.GROUP, "v1", plural, chosen.webhook_config_name
            )


def _api(settings: Settings) -> client.ApiClient:
    from kubernetes import config

    return config.new_client_from_config(config_file=settings.kubeconfig)


def read(custom: client.CustomObjectsApi, plural: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = custom.get_cluster_custom_object(policy.GROUP, "v1", plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def test_this_api_server_serves_policies_by_default(cluster: Cluster) -> None:
    assert discover(Rest(cluster.api_client)) is True


def test_keeper_applies_removes_the_webhook_and_puts_back(
    cluster: Cluster,
    admreg: client.AdmissionregistrationV1Api,
    custom: client.CustomObjectsApi,
    policy_settings: Settings,
) -> None:
    rest = Rest(cluster.api_client)
    name = policy_settings.webhook_config_name
    admreg.create_mutating_webhook_configuration(
        webhook_configuration(
            settings=policy_settings,
            ca_bundle=b"-",
            client_config={"url": "https://127.0.0.1:1/mutate"},
        )
    )
    assert sorted(sync_once(rest, policy_settings, "policy")) == sorted(
        [f"created {policy.BINDING_RESOURCE}", f"created {policy.POLICY_RESOURCE}"]
    )
    # The webhook configuration goes once the policy was in place for a whole pass; the
    # API server's defaults are no difference.
    assert sync_once(rest, policy_settings, "policy") == ["deleted mutatingwebhookconfigurations"]
    assert sync_once(rest, policy_settings, "policy") == []

    custom.delete_cluster_custom_object(policy.GROUP, "v1", policy.POLICY_RESOURCE, name)
    assert sync_once(rest, policy_settings, "policy") == [f"created {policy.POLICY_RESOURCE}"]

    edited = read(custom, policy.POLICY_RESOURCE, name)
    assert edited is not None
    edited["spec"]["failurePolicy"] = "Fail"
    custom.replace_cluster_custom_object(policy.GROUP, "v1", policy.POLICY_RESOURCE, name, edited)
    assert sync_once(rest, policy_settings, "policy") == [f"replaced {policy.POLICY_RESOURCE}"]
    back = read(custom, policy.POLICY_RESOURCE, name)
    assert back is not None
    assert policy.same_spec(back, policy.policy(policy_settings))

    assert sorted(remove_policy(rest, policy_settings)) == sorted(
        [f"deleted {policy.BINDING_RESOURCE}", f"deleted {policy.POLICY_RESOURCE}"]
    )
    assert read(custom, policy.POLICY_RESOURCE, name) is None


def test_webhook_mode_leaves_a_policy_that_is_not_ours(
    cluster: Cluster, custom: client.CustomObjectsApi, policy_settings: Settings
) -> None:
    body = policy.binding(policy_settings)
    body["metadata"]["labels"] = {"app.kubernetes.io/name": "someone-else"}
    body["spec"]["policyName"] = "someone-elses"
    custom.create_cluster_custom_object(policy.GROUP, "v1", policy.BINDING_RESOURCE, body)
    assert remove_policy(Rest(cluster.api_client), policy_settings) == []
    assert read(custom, policy.BINDING_RESOURCE, policy_settings.webhook_config_name)


def _serve(settings: Settings, log_path: Path) -> ServeProcess:
    return ServeProcess(settings, log_path=log_path, local=True)


def test_serve_in_policy_mode_injects_without_tls_and_while_down(
    cluster: Cluster,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    policy_settings: Settings,
    tmp_path: Path,
) -> None:
    target = make_namespace(core, "policy-serve")
    label_enabled(core, target, policy_settings)
    serve = _serve(policy_settings, tmp_path / "first.log")
    try:
        wait_until(
            lambda: is_injected(create_pod(core, target, validator_pod("probe"), dry_run="All")),
            timeout=60,
            message="serve --local in policy mode to apply its policy",
        )
        events = {e.get("event"): e for e in serve.events()}
        assert events["serve.admission_mode"]["mode"] == "policy"
        assert "server.listening" not in events  # no TLS port: nothing to call
        # Killed without a chance to clean up: the API server still injects.
        os.kill(serve.pid, signal.SIGKILL)
        serve.process.wait(timeout=30)
        assert is_injected(create_pod(core, target, validator_pod("while-down")))
    finally:
        if serve.alive():
            serve.process.kill()
        core.delete_namespace(target, propagation_policy="Background")

    # A clean exit removes what --local applied.
    again = _serve(policy_settings, tmp_path / "second.log")
    try:
        wait_until(lambda: _started(again), timeout=60, message="the second serve to start")
    finally:
        again.process.send_signal(signal.SIGTERM)
        again.process.wait(timeout=60)
    assert read(custom, policy.POLICY_RESOURCE, policy_settings.webhook_config_name) is None


def _started(serve: ServeProcess) -> bool:
    return any(e.get("event") == "serve.admission_mode" for e in serve.events())


def test_check_names_policy_mode(
    cluster: Cluster, core: client.CoreV1Api, policy_settings: Settings
) -> None:
    target = make_namespace(core, "policy-check")
    label_enabled(core, target, policy_settings)
    rest = Rest(cluster.api_client)
    sync_once(rest, policy_settings, "policy")
    wait_until(
        lambda: is_injected(create_pod(core, target, validator_pod("probe"), dry_run="All")),
        timeout=30,
        message="the policy to take effect",
    )
    from tests.e2e.private_cluster import settings_args

    done = subprocess.run(
        [
            str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "stellar-peers"),
            "check",
            *settings_args(policy_settings),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PASS admission: policy mode: admission_mode is policy"), lines
    assert any(line.startswith("PASS certificate: policy mode serves no TLS") for line in lines)
    assert any(line.startswith("PASS policy: dry-run validator pod") for line in lines), lines
    core.delete_namespace(target, propagation_policy="Background")


def test_uninstall_takes_the_policy_along(
    cluster: Cluster,
    rbac: client.RbacAuthorizationV1Api,
    custom: client.CustomObjectsApi,
    policy_settings: Settings,
) -> None:
    """Our ClusterRole owns what the leader applied: deleting it (kubectl delete -k, helm
    uninstall) has the garbage collector delete the policy and binding the manifests never
    named."""
    name = policy_settings.webhook_config_name
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": []})
    try:
        sync_once(Rest(cluster.api_client), policy_settings, "policy")
        applied = read(custom, policy.POLICY_RESOURCE, name)
        assert applied is not None
        (owner,) = applied["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("ClusterRole", name)
        assert sync_once(Rest(cluster.api_client), policy_settings, "policy") == []
    finally:
        rbac.delete_cluster_role(name)
    for plural in (policy.POLICY_RESOURCE, policy.BINDING_RESOURCE):
        wait_until(
            lambda plural=plural: read(custom, plural, name) is None,
            timeout=60,
            message=f"the garbage collector to delete our {plural}",
        )


def test_example_workloads_applied_unchanged_come_up_injected(
    cluster: Cluster, core: client.CoreV1Api, policy_settings: Settings
) -> None:
    """The shipped Deployment and StatefulSet through their controllers (ReplicaSet, pods
    created by the controller manager), injected by the policy alone: no injector runs."""
    from tests.e2e.test_webhook import EXAMPLES, assert_injected, read_pod

    target = make_namespace(core, "policy-examples")
    label_enabled(core, target, policy_settings)
    sync_once(Rest(cluster.api_client), policy_settings, "policy")
    wait_until(
        lambda: is_injected(create_pod(core, target, validator_pod("probe"), dry_run="All")),
        timeout=30,
        message="the policy to take effect",
    )
    try:
        for example in ("validator-deployment.yaml", "validator-statefulset.yaml"):
            subprocess.run(
                [cluster.kubectl, "--kubeconfig", cluster.kubeconfig, "apply", "-n", target,
                 "-f", str(EXAMPLES / example)],
                check=True, capture_output=True,
            )  # fmt: skip
        listed = wait_until(
            lambda: _pods(core, target) if len(_pods(core, target)) >= 2 else None,
            timeout=60,
            message="the examples' pods",
        )
        for pod in listed:
            assert_injected(read_pod(core, target, pod["metadata"]["name"]))
    finally:
        core.delete_namespace(target, propagation_policy="Background")


def _pods(core: client.CoreV1Api, namespace: str) -> list[dict[str, Any]]:
    listing = orjson.loads(core.list_namespaced_pod(namespace, _preload_content=False).data)
    pods: list[dict[str, Any]] = listing["items"]
    return pods


def test_explain_and_status_name_the_mode_in_force(
    cluster: Cluster, core: client.CoreV1Api, settings: Settings
) -> None:
    """auto on this API server: explain says policy, and why (API discovery)."""
    from tests.e2e.private_cluster import settings_args

    auto = dataclasses.replace(settings, admission_mode="auto")
    target = make_namespace(core, "policy-explain")
    try:
        core.create_namespaced_pod(target, validator_pod("v-explain"))
        cli = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "stellar-peers")
        args = settings_args(auto)
        explained = subprocess.run(
            [cli, "explain", "v-explain", "--pod-namespace", target, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert explained.returncode == 0, explained.stderr
        why = "admission: policy mode (admission_mode is auto and the API server serves"
        assert explained.stdout.splitlines()[-1].startswith(why), explained.stdout
        # status names what is installed: nothing here (test_status_admission has the rest).
        status = subprocess.run([cli, "status", *args], capture_output=True, text=True, timeout=60)
        none = "admission: none in force (no MutatingWebhookConfiguration or MutatingAdmission"
        assert status.stdout.splitlines()[-1].startswith(none), status.stdout + status.stderr
    finally:
        core.delete_namespace(target, propagation_policy="Background")
