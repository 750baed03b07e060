"""The real node: kubelet + containerd with its own control plane, and the injector installed on it.

`scripts/node.sh up` brings the node up (unless it already runs) and this session takes it
down at the end unless STELLAR_KEEP_CLUSTER=1; `scripts/install.sh up` installs the injector
from `manifests/` with the images `scripts/images.sh` builds, the way a user installs it.
Everything here talks to the cluster as a user would: the admin kubeconfig for kubectl, and
the injector itself only as its ServiceAccount, inside its pods.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
NODE_SH = ROOT / "scripts" / "node.sh"
INSTALL_SH = ROOT / "scripts" / "install.sh"
SYSTEM_NAMESPACE = "stellar-system"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.node)


@dataclasses.dataclass(frozen=True)
class Node:
    kubeconfig: str
    bin_dir: str
    api_client: client.ApiClient

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        """kubectl as the cluster admin; the output, or a failure that shows stderr."""
        out = subprocess.run(
            [os.path.join(self.bin_dir, "kubectl"), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            input=stdin,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def stellar_peers(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI from a workstation, as the cluster admin (its exit code is the answer)."""
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "stellar-peers"), *args, "--kubeconfig", self.kubeconfig],
            capture_output=True,
            text=True,
        )


def _script(script: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if out.returncode != 0:
        raise AssertionError(
            f"{script.name} {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    started_here = subprocess.run([str(NODE_SH), "status"], capture_output=True).returncode != 0
    if started_here:
        _script(NODE_SH, "up")
    kubeconfig = _script(NODE_SH, "kubeconfig")
    api_client = config.new_client_from_config(config_file=kubeconfig)
    yield Node(kubeconfig=kubeconfig, bin_dir=_script(NODE_SH, "bin"), api_client=api_client)
    api_client.close()
    if started_here and os.environ.get("STELLAR_KEEP_CLUSTER") != "1":
        _script(NODE_SH, "down")
        assert_nothing_left()


def assert_nothing_left() -> None:
    """`node.sh down` stopped everything: no bridge, nothing on the node's API server port."""
    bridge = subprocess.run(["ip", "link", "show", "stellar0"], capture_output=True)
    assert bridge.returncode != 0, "the bridge stellar0 is still there"
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    assert ":17443 " not in listening, f"something still listens on 17443:\n{listening}"
    assert ":13379 " not in listening, f"the node's etcd still listens:\n{listening}"


# The node's v1.37 API server serves MutatingAdmissionPolicy, so the base (admission_mode
# auto) would run in policy mode: the webhook's tests (certificates, caBundle) pin webhook mode.
WEBHOOK_OVERLAY = "manifests/overlays/webhook"


def install(overlay: str = WEBHOOK_OVERLAY) -> str:
    """`scripts/install.sh up`: images built and loaded, manifests applied; no certificate step."""
    return _script(INSTALL_SH, "up", env={"OVERLAY": overlay})


def wait_in_force(node: Node) -> None:
    """Wait until `stellar-peers check` passes (its dry-run probe needs an enabled namespace):
    an overlay on the base (admission_mode auto) switches a webhook-mode install to policy
    mode, and until the new leader has applied the policy and removed the webhook
    configuration, validators created meanwhile are admitted uninjected (failurePolicy
    Ignore; the audit says so)."""

    def in_force() -> bool:
        return node.stellar_peers("check").returncode == 0

    wait_until(in_force, timeout=240, interval=2, message="the installation in force")


def uninstall(overlay: str = WEBHOOK_OVERLAY) -> str:
    return _script(INSTALL_SH, "down", env={"OVERLAY": overlay})


@pytest.fixture(scope="session")
def installed(node: Node) -> Node:
    install()
    return node
