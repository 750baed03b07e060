"""The injector as users meet it, on a real node: installed from manifests/, real validator pods.

One story, in order (pytest runs a file's tests in order; each step builds on the last):
install → the injector's replicas Ready as their ServiceAccount, each serving admission, one
leader → the example validator Deployment applied unchanged (its resource requests lowered to
fit the node) → injected, Running → the postStart hook called the node's admin port from
inside the container → canonical ConfigMap and mirror hold the pod IPs → the mounted peers
file follows the set → with the admin port public, running nodes get `connect` for a new
replica (http mode) → exec mode through pods/exec → uninstall leaves nothing of ours.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import binaries
from tests.node.conftest import SYSTEM_NAMESPACE, Node, install, uninstall, wait_in_force
from tests.node.validators import (
    SLOW,
    TIER_LABEL,
    VALIDATOR_SET_LABEL,
    add_validator,
    apply,
    authenticated,
    connect_between,
    example_documents,
    logs,
    running_validators,
    status_rows,
    validator_namespace,
)
from tests.polling import wait_until
from webhook import names

ROOT = Path(__file__).resolve().parents[2]
SERVICE_HOST = "stellar-peer-injector.stellar-system.svc"
LABEL = "app.kubernetes.io/name=stellar-peer-injector"


def injector_pods(node: Node) -> list[dict[str, Any]]:
    return list(node.json("get", "pods", "-n", SYSTEM_NAMESPACE, "-l", LABEL)["items"])


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics_of(pod: dict[str, Any]) -> str:
    """GET /metrics from the pod IP: the host reaches pod IPs directly on this node."""
    with socket.create_connection((pod["status"]["podIP"], 9090), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return raw.decode()


def peers_of(node: Node, namespace: str, name: str = names.CONFIGMAP_NAME) -> set[str]:
    data = node.json("get", "configmap", name, "-n", namespace)["data"]
    return set(data[names.KEY_TXT].split())


@pytest.fixture(scope="module")
def installed_node(installed: Node) -> Node:
    return installed


@pytest.fixture(scope="module")
def private_ns(installed_node: Node) -> str:
    """The example unchanged (admin port on 127.0.0.1): only the pod itself can call it."""
    return validator_namespace(installed_node, "validators")


def test_injector_replicas_are_ready_as_their_service_account(installed_node: Node) -> None:
    deployment = installed_node.json(
        "get", "deployment", "stellar-peer-injector", "-n", SYSTEM_NAMESPACE
    )
    want = deployment["spec"]["replicas"]
    assert want >= 2
    pods = wait_until(
        lambda: (
            [
                p
                for p in injector_pods(installed_node)
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", [])
                )
            ]
            or None
        ),
        timeout=SLOW,
        message="injector pods Ready",
    )
    assert len(pods) == want
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "stellar-peer-injector"
        assert pod["spec"]["nodeName"] == "stellar-node"
        # Its token is the ServiceAccount's own, projected by the kubelet.
        assert any(v.get("projected") for v in pod["spec"]["volumes"])


def test_installed_with_no_certificate_step_injects_within_a_minute(installed_node: Node) -> None:
    """install.sh applies manifests/ and nothing else: the injector made its CA and Secret."""
    deployment = installed_node.json(
        "get", "deployment", "stellar-peer-injector", "-n", SYSTEM_NAMESPACE
    )
    available = next(c for c in deployment["status"]["conditions"] if c["type"] == "Available")
    assert available["status"] == "True"
    since = time.time()
    secret = installed_node.json(
        "get", "secret", "stellar-peer-injector-tls", "-n", SYSTEM_NAMESPACE
    )
    assert {"tls.crt", "tls.key", "ca.crt", "ca.key"} <= set(secret["data"])
    webhook = installed_node.json("get", "mutatingwebhookconfiguration", "stellar-peer-injector")
    bundle = base64.b64decode(webhook["webhooks"][0]["clientConfig"]["caBundle"])
    assert base64.b64decode(secret["data"]["ca.crt"]).strip() in bundle
    namespace = validator_namespace(installed_node, "nocerts")
    # From the Deployment turning Available (install.sh waits for it) to an injected pod.
    left = 60 - (since - _seconds(available["lastTransitionTime"]))
    wait_until(
        lambda: probe_injected(installed_node, namespace),
        timeout=left,
        interval=2,
        message="a validator pod injected",
    )
    installed_node.kubectl("delete", "namespace", namespace, "--wait=false")


def probe_injected(node: Node, namespace: str) -> bool:
    """Create a validator pod `probe` (again); whether admission injected it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "stellar-core",
                    "image": "stellar/stellar-core:21.3.1-2007.4ede19620.focal",
                }
            ]
        },
    }
    node.kubectl("delete", "pod", "probe", "-n", namespace, "--ignore-not-found", "--wait=false")
    node.kubectl("create", "-f", "-", stdin=json.dumps(pod))
    found = node.json("get", "pod", "probe", "-n", namespace)
    return names.STATUS_ANNOTATION in (found["metadata"].get("annotations") or {})


