"""`stellar-peers check` against a `stellar-peers serve --local` in the test cluster.

The serve process answers admission and runs the Lease elector and the peer
watcher, so every check has something to find. Each
failing case breaks exactly one thing and reads the FAIL line that names it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files, install
from tests.e2e.conftest import Cluster, make_namespace
from tests.e2e.private_cluster import STELLAR_PEERS, ServeProcess, settings_args
from tests.kube import label_enabled, validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from webhook import names
from webhook.cli import check
from webhook.core.peerset import peers
from webhook.core.publishing import publish
from webhook.settings import Settings


def run_check(settings: Settings) -> tuple[int, dict[str, str]]:
    """Run the real command; (exit code, {check name: its whole line})."""
    done = subprocess.run(
        [str(STELLAR_PEERS), "check", *settings_args(settings)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines: dict[str, str] = {}
    for line in done.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        assert verdict in ("PASS", "FAIL"), f"unexpected output line {line!r}"
        lines[rest.partition(":")[0]] = line
    return done.returncode, lines


@pytest.fixture
def check_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings with leader election on and no cert file of the default path.

    The selector leaves out the usual stellar.org/peer-injection=enabled, so another
    installation on the shared cluster (a demo, say) never injects these namespaces.
    """
    return dataclasses.replace(
        settings,
        namespace_selector=f"stellar-check-test={uuid.uuid4().hex[:10]}",
        leader_election=True,
        lease_name=f"lease-{uuid.uuid4().hex[:8]}",
        lease_duration_seconds=6.0,
        lease_renew_seconds=1.0,
        cert_file=str(tmp_path / "absent" / "tls.crt"),
    )


@pytest.fixture
def enabled(core: client.CoreV1Api, check_settings: Settings) -> Iterator[str]:
    name = make_namespace(core, "chk")
    label_enabled(core, name, check_settings)
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def serve(
    check_settings: Settings, tmp_path: Path, admreg: client.AdmissionregistrationV1Api
) -> Iterator[ServeProcess]:
    process = ServeProcess(check_settings, log_path=tmp_path / "serve.log")
    try:
        process.wait_for("serve.local")
        yield process
    finally:
        process.stop()
        # A killed process leaves its configuration behind.
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(check_settings.webhook_config_name)


def test_check_all_pass_on_a_working_install(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    check_settings: Settings,
    enabled: str,
    serve: ServeProcess,
) -> None:
    pod = validator_pod("v-1")
    pod["metadata"]["labels"][names.INJECTED_LABEL] = "true"
    core.create_namespaced_pod(enabled, pod)
    kubelet.mark_ready(namespace=enabled, name="v-1", ip="127.0.0.61")
    # serve runs the Lease elector and the peer watcher beside the webhook.
    wait_until(
        lambda: check.check_configmaps(core.api_client, check_settings).ok,
        timeout=20,
        message="serve's watcher to write the canonical ConfigMap and its mirror",
    )
    code, lines = run_check(check_settings)
    assert set(lines) == {
        "admission",
        "webhook",
        "certificate",
        "lease",
        "configmaps",
        "advertised",
        "links",
    }, lines
    assert lines["links"] == "PASS links: no links"
    assert all(line.startswith("PASS") for line in lines.values()), lines
    assert code == 0
    assert "webhook mode: admission_mode is webhook" in lines["admission"]
    assert enabled in lines["webhook"]
    assert "served at https://127.0.0.1:" in lines["certificate"]
    assert check_settings.lease_name in lines["lease"]
    assert "1 peers" in lines["configmaps"]
    assert "1 mirrors match" in lines["configmaps"]
    # serve --local made its key on the spot: it must not show in its own logs.
    assert serve.named("serve.local")
    assert "PRIVATE KEY" not in serve.log_path.read_text()


def test_check_fails_without_an_enabled_namespace(
    check_settings: Settings, serve: ServeProcess
) -> None:
    code, lines = run_check(check_settings)
    assert code == 1
    assert lines["webhook"].startswith("FAIL webhook: no namespace matches")
    assert check_settings.namespace_selector in lines["webhook"]


def test_check_fails_when_the_webhook_is_down(
    check_settings: Settings, enabled: str, serve: ServeProcess
) -> None:
    # SIGKILL: the webhook configuration stays, pointing at a closed port (failurePolicy Ignore).
    serve.kill()
    code, lines = run_check(check_settings)
    assert code == 1
    assert lines["webhook"].startswith("FAIL webhook: dry-run pod in"), lines["webhook"]
    assert "uninjected" in lines["webhook"]
    assert lines["certificate"].startswith("FAIL certificate:"), lines["certificate"]


