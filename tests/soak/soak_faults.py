"""The fault tests of tests/e2e/test_faults.py, repeated and under more load (scripts/soak.sh)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files
from tests.e2e.conftest import Cluster, make_namespace
from tests.e2e.private_cluster import PrivateCluster, ServeProcess
from tests.e2e.private_cluster import private_cluster as bring_up
from tests.e2e.test_faults import (
    Webhook,
    add_validator,
    peers_txt,
    retried,
    scoped_settings,
    text_of,
    utc,
)
from tests.kube import label_enabled, validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook.cli import check

RESTARTS = 3
KILLS = 3
ROTATIONS = 10


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    with bring_up(tmp_path_factory.mktemp("soak-cluster")) as cluster:
        yield cluster


def test_soak_watcher_converges_after_every_apiserver_restart(private: PrivateCluster) -> None:
    core = client.CoreV1Api(private.api_client)
    kubelet = FakeKubelet(private.api_client)
    system = make_namespace(core, "s-sys")
    app = make_namespace(core, "s-app")
    settings = scoped_settings(private.kubeconfig, system)
    label_enabled(core, app, settings)
    names_ = [f"v{i}" for i in range(2 * RESTARTS + 1)]
    for name in names_:
        add_validator(core, app, name)
    kubelet.mark_ready(namespace=app, name="v0", ip="127.0.1.0")
    ready = {"127.0.1.0:11625"}
    times = []
    with running_service(settings, must_stop=False):
        wait_until(lambda: peers_txt(core, app) == text_of(sorted(ready)), timeout=15)
        for cycle in range(RESTARTS):
            before, after = 2 * cycle + 1, 2 * cycle + 2
            kubelet.mark_ready(namespace=app, name=f"v{before}", ip=f"127.0.1.{before}")
            ready.add(f"127.0.1.{before}:11625")
            private.stop_apiserver()
            private.start_apiserver()
            back = time.monotonic()
            retried(
                lambda n=after: kubelet.mark_ready(namespace=app, name=f"v{n}", ip=f"127.0.1.{n}")
            )
            ready.add(f"127.0.1.{after}:11625")
            expected = text_of(sorted(ready))
            wait_until(
                lambda e=expected: peers_txt(core, app) == e and peers_txt(core, system) == e,
                timeout=60,
                interval=0.1,
                message=f"convergence after restart {cycle + 1}",
            )
            times.append(time.monotonic() - back)
    print(f"soak: convergence after each API server restart: {[round(t, 2) for t in times]} s")
    assert max(times) <= 5.0, times


def timeline(replicas: list[ServeProcess], event: str) -> list[tuple[dt.datetime, str]]:
    """Every `event` logged by any replica as (time, identity), oldest first."""
    return sorted((utc(e["ts"]), r.settings.identity) for r in replicas for e in r.named(event))


def test_soak_leader_killed_again_and_again(
    cluster: Cluster, core: client.CoreV1Api, kubelet: FakeKubelet, namespace: str, tmp_path: Path
) -> None:
    app = make_namespace(core, "s-app")
    base = scoped_settings(
        cluster.kubeconfig,
        namespace,
        leader_election=True,
        lease_name=f"lease-{uuid.uuid4().hex[:8]}",
        lease_duration_seconds=4.0,
        lease_renew_seconds=1.0,
    )
    label_enabled(core, app, base)
    for i in range(KILLS + 1):
        add_validator(core, app, f"v{i}")
    replicas = [
        ServeProcess(
            dataclasses.replace(base, identity=f"replica-{i}"),
            log_path=tmp_path / f"r{i}.log",
        )
        for i in range(KILLS + 1)
    ]
    ready: list[str] = []
    takeovers = []
    try:
        for replica in replicas:
            replica.wait_for("watcher.ready")
        for round_number in range(KILLS + 1):
            kubelet.mark_ready(namespace=app, name=f"v{round_number}", ip=f"127.0.2.{round_number}")
            ready.append(f"127.0.2.{round_number}:11625")
            wait_until(
                lambda: peers_txt(core, app) == text_of(ready), timeout=15, message="a write"
            )
            if round_number == KILLS:
                break
            holder = (
                client.CoordinationV1Api(cluster.api_client)
                .read_namespaced_lease(base.lease_name, namespace)
                .spec.holder_identity
            )
            leader = next(r for r in replicas if r.settings.identity == holder)
            leader.kill()
            killed = dt.datetime.now(dt.UTC)

            def successor(k: dt.datetime = killed) -> ServeProcess | None:
                for replica in replicas:
                    if replica.alive():
                        for event in replica.named("leader.acquired"):
                            if utc(event["ts"]) >= k:
                                return replica
                return None

            wait_until(successor, timeout=15, message="a successor")
            taken = min(
                utc(e["ts"])
                for r in replicas
                if r.alive()
                for e in r.named("leader.acquired")
                if utc(e["ts"]) >= killed
            )
            takeovers.append((taken - killed).total_seconds())
        # Terms never overlap: the last Lease acquisition before every write is its writer's.
        acquisitions = sorted(
            (utc(e["ts"]), r.settings.identity)
            for r in replicas
            for e in r.named("leader.acquired")
        )
        writes = sorted(
            (utc(e["ts"]), r.settings.identity)
            for r in replicas
            for e in r.named("configmap.written")
        )
        assert len(writes) >= KILLS + 1
        for moment, writer in writes:
            latest = [who for when, who in acquisitions if when <= moment]
            assert latest, f"{writer} wrote at {moment} before anyone led"
            assert latest[-1] == writer, f"{writer} wrote at {moment} while {latest[-1]} led"
    finally:
        for replica in replicas:
            replica.stop()
        core.delete_namespace(app, propagation_policy="Background")
    print(f"soak: takeover after each SIGKILL: {[round(t, 2) for t in takeovers]} s")
    assert max(takeovers) <= base.lease_duration_seconds + base.lease_renew_seconds + 1.0


def test_soak_rotation_under_admission_load(
    cluster: Cluster,
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    files.write_bundle(tmp_path, files.Bundle(ca_cert=ca.cert_pem, serving=serving))
    settings = scoped_settings(
        cluster.kubeconfig,
        namespace,
        cert_file=str(tmp_path / files.TLS_CERT),
        key_file=str(tmp_path / files.TLS_KEY),
    )
    app = make_namespace(core, "s-rot")
    webhook = Webhook(settings, admreg)
    failures: list[str] = []
    answered = [0]
    done = threading.Event()
    workers: list[threading.Thread] = []
    try:
        label_enabled(core, app, settings)
        webhook.register(ca.cert_pem)
        wait_until(lambda: check.check_webhook(cluster.api_client, settings).ok, timeout=20)

        def load() -> None:
            body = validator_pod("load")
            body["metadata"]["generateName"] = "load-"
            del body["metadata"]["name"]
            deadline = time.monotonic() + 180
            while not done.is_set() and time.monotonic() < deadline and answered[0] < 20000:
                try:
                    raw = core.create_namespaced_pod(
                        app, body, dry_run="All", _preload_content=False
                    )
                except ApiException as exc:
                    failures.append(f"{exc.status}")
                    continue
                missing = check.injected(orjson.loads(raw.data))
                if missing is not None:
                    failures.append(missing)
                answered[0] += 1

        workers.extend(threading.Thread(target=load) for _ in range(4))
        for worker in workers:
            worker.start()
        for round_number in range(1, ROTATIONS + 1):
            before = answered[0]
            wait_until(lambda b=before: answered[0] >= b + 50, timeout=30, message="load")
            renewed = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
            files.write_bundle(tmp_path, files.Bundle(ca_cert=ca.cert_pem, serving=renewed))
            wait_until(
                lambda n=round_number: webhook.metrics.cert_reloads_total._value.get() >= n,
                timeout=10,
            )
    finally:
        done.set()
        for worker in workers:
            worker.join(timeout=30)
        webhook.close()
        core.delete_namespace(app, propagation_policy="Background")
    print(f"soak: {answered[0]} admissions across {ROTATIONS} rotations, {len(failures)} failed")
    assert failures == []
    assert webhook.metrics.cert_reloads_total._value.get() == ROTATIONS
