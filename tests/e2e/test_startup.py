"""`stellar-peers serve` on start: what it needs from the cluster, and what it says when it fails.

Every failure a user can meet on start ends the process at once with a line that
says what to do, never an exception class name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import uuid
from pathlib import Path

import orjson
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files
from tests.e2e.private_cluster import STELLAR_PEERS, ServeProcess, free_ports, settings_args
from tests.polling import wait_until
from webhook import names
from webhook.settings import Settings

# An exception class name, as repr() or a traceback shows it.
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]+(Exception|Error)\b")


def run_serve(settings: Settings, *, local: bool, timeout: float = 60) -> tuple[int, str]:
    command = [str(STELLAR_PEERS), "serve", *(["--local"] if local else [])]
    done = subprocess.run(
        command + settings_args(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout + done.stderr


def failure_line(output: str) -> str:
    """The `serve.failed` message: what the user reads (library warnings aside)."""
    for line in output.splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            entry = orjson.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "serve.failed":
                return str(entry["error"])
    raise AssertionError(f"no serve.failed line in: {output}")


def test_serve_local_creates_its_missing_namespace_and_publishes(
    core: client.CoreV1Api, settings: Settings, tmp_path: Path
) -> None:
    system = f"absent-{uuid.uuid4().hex[:10]}"
    settings = dataclasses.replace(
        settings,
        namespace=system,
        leader_election=True,
        lease_duration_seconds=3.0,
        lease_renew_seconds=1.0,
    )
    serve = ServeProcess(settings, log_path=tmp_path / "serve.log")
    try:
        serve.wait_for("serve.namespace-created", timeout=30)
        serve.wait_for("leader.acquired", timeout=30)
        wait_until(
            lambda: core.read_namespaced_config_map(names.CONFIGMAP_NAME, system),
            timeout=30,
            message="the canonical ConfigMap in the namespace serve created",
        )
        assert not serve.named("leader.renew-failed"), serve.tail()
    finally:
        serve.stop()
        with contextlib.suppress(ApiException):  # absent when serve never made it
            core.delete_namespace(system, propagation_policy="Background")


def test_serve_in_cluster_mode_stops_at_once_naming_the_missing_namespace(
    settings: Settings, tmp_path: Path
) -> None:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    files.write_bundle(str(tmp_path), files.Bundle(ca_cert=ca.cert_pem, serving=serving))
    system = f"absent-{uuid.uuid4().hex[:10]}"
    settings = dataclasses.replace(
        settings,
        namespace=system,
        leader_election=True,
        cert_file=str(tmp_path / files.TLS_CERT),
        key_file=str(tmp_path / files.TLS_KEY),
    )
    code, output = run_serve(settings, local=False)
    assert code == 1, output
    message = failure_line(output)
    assert f"kubectl create namespace {system}" in message, output
    assert not CLASS_NAME.search(message), message


def test_serve_against_an_unreachable_api_server_says_where_and_what_to_do(
    cluster: object, settings: Settings, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(settings.kubeconfig).read_text())
    (port,) = free_ports(1)
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    settings = dataclasses.replace(settings, kubeconfig=str(kubeconfig))
    code, output = run_serve(settings, local=True)
    assert code == 1, output
    message = failure_line(output)
    assert f"cannot reach the API server at https://127.0.0.1:{port}" in message, output
    assert "--kubeconfig" in message
    assert not CLASS_NAME.search(message), message
    assert "Traceback" not in output