def _seconds(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def _post_review(pod_ip: str, ca_pem: str, body: bytes) -> dict[str, Any]:
    ctx = ssl.create_default_context(cadata=ca_pem)
    head = (
        f"POST /mutate HTTP/1.1\r\nHost: {SERVICE_HOST}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection((pod_ip, 8443), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVICE_HOST) as sock,
    ):
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert b" 200 " in status, status
    return dict(json.loads(answer.split(b"\r\n\r\n", 1)[1]))


def test_every_replica_serves_admission(installed_node: Node, private_ns: str) -> None:
    webhook = installed_node.json("get", "mutatingwebhookconfiguration", "stellar-peer-injector")
    ca = base64.b64decode(webhook["webhooks"][0]["clientConfig"]["caBundle"]).decode()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": private_ns},
        "spec": {"containers": [{"name": "stellar-core", "image": "stellar/stellar-core:21"}]},
    }
    for replica in injector_pods(installed_node):
        uid = str(uuid.uuid4())
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": private_ns,
                "operation": "CREATE",
                "object": pod,
            },
        }
        answer = _post_review(replica["status"]["podIP"], ca, json.dumps(review).encode())
        assert answer["response"]["uid"] == uid
        assert answer["response"]["allowed"] is True
        assert answer["response"].get("patch"), f"{replica['metadata']['name']} did not inject"


def test_one_leader_writes(installed_node: Node, private_ns: str) -> None:
    def leaders() -> list[str] | None:
        found = [
            p["metadata"]["name"]
            for p in injector_pods(installed_node)
            if metric(metrics_of(p), "stellar_leader") == 1
        ]
        return found if len(found) == 1 else None

    (leader,) = wait_until(leaders, timeout=SLOW, interval=1, message="exactly one leader")
    lease = installed_node.json("get", "lease", "stellar-peer-injector", "-n", SYSTEM_NAMESPACE)
    assert lease["spec"]["holderIdentity"] == leader
    # The canonical ConfigMap exists and only the leader has written ConfigMaps.
    wait_until(
        lambda: installed_node.json(
            "get", "configmap", names.CONFIGMAP_NAME, "-n", SYSTEM_NAMESPACE
        ),
        timeout=SLOW,
        message="the canonical ConfigMap",
    )
    for pod in injector_pods(installed_node):
        writes = metric(metrics_of(pod), "stellar_configmap_writes_total")
        if pod["metadata"]["name"] == leader:
            assert writes >= 1
        else:
            assert writes == 0, pod["metadata"]["name"]