def test_check_fails_without_a_webhook_configuration(check_settings: Settings) -> None:
    code, lines = run_check(check_settings)
    assert code == 1
    assert lines["webhook"] == (
        f"FAIL webhook: MutatingWebhookConfiguration {check_settings.webhook_config_name} not found"
    )
    assert lines["lease"].startswith("FAIL lease: Lease"), lines["lease"]
    assert "not found" in lines["lease"]
    assert lines["configmaps"].startswith("FAIL configmaps: canonical ConfigMap")


def _write_configmap(
    core: client.CoreV1Api, namespace: str, peer_set: peers.PeerSet, **changes: str
) -> None:
    body = publish.configmap_body(peer_set, name=names.CONFIGMAP_NAME, namespace=namespace)
    body["data"].update(changes)
    core.create_namespaced_config_map(namespace, body)


def test_check_configmaps_names_a_stale_or_missing_mirror(
    cluster: Cluster, core: client.CoreV1Api, check_settings: Settings, enabled: str
) -> None:
    other = make_namespace(core, "chk")
    try:
        label_enabled(core, other, check_settings)
        peer_set = peers.PeerSet(peers=(peers.static_peer("10.0.0.1:11625"),))
        _write_configmap(core, check_settings.namespace, peer_set)
        result = check.check_configmaps(cluster.api_client, check_settings)
        assert not result.ok
        assert f"missing in {', '.join(sorted([enabled, other]))}" in result.detail
        _write_configmap(core, enabled, peer_set)
        _write_configmap(core, other, peer_set, **{names.KEY_TXT: "10.6.6.6:11625\n"})
        result = check.check_configmaps(cluster.api_client, check_settings)
        assert not result.ok
        assert result.detail == (
            f"mirror differs from {check_settings.namespace}/{names.CONFIGMAP_NAME} in {other}"
        )
        core.delete_namespaced_config_map(names.CONFIGMAP_NAME, other)
        _write_configmap(core, other, peer_set)
        assert check.check_configmaps(cluster.api_client, check_settings).ok
    finally:
        core.delete_namespace(other, propagation_policy="Background")


def test_check_configmaps_catches_a_wrong_hash_annotation(
    cluster: Cluster, core: client.CoreV1Api, check_settings: Settings
) -> None:
    peer_set = peers.PeerSet(peers=(peers.static_peer("10.0.0.1:11625"),))
    _write_configmap(core, check_settings.namespace, peer_set, **{names.KEY_TXT: "x\n"})
    result = check.check_configmaps(cluster.api_client, check_settings)
    assert not result.ok
    assert names.PEERS_HASH_ANNOTATION in result.detail


def test_check_lease_stale_and_fresh(
    cluster: Cluster, check_settings: Settings, coordination: client.CoordinationV1Api
) -> None:
    now = dt.datetime.now(dt.UTC)
    stamp = (now - dt.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    coordination.create_namespaced_lease(
        check_settings.namespace,
        {
            "metadata": {"name": check_settings.lease_name},
            "spec": {"holderIdentity": "gone-1", "renewTime": stamp, "leaseDurationSeconds": 15},
        },
    )
    result = check.check_lease(cluster.api_client, check_settings)
    assert not result.ok
    assert "held by gone-1 is stale" in result.detail
    fresh = check.check_lease(
        cluster.api_client, check_settings, now=now - dt.timedelta(seconds=55)
    )
    assert fresh.ok
    assert "renewed 5.0s ago" in fresh.detail


def test_check_certificate_from_the_secret_and_near_expiry(
    cluster: Cluster, core: client.CoreV1Api, check_settings: Settings, tmp_path: Path
) -> None:
    ca = authority.make_ca()
    short = authority.make_serving(ca=ca, dns_names=["x"], validity=dt.timedelta(days=2))
    cert_file = tmp_path / "tls.crt"
    cert_file.write_bytes(short.cert_pem)
    from_file = dataclasses.replace(check_settings, cert_file=str(cert_file))
    result = check.check_certificate(cluster.api_client, from_file)
    assert not result.ok
    assert f"file {cert_file} expires in 2.0 days" in result.detail
    long = authority.make_serving(ca=ca, dns_names=["x"])
    core.create_namespaced_secret(
        check_settings.namespace,
        install.secret_body(
            namespace=check_settings.namespace,
            secret=install.secret_name(check_settings.service_name),
            bundle=files.Bundle(ca.cert_pem, long),
        ),
    )
    result = check.check_certificate(cluster.api_client, from_file)
    assert result.ok, result.detail
    assert result.detail.startswith(f"Secret {check_settings.namespace}/")
    assert "valid for 365 more days" in result.detail or "valid for 364 more days" in result.detail
