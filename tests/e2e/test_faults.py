"""Faults: the API server restarting, the leader dying, the webhook dying, certificates rotating.

The API-server restart runs on a private control plane (tests/e2e/private_cluster.py)
so the shared one is never stopped. The others run on the shared cluster with
test-scoped names.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files, install
from tests.background import Background
from tests.e2e.conftest import Cluster, make_namespace
from tests.e2e.private_cluster import (
    PrivateCluster,
    ServeProcess,
    private_cluster,
)
from tests.kube import label_enabled, validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook import names
from webhook.admission import server
from webhook.cli import check, serving_certificate
from webhook.cli import serve as service
from webhook.metrics import Metrics
from webhook.settings import Settings


def scoped_settings(kubeconfig: str, system: str, **changes: Any) -> Settings:
    run_id = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "namespace": system,
        # Not the usual stellar.org/peer-injection=enabled: any other installation on the
        # shared cluster (a demo, say) would then inject and mirror into these namespaces too.
        "namespace_selector": f"stellar-fault-test={run_id}",
        "leader_election": False,
        "debounce_seconds": 0.05,
        "port": 0,
        "metrics_port": 0,
        "webhook_config_name": f"stellar-peer-injector-{run_id}",
        # The webhook's faults: this API server serves policies, so auto would pick those.
        "admission_mode": "webhook",
    }
    return Settings(**{**values, **changes})


def add_validator(
    core: client.CoreV1Api, namespace: str, name: str, *, injected: bool = True
) -> None:
    body = validator_pod(name)
    if injected:
        body["metadata"]["labels"][names.INJECTED_LABEL] = "true"
    core.create_namespaced_pod(namespace, body)


def peers_txt(core: client.CoreV1Api, namespace: str) -> str | None:
    try:
        data = core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace).data or {}
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(data.get(names.KEY_TXT, ""))


def text_of(peers: list[str]) -> str:
    return "".join(f"{p}\n" for p in sorted(peers))


def retried(call: Any, *, timeout: float = 10) -> Any:
    """A write right after the API server came back: its first connection may be stale."""
    return wait_until(lambda: call() or True, timeout=timeout, interval=0.1, message=str(call))


def utc(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- kube-apiserver restarted under the peer watcher -------------------------


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    with private_cluster(tmp_path_factory.mktemp("private-cluster")) as cluster:
        yield cluster


def test_faults_watcher_converges_after_apiserver_restart(private: PrivateCluster) -> None:
    core = client.CoreV1Api(private.api_client)
    kubelet = FakeKubelet(private.api_client)
    system = make_namespace(core, "f-sys")
    app = make_namespace(core, "f-app")
    settings = scoped_settings(private.kubeconfig, system)
    label_enabled(core, app, settings)
    for name in ("v1", "v2", "v3"):
        add_validator(core, app, name)
    kubelet.mark_ready(namespace=app, name="v1", ip="127.0.0.71")
    with running_service(settings, must_stop=False):
        wait_until(
            lambda: peers_txt(core, app) == text_of(["127.0.0.71:11625"]),
            timeout=15,
            message="the first peer set",
        )
        # Just before the stop: whether or not the watcher saw it, it must not be lost.
        kubelet.mark_ready(namespace=app, name="v2", ip="127.0.0.72")
        private.stop_apiserver()
        private.start_apiserver()
        back = time.monotonic()
        # Right after the API is back: a new Ready validator, and one gone.
        retried(lambda: kubelet.mark_ready(namespace=app, name="v3", ip="127.0.0.73"))
        retried(lambda: core.delete_namespaced_pod("v1", app, grace_period_seconds=0))
        expected = text_of(["127.0.0.72:11625", "127.0.0.73:11625"])
        wait_until(
            lambda: peers_txt(core, app) == expected and peers_txt(core, system) == expected,
            timeout=30,
            interval=0.1,
            message="canonical and mirror to converge after the restart",
        )
        converged = time.monotonic() - back
    assert converged <= 5.0, f"converged {converged:.1f}s after the API server was back"


# --- the leader killed -------------------------------------------------------


def test_faults_leader_killed_successor_takes_over_without_overlap(
    cluster: Cluster,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    tmp_path: Path,
) -> None:
    app = make_namespace(core, "f-app")
    try:
        base = scoped_settings(
            cluster.kubeconfig,
            namespace,
            leader_election=True,
            lease_name=f"lease-{uuid.uuid4().hex[:8]}",
            lease_duration_seconds=4.0,
            lease_renew_seconds=1.0,
        )
        label_enabled(core, app, base)
        for name in ("v1", "v2"):
            add_validator(core, app, name)
        kubelet.mark_ready(namespace=app, name="v1", ip="127.0.0.81")
        first = ServeProcess(
            dataclasses.replace(base, identity="replica-a"),
            log_path=tmp_path / "a.log",
        )
        second: ServeProcess | None = None
        try:
            first.wait_for("leader.acquired")
            second = ServeProcess(
                dataclasses.replace(base, identity="replica-b"),
                log_path=tmp_path / "b.log",
            )
            second.wait_for("watcher.ready")
            wait_until(
                lambda: peers_txt(core, app) == text_of(["127.0.0.81:11625"]),
                timeout=15,
                message="the leader to write",
            )
            first.kill()
            killed = dt.datetime.now(dt.UTC)
            kubelet.mark_ready(namespace=app, name="v2", ip="127.0.0.82")
            acquired = second.wait_for("leader.acquired", timeout=15)
            wait_until(
                lambda: peers_txt(core, app) == text_of(["127.0.0.81:11625", "127.0.0.82:11625"]),
                timeout=10,
                message="the successor to write the change",
            )
            taken = utc(acquired["ts"])
            limit = base.lease_duration_seconds + base.lease_renew_seconds + 1.0
            assert (taken - killed).total_seconds() <= limit
            # No two writers at once: every write of A happened before it died, every
            # write of B after it took the Lease, and B took it only once A's term ran out.
            writes_a = [utc(e["ts"]) for e in first.named("configmap.written")]
            writes_b = [utc(e["ts"]) for e in second.named("configmap.written")]
            assert writes_a
            assert writes_b
            assert max(writes_a) <= killed
            assert taken >= killed
            assert min(writes_b) >= taken
            lease = client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(
                base.lease_name, namespace
            )
            assert lease.spec.holder_identity == "replica-b"
            assert lease.spec.lease_transitions >= 1
        finally:
            first.stop()
            if second is not None:
                second.stop()
    finally:
        core.delete_namespace(app, propagation_policy="Background")


# --- the webhook killed during a rollout -------------------------------------


def rollout(name: str, replicas: int) -> dict[str, Any]:
    pod = validator_pod(name)
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }


@dataclasses.dataclass
class Rollout:
    injected: int
    uninjected: int
    settings: Settings
    namespace: str


@pytest.fixture(scope="module")
def killed_rollout(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    """A 50-pod Deployment rolled out while the webhook (failurePolicy Ignore) is SIGKILLed."""
    core = client.CoreV1Api(cluster.api_client)
    apps = client.AppsV1Api(cluster.api_client)
    admreg = client.AdmissionregistrationV1Api(cluster.api_client)
    system = make_namespace(core, "f-sys")
    app = make_namespace(core, "f-roll")
    settings = scoped_settings(cluster.kubeconfig, system)
    label_enabled(core, app, settings)
    log_path = tmp_path_factory.mktemp("rollout") / "serve.log"
    webhook = ServeProcess(settings, log_path=log_path)
    try:
        webhook.wait_for("serve.local")
        apps.create_namespaced_deployment(app, rollout("validators", 25))

        def pods() -> list[Any]:
            return list(core.list_namespaced_pod(app, label_selector="app=validators").items)

        # Half the rollout with the webhook up, then SIGKILL it and roll out the other half:
        # deterministic, where killing it "at some point" races the ReplicaSet's batches.
        wait_until(lambda: len(pods()) == 25, timeout=60, message="the first 25 pods")
        webhook.kill()
        apps.patch_namespaced_deployment_scale("validators", app, {"spec": {"replicas": 50}})
        wait_until(lambda: len(pods()) == 50, timeout=90, message="all 50 pods to be admitted")
        labels = [p.metadata.labels or {} for p in pods()]
        injected = sum(1 for lab in labels if lab.get(names.INJECTED_LABEL) == "true")
        yield Rollout(injected=injected, uninjected=50 - injected, settings=settings, namespace=app)
    finally:
        webhook.stop()
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)
        with contextlib.suppress(ApiException):
            apps.delete_namespaced_deployment("validators", app)
        for name in (app, system):
            core.delete_namespace(name, propagation_policy="Background")


def test_faults_webhook_killed_mid_rollout_admits_every_pod(killed_rollout: Rollout) -> None:
    # failurePolicy Ignore: a dead webhook never blocks validators, some come up uninjected.
    assert killed_rollout.injected == 25
    assert killed_rollout.uninjected == 25


def test_faults_uninjected_validators_are_reported(
    killed_rollout: Rollout, caplog: pytest.LogCaptureFixture
) -> None:
    """The watcher's audit finds every validator admitted while the webhook was dead."""
    caplog.set_level(logging.WARNING, logger="webhook.controllers.audit")
    with running_service(
        killed_rollout.settings, must_stop=False, audit_interval_seconds=1.0
    ) as running:
        gauge = running.watcher.metrics.uninjected_validators
        wait_until(
            lambda: gauge._value.get() == killed_rollout.uninjected,
            timeout=10,
            message="the watcher to report the uninjected validators",
        )
    reported = [r for r in caplog.records if r.getMessage() == "audit.uninjected-validator"]
    pods = {getattr(r, "pod", None) for r in reported}
    assert len(pods) == killed_rollout.uninjected
    assert {getattr(r, "namespace", None) for r in reported} == {killed_rollout.namespace}


