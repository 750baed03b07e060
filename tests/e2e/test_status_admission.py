"""`status` names the admission mode of what is installed, not of its own settings.

An overlay picks the injector's mode; `stellar-peers status` runs with defaults
(auto: policy on this API server), so it once said "policy mode" of a webhook-mode
install. Here the objects of one configuration name are created and removed in
turn, and the line read each time, against the real API server.
"""

from __future__ import annotations

import contextlib
import dataclasses

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import Cluster
from webhook.cli.check_admission import installed_line
from webhook.core.injection import policy
from webhook.settings import Settings


def _webhook_configuration(name: str) -> dict[str, object]:
    """Ours by name only: no webhooks, so it changes no admission."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [],
    }


def test_status_names_the_mode_installed_whatever_its_own_settings(
    cluster: Cluster, settings: Settings
) -> None:
    name = settings.webhook_config_name
    auto = dataclasses.replace(settings, admission_mode="auto")
    admreg = client.AdmissionregistrationV1Api(cluster.api_client)
    custom = client.CustomObjectsApi(cluster.api_client)
    try:
        assert installed_line(auto, cluster.api_client).startswith("admission: none in force")

        admreg.create_mutating_webhook_configuration(_webhook_configuration(name))
        webhook_only = installed_line(auto, cluster.api_client)
        assert webhook_only.startswith("admission: webhook mode (MutatingWebhookConfiguration")
        assert "these settings would pick policy" in webhook_only

        # The binding scopes to this test's own label: no namespace has it.
        for body in (policy.policy(settings), policy.binding(settings)):
            plural = (
                policy.POLICY_RESOURCE
                if body["kind"].endswith("Policy")
                else policy.BINDING_RESOURCE
            )
            custom.create_cluster_custom_object(policy.GROUP, "v1", plural, body)
        assert installed_line(auto, cluster.api_client).startswith("admission: switching modes")

        admreg.delete_mutating_webhook_configuration(name)
        in_policy = installed_line(auto, cluster.api_client)
        assert in_policy.startswith("admission: policy mode (admission_mode is auto"), in_policy
        assert "MutatingAdmissionPolicy" in in_policy
        assert "binding installed" in in_policy
        webhook_settings = installed_line(settings, cluster.api_client)
        assert webhook_settings.startswith("admission: policy mode (MutatingAdmissionPolicy")
        assert "these settings would pick webhook" in webhook_settings
    finally:
        with contextlib.suppress(ApiException):
            admreg.delete_mutating_webhook_configuration(name)
        for plural in (policy.BINDING_RESOURCE, policy.POLICY_RESOURCE):
            with contextlib.suppress(ApiException):
                custom.delete_cluster_custom_object(policy.GROUP, "v1", plural, name)