def test_example_validators_run_injected_and_the_hook_calls_their_admin_port(
    installed_node: Node, private_ns: str
) -> None:
    apply(installed_node, private_ns, example_documents())
    (first,) = running_validators(installed_node, private_ns, 1)
    first_ip = first["status"]["podIP"]
    wait_until(
        lambda: peers_of(installed_node, private_ns) >= {f"{first_ip}:11625"},
        timeout=SLOW,
        message="the mirror holds the first validator",
    )
    installed_node.kubectl(
        "scale", "-n", private_ns, "deployment/stellar-validator", "--replicas", "3"
    )
    pods = running_validators(installed_node, private_ns, 3)
    for pod in pods:
        meta = pod["metadata"]
        assert meta["labels"].get(names.INJECTED_LABEL) == "true"
        assert names.STATUS_ANNOTATION in meta["annotations"]
        container = pod["spec"]["containers"][0]
        assert container["lifecycle"]["postStart"]["exec"]["command"][0] == "/bin/sh"
        assert any(m["mountPath"] == "/etc/stellar/peers" for m in container["volumeMounts"])
        assert pod["status"]["phase"] == "Running"
        # The hook asked `info` from inside the container: the admin port is on 127.0.0.1.
        wait_until(
            lambda name=meta["name"]: "[Http INFO] /info" in logs(installed_node, private_ns, name),
            timeout=SLOW,
            message=f"the hook's info call in {meta['name']}",
        )
    # The two that started after the first was Ready were told about it by their hook.
    for pod in pods:
        if pod["metadata"]["name"] == first["metadata"]["name"]:
            continue
        wait_until(
            lambda name=pod["metadata"]["name"]: (
                f"/connect?peer={first_ip}&port=11625" in logs(installed_node, private_ns, name)
            ),
            timeout=SLOW,
            message="the hook's connect to the first validator",
        )


def test_configmaps_hold_the_pod_ips_and_the_mounted_file_follows(
    installed_node: Node, private_ns: str
) -> None:
    pods = running_validators(installed_node, private_ns, 3)
    want = {f"{p['status']['podIP']}:11625" for p in pods}
    for ns in (SYSTEM_NAMESPACE, private_ns):
        wait_until(
            lambda ns=ns: peers_of(installed_node, ns) == want,
            timeout=SLOW,
            message=f"{want} in {ns}",
        )
    first = min(pods, key=lambda p: p["metadata"]["creationTimestamp"])

    def mounted() -> set[str]:
        out = installed_node.kubectl(
            "exec",
            "-n",
            private_ns,
            first["metadata"]["name"],
            "-c",
            "stellar-core",
            "--",
            "cat",
            "/etc/stellar/peers/peers.txt",
        )
        return set(out.split())

    # The first pod started with a smaller set: the kubelet rewrites its mounted file.
    wait_until(lambda: mounted() == want, timeout=SLOW, interval=2, message="peers.txt in the pod")


def test_validators_really_connect_and_a_new_one_joins_them(
    installed_node: Node, private_ns: str
) -> None:
    """Three validators, each its own Deployment and seed; http mode reaches the admin port
    at the pod IP, so the node serves it publicly. Every node authenticates the others; a
    fourth that no hook connects is connected by the reload controller and authenticated;
    `status` says current."""
    installed_node.kubectl("delete", "namespace", private_ns, "--wait=false")
    ns = validator_namespace(installed_node, "public")
    docs = example_documents(public_admin=True)
    selector = f"{VALIDATOR_SET_LABEL}=true"
    for suffix in ("a", "b", "c"):
        add_validator(installed_node, ns, suffix, docs)
    three = running_validators(installed_node, ns, 3, selector)

    def mesh(pods: list[dict[str, Any]]) -> bool:
        addresses = {f"{p['status']['podIP']}:11625" for p in pods}
        return all(authenticated(p) >= addresses - {f"{p['status']['podIP']}:11625"} for p in pods)

    wait_until(lambda: mesh(three), timeout=SLOW, interval=2, message="the three authenticated")
    # The fourth brings a postStart hook of its own (kept: none injected), so its node
    # dials nobody by itself and only the reload controller can connect it.
    add_validator(installed_node, ns, "d", docs, own_post_start=True)
    four = running_validators(installed_node, ns, 4, selector)
    (new,) = [
        p for p in four if p["metadata"]["name"] not in {q["metadata"]["name"] for q in three}
    ]
    for pod in three:
        wait_until(
            lambda pod=pod: connect_between(installed_node, ns, pod, new),
            timeout=SLOW,
            interval=1,
            message=f"a connect between {new['metadata']['name']} and {pod['metadata']['name']}",
        )
    wait_until(lambda: mesh(four), timeout=SLOW, interval=2, message="the four authenticated")

    def status_current() -> str | None:
        run = installed_node.stellar_peers("status")
        return run.stdout if run.returncode == 0 else None

    table = wait_until(status_current, timeout=SLOW, interval=2, message="status exit 0")
    rows = status_rows(table, ns)
    assert len(rows) == 4, table
    assert all(row["STATE"] == "current" and row["PEERS"] == "3/3" for row in rows), table