def test_faults_first_audit_sees_the_listing(killed_rollout: Rollout) -> None:
    """With a long debounce the first audit must still wait for the listing to be folded
    (it once ran on an empty state and then slept a whole interval)."""
    slow_fold = dataclasses.replace(killed_rollout.settings, debounce_seconds=3.0)
    with running_service(slow_fold, must_stop=False) as running:
        gauge = running.watcher.metrics.uninjected_validators
        wait_until(
            lambda: gauge._value.get() == killed_rollout.uninjected,
            timeout=6,
            message="the first audit to count the uninjected validators",
        )


# --- certificate rotation under admission load -------------------------------


class Webhook:
    """`server.serve` in a thread, registered with failurePolicy Fail so a failure shows."""

    def __init__(self, settings: Settings, admreg: client.AdmissionregistrationV1Api) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.listeners = server.bind(settings=settings)
        self.background = Background(
            lambda stop: server.serve(
                settings=settings,
                metrics=self.metrics,
                readiness=None,
                stop=stop,
                listeners=self.listeners,
            ),
            what="the webhook server",
        )
        self.admreg = admreg

    def register(self, ca_bundle: bytes) -> None:
        body = service.webhook_configuration(
            settings=self.settings,
            ca_bundle=ca_bundle,
            client_config={"url": f"https://127.0.0.1:{self.listeners.port}/mutate"},
        )
        body["webhooks"][0]["failurePolicy"] = "Fail"
        body["webhooks"][0]["timeoutSeconds"] = 10
        service.register(self.admreg, body)

    def close(self) -> None:
        with contextlib.suppress(ApiException):
            self.admreg.delete_mutating_webhook_configuration(self.settings.webhook_config_name)
        self.background.close()


