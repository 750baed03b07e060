"""Link Secrets, remote entries and the credential review, as plain values."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
from typing import Any

import orjson
import pytest
import yaml

from webhook import names
from webhook.cli.link import link_secret, objects
from webhook.cli.link_status import connected_remote, link_rows
from webhook.core.peerset.links import (
    LinkError,
    choose,
    configmap_entries,
    excess_rights,
    parse_link,
    remote_peers,
)
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.publishing import publish
from webhook.core.publishing.watched import peer_set

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "west", "cluster": {"server": "https://127.0.0.1:56443"}}],
    "users": [{"name": "link", "user": {"token": "abc"}}],
    "contexts": [{"name": "west", "context": {"cluster": "west", "user": "link"}}],
    "current-context": "west",
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(name: str = "link-west", **data: Any) -> dict[str, Any]:
    values = {"cluster": "west", "kubeconfig": yaml.safe_dump(KUBECONFIG), **data}
    return {
        "metadata": {"name": name, "resourceVersion": "7"},
        "data": {k: b64(v) for k, v in values.items() if v is not None},
    }


def test_a_link_secret_parses() -> None:
    link = parse_link(secret(), cluster_name="east")
    assert (link.secret, link.cluster, link.namespace) == ("link-west", "west", "stellar-system")
    assert link.kubeconfig["current-context"] == "west"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"kubeconfig": None}, "no 'kubeconfig' key"),
        ({"cluster": None}, "no 'cluster' key"),
        ({"cluster": "East_1"}, "not a DNS label"),
        ({"cluster": "east"}, "this cluster's own name"),
        ({"kubeconfig": "{{{"}, "not YAML"),
        ({"kubeconfig": "just text"}, "not a kubeconfig"),
        ({"kubeconfig": yaml.safe_dump({**KUBECONFIG, "current-context": "x"})}, "current-context"),
        (
            {"kubeconfig": yaml.safe_dump({**KUBECONFIG, "users": [{"name": "link", "user": {}}]})},
            "no token",
        ),
    ],
)
def test_bad_link_secrets_are_refused_with_the_reason(data: dict[str, Any], says: str) -> None:
    with pytest.raises(LinkError, match=says):
        parse_link(secret(**data), cluster_name="east")


def test_two_secrets_for_one_cluster_are_both_refused() -> None:
    links, errors = choose(
        [secret("a"), secret("b"), secret("c", cluster="north"), secret("d", cluster="east")],
        cluster_name="east",
    )
    assert set(links) == {"c"}
    assert "linked by other Secrets too (b)" in errors["a"]
    assert "this cluster's own name" in errors["d"]


def entry(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "validators",
        "nodeType": "validator",
        "ip": "10.1.0.5",
        "port": 11625,
        "peerString": "10.1.0.5:11625",
        "source": "pod",
        "network": "testnet",
        "cluster": "west",
        **extra,
    }


def test_only_owned_and_advertised_entries_are_taken_by_advertised_address() -> None:
    entries = [
        entry("a", advertised="198.51.100.1:11625", publicKey="GABC"),
        entry("no-advertised"),
        entry("imported", source="remote", advertised="203.0.113.9:11625", cluster="north"),
        entry("ipv6", advertised="[2001:db8::1]:11625"),
        entry("junk", advertised="not an address"),
    ]
    (peer,) = remote_peers(entries, cluster="west")
    assert (peer.name, peer.peer_string, peer.source, peer.cluster, peer.network) == (
        "a",
        "198.51.100.1:11625",
        "remote",
        "west",
        "testnet",
    )
    assert peer.public_key == "GABC"
    assert "10.1.0.5" not in peer.peer_string


def test_remote_peers_are_published_per_network_and_never_reexported() -> None:
    """A's set holds B's entries as `source: remote`; C reading A takes none of them."""
    remote = remote_peers([entry("b", advertised="198.51.100.1:11625")], cluster="west")
    mixed = peer_set({}, enabled_namespaces=frozenset(), cluster_name="east", remote=remote)
    data = publish.render(mixed)
    assert data[names.KEY_NETWORK_TXT.format("testnet")] == "198.51.100.1:11625\n"
    published = configmap_entries({"data": data})
    assert [(e["source"], e["cluster"]) for e in published] == [("remote", "west")]
    assert remote_peers(published, cluster="east") == ()


def test_gzipped_peers_json_is_read() -> None:
    packed = gzip.compress(orjson.dumps([entry("a", advertised="198.51.100.1:11625")]))
    configmap = {"binaryData": {names.KEY_JSON_GZ: base64.b64encode(packed).decode()}}
    assert [e["name"] for e in configmap_entries(configmap)] == ["a"]
    with pytest.raises(ValueError, match="neither"):
        configmap_entries({"data": {}})


BASIC = [
    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": [r]}
    for r in ("selfsubjectaccessreviews", "selfsubjectrulesreviews")
] + [
    {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    }
]
OURS = {
    "verbs": ["get", "list", "watch"],
    "apiGroups": [""],
    "resources": ["configmaps"],
    "resourceNames": ["stellar-peers"],
}


def test_a_credential_reading_only_the_configmap_passes() -> None:
    assert excess_rights({"resourceRules": [*BASIC, OURS]}, namespace="stellar-system") == []


def test_a_credential_that_reads_more_is_named() -> None:
    wider = [
        *BASIC,
        OURS,
        {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]},
        {**OURS, "resourceNames": []},
        {**OURS, "verbs": ["update"]},
    ]
    found = excess_rights({"resourceRules": wider}, namespace="ns")
    assert found == [
        "get on secrets in ns",
        "get,list,watch on configmaps in ns",
        "update on configmaps stellar-peers in ns",
    ]


def test_an_empty_remote_set_is_an_empty_set() -> None:
    assert remote_peers([], cluster="west") == ()
    assert PeerSet(remote_peers([], cluster="west")).text == ""


def test_the_printed_link_secret_is_one_the_injector_accepts() -> None:
    printed = link_secret(
        cluster="west",
        server="https://203.0.113.1:6443",
        ca_data=b64("CA"),
        token="tok",
        namespace="stellar-system",
        into="stellar-system",
    )
    assert printed["metadata"]["labels"] == {names.LINK_LABEL: "true"}
    as_applied = {
        "metadata": printed["metadata"],
        "data": {k: b64(v) for k, v in printed["stringData"].items()},
    }
    link = parse_link(as_applied, cluster_name="east")
    assert (link.cluster, link.namespace) == ("west", "stellar-system")
    assert link.kubeconfig["users"][0]["user"] == {"token": "tok"}


def test_the_link_role_reads_only_the_one_configmap() -> None:
    (role,) = [body for _, plural, body in objects("stellar-system") if plural == "roles"]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["stellar-peers"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    assert excess_rights({"resourceRules": [*BASIC, *role["rules"]]}, namespace="x") == []


def test_status_rows_say_each_links_state_and_which_nodes_hold_remote_peers() -> None:
    remote = remote_peers(
        [
            entry("w-0", advertised="198.51.100.1:11625"),
            entry("w-1", advertised="198.51.100.2:11625"),
            entry("w-2", advertised="198.51.100.3:11625", network="pubnet"),
        ],
        cluster="west",
    )
    peers = PeerSet(remote)
    events = [
        {
            "involvedObject": {"name": "link-west"},
            "reason": "LinkUnreachable",
            "lastTimestamp": "2026-01-01T00:00:00Z",
        }
    ]
    now = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    rows = link_rows(
        [secret(), secret("bad", cluster="east")],
        cluster_name="east",
        peers=peers,
        reached={"link-west": "no: HTTP 503"},
        exported={},
        events=events,
        now=now,
    )
    assert [(r.secret, r.cluster, r.published, r.injector) for r in rows] == [
        ("bad", "-", 0, "-"),
        ("link-west", "west", 3, "LinkUnreachable 60s ago"),
    ]
    assert rows[0].reachable.startswith("refused: cluster 'east' is this cluster's own name")
    status = {"expected": 3, "missing": [{"peer": "198.51.100.2:11625", "reason": "pending"}]}
    pod = {
        "metadata": {
            "namespace": "ns",
            "name": "e-0",
            "labels": {names.NETWORK_LABEL: "testnet"},
            "annotations": {names.CONNECTION_STATUS_ANNOTATION: orjson.dumps(status).decode()},
        }
    }
    assert connected_remote(peers, [pod]) == [("ns/e-0", "west", "1/2")]


def test_with_one_network_the_env_keys_carry_remote_peers_by_advertised_address() -> None:
    """`peers.csv` feeds STELLAR_PEERS and `peers.txt` the hook: remote by advertised only."""
    local = Peer("ns", "e-0", "validator", "10.0.0.1", 11625, "pod", network="testnet")
    remote = remote_peers([entry("w-0", advertised="198.51.100.1:11625")], cluster="west")
    data = publish.render(PeerSet((local, *remote)))
    assert data[names.KEY_CSV] == "10.0.0.1:11625,198.51.100.1:11625"
    assert data[names.KEY_TXT] == "10.0.0.1:11625\n198.51.100.1:11625\n"
    assert "10.1.0.5" not in "".join(data.values())  # the remote pod IP, nowhere
