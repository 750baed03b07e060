"""Validators of two Stellar networks side by side on the real node.

Two testnet and two pubnet validators in one enabled namespace, each its own Deployment,
config and seed, the admin port public (http mode: the injector asks each node's `info`
for its network). On each network one pod is labeled `stellar.org/network` and one is
not, so its network is learned from its node. The labeled pair starts first; the
unlabeled pair then starts into a cluster of two known networks, where its hook has to
name its network from `info` to find its file, and boots for a while first (answering
"Core is booting", as stellar-core v25.2+ does), so the injector meets two nodes of
different networks whose networks it cannot learn yet. Nodes of different networks never
authenticate (the stand-in checks the passphrase's hash in its hello, as stellar-core
does), and no node is ever handed a peer of the other network: not in its mounted file,
its env, or a `connect` from the hook or the reload controller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from tests.node.conftest import Node, install, uninstall
from tests.node.validators import (
    SLOW,
    add_validator,
    authenticated,
    connect_between,
    example_documents,
    logs,
    running_validators,
    status_rows,
    validator_namespace,
)
from tests.polling import wait_until
from tests.standin import PUBNET, TESTNET
from webhook import names

PASSPHRASES = {"testnet": TESTNET, "pubnet": PUBNET}
# suffix: (network, labeled); the labeled pair starts first, the unlabeled pair boots
FIRST = {"ta": ("testnet", True), "pa": ("pubnet", True)}
SECOND = {"tb": ("testnet", False), "pb": ("pubnet", False)}
BOOT_SECONDS = "15"
PEER_PORT = 11625


@dataclasses.dataclass(frozen=True)
class Deployed:
    namespace: str
    pods: dict[str, dict[str, Any]]  # by suffix

    def network(self, suffix: str) -> str:
        return {**FIRST, **SECOND}[suffix][0]

    def labeled(self, suffix: str) -> bool:
        return {**FIRST, **SECOND}[suffix][1]

    def address(self, suffix: str) -> str:
        return f"{self.pods[suffix]['status']['podIP']}:{PEER_PORT}"

    def addresses(self, network: str) -> set[str]:
        return {self.address(s) for s in self.pods if self.network(s) == network}

    def name(self, suffix: str) -> str:
        return str(self.pods[suffix]["metadata"]["name"])


def network_documents(network: str, *, labeled: bool) -> list[dict[str, Any]]:
    """The example (public admin port) on `network`, its pods labeled with it or not; an
    unlabeled one boots for a while (the stand-in's switch)."""
    docs = example_documents(public_admin=True)
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            shipped = f'NETWORK_PASSPHRASE="{TESTNET}"'
            cfg = doc["data"]["stellar-core.cfg"]
            assert shipped in cfg, "the example no longer names testnet's passphrase"
            doc["data"]["stellar-core.cfg"] = cfg.replace(
                shipped, f'NETWORK_PASSPHRASE="{PASSPHRASES[network]}"'
            )
        if doc["kind"] == "Deployment" and labeled:
            doc["spec"]["template"]["metadata"]["labels"][names.NETWORK_LABEL] = network
        if doc["kind"] == "Deployment" and not labeled:
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["env"].append({"name": "STANDIN_BOOT_SECONDS", "value": BOOT_SECONDS})
    return docs


def start(node: Node, namespace: str, validators: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    for suffix, (network, labeled) in validators.items():
        add_validator(node, namespace, suffix, network_documents(network, labeled=labeled))
    return {
        suffix: running_validators(node, namespace, 1, f"app=stellar-validator-{suffix}")[0]
        for suffix in validators
    }


def mirror(node: Node, namespace: str) -> dict[str, str]:
    return dict(node.json("get", "configmap", names.CONFIGMAP_NAME, "-n", namespace)["data"])


def network_file(data: dict[str, str], network: str) -> set[str]:
    return set(data.get(names.KEY_NETWORK_TXT.format(network), "").split())


def in_pod(node: Node, namespace: str, pod: str, script: str) -> str:
    return node.kubectl(
        "exec", "-n", namespace, pod, "-c", "stellar-core", "--", "sh", "-c", script
    )


def connects(log: str) -> set[str]:
    """The `ip:port` of every `connect` the node's admin port was asked."""
    found = set()
    for line in unquote(log).splitlines():
        if "/connect?" not in line:
            continue
        query = dict(
            part.split("=", 1) for part in line.split("/connect?", 1)[1].split("&") if "=" in part
        )
        found.add(f"{query.get('peer', '').strip()}:{query.get('port', '').strip()}")
    return found


@pytest.fixture(scope="module")
def deployed(node: Node) -> Iterator[Deployed]:
    """Its own install (http mode) and namespace, both removed at the end."""
    install()
    namespace = validator_namespace(node, "networks")
    try:
        pods = start(node, namespace, FIRST)
        first = Deployed(namespace, pods)
        # Both networks are known before the unlabeled pair starts.
        wait_until(
            lambda: all(
                network_file(mirror(node, namespace), first.network(s)) == {first.address(s)}
                for s in FIRST
            ),
            timeout=SLOW,
            interval=1,
            message="the mirror holds the labeled pair, each under its network",
        )
        pods.update(start(node, namespace, SECOND))
        yield Deployed(namespace, pods)
    finally:
        node.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=240s")
        uninstall()


def test_each_network_file_holds_only_its_own_peers(node: Node, deployed: Deployed) -> None:
    want = {network: deployed.addresses(network) for network in PASSPHRASES}

    def published() -> dict[str, str] | None:
        data = mirror(node, deployed.namespace)
        return data if all(network_file(data, n) == want[n] for n in want) else None

    data = wait_until(published, timeout=SLOW, interval=1, message=f"per-network sets {want}")
    # With two networks the unqualified keys are empty, and nobody is left unplaced.
    assert data[names.KEY_TXT] == "", data
    assert data[names.KEY_CSV] == "", data
    assert network_file(data, names.UNKNOWN_NETWORK) == set(), data
    for suffix in deployed.pods:
        network = deployed.network(suffix)
        path = f"{names.MOUNT_PATH}/{names.KEY_NETWORK_TXT.format(network)}"
        # Pods that started with a smaller set: the kubelet rewrites their mounted file.
        wait_until(
            lambda suffix=suffix, path=path, network=network: (
                set(in_pod(node, deployed.namespace, deployed.name(suffix), f"cat {path}").split())
                == want[network]
            ),
            timeout=SLOW,
            interval=2,
            message=f"{path} in {deployed.name(suffix)} holding {want[network]}",
        )


def test_each_pods_env_names_only_its_own_network(node: Node, deployed: Deployed) -> None:
    """Fixed at container start: a labeled pod's from its network's keys, an unlabeled one's
    from the unqualified keys (empty by the time it started: two networks were known)."""
    for suffix in deployed.pods:
        env = in_pod(
            node,
            deployed.namespace,
            deployed.name(suffix),
            f'printf "%s|%s" "${names.ENV_NETWORK}" "${names.ENV_PEERS}"',
        )
        network, _, peers = env.partition("|")
        assert network == (deployed.network(suffix) if deployed.labeled(suffix) else ""), env
        handed = {p for p in peers.split(",") if p}
        assert handed <= deployed.addresses(deployed.network(suffix)), (suffix, env)


def test_each_networks_pair_authenticates_and_no_other(node: Node, deployed: Deployed) -> None:
    for network in PASSPHRASES:
        pair = [s for s in deployed.pods if deployed.network(s) == network]
        a, b = (deployed.pods[s] for s in pair)
        wait_until(
            lambda a=a, b=b: connect_between(node, deployed.namespace, a, b),
            timeout=SLOW,
            interval=1,
            message=f"a connect between the {network} pair",
        )
        wait_until(
            lambda pair=pair: all(
                authenticated(deployed.pods[x]) >= {deployed.address(y)}
                for x in pair
                for y in pair
                if x != y
            ),
            timeout=SLOW,
            interval=2,
            message=f"the {network} pair authenticated each other",
        )
    for suffix in deployed.pods:
        other = set().union(
            *(deployed.addresses(n) for n in PASSPHRASES if n != deployed.network(suffix))
        )
        assert not authenticated(deployed.pods[suffix]) & other, suffix


def test_status_shows_each_pods_network(node: Node, deployed: Deployed) -> None:
    def status_current() -> str | None:
        run = node.stellar_peers("status")
        return run.stdout if run.returncode == 0 else None

    table = wait_until(status_current, timeout=SLOW, interval=2, message="status exit 0")
    print(table)
    rows = {row["POD"]: row for row in status_rows(table, deployed.namespace)}
    assert {row["NETWORK"] for row in rows.values()} == set(PASSPHRASES), table
    for suffix in deployed.pods:
        row = rows[deployed.name(suffix)]
        assert row["NETWORK"] == deployed.network(suffix), table
        assert row["STATE"] == "current", table
        assert row["PEERS"] == "1/1", table


def test_no_connect_ever_crossed_networks(node: Node, deployed: Deployed) -> None:
    """Read once every node is current: the hooks have run and the reload controller has
    judged every node against its network's set."""
    asked: dict[str, set[str]] = {}
    for suffix in deployed.pods:
        log = logs(node, deployed.namespace, deployed.name(suffix))
        own = deployed.addresses(deployed.network(suffix))
        asked[suffix] = connects(log)
        assert asked[suffix] <= own, (
            f"{suffix} ({deployed.network(suffix)}) asked {asked[suffix] - own}:\n{log}"
        )
        assert "wrong network passphrase" not in log, log
    # The connects that did happen are read: each pair's own is among them.
    for network in PASSPHRASES:
        pair = {s for s in deployed.pods if deployed.network(s) == network}
        assert set().union(*(asked[s] for s in pair)) & deployed.addresses(network), asked