@pytest.mark.parametrize("new_ca", [False, True], ids=["same-ca", "new-ca"])
def test_faults_certificate_rotation_under_admission_load_fails_nothing(
    cluster: Cluster,
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
    new_ca: bool,
) -> None:
    """Serving pairs replaced under load; with `new_ca` each comes from a new CA, put in
    the caBundle beside the previous one first (as `certs install` does)."""
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    files.write_bundle(
        tmp_path, files.Bundle(ca_cert=ca.cert_pem, serving=serving, ca_key=ca.key_pem)
    )
    settings = scoped_settings(
        cluster.kubeconfig,
        namespace,
        cert_file=str(tmp_path / files.TLS_CERT),
        key_file=str(tmp_path / files.TLS_KEY),
    )
    app = make_namespace(core, "f-rot")
    webhook = Webhook(settings, admreg)
    try:
        label_enabled(core, app, settings)
        webhook.register(ca.cert_pem)
        wait_until(
            lambda: check.check_webhook(cluster.api_client, settings).ok,
            timeout=20,
            message="the API server to call the webhook",
        )
        failures: list[str] = []
        answered = [0]
        done = threading.Event()

        def load() -> None:
            body = validator_pod("load")
            body["metadata"]["generateName"] = "load-"
            del body["metadata"]["name"]
            deadline = time.monotonic() + 40
            while not done.is_set() and time.monotonic() < deadline and answered[0] < 2000:
                try:
                    pod = orjson.loads(
                        core.create_namespaced_pod(
                            app, body, dry_run="All", _preload_content=False
                        ).data
                    )
                except ApiException as exc:
                    failures.append(f"{exc.status}: {exc.body!r:.200}")
                    continue
                if check.injected(pod) is not None:
                    failures.append(f"uninjected: {check.injected(pod)}")
                answered[0] += 1

        workers = [threading.Thread(target=load) for _ in range(3)]
        for worker in workers:
            worker.start()
        served = []
        try:
            for round_number in range(1, 5):
                before = answered[0]
                wait_until(lambda b=before: answered[0] >= b + 20, timeout=20, message="load")
                if new_ca:
                    ca = authority.make_ca()
                    install.patch_ca_bundle(
                        admreg,
                        configuration_name=settings.webhook_config_name,
                        new_ca=ca.cert_pem,
                    )
                    # The old pair is still served while the API server takes up the bundle.
                    before = answered[0]
                    wait_until(lambda b=before: answered[0] >= b + 20, timeout=20, message="load")
                renewed = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
                files.write_bundle(
                    tmp_path, files.Bundle(ca_cert=ca.cert_pem, serving=renewed, ca_key=ca.key_pem)
                )
                wait_until(
                    lambda n=round_number: webhook.metrics.cert_reloads_total._value.get() >= n,
                    timeout=10,
                    message=f"reload {round_number}",
                )
                served.append(renewed.cert_pem)
            before = answered[0]
            wait_until(lambda: answered[0] >= before + 20, timeout=20, message="load after")
        finally:
            done.set()
            for worker in workers:
                worker.join(timeout=30)
        assert failures == []
        assert answered[0] >= 100
        assert webhook.metrics.cert_reloads_total._value.get() == 4
        if new_ca:
            stored = admreg.read_mutating_webhook_configuration(settings.webhook_config_name)
            bundle = base64.b64decode(stored.webhooks[0].client_config.ca_bundle)
            trusted = authority.split_pem_bundle(bundle)
            assert len(trusted) == 2, "the caBundle keeps the new CA and the previous one"
            assert trusted[0].strip() == ca.cert_pem.strip()
        now_served = serving_certificate.served(
            f"https://127.0.0.1:{webhook.listeners.port}/mutate", ca.cert_pem, timeout=10.0
        )
        assert x509.load_pem_x509_certificate(now_served) == x509.load_pem_x509_certificate(
            served[-1]
        )
    finally:
        webhook.close()
        core.delete_namespace(app, propagation_policy="Background")


