"""The peer watcher against the real API server: pods and StellarNodes in, ConfigMaps out."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import urllib3
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import make_namespace
from tests.kube import label_enabled, unlabel_enabled, validator_pod
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook import names
from webhook.cli.wiring import Service
from webhook.controllers.sources import CRD_NAME
from webhook.controllers.watcher import PeerWatcher, Snapshot
from webhook.core.peerset.peers import PeerSet, static_peer
from webhook.core.publishing.publish import render
from webhook.core.publishing.publish_size import layout
from webhook.kube.leader import micro_time, now_utc
from webhook.settings import Settings

CRD_FILE = "manifests/crds/stellarnode.yaml"


@contextlib.contextmanager
def running(settings: Settings, **options: Any) -> Iterator[PeerWatcher]:
    """The injector as `serve` wires it, running; yields its watcher once ready."""
    with running_service(settings, ready_within=15, **options) as service:
        assert service.watcher is not None
        yield service.watcher


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This test's settings with a selector of its own only.

    Without the shared `stellar.org/peer-injection=enabled` term, no other
    injector running against the same API server (a demo, another suite)
    selects these namespaces and writes its own mirrors or injects our pods.
    """
    private = [t for t in settings.namespace_selector.split(",") if not t.startswith(names.GROUP)]
    return dataclasses.replace(settings, namespace_selector=",".join(private))


@pytest.fixture
def app_namespace(core: client.CoreV1Api, settings: Settings) -> Iterator[str]:
    """A namespace that matches this test's selector: validators live here."""
    name = make_namespace(core, "app")
    label_enabled(core, name, settings)
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def add_validator(
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    namespace: str,
    name: str,
    ip: str | None,
    *,
    injected: bool = True,
    **kwargs: Any,
) -> None:
    body = validator_pod(name, **kwargs)
    if injected:
        body["metadata"]["labels"][names.INJECTED_LABEL] = "true"
    core.create_namespaced_pod(namespace, body)
    if ip is not None:
        kubelet.mark_ready(namespace=namespace, name=name, ip=ip)


def peers_txt(core: client.CoreV1Api, namespace: str) -> str | None:
    try:
        data = core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace).data or {}
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(data.get(names.KEY_TXT, ""))


def wait_for_peers(
    core: client.CoreV1Api, namespace: str, expected: list[str], timeout: float = 10
) -> None:
    text = "".join(f"{s}\n" for s in sorted(expected))
    wait_until(
        lambda: peers_txt(core, namespace) == text,
        timeout=timeout,
        message=f"{namespace}/stellar-peers to hold {expected}",
    )


def test_ready_validators_fill_canonical_and_mirror(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "v-b", "127.0.0.12")
    add_validator(
        core,
        kubelet,
        app_namespace,
        "v-a",
        "127.0.0.11",
        annotations={names.PEER_PORT_ANNOTATION: "11700"},
    )
    add_validator(core, kubelet, app_namespace, "pending", None)
    add_validator(core, kubelet, app_namespace, "plain", "127.0.0.13", injected=False)
    with running(settings):
        expected = ["127.0.0.11:11625", "127.0.0.12:11625"]  # the port named peer wins
        wait_for_peers(core, settings.namespace, expected)
        wait_for_peers(core, app_namespace, expected)
        canonical = core.read_namespaced_config_map(names.CONFIGMAP_NAME, settings.namespace)
        assert canonical.metadata.labels == names.OWNER_LABELS
        assert canonical.metadata.annotations[names.PEERS_HASH_ANNOTATION] == hash_of(expected)
        entries = orjson.loads(canonical.data[names.KEY_JSON])
        assert [(e["namespace"], e["name"], e["source"]) for e in entries] == [
            (app_namespace, "v-a", "pod"),
            (app_namespace, "v-b", "pod"),
        ]
        assert canonical.data[names.KEY_COUNT] == "2"
        assert canonical.data[names.KEY_CSV] == ",".join(expected)
        mirror = core.read_namespaced_config_map(names.CONFIGMAP_NAME, app_namespace)
        assert mirror.data == canonical.data

        # Its container crash-loops: no peer. Not Ready alone would keep it (Bootstrap).
        kubelet.mark_crashed(namespace=app_namespace, name="v-a")
        wait_for_peers(core, settings.namespace, ["127.0.0.12:11625"])
        kubelet.mark_ready(namespace=app_namespace, name="v-a", ip="127.0.0.11")
        kubelet.mark_ready(namespace=app_namespace, name="pending", ip="127.0.0.22")
        wait_for_peers(
            core, settings.namespace, ["127.0.0.11:11625", "127.0.0.12:11625", "127.0.0.22:11625"]
        )
        # A restarted validator is a new pod with a new IP.
        core.delete_namespaced_pod("v-b", app_namespace, grace_period_seconds=0)
        add_validator(core, kubelet, app_namespace, "v-b2", "127.0.0.32")
        wait_for_peers(
            core, app_namespace, ["127.0.0.11:11625", "127.0.0.22:11625", "127.0.0.32:11625"]
        )


