"""`stellar-peers status`: the published set read back, and each validator's state."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from tests.kubelet import container_statuses, crashed_statuses
from tests.standin import StellarCoreStandIn
from webhook import names
from webhook.cli import status
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.publishing import publish
from webhook.settings import Settings

SETTINGS = Settings()


def peer(ip: str, name: str, source: Any = "pod", port: int = 11625) -> Peer:
    return Peer(namespace="ns", name=name, node_type="validator", ip=ip, port=port, source=source)


PEERS = PeerSet(
    (peer("10.0.0.1", "v1"), peer("10.0.0.2", "v2"), peer("seed.example.org", "", "static"))
)


def pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    running: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    made = container_statuses if running else crashed_statuses
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {names.INJECTED_LABEL: "true"},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "stellar-core",
                    "image": "stellar/stellar-core:21",
                    "ports": [{"name": "peer", "containerPort": 11625}],
                }
            ]
        },
        "status": {
            **({"podIP": ip} if ip else {}),
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": made(["stellar-core"]),
        },
    }


def judged(hash: str, connected: int, expected: int, missing: dict[str, str]) -> str:
    return orjson.dumps(
        {
            "hash": hash,
            "connected": connected,
            "expected": expected,
            "settled": False,
            "missing": [{"peer": p, "reason": r} for p, r in sorted(missing.items())],
        }
    ).decode()


def test_the_published_set_reads_back_with_the_hash_it_was_published_with() -> None:
    configmap = publish.configmap_body(PEERS, name="stellar-peers", namespace="stellar-system")
    read = status.peer_set(configmap)
    published = configmap["metadata"]["annotations"][names.PEERS_HASH_ANNOTATION]
    assert read.hash == PEERS.hash == published
    assert read.peers == tuple(sorted(PEERS.peers, key=lambda p: (p.namespace, p.name)))


@pytest.mark.parametrize(
    "raw", ["", "not json", '[{"source": "pod", "port": "x"}]', '[{"port": 1}]']
)
def test_a_peers_json_that_is_not_a_peer_list_is_a_clear_error(raw: str) -> None:
    with pytest.raises(status.StatusError, match=names.KEY_JSON):
        status.peer_set({"data": {names.KEY_JSON: raw}})


def test_each_state_from_the_plan_and_the_nodes_own_answer() -> None:
    pods = [
        pod("v1", "10.0.0.1", annotations={names.OBSERVED_HASH_ANNOTATION: PEERS.hash}),
        pod(
            "v2",
            "10.0.0.2",
            annotations={
                names.CONNECTION_STATUS_ANNOTATION: judged(
                    PEERS.hash, 1, 2, {"seed.example.org:11625": "unresolvable"}
                )
            },
        ),
        pod(
            "v3",
            "10.0.0.3",
            annotations={
                names.CONNECTION_STATUS_ANNOTATION: judged("sha256:old", 0, 1, {"x:1": "pending"})
            },
        ),
        pod("v4", "10.0.0.4", running=False),
        pod("v5", None),
        pod("v6", "10.0.0.6", ready=False),
    ]
    found = {r.pod: r for r in status.rows(PEERS, pods, settings=SETTINGS)}
    assert found["v1"].state == "current"
    assert not found["v1"].behind
    assert found["v2"].state == "behind"
    assert found["v2"].peers == "1/2"
    assert found["v2"].missing == "unresolvable: seed.example.org:11625"
    # Judged against an older set only: the controller has this set still to do.
    assert found["v3"].state == "waiting"
    assert found["v3"].missing == ""
    assert found["v4"].state == "not-running"
    assert not found["v4"].behind
    # Running but not Ready: judged like any node (it is handed its peers), Ready shown.
    assert found["v6"].state == "waiting"
    assert found["v6"].ready == "False"
    assert found["v1"].ready == "True"
    assert found["v5"].state == "no-ip"
    assert not found["v5"].behind


def test_a_rollout_mode_pod_is_judged_by_the_set_without_its_own_workload() -> None:
    own = pod("v1", "10.0.0.1")
    own["metadata"]["annotations"] = {names.RELOAD_MODE_ANNOTATION: "rollout"}
    (row,) = status.rows(PEERS, [own], settings=SETTINGS)
    assert row.state == "waiting"
    without_itself = PeerSet(tuple(p for p in PEERS.peers if p.name != "v1")).hash
    own["metadata"]["annotations"][names.OBSERVED_HASH_ANNOTATION] = without_itself
    (row,) = status.rows(PEERS, [own], settings=SETTINGS)
    assert row.state == "current"


def test_the_table_lists_every_pod_and_the_exit_code_follows_the_states(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers = PeerSet((peer("127.0.0.41", "v1"), peer("127.0.0.42", "v2")))
    current = pod("v1", "127.0.0.41", annotations={names.OBSERVED_HASH_ANNOTATION: peers.hash})
    behind = pod("v2", "127.0.0.42", ready=False)
    monkeypatch.setattr(status, "read_cluster", lambda settings: (peers, [current, behind]))
    monkeypatch.setattr(status, "read_links", lambda settings, peers, pods: "")
    out = io.StringIO()
    # v1's node answers on its admin port, past its start window; nothing listens for v2.
    with StellarCoreStandIn(host="127.0.0.41", port=11626, state="Joining SCP"):
        assert status.run(SETTINGS, out=out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == f"peer set {peers.hash[:19]} (2 peers)"
    assert lines[1].split() == [
        "NAMESPACE",
        "POD",
        "IP",
        "READY",
        "NETWORK",
        "KEY",
        "MODE",
        "STATE",
        "PEERS",
        "CORE",
        "MISSING",
    ]
    assert lines[2].split() == [
        "ns", "v1", "127.0.0.41", "True", "unknown", "-", "http", "current", "-", "Joining",
        "SCP", "-",
    ]  # fmt: skip
    assert lines[3].split() == [
        "ns", "v2", "127.0.0.42", "False", "unknown", "-", "http", "waiting", "-", "?refused", "-",
    ]  # fmt: skip
    assert lines[-2] == "2 validators, 1 behind"
    # The mode in force: this test has no API server to ask, and says so.
    assert lines[-1].startswith("admission: unknown (cannot ask the API server")
    monkeypatch.setattr(status, "read_cluster", lambda settings: (peers, [current]))
    assert status.run(SETTINGS, out=io.StringIO()) == 0


def test_a_cluster_without_the_injector_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(settings: Settings) -> Any:
        raise status.StatusError("cannot read ConfigMap stellar-system/stellar-peers (HTTP 404)")

    monkeypatch.setattr(status, "read_cluster", refuse)
    out = io.StringIO()
    assert status.run(SETTINGS, out=out) == 2
    assert "stellar-peers status: cannot read ConfigMap" in capsys.readouterr().err
    assert out.getvalue().startswith("admission: ")


def test_each_row_shows_the_network_and_key_published_for_the_pod() -> None:
    key = "GA" + "A" * 54
    configmap = {
        "data": {
            names.KEY_JSON: orjson.dumps(
                [
                    {
                        "name": "v1",
                        "namespace": "ns",
                        "nodeType": "validator",
                        "ip": "10.0.0.1",
                        "port": 11625,
                        "source": "pod",
                        "network": "testnet",
                        "publicKey": key,
                    },
                    {
                        "name": "v2",
                        "namespace": "ns",
                        "nodeType": "validator",
                        "ip": "10.0.0.2",
                        "port": 11625,
                        "source": "pod",
                        "network": "pubnet",
                    },
                ]
            ).decode()
        }
    }
    peers = status.peer_set(configmap)
    found = {
        r.pod: r
        for r in status.rows(
            peers, [pod("v1", "10.0.0.1"), pod("v2", "10.0.0.2")], settings=SETTINGS
        )
    }
    assert (found["v1"].network, found["v1"].key) == ("testnet", key)
    assert (found["v2"].network, found["v2"].key) == ("pubnet", "-")
    text = status.table(list(found.values()), peers=peers)
    assert text.splitlines()[0].endswith("(2 peers; pubnet: 1, testnet: 1)")