def test_faults_webhook_down_with_fail_policy_refuses_then_resumes_injected(
    cluster: Cluster,
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    """With failurePolicy Fail nothing is admitted uninjected: creates are refused while
    the webhook is down and resume, injected, as soon as it is back on the same address."""
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    files.write_bundle(tmp_path, files.Bundle(ca_cert=ca.cert_pem, serving=serving))
    settings = scoped_settings(
        cluster.kubeconfig,
        namespace,
        cert_file=str(tmp_path / files.TLS_CERT),
        key_file=str(tmp_path / files.TLS_KEY),
    )
    app = make_namespace(core, "f-fail")
    label_enabled(core, app, settings)
    first = Webhook(settings, admreg)
    second: Webhook | None = None
    try:
        first.register(ca.cert_pem)
        wait_until(
            lambda: check.check_webhook(cluster.api_client, settings).ok,
            timeout=20,
            message="the API server to call the webhook",
        )
        core.create_namespaced_pod(app, validator_pod("before"))
        port = first.listeners.port
        # The webhook process dies; its configuration stays, as in a cluster.
        first.background.close()
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(app, validator_pod("while-down"))
        assert refused.value.status >= 500
        assert "failed calling webhook" in str(refused.value.body)

        # Back on the same port: creates succeed again, every one injected.
        second = Webhook(dataclasses.replace(settings, port=port), admreg)
        created = wait_until(
            lambda: core.create_namespaced_pod(app, validator_pod("after"), _preload_content=False),
            timeout=20,
            message="pod creation to resume once the webhook is back",
        )
        assert check.injected(orjson.loads(created.data)) is None
        pods = orjson.loads(core.list_namespaced_pod(app, _preload_content=False).data)["items"]
        assert sorted(p["metadata"]["name"] for p in pods) == ["after", "before"]
        assert [check.injected(p) for p in pods] == [None, None]
    finally:
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(settings.webhook_config_name)
        first.background.close()  # nothing to do when it was stopped above
        if second is not None:
            second.close()
        core.delete_namespace(app, propagation_policy="Background")