def test_an_injector_rollout_admits_no_validator_uninjected(installed_node: Node) -> None:
    """Old replicas drain (unready, still serving) while the Service moves to the new ones."""
    ns = validator_namespace(installed_node, "rollout")
    probe = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "probe-", "namespace": ns},
            "spec": {"containers": [{"name": "stellar-core", "image": "stellar/stellar-core:21"}]},
        }
    )

    def admitted_injected() -> bool:
        # Server-side dry run: the API server calls the webhook, nothing is created.
        out = installed_node.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=probe
        )
        return json.loads(out)["metadata"].get("labels", {}).get(names.INJECTED_LABEL) == "true"

    wait_until(admitted_injected, timeout=SLOW, message="injection before the rollout")
    installed_node.kubectl(
        "rollout", "restart", "-n", SYSTEM_NAMESPACE, "deployment/stellar-peer-injector"
    )
    uninjected = total = 0
    deadline = time.monotonic() + SLOW

    def rolled_out() -> bool:
        d = installed_node.json(
            "get", "deployment", "stellar-peer-injector", "-n", SYSTEM_NAMESPACE
        )
        status, want = d["status"], d["spec"]["replicas"]
        old_left = [
            p for p in injector_pods(installed_node) if p["metadata"].get("deletionTimestamp")
        ]
        return (
            status.get("updatedReplicas") == want
            and status.get("availableReplicas") == want
            and status.get("replicas") == want
            and not old_left
        )

    while time.monotonic() < deadline:
        done = rolled_out()
        total += 1
        uninjected += 0 if admitted_injected() else 1
        if done:
            break
    assert rolled_out(), "the injector rollout did not finish"
    assert total >= 5, "too few admissions during the rollout to judge it"
    assert uninjected == 0, f"{uninjected} of {total} admissions during the rollout were uninjected"


def test_exec_mode_reaches_a_private_admin_port_through_pods_exec(installed_node: Node) -> None:
    """Admin ports on 127.0.0.1 as the example ships them: only an exec into the container
    reaches them. `http-command` %-encodes the query as stellar-core does, so the node's
    log line is decoded before it is compared. Two validators, then a third that brings a
    postStart hook of its own (kept, so it is not injected): its node dials nobody by
    itself, and only the controller, through pods/exec, can connect it to the running two.
    All three then authenticate each other."""
    installed_node.kubectl("delete", "namespace", "-l", f"{TIER_LABEL}=true", "--wait=false")
    installed_node.kubectl(
        "wait", "--for=delete", "namespace", "-l", f"{TIER_LABEL}=true", "--timeout=240s"
    )
    install("manifests/overlays/exec")  # admin on 127.0.0.1: exec only
    ns = validator_namespace(installed_node, "exec")
    wait_in_force(installed_node)
    docs = example_documents()
    selector = f"{VALIDATOR_SET_LABEL}=true"
    for suffix in ("x", "y"):
        add_validator(installed_node, ns, suffix, docs)
    two = running_validators(installed_node, ns, 2, selector)
    add_validator(installed_node, ns, "z", docs, own_post_start=True)
    three = running_validators(installed_node, ns, 3, selector)
    (new,) = [p for p in three if p["metadata"]["name"] not in {q["metadata"]["name"] for q in two}]
    # Whichever side the controller asks, a connect crosses between the new node and each
    # running one: in the new node's log (for them) or in theirs (for it).
    for pod in two:
        wait_until(
            lambda pod=pod: connect_between(installed_node, ns, pod, new),
            timeout=SLOW,
            interval=1,
            message=f"an exec'd connect between {new['metadata']['name']} and "
            f"{pod['metadata']['name']}",
        )

    def statuses() -> list[dict[str, Any]] | None:
        pods = running_validators(installed_node, ns, 3, selector)
        found = [
            p["metadata"].get("annotations", {}).get(names.CONNECTION_STATUS_ANNOTATION)
            for p in pods
        ]
        return [json.loads(f) for f in found] if all(found) else None

    # What each node really did, read back from its `peers` through exec, is on the pod.
    def all_connected() -> list[dict[str, Any]] | None:
        found = statuses()
        return found if found and all(s["connected"] == s["expected"] == 2 for s in found) else None

    settled = wait_until(
        all_connected, timeout=SLOW, interval=2, message="every exec validator connected to two"
    )
    assert all(s["missing"] == [] for s in settled), settled

    def status_current() -> str | None:
        # Exit 0 is every node current against the set in force; that set is whole once
        # the leader's identity learner has each node's network (a node whose exec'd
        # `info` failed under load sits in `unknown` until asked again).
        run = installed_node.stellar_peers("status", "--reload-mode", "exec")
        rows = status_rows(run.stdout, ns)
        whole = len(rows) == 3 and all(r["PEERS"] == "2/2" for r in rows)
        return run.stdout if run.returncode == 0 and whole else None

    table = wait_until(status_current, timeout=SLOW, interval=2, message="status exit 0")
    print(table)  # docs/operations.md shows this output
    rows = status_rows(table, ns)
    assert len(rows) == 3, table
    assert all(r["STATE"] == "current" and r["PEERS"] == "2/2" for r in rows), table
    assert all(r["MODE"] == "exec" for r in rows), table


