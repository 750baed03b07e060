"""Two real API servers linked both ways: `east` (the e2e control plane) and `west` (a
second control plane beside it, scripts/cluster.sh with its own state dir and ports).

Validators in each; each cluster's nodes are told the other's advertised addresses
and never its pod IPs; networks stay apart; nothing loops back; a removed validator
leaves the other cluster's set within a measured bound; the link credential can
read the one ConfigMap and nothing else; a cut link keeps its entries, says so, and
drops them after the stale time; bad link Secrets are refused; unlink removes both
ends.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import CLUSTER_SH, Cluster, make_namespace
from tests.e2e.private_cluster import STELLAR_PEERS
from tests.e2e.test_watcher import add_validator, running
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from webhook import names
from webhook.cli import check_beyond, status
from webhook.cli.link import link_secret_name
from webhook.cli.link_status import read_links
from webhook.controllers import link_follower as links_module
from webhook.controllers.watcher import PeerWatcher
from webhook.kube.leader import micro_time, now_utc
from webhook.kube.remote import remote_client
from webhook.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STALE_SECONDS = 8.0
# The second control plane: its own state dir and ports (overridable).
WEST_ENV = {
    "STELLAR_CLUSTER_DIR": os.environ.get("WEST_CLUSTER_DIR", str(ROOT / ".cluster-west")),
    "ETCD_PORT": os.environ.get("WEST_ETCD_PORT", "52379"),
    "ETCD_PEER_PORT": os.environ.get("WEST_ETCD_PEER_PORT", "52380"),
    "APISERVER_PORT": os.environ.get("WEST_APISERVER_PORT", "56443"),
    "KCM_PORT": os.environ.get("WEST_KCM_PORT", "50357"),
}


def west_sh(*args: str) -> str:
    env = {**os.environ, **WEST_ENV}
    done = subprocess.run([str(CLUSTER_SH), *args], env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


@pytest.fixture(scope="module")
def west_cluster() -> Iterator[Cluster]:
    west_sh("up")
    kubeconfig = west_sh("kubeconfig")
    api_client = config.new_client_from_config(config_file=kubeconfig)
    yield Cluster(kubeconfig=kubeconfig, api_client=api_client, bin_dir=west_sh("bin"))
    api_client.close()
    if os.environ.get("STELLAR_KEEP_CLUSTER") != "1":
        west_sh("down")


@dataclasses.dataclass
class Side:
    """One cluster of the pair: its client, settings, app namespace and watcher."""

    name: str
    cluster: Cluster
    settings: Settings
    app: str
    core: client.CoreV1Api
    kubelet: FakeKubelet
    watcher: PeerWatcher | None = None

    def canonical(self) -> dict[str, str]:
        cm = self.core.read_namespaced_config_map(names.CONFIGMAP_NAME, self.settings.namespace)
        return dict(cm.data or {})

    def mirror(self) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(names.CONFIGMAP_NAME, self.app).data or {})

    def entries(self) -> list[dict[str, Any]]:
        with contextlib.suppress(ApiException):
            return list(orjson.loads(self.canonical().get(names.KEY_JSON) or "[]"))
        return []

    def remote(self) -> set[str]:
        return {e["advertised"] for e in self.entries() if e["source"] == "remote"}


def side(name: str, cluster: Cluster) -> Side:
    core = client.CoreV1Api(cluster.api_client)
    system = make_namespace(core, f"sys-{name}")
    app = make_namespace(core, f"app-{name}")
    settings = Settings(
        kubeconfig=cluster.kubeconfig,
        namespace=system,
        namespace_selector=f"stellar-test={uuid.uuid4().hex[:10]}",
        leader_election=False,
        debounce_seconds=0.05,
        port=0,
        metrics_port=0,
        cluster_name=name,
        link_stale_seconds=STALE_SECONDS,
        watch_timeout_seconds=30,
    )
    label_enabled(core, app, settings)
    return Side(name, cluster, settings, app, core, FakeKubelet(cluster.api_client))


def validator(s: Side, name: str, ip: str, network: str, advertised: str = "") -> None:
    annotations = {names.ADVERTISED_ADDRESS_ANNOTATION: advertised} if advertised else {}
    add_validator(
        s.core,
        s.kubelet,
        s.app,
        name,
        ip,
        labels={"app": name, names.NETWORK_LABEL: network},
        annotations=annotations,
    )


def link_command(command: str, of: Side, into: Side, *extra: str) -> str:
    """The real `stellar-peers link|unlink`, run against `of`; its output."""
    done = subprocess.run(
        [
            str(STELLAR_PEERS),
            command,
            "--cluster-name",
            of.name,
            "--kubeconfig",
            of.cluster.kubeconfig,
            "--namespace",
            of.settings.namespace,
            "--into-namespace",
            into.settings.namespace,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def apply_link(into: Side, of: Side) -> None:
    """`stellar-peers link` against `of`, what it prints applied in `into`."""
    secret = yaml.safe_load(link_command("link", of, into))
    into.core.create_namespaced_secret(into.settings.namespace, secret)


# Requests each injector's link clients sent to the other API server, by cluster name.
REMOTE_CALLS: dict[str, int] = {}


def counting_client(kubeconfig: Any) -> client.ApiClient:
    """`remote_client`, counting every request it sends (per linked cluster)."""
    api = remote_client(kubeconfig)
    cluster = str(kubeconfig["current-context"])
    original = api.call_api

    def call_api(*args: Any, **kwargs: Any) -> Any:
        REMOTE_CALLS[cluster] = REMOTE_CALLS.get(cluster, 0) + 1
        return original(*args, **kwargs)

    api.call_api = call_api
    return api


@pytest.fixture(scope="module")
def pair(cluster: Cluster, west_cluster: Cluster) -> Iterator[tuple[Side, Side]]:
    east, west = side("east", cluster), side("west", west_cluster)
    validator(east, "e-0", "127.0.0.61", "testnet", "198.51.100.61:11625")
    validator(east, "e-1", "127.0.0.62", "testnet")  # no advertised address: stays home
    validator(east, "e-2", "127.0.0.63", "pubnet", "198.51.100.63:11625")
    validator(west, "w-0", "127.0.0.71", "testnet", "198.51.100.71:11625")
    validator(west, "w-1", "127.0.0.72", "testnet", "198.51.100.72:11625")
    validator(west, "w-2", "127.0.0.73", "pubnet", "198.51.100.73:11625")
    apply_link(east, west)
    apply_link(west, east)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(links_module, "remote_client", counting_client)
        with running(east.settings) as east.watcher, running(west.settings) as west.watcher:
            yield east, west


def network_txt(data: dict[str, str], network: str) -> set[str]:
    return set((data.get(names.KEY_NETWORK_TXT.format(network)) or "").split())


def test_each_cluster_is_told_the_others_advertised_addresses_per_network(
    pair: tuple[Side, Side],
) -> None:
    east, west = pair
    wait_until(
        lambda: (
            network_txt(east.mirror(), "testnet")
            == {
                "127.0.0.61:11625",
                "127.0.0.62:11625",
                "198.51.100.71:11625",
                "198.51.100.72:11625",
            }
        ),
        timeout=30,
        message="east's testnet set with west's advertised validators",
    )
    assert network_txt(east.mirror(), "pubnet") == {"127.0.0.63:11625", "198.51.100.73:11625"}
    wait_until(
        lambda: (
            network_txt(west.mirror(), "testnet")
            == {"127.0.0.71:11625", "127.0.0.72:11625", "198.51.100.61:11625"}
        ),
        timeout=30,
        message="west's testnet set with east's advertised validator only",
    )
    assert network_txt(west.mirror(), "pubnet") == {"127.0.0.73:11625", "198.51.100.63:11625"}
    # Never the other cluster's pod IPs, in any key a node reads.
    for s, other in ((east, west), (west, east)):
        text = " ".join(v for k, v in s.mirror().items() if k != names.KEY_JSON)
        for entry in other.entries():
            if entry["source"] == "pod":
                assert entry["ip"] not in text, f"{s.name} was handed {other.name}'s pod IP"


def test_no_entry_loops_back(pair: tuple[Side, Side]) -> None:
    east, west = pair
    wait_until(lambda: len(east.remote()) == 3 and len(west.remote()) == 2, timeout=30)
    for s, other in ((east, west), (west, east)):
        clusters = {(e["source"], e["cluster"]) for e in s.entries()}
        assert clusters == {("pod", s.name), ("remote", other.name)}


def test_check_and_status_show_each_link(pair: tuple[Side, Side]) -> None:
    east, _ = pair
    wait_until(lambda: len(east.remote()) == 3, timeout=30)
    assert check_beyond.links(east.cluster.api_client, east.settings) == (
        "links",
        True,
        "1 linked clusters answer",
    )
    text = read_links(east.settings, status.peer_set({"data": east.canonical()}), [])
    (row,) = [
        line.split("\t") for line in text.splitlines() if line.startswith("stellar-peers-link")
    ]
    assert row[:5] == ["stellar-peers-link-west", "west", "yes", "3", "3"]
    assert row[5].startswith("LinkReachable")


def test_the_link_credential_reads_only_the_configmap(pair: tuple[Side, Side]) -> None:
    east, west = pair
    (secret,) = east.core.list_namespaced_secret(
        east.settings.namespace, label_selector=f"{names.LINK_LABEL}=true"
    ).items
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data[names.LINK_KEY_KUBECONFIG]))
    linked = client.CoreV1Api(config.new_client_from_config_dict(kubeconfig))
    ns = west.settings.namespace
    assert linked.read_namespaced_config_map(names.CONFIGMAP_NAME, ns).metadata.name
    assert linked.list_namespaced_config_map(ns, field_selector="metadata.name=stellar-peers").items
    for forbidden in (
        lambda: linked.list_pod_for_all_namespaces(),
        lambda: linked.list_namespaced_pod(west.app),
        lambda: linked.list_namespaced_secret(ns),
        lambda: linked.read_namespaced_secret("stellar-peers-link-token", ns),
        lambda: linked.list_namespaced_config_map(ns),
        lambda: linked.read_namespaced_config_map(names.CONFIGMAP_NAME, west.app),
    ):
        with pytest.raises(ApiException) as caught:
            forbidden()
        assert caught.value.status == 403


def test_only_the_leader_follows_links(pair: tuple[Side, Side]) -> None:
    """A second east replica: no link watch while it does not lead, the entries once it
    wins the Lease, and none again once another replica takes it."""
    east, _ = pair
    settings = dataclasses.replace(
        east.settings,
        identity="second",
        leader_election=True,
        lease_duration_seconds=2.0,
        lease_renew_seconds=0.5,
    )
    leases = client.CoordinationV1Api(east.core.api_client)
    name, namespace = settings.lease_name, settings.namespace

    def hold(holder: str | None, seconds: int) -> None:
        spec = {"holderIdentity": holder, "leaseDurationSeconds": seconds}
        spec["renewTime"] = spec["acquireTime"] = micro_time(now_utc())
        try:
            lease = leases.read_namespaced_lease(name, namespace)
        except ApiException:
            leases.create_namespaced_lease(namespace, {"metadata": {"name": name}, "spec": spec})
            return
        lease.spec.holder_identity = holder
        lease.spec.lease_duration_seconds = seconds
        lease.spec.renew_time = spec["renewTime"]
        leases.replace_namespaced_lease(name, namespace, lease)

    hold("other", 3600)
    with running(settings) as replica:
        links = replica.links
        # Not leading: the link runnable is not started, so no link is followed and
        # nothing holds the watcher's publishing back.
        assert links.states == {}
        assert links.peers() == ()
        assert links.first_pass_pending() is False
        hold(None, 1)  # handed over: the second replica takes it
        wait_until(lambda: len(links.peers()) == 3, timeout=30, message="entries as leader")
        assert links.first_pass_pending() is False
        hold("usurper", 3600)
        # Cancelled the moment leadership ends: every watch closed, every entry dropped.
        wait_until(lambda: links.peers() == (), timeout=20, message="entries dropped")
        assert links.states == {}


def test_a_removed_validator_leaves_the_other_cluster_within_a_bound(
    pair: tuple[Side, Side],
) -> None:
    east, west = pair
    wait_until(lambda: "198.51.100.72:11625" in east.remote(), timeout=30)
    assert east.watcher is not None
    writes = east.watcher.metrics.configmap_writes_total
    before = sum(s.value for m in writes.collect() for s in m.samples if s.name.endswith("_total"))
    calls_before = REMOTE_CALLS.get("west", 0)
    started = time.monotonic()
    west.core.delete_namespaced_pod("w-1", west.app, grace_period_seconds=0)
    wait_until(
        lambda: "198.51.100.72:11625" not in network_txt(east.mirror(), "testnet"),
        timeout=30,
        interval=0.02,
        message="w-1 gone from east's mirror",
    )
    elapsed = time.monotonic() - started
    after = sum(s.value for m in writes.collect() for s in m.samples if s.name.endswith("_total"))
    calls = REMOTE_CALLS.get("west", 0) - calls_before
    print(
        f"\ncross-cluster propagation: {elapsed:.2f}s; east ConfigMap writes: {after - before:g};"
        f" requests from east to west: {calls}"
    )
    assert elapsed < 15


def test_bad_link_secrets_are_refused(pair: tuple[Side, Side]) -> None:
    east, west = pair
    ns = east.settings.namespace
    # An admin's kubeconfig may read far more than the ConfigMap.
    admin = yaml.safe_load(Path(west.cluster.kubeconfig).read_text())
    bodies = {
        "wide": {"cluster": "north", "kubeconfig": yaml.safe_dump(admin)},
        "clash": {"cluster": "east", "kubeconfig": yaml.safe_dump(admin)},
        "empty": {"cluster": "south"},
    }
    for name, data in bodies.items():
        east.core.create_namespaced_secret(
            ns,
            {
                "metadata": {"name": name, "labels": {names.LINK_LABEL: "true"}},
                "stringData": {**data, "namespace": west.settings.namespace},
            },
        )

    def refused() -> dict[str, str]:
        events = east.core.list_namespaced_event(ns, field_selector="reason=LinkRefused").items
        return {e.involved_object.name: e.message for e in events}

    found = wait_until(lambda: len(refused()) >= 3 and refused(), timeout=30, message="refusals")
    assert "may do more than read the ConfigMap" in found["wide"]
    assert "this cluster's own name" in found["clash"]
    assert "no 'kubeconfig' key" in found["empty"]
    assert {e["cluster"] for e in east.entries()} == {"east", "west"}
    for name in bodies:
        east.core.delete_namespaced_secret(name, ns)


def test_a_cut_link_keeps_its_entries_says_so_then_drops_them(pair: tuple[Side, Side]) -> None:
    east, _ = pair
    wait_until(lambda: len(east.remote()) >= 2, timeout=30)
    kept = east.remote()
    west_sh("stop-apiserver")
    try:
        assert east.watcher is not None
        links = east.watcher.links
        wait_until(
            lambda: not any(s.reachable for s in links.states.values()),
            timeout=30,
            message="east sees west unreachable",
        )
        cut = time.monotonic()
        assert east.remote() == kept  # kept while within the stale time
        ns = east.settings.namespace
        unreachable = "reason=LinkUnreachable"
        wait_until(
            lambda: east.core.list_namespaced_event(ns, field_selector=unreachable).items,
            message="a LinkUnreachable Event",
        )
        gauge = east.watcher.metrics.link_reachable.labels(cluster="west")
        assert gauge._value.get() == 0
        wait_until(lambda: not east.remote(), timeout=STALE_SECONDS + 20, message="stale drop")
        print(f"\nentries dropped {time.monotonic() - cut:.1f}s after the cut was seen")
        assert time.monotonic() - cut >= STALE_SECONDS - 2
        assert east.core.list_namespaced_event(ns, field_selector="reason=LinkStale").items
    finally:
        west_sh("start-apiserver")
    wait_until(lambda: east.remote() == kept, timeout=60, message="entries back once west answers")


def test_a_removed_link_secret_drops_its_entries_and_unlink_removes_both_ends(
    pair: tuple[Side, Side],
) -> None:
    east, west = pair
    wait_until(lambda: west.remote(), timeout=60, message="west holds east's entries")
    said = link_command("unlink", east, west, "--local-kubeconfig", west.cluster.kubeconfig)
    assert "deleted serviceaccounts/stellar-peers-link in the linked cluster" in said
    assert f"deleted secrets/{link_secret_name('east')} in {west.settings.namespace}" in said
    wait_until(lambda: not west.remote(), timeout=15, message="west drops east's entries")
    with pytest.raises(ApiException):
        east.core.read_namespaced_service_account("stellar-peers-link", east.settings.namespace)
    with pytest.raises(ApiException):
        west.core.read_namespaced_secret(link_secret_name("east"), west.settings.namespace)
