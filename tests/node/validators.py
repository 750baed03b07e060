"""Validator pods on the real node: the shipped example, one Deployment and seed each, and
what a test reads back from them (admin port, logs, `stellar-peers status`)."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from scripts import validator_copies
from tests.node.conftest import Node
from tests.polling import wait_until
from tests.standin import random_seed
from webhook import names

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "validator-deployment.yaml"
# Pods start, the kubelet refreshes mounts, the reload controller backs off: minutes, not seconds.
SLOW = 240.0
TIER_LABEL = "stellar-node-tier"
VALIDATOR_SET_LABEL = "stellar-node-tier/validator"


def example_documents(*, public_admin: bool = False) -> list[dict[str, Any]]:
    """The example as shipped; only resource requests lowered (the node has 2 CPUs), and the
    admin port made public where http reload mode needs to reach it."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                container["resources"] = {"requests": {"cpu": "10m", "memory": "32Mi"}}
        if doc["kind"] == "ConfigMap" and public_admin:
            cfg = doc["data"]["stellar-core.cfg"]
            doc["data"]["stellar-core.cfg"] = cfg.replace(
                "PUBLIC_HTTP_PORT=false", "PUBLIC_HTTP_PORT=true"
            )
    return docs


def apply(node: Node, namespace: str, docs: list[dict[str, Any]]) -> None:
    node.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))


def validator_namespace(node: Node, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    node.kubectl("create", "namespace", name)
    node.kubectl("label", "namespace", name, f"{TIER_LABEL}=true")
    node.kubectl("label", "namespace", name, f"{names.ENABLE_LABEL}={names.ENABLE_VALUE}")
    # Each validator needs its own seed, a real one; the example reads it from this Secret.
    node.kubectl(
        "create",
        "secret",
        "generic",
        "validator-seed",
        "-n",
        name,
        f"--from-literal=seed={random_seed()}",
    )
    return name


def one_validator(docs: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The example renamed for one more validator, as operators run several (and the demo
    does): each its own Deployment, config and seed Secret, labeled for this tier's cleanup."""
    copies = validator_copies.renamed(docs, suffix)
    for doc in copies:
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["metadata"]["labels"][VALIDATOR_SET_LABEL] = "true"
    return copies


def add_validator(
    node: Node,
    namespace: str,
    suffix: str,
    docs: list[dict[str, Any]],
    *,
    own_post_start: bool = False,
) -> None:
    node.kubectl(
        "create",
        "secret",
        "generic",
        f"validator-seed-{suffix}",
        "-n",
        namespace,
        f"--from-literal=seed={random_seed()}",
    )
    copies = one_validator(docs, suffix)
    if own_post_start:
        # A hook of the pod's own is kept: the injector adds none, and says so.
        for doc in copies:
            if doc["kind"] == "Deployment":
                container = doc["spec"]["template"]["spec"]["containers"][0]
                container["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "true"]}}}
    apply(node, namespace, copies)


def admin_get(pod: dict[str, Any], path: str) -> Any:
    """GET the node's admin port at its pod IP (PUBLIC_HTTP_PORT=true), parsed."""
    with socket.create_connection((pod["status"]["podIP"], 11626), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def authenticated(pod: dict[str, Any]) -> set[str]:
    groups = admin_get(pod, "/peers")["authenticated_peers"]
    return {p["address"] for way in ("inbound", "outbound") for p in groups.get(way) or ()}


def status_rows(table: str, namespace: str) -> list[dict[str, str]]:
    """The rows of `stellar-peers status` for `namespace`, by column header."""
    lines = table.splitlines()
    header = next(line.split() for line in lines if line.startswith("NAMESPACE"))
    # Only the table's rows: later sections (advertised addresses, links) name pods too.
    return [
        dict(zip(header, line.split(), strict=False))
        for line in lines
        if line.split()[:1] == [namespace]
    ]


def running_validators(
    node: Node, namespace: str, count: int, selector: str = "app=stellar-validator"
) -> list[dict[str, Any]]:
    """Wait until `count` validator pods run with an IP and are Ready; return them."""

    def ready() -> list[dict[str, Any]] | None:
        pods = node.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        good = [
            p
            for p in live
            if p["status"].get("podIP")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return good if len(good) == count and len(live) == count else None

    return wait_until(ready, timeout=SLOW, interval=1, message=f"{count} validators Ready")


def logs(node: Node, namespace: str, pod: str) -> str:
    return node.kubectl("logs", "-n", namespace, pod, "-c", "stellar-core")


def connect_between(node: Node, namespace: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    def told(pod: dict[str, Any], other: dict[str, Any]) -> bool:
        line = f"/connect?peer={other['status']['podIP']}&port=11625"
        return line in unquote(logs(node, namespace, pod["metadata"]["name"]))

    return told(a, b) or told(b, a)