def test_uninstall_leaves_nothing_of_ours(installed_node: Node) -> None:
    installed_node.kubectl("delete", "namespace", "-l", f"{TIER_LABEL}=true", "--wait=false")
    uninstall("manifests/overlays/exec")
    assert installed_node.kubectl("get", "namespace", SYSTEM_NAMESPACE, check=False) == ""
    for kind in (
        "clusterrole",
        "clusterrolebinding",
        "mutatingwebhookconfiguration",
        "validatingadmissionpolicy",
        "validatingadmissionpolicybinding",
    ):
        assert installed_node.kubectl("get", kind, "-l", LABEL, "-o", "name") == "", kind
    left = installed_node.kubectl("get", "configmap", "-A", "-l", LABEL, "-o", "name")
    assert left == "", f"mirrors left behind: {left}"
    assert not re.search(r"stellar-peer-injector", installed_node.kubectl("get", "all", "-A"))


def _helm(node: Node, *args: str) -> str:
    out = subprocess.run(
        [binaries.helm(), "--kubeconfig", node.kubeconfig, *args], capture_output=True, text=True
    )
    assert out.returncode == 0, f"helm {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return out.stdout


def test_helm_install_upgrade_uninstall_with_injection_in_between(installed_node: Node) -> None:
    """After the kustomize install is gone: the chart alone, its own certificate, then removed."""
    chart = str(ROOT / "charts" / "stellar-peer-injector")
    release = ("stellar-peer-injector", chart, "--namespace", SYSTEM_NAMESPACE)
    rollout = ("rollout", "status", "-n", SYSTEM_NAMESPACE, "deployment/stellar-peer-injector")
    _helm(installed_node, "install", *release, "--create-namespace", "--wait", "--timeout", "180s")
    installed_node.kubectl(*rollout, "--timeout", "180s")
    namespace = validator_namespace(installed_node, "helm")
    wait_until(
        lambda: probe_injected(installed_node, namespace),
        timeout=60,
        interval=2,
        message="injected after helm install",
    )
    _helm(installed_node, "upgrade", *release, "--set", "logLevel=DEBUG", "--wait")
    installed_node.kubectl(*rollout, "--timeout", "180s")
    deployment = installed_node.json(
        "get", "deployment", "stellar-peer-injector", "-n", SYSTEM_NAMESPACE
    )
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STELLAR_INJECTOR_LOG_LEVEL", "value": "DEBUG"} in env
    wait_until(
        lambda: probe_injected(installed_node, namespace),
        timeout=60,
        interval=2,
        message="injected after helm upgrade",
    )
    _helm(
        installed_node,
        "uninstall",
        "stellar-peer-injector",
        "--namespace",
        SYSTEM_NAMESPACE,
        "--wait",
    )
    webhooks = installed_node.kubectl(
        "get", "mutatingwebhookconfiguration", "-l", LABEL, "-o", "name"
    )
    assert webhooks == ""
    # The Secret the injector made is not part of the release: it goes with the namespace.
    installed_node.kubectl("delete", "namespace", SYSTEM_NAMESPACE, namespace, "--wait=true")
    assert not re.search(r"stellar-peer-injector", installed_node.kubectl("get", "all", "-A"))