def hash_of(strings: list[str]) -> str:
    text = "".join(f"{s}\n" for s in sorted(strings))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_namespace_label_creates_and_removes_mirror(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "v", "127.0.0.41")
    other = make_namespace(core, "late")
    try:
        with running(settings):
            wait_for_peers(core, app_namespace, ["127.0.0.41:11625"])
            assert peers_txt(core, other) is None
            label_enabled(core, other, settings)
            wait_for_peers(core, other, ["127.0.0.41:11625"])
            unlabel_enabled(core, other, settings)
            wait_until(
                lambda: peers_txt(core, other) is None,
                timeout=10,
                message="the mirror to be deleted once the namespace lost the label",
            )
            # Pods of a namespace that lost the label stop counting.
            unlabel_enabled(core, app_namespace, settings)
            wait_for_peers(core, settings.namespace, [])
    finally:
        core.delete_namespace(other, propagation_policy="Background")


def test_labeled_kube_system_and_own_namespace_are_never_enabled(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    """The webhook's namespaceSelector never serves kube-system or our own namespace, so
    the watcher neither mirrors into them nor counts their pods, whatever their labels."""
    drop_configmap(core, "kube-system")  # an earlier run's, whatever its version
    add_validator(core, kubelet, app_namespace, "v", "127.0.0.45")
    own = settings.namespace
    add_validator(core, kubelet, "kube-system", "stray-45", "127.0.0.46")
    label_enabled(core, "kube-system", settings)
    label_enabled(core, own, settings)
    try:
        with running(settings):
            wait_for_peers(core, app_namespace, ["127.0.0.45:11625"])
            wait_for_peers(core, own, ["127.0.0.45:11625"])
            assert peers_txt(core, "kube-system") is None
    finally:
        unlabel_enabled(core, "kube-system", settings)
        unlabel_enabled(core, own, settings)
        core.delete_namespaced_pod("stray-45", "kube-system", grace_period_seconds=0)
        drop_configmap(core, "kube-system")


def drop_configmap(core: client.CoreV1Api, namespace: str) -> None:
    with contextlib.suppress(ApiException):
        core.delete_namespaced_config_map(names.CONFIGMAP_NAME, namespace)


def test_deleted_or_tampered_configmap_is_restored(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "v", "127.0.0.51")
    with running(settings) as watcher:
        wait_for_peers(core, app_namespace, ["127.0.0.51:11625"])
        core.delete_namespaced_config_map(names.CONFIGMAP_NAME, app_namespace)
        wait_for_peers(core, app_namespace, ["127.0.0.51:11625"])
        core.patch_namespaced_config_map(
            names.CONFIGMAP_NAME, settings.namespace, {"data": {names.KEY_TXT: "6.6.6.6:11625\n"}}
        )
        wait_for_peers(core, settings.namespace, ["127.0.0.51:11625"])
        core.patch_namespaced_config_map(
            names.CONFIGMAP_NAME,
            settings.namespace,
            {"metadata": {"annotations": {names.PEERS_HASH_ANNOTATION: "sha256:forged"}}},
        )
        wait_until(
            lambda: (
                core.read_namespaced_config_map(
                    names.CONFIGMAP_NAME, settings.namespace
                ).metadata.annotations[names.PEERS_HASH_ANNOTATION]
                == hash_of(["127.0.0.51:11625"])
            ),
            timeout=10,
            message="the forged hash annotation to be put back",
        )
        assert (
            watcher.metrics.configmap_writes_total.labels(
                kind="mirror", result="created"
            )._value.get()
            >= 2
        )


def test_configmap_we_do_not_own_is_left_alone(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    foreign = core.create_namespaced_config_map(
        app_namespace,
        {
            "metadata": {"name": names.CONFIGMAP_NAME, "labels": {"team": "theirs"}},
            "data": {names.KEY_TXT: "9.9.9.9:11625\n"},
        },
    )
    add_validator(core, kubelet, app_namespace, "v", "127.0.0.61")
    with running(settings) as watcher:
        wait_for_peers(core, settings.namespace, ["127.0.0.61:11625"])
        wait_until(
            lambda: watcher.metrics.configmap_conflicts_total._value.get() == 1,
            timeout=10,
            message="the conflict to be counted",
        )
        events = wait_until(
            lambda: (
                core.list_namespaced_event(
                    app_namespace, field_selector="involvedObject.kind=ConfigMap,reason=NotOwned"
                ).items
            ),
            timeout=10,
            message="a Warning Event on the foreign ConfigMap",
        )
        assert len(events) == 1
        assert events[0].type == "Warning"
        # More changes, more reconciles: still untouched, still one Event.
        add_validator(core, kubelet, app_namespace, "v2", "127.0.0.62")
        wait_for_peers(core, settings.namespace, ["127.0.0.61:11625", "127.0.0.62:11625"])
        current = core.read_namespaced_config_map(names.CONFIGMAP_NAME, app_namespace)
        assert current.metadata.resource_version == foreign.metadata.resource_version
        assert current.data == {names.KEY_TXT: "9.9.9.9:11625\n"}
        assert watcher.metrics.configmap_conflicts_total._value.get() == 1


def test_burst_of_pod_changes_is_coalesced_into_few_writes(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    for i in range(50):
        add_validator(core, kubelet, app_namespace, f"v{i}", None)
    settings = dataclasses.replace(settings, debounce_seconds=0.5)
    with running(settings):
        wait_for_peers(core, settings.namespace, [])
        start = core.read_namespaced_config_map(names.CONFIGMAP_NAME, settings.namespace)
        versions: list[str] = []
        stream = watch.Watch()

        def count_writes() -> None:
            # stream.stop() shuts the socket down: the read then ends with ProtocolError.
            with contextlib.suppress(urllib3.exceptions.ProtocolError):
                for event in stream.stream(
                    core.list_namespaced_config_map,
                    settings.namespace,
                    field_selector=f"metadata.name={names.CONFIGMAP_NAME}",
                    resource_version=start.metadata.resource_version,
                    timeout_seconds=30,
                ):
                    if event["type"] == "MODIFIED":
                        versions.append(event["object"].metadata.resource_version)

        counter = threading.Thread(target=count_writes, daemon=True)
        counter.start()
        expected = [f"127.0.1.{i}:11625" for i in range(50)]
        for i in range(50):
            kubelet.mark_ready(namespace=app_namespace, name=f"v{i}", ip=f"127.0.1.{i}")
        wait_for_peers(core, settings.namespace, expected, timeout=15)
        stream.stop()
        counter.join(timeout=5)
    print(f"{len(versions)} writes for 50 pods becoming Ready")
    assert 1 <= len(versions) <= 10, f"{len(versions)} writes for 50 changes"


def ensure_crd(apiext: client.ApiextensionsV1Api) -> None:
    """Install the StellarNode CRD unless present (it is cluster-wide: left in place after)."""
    try:
        apiext.read_custom_resource_definition(CRD_NAME)
    except ApiException as exc:
        if exc.status != 404:
            raise
        with open(CRD_FILE) as f:
            body = yaml.safe_load(f)
        with contextlib.suppress(ApiException):  # another test may have won the race
            apiext.create_custom_resource_definition(body)

    def established() -> bool:
        crd = apiext.read_custom_resource_definition(CRD_NAME)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_until(established, timeout=15, message="the StellarNode CRD to be established")


def crd_exists(apiext: client.ApiextensionsV1Api) -> bool:
    try:
        apiext.read_custom_resource_definition(CRD_NAME)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def stellar_node(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{names.STELLARNODE_GROUP}/{names.STELLARNODE_VERSION}",
        "kind": "StellarNode",
        "metadata": {"name": name},
        "spec": {"nodeType": "Validator", **spec},
    }


def test_stellarnode_validators_are_peers_once_the_crd_exists(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    apiext: client.ApiextensionsV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
) -> None:
    add_validator(core, kubelet, app_namespace, "v", "127.0.0.70")
    with running(settings):
        # Without the CRD the watcher is ready all the same; it starts watching when it appears.
        wait_for_peers(core, settings.namespace, ["127.0.0.70:11625"])
        ensure_crd(apiext)
        group, version = names.STELLARNODE_GROUP, names.STELLARNODE_VERSION
        plural = names.STELLARNODE_PLURAL
        for body in (
            stellar_node("sn-pod", validatorConfig={"peerPort": 11700}),
            stellar_node("sn-svc"),
            stellar_node("sn-suspended", suspended=True),
            stellar_node("sn-watcher", nodeType="Watcher"),
        ):
            custom.create_namespaced_custom_object(group, version, app_namespace, plural, body)
        core.create_namespaced_pod(
            app_namespace,
            {
                "metadata": {
                    "name": "sn-pod-0",
                    "labels": {
                        "app.kubernetes.io/name": "stellar-node",
                        "app.kubernetes.io/instance": "sn-pod",
                    },
                },
                "spec": {"containers": [{"name": "core", "image": "stellar/stellar-core:22"}]},
            },
        )
        kubelet.mark_ready(namespace=app_namespace, name="sn-pod-0", ip="127.0.0.71")
        service = core.create_namespaced_service(
            app_namespace,
            {
                "metadata": {"name": "sn-svc"},
                "spec": {"ports": [{"name": "peer", "port": 11625}]},
            },
        )
        cluster_ip = service.spec.cluster_ip
        expected = ["127.0.0.70:11625", "127.0.0.71:11700", f"{cluster_ip}:11625"]
        wait_for_peers(core, settings.namespace, expected)
        entries = orjson.loads(
            core.read_namespaced_config_map(names.CONFIGMAP_NAME, settings.namespace).data[
                names.KEY_JSON
            ]
        )
        assert [(e["name"], e["source"]) for e in entries] == [
            ("sn-pod", "stellarnode"),
            ("sn-svc", "stellarnode"),
            ("v", "pod"),
        ]
        custom.patch_namespaced_custom_object(
            group, version, app_namespace, plural, "sn-svc", {"spec": {"suspended": True}}
        )
        wait_for_peers(core, settings.namespace, ["127.0.0.70:11625", "127.0.0.71:11700"])


def test_restarted_watcher_converges(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "old", "127.0.0.81")
    with running(settings):
        wait_for_peers(core, app_namespace, ["127.0.0.81:11625"])
    # Changes while no watcher runs are picked up by the next one's LIST.
    core.delete_namespaced_pod("old", app_namespace, grace_period_seconds=0)
    add_validator(core, kubelet, app_namespace, "new", "127.0.0.82")
    with running(settings):
        wait_for_peers(core, settings.namespace, ["127.0.0.82:11625"])
        wait_for_peers(core, app_namespace, ["127.0.0.82:11625"])


def test_on_change_gets_snapshots_with_trimmed_validators(
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    app_namespace: str,
) -> None:
    """A follower (the Lease held by another replica) still watches and hands snapshots
    to its listeners, and writes nothing."""
    seen: list[Snapshot] = []

    def listen(service: Service) -> None:
        assert service.watcher is not None
        forward = service.watcher.on_change
        assert forward is not None

        async def both(snapshot: Snapshot) -> None:
            seen.append(snapshot)
            await forward(snapshot)

        service.watcher.on_change = both

    settings = dataclasses.replace(settings, identity="follower", leader_election=True)
    held = {"holderIdentity": "other", "leaseDurationSeconds": 3600}
    held["renewTime"] = held["acquireTime"] = micro_time(now_utc())
    lease = {"metadata": {"name": settings.lease_name}, "spec": held}
    coordination.create_namespaced_lease(settings.namespace, lease)
    with running(settings, observe=listen) as watcher:
        wait_until(lambda: seen, timeout=10, message="the first snapshot at start")
        assert seen[0].peers.peers == ()
        add_validator(core, kubelet, app_namespace, "v", "127.0.0.91")
        wait_until(
            lambda: seen[-1].peers.strings == ("127.0.0.91:11625",),
            timeout=10,
            message="a snapshot with the new validator",
        )
        validator = seen[-1].validators[0]
        assert validator["metadata"]["name"] == "v"
        assert validator["status"]["podIP"] == "127.0.0.91"
        assert validator["spec"]["containers"][0]["name"] == "stellar-core"
        assert "managedFields" not in validator["metadata"]
        assert watcher.snapshot.hash == seen[-1].hash
        # Not the leader: nothing written.
        assert peers_txt(core, settings.namespace) is None


def test_watches_that_time_out_resume_without_losing_changes(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    settings = dataclasses.replace(settings, watch_timeout_seconds=1)
    with running(settings) as watcher:

        def expired() -> float:
            return sum(
                s.value
                for m in watcher.metrics.watch_restarts_total.collect()
                for s in m.samples
                if s.name.endswith("_total")
                and s.labels["resource"] == "pods"
                and s.labels["reason"] == "expired"
            )

        wait_until(lambda: expired() >= 2, timeout=10, message="the pod watch to be renewed")
        add_validator(core, kubelet, app_namespace, "v", "127.0.0.95")
        wait_for_peers(core, settings.namespace, ["127.0.0.95:11625"])
        assert expired() >= 2


def test_audit_counts_validators_admitted_without_injection(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    add_validator(core, kubelet, app_namespace, "missed", None, injected=False)
    add_validator(
        core,
        kubelet,
        app_namespace,
        "opted-out",
        None,
        injected=False,
        annotations={names.INJECT_ANNOTATION: "false"},
    )
    add_validator(core, kubelet, app_namespace, "tool", None, injected=False, image="busybox:1.36")
    add_validator(core, kubelet, app_namespace, "fine", "127.0.0.96")
    with running(settings, audit_interval_seconds=0.2) as watcher:
        gauge = watcher.metrics.uninjected_validators
        wait_until(
            lambda: gauge._value.get() == 1,
            timeout=10,
            message="one uninjected validator to be counted",
        )
        core.delete_namespaced_pod("missed", app_namespace, grace_period_seconds=0)
        wait_until(
            lambda: gauge._value.get() == 0,
            timeout=10,
            message="the count to drop once the pod is gone",
        )


def uninjected_deployment(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> Callable[[], set[str]]:
    """A Deployment whose validator pod was admitted uninjected; its live pods' names."""
    pod = validator_pod("unused", labels={"app": "missed"})
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "missed"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "missed"}},
                "template": {"metadata": {"labels": {"app": "missed"}}, "spec": pod["spec"]},
            },
        },
    )

    def pod_names() -> set[str]:
        return {
            p.metadata.name
            for p in core.list_namespaced_pod(namespace, label_selector="app=missed").items
            if not p.metadata.deletion_timestamp
        }

    return pod_names


def test_audit_evicts_uninjected_validators_a_controller_recreates(
    apps: client.AppsV1Api, core: client.CoreV1Api, settings: Settings, app_namespace: str
) -> None:
    pod_names = uninjected_deployment(apps, core, app_namespace)
    first = wait_until(pod_names, timeout=15, message="the Deployment's pod")
    settings = dataclasses.replace(settings, evict_uninjected=True)
    with running(settings, audit_interval_seconds=0.2):
        wait_until(
            lambda: pod_names() and not (pod_names() & first),
            timeout=15,
            message="the uninjected pod to be evicted and replaced",
        )


def test_a_follower_counts_uninjected_validators_and_only_the_leader_evicts(
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    settings: Settings,
    app_namespace: str,
) -> None:
    pod_names = uninjected_deployment(apps, core, app_namespace)
    first = wait_until(pod_names, timeout=15, message="the Deployment's pod")
    settings = dataclasses.replace(
        settings,
        evict_uninjected=True,
        identity="follower",
        leader_election=True,
        lease_duration_seconds=2.0,
        lease_renew_seconds=0.5,
    )
    held = {"holderIdentity": "other", "leaseDurationSeconds": 3600}
    held["renewTime"] = held["acquireTime"] = micro_time(now_utc())
    lease = {"metadata": {"name": settings.lease_name}, "spec": held}
    coordination.create_namespaced_lease(settings.namespace, lease)
    with running(settings, audit_interval_seconds=0.2) as watcher:
        gauge = watcher.metrics.uninjected_validators
        wait_until(lambda: gauge._value.get() == 1, timeout=15, message="the follower's count")
        time.sleep(1)  # five audit rounds: a follower that evicted would have by now
        assert pod_names() == first
        coordination.delete_namespaced_lease(settings.lease_name, settings.namespace)
        wait_until(
            lambda: pod_names() and not (pod_names() & first),
            timeout=15,
            message="the new leader to evict the uninjected pod",
        )


def static_peers_filling(limit: int, *, slack: int) -> tuple[str, ...]:
    """Static peers whose rendering, `peers.json` gzipped, fits in `limit` with less than
    `slack` bytes to spare."""
    label = "x" * 60
    long = [f"p{i:04d}.{label}.{label}.{label}.example:11625" for i in range(2000)]
    short = [f"s{i}.io:1" for i in range(2000)]

    def largest(head: list[str], pool: list[str], room: int) -> list[str]:
        low, high = 0, len(pool)  # the longest prefix of `pool` that still fits in `room`
        while low < high:
            middle = (low + high + 1) // 2
            if rendered_size(head + pool[:middle]) <= room:
                low = middle
            else:
                high = middle - 1
        return head + pool[:low]

    texts = largest([], long, limit - 4000)
    texts = largest(texts, short, limit)
    assert limit - slack < rendered_size(texts) <= limit
    return tuple(texts)


def rendered_size(texts: list[str]) -> int:
    """The canonical ConfigMap's size with `peers.json` gzipped (a limit of 0 asks for it)."""
    peers = PeerSet(peers=tuple(static_peer(t) for t in texts))
    return layout(render(peers), limit=0).compressed_bytes


def test_peer_set_over_the_size_limit_keeps_the_last_good_configmap(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    static = static_peers_filling(names.CONFIGMAP_MAX_BYTES, slack=200)
    settings = dataclasses.replace(settings, static_peers=static)
    with running(settings) as watcher:
        wait_until(
            lambda: (peers_txt(core, settings.namespace) or "").count("\n") == len(static),
            timeout=20,
            message="the canonical ConfigMap with every static peer",
        )
        good = core.read_namespaced_config_map(names.CONFIGMAP_NAME, settings.namespace)
        # One pod more (about 130 bytes, peers.json gzipped) no longer fits.
        add_validator(core, kubelet, app_namespace, "one-too-many", "127.0.0.99")
        wait_until(
            lambda: watcher.metrics.configmap_oversize_total._value.get() == 1,
            timeout=10,
            message="the oversize to be counted",
        )
        events = wait_until(
            lambda: (
                core.list_namespaced_event(
                    settings.namespace, field_selector="reason=PeerSetTooLarge"
                ).items
            ),
            timeout=10,
            message="a PeerSetTooLarge Event on the canonical ConfigMap",
        )
        assert events[0].involved_object.uid == good.metadata.uid
        assert "127.0.0.99:11625" in watcher.snapshot.peers.strings  # known, not published
        kept = core.read_namespaced_config_map(names.CONFIGMAP_NAME, settings.namespace)
        assert kept.metadata.resource_version == good.metadata.resource_version


def test_mirror_of_another_installation_is_left_alone(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    theirs = core.create_namespaced_config_map(
        app_namespace,
        {
            "metadata": {
                "name": names.CONFIGMAP_NAME,
                "labels": dict(names.OWNER_LABELS),
                "annotations": {names.CANONICAL_ANNOTATION: "elsewhere/stellar-peers"},
            },
            "data": {names.KEY_TXT: "10.9.9.9:11625\n"},
        },
    )
    add_validator(core, kubelet, app_namespace, "v", "127.0.0.97")
    with running(settings) as watcher:
        wait_for_peers(core, settings.namespace, ["127.0.0.97:11625"])
        wait_until(
            lambda: watcher.metrics.configmap_conflicts_total._value.get() == 1,
            timeout=10,
            message="the other installation's mirror to be reported",
        )
        current = core.read_namespaced_config_map(names.CONFIGMAP_NAME, app_namespace)
        assert current.metadata.resource_version == theirs.metadata.resource_version


def test_running_validators_are_peers_ready_or_not(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    """DESIGN.md "Bootstrap": a validator that never turns Ready (its probe waits for a
    `Synced!` it reaches only once it meets its peers) is handed out all the same."""
    for name, ip in (("v-1", "127.0.0.111"), ("v-2", "127.0.0.112")):
        add_validator(core, kubelet, app_namespace, name, None)
        kubelet.mark_ready(namespace=app_namespace, name=name, ip=ip, ready=False)
    with running(settings):
        wait_for_peers(core, app_namespace, ["127.0.0.111:11625", "127.0.0.112:11625"])


def test_a_validator_whose_ready_flaps_causes_no_configmap_write(
    core: client.CoreV1Api, kubelet: FakeKubelet, settings: Settings, app_namespace: str
) -> None:
    """Membership follows the container, not the probe: a node that drops out of `Synced!`
    for a while (Ready False, then True) changes nothing, so nothing is written."""
    add_validator(core, kubelet, app_namespace, "v-1", "127.0.0.121")
    add_validator(core, kubelet, app_namespace, "v-2", "127.0.0.122")
    with running(settings):
        wait_for_peers(core, app_namespace, ["127.0.0.121:11625", "127.0.0.122:11625"])
        before = {
            ns: core.read_namespaced_config_map(names.CONFIGMAP_NAME, ns).metadata.resource_version
            for ns in (settings.namespace, app_namespace)
        }
        for _ in range(5):
            kubelet.mark_not_ready(namespace=app_namespace, name="v-1")
            kubelet.mark_ready(namespace=app_namespace, name="v-1", ip="127.0.0.121")
        # A barrier: the pod watch is ordered, so once a third validator is written the
        # flaps before it were folded too.
        add_validator(core, kubelet, app_namespace, "v-3", "127.0.0.123")
        expected = ["127.0.0.121:11625", "127.0.0.122:11625", "127.0.0.123:11625"]
        wait_for_peers(core, app_namespace, expected)
        wait_for_peers(core, settings.namespace, expected)
        for ns, version in before.items():
            modified = configmap_writes_since(core, ns, version)
            assert modified == 1, f"{ns}: {modified} writes for one new peer and 10 flaps"


def configmap_writes_since(core: client.CoreV1Api, namespace: str, version: str) -> int:
    """How many times `stellar-peers` in `namespace` changed after `version`."""
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        field_selector=f"metadata.name={names.CONFIGMAP_NAME}",
        resource_version=version,
        timeout_seconds=2,
    )
    return sum(1 for event in stream if event["type"] == "MODIFIED")
