"""Full outbound slots against the real API server, with stellar-core stand-ins as nodes.

stellar-core keeps at most `TARGET_PEER_CONNECTIONS` authenticated outbound peers and
drops a non-preferred one past that ("all available slots are taken"); a peer preferred
by key (`PREFERRED_PEER_KEYS`) evicts a non-preferred one instead (`OverlayManagerImpl`
acceptAuthenticatedPeer). `connect` never makes a peer preferred, so a node whose slots
are full of others keeps its siblings only when its config, read at start, names their
keys: the mounted `preferred_peer_keys-<network>.cfg` (docs/reference.md, "The
`stellar-peers` ConfigMap").
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import orjson
import pytest
from kubernetes import client

from tests.e2e.conftest import make_namespace
from tests.e2e.test_reload import (
    connection_status,
    loopback_block,
    run_injector,
    start_node,
    validator,
)
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.standin import StellarCoreStandIn, random_seed
from webhook import names
from webhook.cli import status
from webhook.core import admin_protocol
from webhook.metrics import Metrics
from webhook.settings import Settings
from webhook.stellar import admin

ONE_SLOT = {names.TARGET_PEER_CONNECTIONS_ANNOTATION: "1"}
SEED = random_seed()


def connect(node: StellarCoreStandIn, other: StellarCoreStandIn) -> None:
    """Tell `node` of `other` by hand, as an operator would, before the injector does."""
    code, body = asyncio.run(
        admin.get(
            ip=node.host, port=node.port, path=f"/connect?peer={other.host}&port=11625",
            time_limit=5,
        )
    )  # fmt: skip
    assert (code, body.strip()) == (200, f"Connect to: {other.host}:11625")


def mirror(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    return dict(core.read_namespaced_config_map(names.CONFIGMAP_NAME, namespace).data or {})


def status_table(settings: Settings) -> str:
    out = io.StringIO()
    code = status.run(settings, out=out)
    assert code in (0, 1), f"status could not read the cluster ({code}): {out.getvalue()}"
    return out.getvalue()


def missing_of(core: client.CoreV1Api, namespace: str, pod: str) -> dict[str, str]:
    found = orjson.loads(connection_status(core, namespace, pod) or "{}")
    return {m["peer"]: m["reason"] for m in found.get("missing", [])}


@pytest.fixture
def app(core: client.CoreV1Api, settings: Settings) -> Iterator[str]:
    """The validators' namespace; the test's own `namespace` is the injector's."""
    name = make_namespace(core, "app")
    label_enabled(core, name, settings)
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def test_full_slots_drop_a_sibling_and_status_names_it_until_its_key_is_preferred(
    cluster: Any,
    core: client.CoreV1Api,
    kubelet: FakeKubelet,
    app: str,
    settings: Settings,
) -> None:
    settings = dataclasses.replace(
        settings, reload_timeout_seconds=1.0, reload_connect_wait_seconds=2.0
    )
    block = loopback_block()
    with ExitStack() as nodes:
        # An outside peer (no pod: another organisation's node) fills `full`'s one slot.
        outside = nodes.enter_context(
            StellarCoreStandIn(host=f"{block}9", port=0, peer_port=11625, redial_seconds=600)
        )
        # Dials only when told (no redials of its own): `full`'s inbound side stays quiet.
        sibling = start_node(nodes, core, kubelet, app, "sibling", f"{block}3", redial_seconds=600)
        full = start_node(
            nodes, core, kubelet, app, "full", f"{block}2", annotations=ONE_SLOT,
            target_peer_connections=1, max_additional_peer_connections=0, node_seed=SEED,
        )  # fmt: skip
        connect(full, outside)
        wait_until(
            lambda: f"{outside.host}:11625" in full.authenticated(),
            timeout=20,
            message="the outside peer to take full's one outbound slot",
        )
        with run_injector(settings, cluster.api_client, Metrics()):
            wait_until(
                lambda: missing_of(core, app, "full") == {sibling.peer_address: "slots-full"},
                timeout=30,
                message="full's status to name its sibling as dropped for full slots",
            )
            assert f"{sibling.host}:11625" not in full.authenticated()
            table = status_table(settings)
            rows = [line for line in table.splitlines() if line.split()[:2] == [app, "full"]]
            assert len(rows) == 1, table
            row = rows[0]
            assert f"slots-full: {sibling.host}:11625" in row, table
            # The keys the node's config can include at start, as the mirror holds them.
            network = admin_protocol.network_name(full_passphrase(full))
            wait_until(
                lambda: (
                    sibling.public_key
                    in mirror(core, app).get(f"preferred_peer_keys-{network}.cfg", "")
                ),
                timeout=30,
                message="the mirror to name the sibling's key",
            )
            snippet = mirror(core, app)[f"preferred_peer_keys-{network}.cfg"]

            # The node restarts (a new pod, the same address) with the snippet in its
            # config: its sibling, preferred by key, now evicts the outside peer.
            full.stop()
            core.delete_namespaced_pod("full", app, grace_period_seconds=0)
            keys = [line for line in snippet.splitlines() if line.startswith("PREFERRED_PEER_KEYS")]
            assert keys, snippet
            preferred = orjson.loads(keys[0].split("=", 1)[1])
            again = nodes.enter_context(
                StellarCoreStandIn(
                    host=f"{block}2", port=0, peer_port=11625, redial_seconds=0.5,
                    target_peer_connections=1, max_additional_peer_connections=0,
                    preferred_peer_keys=preferred, node_seed=SEED,
                )
            )  # fmt: skip
            connect(again, outside)  # the outside peer first: its one slot is taken
            wait_until(
                lambda: f"{outside.host}:11625" in again.authenticated(),
                timeout=20,
                message="the outside peer to take the restarted node's one slot",
            )
            pod = validator("full-2", http_port=again.port, annotations=ONE_SLOT)
            core.create_namespaced_pod(app, pod)
            kubelet.mark_ready(namespace=app, name="full-2", ip=again.host)
            wait_until(
                lambda: (
                    f"{sibling.host}:11625" in again.authenticated()
                    and f"{outside.host}:11625" not in again.authenticated()
                ),
                timeout=30,
                message="the preferred sibling to hold the slot, the outside peer evicted",
            )
            wait_until(
                lambda: (
                    missing_of(core, app, "full-2") == {}
                    and connection_status(core, app, "full-2") is not None
                ),
                timeout=30,
                message="full-2 to miss nobody",
            )


def full_passphrase(node: StellarCoreStandIn) -> str:
    return node.network_passphrase
