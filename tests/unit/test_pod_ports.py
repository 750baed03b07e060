"""One port rule for the webhook, the peer set and the reload plan, on a helm-chart-shaped pod."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.kubelet import container_statuses
from webhook import names
from webhook.core.injection import mutation
from webhook.core.peerset.peers import PeerSet, pod_peer
from webhook.core.pod import admin_port, core_conf, peer_port
from webhook.core.publishing.watched import trim
from webhook.core.reload.reload_plan import plan_round
from webhook.settings import Settings

SETTINGS = Settings()


def helm_chart_pod(**annotations: str) -> dict[str, Any]:
    """Shaped like stellar/helm-charts `charts/core`: container `core`, ports `core`/`core-peer`,
    here with a custom HTTP_PORT and PEER_PORT."""
    return {
        "metadata": {
            "name": "core-0",
            "namespace": "ns",
            "uid": "uid-core-0",
            "labels": {"app": "core", "release": "core", names.INJECTED_LABEL: "true"},
            "annotations": annotations,
        },
        "spec": {
            "containers": [
                {
                    "name": "core",
                    "image": "stellar/stellar-core:22.1.0",
                    "args": ["run", "--conf", "/config/stellar-core.cfg", "--console"],
                    "ports": [
                        {"name": "core", "containerPort": 11726},
                        {"name": "core-peer", "containerPort": 11725},
                    ],
                }
            ]
        },
        "status": {
            "podIP": "10.0.0.7",
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": container_statuses(["core"]),
        },
    }


@dataclass(frozen=True)
class Snap:
    peers: PeerSet
    validators: tuple[dict[str, Any], ...]


def test_helm_chart_ports_are_read_by_the_webhook() -> None:
    decision = mutation.decide(helm_chart_pod(), settings=SETTINGS)
    assert decision.inject
    assert (decision.http_port, decision.peer_port) == (11726, 11725)


def test_helm_chart_peer_port_is_published() -> None:
    peer = pod_peer(helm_chart_pod())
    assert peer is not None
    assert peer.peer_string == "10.0.0.7:11725"


def test_helm_chart_admin_port_is_dialled_by_the_reload_controller() -> None:
    [plan] = plan_round(Snap(PeerSet(()), (helm_chart_pod(),)), settings=SETTINGS)
    assert plan.http_port == 11726


def test_named_ports_win_over_the_annotation_and_http_over_core() -> None:
    container = {
        "ports": [
            {"name": "core", "containerPort": 1},
            {"name": "http", "containerPort": 2},
            {"name": "core-peer", "containerPort": 3},
        ]
    }
    assert admin_port(container) == 2
    assert peer_port(container, {names.PEER_PORT_ANNOTATION: "4"}) == 3
    assert peer_port({}, {names.PEER_PORT_ANNOTATION: "4"}) == 4
    assert peer_port({}, {names.PEER_PORT_ANNOTATION: "no"}) is None
    assert (admin_port({}), peer_port({}, {})) == (11626, 11625)


def test_the_conf_of_a_shell_script_container_is_found() -> None:
    """The example Deployment runs `sh -c '... exec stellar-core run --conf F'`."""
    path = Path(__file__).resolve().parents[2] / "manifests/examples/validator-deployment.yaml"
    deployment = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert core_conf(container) == "/var/lib/stellar/stellar-core.cfg"
    script = {"command": ["/bin/sh", "-c"], "args": ["x --conf=/a.cfg; y --conf '$(rm -rf /)'"]}
    assert core_conf(script) == "/a.cfg"


def test_the_watcher_keeps_what_the_exec_reload_needs_to_find_the_conf() -> None:
    """The reload plan reads pods from the watcher's trimmed cache."""
    path = Path(__file__).resolve().parents[2] / "manifests/examples/validator-deployment.yaml"
    deployment = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")
    pod = {
        "metadata": {"name": "v", "namespace": "n"},
        "spec": deployment["spec"]["template"]["spec"],
    }
    kept = trim(pod, kind="Pod")["spec"]["containers"][0]
    assert core_conf(kept) == "/var/lib/stellar/stellar-core.cfg"
    env_pod = {
        "metadata": {"name": "v", "namespace": "n"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {"name": "NODE_SEED", "value": "secret"},
                        {"name": "STELLAR_CORE_CONF", "value": "/etc/core.cfg"},
                    ],
                }
            ]
        },
    }
    kept = trim(env_pod, kind="Pod")["spec"]["containers"][0]
    assert core_conf(kept) == "/etc/core.cfg"
    assert "secret" not in str(kept), "only the config path is kept from the env"
