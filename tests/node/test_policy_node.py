"""Policy mode on the real node: `manifests/` as a user applies it (admission_mode auto picks
the policy on this v1.37 API server), then every injector replica scaled to 0, and the
example validator applied unchanged still comes up injected and Running: the API server
applies the mutation itself. Then the injector comes back, and uninstalling takes the
policy along (its ClusterRole owns it)."""

from __future__ import annotations

from typing import Any

from tests.node.conftest import SYSTEM_NAMESPACE, Node, install, uninstall
from tests.node.validators import (
    SLOW,
    TIER_LABEL,
    VALIDATOR_SET_LABEL,
    add_validator,
    example_documents,
    running_validators,
    validator_namespace,
)
from tests.polling import wait_until
from webhook import names

LABEL = "app.kubernetes.io/name=stellar-peer-injector"
DEPLOYMENT = ("deployment/stellar-peer-injector", "-n", SYSTEM_NAMESPACE)


def _policy(node: Node) -> dict[str, Any] | None:
    found = node.kubectl(
        "get", "mutatingadmissionpolicy", "stellar-peer-injector", "-o", "name", check=False
    )
    return {"name": found} if found else None


def test_validator_injected_with_every_injector_replica_down(node: Node) -> None:
    node.kubectl("delete", "namespace", "-l", f"{TIER_LABEL}=true", "--wait=false")
    install("manifests")
    try:
        wait_until(lambda: _policy(node), timeout=SLOW, message="the leader to apply its policy")
        # The leader removes the base's webhook configuration once its policy has been in
        # force for a pass (operations.md, "Switching modes"), not in the pass that applies it.
        wait_until(
            lambda: (
                node.kubectl(
                    "get", "mutatingwebhookconfiguration", "stellar-peer-injector", check=False
                )
                == ""
            ),
            timeout=SLOW,
            message="policy mode to leave no webhook configuration of ours",
        )
        node.kubectl("scale", *DEPLOYMENT, "--replicas=0")
        wait_until(
            lambda: (
                node.kubectl("get", "pods", "-n", SYSTEM_NAMESPACE, "-l", LABEL, "-o", "name") == ""
            ),
            timeout=SLOW,
            message="every injector replica gone",
        )
        ns = validator_namespace(node, "policy")
        add_validator(node, ns, "p", example_documents())
        (pod,) = running_validators(node, ns, 1, f"{VALIDATOR_SET_LABEL}=true")
        metadata = pod["metadata"]
        assert metadata["labels"][names.INJECTED_LABEL] == "true"
        assert names.STATUS_ANNOTATION in metadata["annotations"]
        container = pod["spec"]["containers"][0]
        assert container["lifecycle"]["postStart"]["exec"]["command"][0] == "/bin/sh"
        assert any(v["name"] == names.VOLUME_NAME for v in pod["spec"]["volumes"])
    finally:
        node.kubectl("scale", *DEPLOYMENT, "--replicas=2", check=False)
    node.kubectl("rollout", "status", *DEPLOYMENT, "--timeout=180s")
    node.kubectl("delete", "namespace", "-l", f"{TIER_LABEL}=true", "--wait=false")
    uninstall("manifests")
    wait_until(
        lambda: _policy(node) is None,
        timeout=SLOW,
        message="the policy to go with the uninstall",
    )
