"""Self-managed certificates against the real API server, run as the ServiceAccount.

`stellar-peers serve` (not --local) runs as a subprocess with a kubeconfig
holding a token of the ServiceAccount manifests/ binds (RBAC from
`kubectl kustomize manifests/`, moved into a test namespace). With no Secret it
creates one, puts its CA in the webhook configuration's caBundle and only then
turns ready and opens its TLS port; a deleted Secret is recreated with a new
CA that joins the caBundle; two processes starting together make one CA; and
`--cert-mode external` (cert-manager's Secret mounted) creates and patches
nothing. Every call the certificate controller makes is granted by manifests/.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, files, install
from tests.e2e.conftest import Cluster
from tests.e2e.private_cluster import ServeProcess, free_ports
from tests.e2e.test_rbac import SA_NAME, Installed, installed  # noqa: F401 (the fixture)
from tests.polling import wait_until
from tests.rbac_rules import Recorder, refused, rendered_rbac
from tests.service import running_service
from webhook import names
from webhook.cli.registration import webhook_configuration
from webhook.settings import Settings

# The ClusterRole's resourceNames allow this one configuration only.
CONFIGURATION = "stellar-peer-injector"


def sa_kubeconfig(cluster: Cluster, installed: Installed, path: Path) -> str:  # noqa: F811
    admin = cluster.api_client.configuration
    token = (
        client.CoreV1Api(installed.admin)
        .create_namespaced_service_account_token(
            SA_NAME, installed.system, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "e2e",
                "cluster": {"server": admin.host, "certificate-authority": admin.ssl_ca_cert},
            }
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "e2e", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
def configuration(installed: Installed) -> Iterator[client.AdmissionregistrationV1Api]:  # noqa: F811
    """Our webhook configuration without a caBundle, no Secret; matching no real namespace."""
    admreg = client.AdmissionregistrationV1Api(installed.admin)
    core = client.CoreV1Api(installed.admin)
    with contextlib.suppress(ApiException):
        core.delete_namespaced_secret(install.secret_name(SA_NAME), installed.system)
    with contextlib.suppress(ApiException):
        admreg.delete_mutating_webhook_configuration(CONFIGURATION)
    body = webhook_configuration(
        settings=Settings(namespace=installed.system, webhook_config_name=CONFIGURATION),
        ca_bundle=b"",
        client_config={"url": "https://127.0.0.1:1/mutate"},
    )
    del body["webhooks"][0]["clientConfig"]["caBundle"]
    body["webhooks"][0]["namespaceSelector"]["matchLabels"] = {"stellar-test": "never-matches"}
    admreg.create_mutating_webhook_configuration(body)
    yield admreg
    admreg.delete_mutating_webhook_configuration(CONFIGURATION)


def serve_settings(kubeconfig: str, installed: Installed, folder: Path, **extra: Any) -> Settings:  # noqa: F811
    port, metrics_port = free_ports(2)
    folder.mkdir(parents=True, exist_ok=True)
    return Settings(
        kubeconfig=kubeconfig,
        namespace=installed.system,
        webhook_config_name=CONFIGURATION,
        enable_watcher=False,
        port=port,
        metrics_port=metrics_port,
        cert_file=str(folder / "tls.crt"),
        key_file=str(folder / "tls.key"),
        cert_sync_seconds=0.5,
        shutdown_grace_seconds=0,
        admission_mode="webhook",  # certificates are the webhook's; auto would pick policies
        **extra,
    )


@contextlib.contextmanager
def serving(settings: Settings, log_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(settings, log_path=log_path, local=False)
    try:
        yield process
    finally:
        process.stop()


def ready(settings: Settings) -> bool:
    url = f"http://127.0.0.1:{settings.metrics_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


def ca_bundle(admreg: client.AdmissionregistrationV1Api) -> list[bytes]:
    stored = admreg.read_mutating_webhook_configuration(CONFIGURATION)
    encoded = stored.webhooks[0].client_config.ca_bundle
    return authority.split_pem_bundle(base64.b64decode(encoded)) if encoded else []


def secret_ca(installed: Installed) -> bytes:  # noqa: F811
    secret = client.CoreV1Api(installed.admin).read_namespaced_secret(
        install.secret_name(SA_NAME), installed.system
    )
    return base64.b64decode(secret.data[files.CA_CERT])


def served_cert(settings: Settings, trusted: list[bytes]) -> bytes:
    """The certificate on the TLS port, verified as the API server does: caBundle, Service name."""
    context = ssl.create_default_context(cadata=b"".join(trusted).decode())
    hostname = f"{settings.service_name}.{settings.namespace}.svc"
    with (
        socket.create_connection(("127.0.0.1", settings.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der).encode()


def test_fresh_start_creates_the_secret_trusts_its_ca_then_serves(
    cluster: Cluster,
    installed: Installed,  # noqa: F811
    configuration: client.AdmissionregistrationV1Api,
    tmp_path: Path,
) -> None:
    kubeconfig = sa_kubeconfig(cluster, installed, tmp_path / "kubeconfig")
    settings = serve_settings(kubeconfig, installed, tmp_path / "tls")
    with serving(settings, tmp_path / "serve.log") as process:
        wait_until(lambda: ready(settings), timeout=60, message=f"ready: {process.tail()}")
        ca = secret_ca(installed)
        assert ca_bundle(configuration) == [ca]
        assert authority.signed_by(served_cert(settings, [ca]), ca)
        assert [e["outcome"] for e in process.named("certs.synced")] == ["created"]

        # Deleted: recreated with a new CA, which joins the caBundle in front of the old.
        client.CoreV1Api(installed.admin).delete_namespaced_secret(
            install.secret_name(SA_NAME), installed.system
        )

        def recreated() -> bytes | None:
            found = secret_ca(installed)
            return found if found != ca else None

        new_ca = wait_until(
            recreated,
            timeout=30,
            message="the Secret recreated",
        )
        wait_until(
            lambda: ca_bundle(configuration) == [new_ca, ca],
            timeout=30,
            message="the new CA in the caBundle, the old one kept",
        )
        wait_until(
            lambda: authority.signed_by(served_cert(settings, [new_ca]), new_ca),
            timeout=30,
            message="the new certificate served",
        )
        assert ready(settings)


def test_two_processes_starting_together_make_one_ca(
    cluster: Cluster,
    installed: Installed,  # noqa: F811
    configuration: client.AdmissionregistrationV1Api,
    tmp_path: Path,
) -> None:
    kubeconfig = sa_kubeconfig(cluster, installed, tmp_path / "kubeconfig")
    first = serve_settings(kubeconfig, installed, tmp_path / "a", identity="a")
    second = serve_settings(kubeconfig, installed, tmp_path / "b", identity="b")
    with serving(first, tmp_path / "a.log") as a, serving(second, tmp_path / "b.log") as b:
        for settings, process in ((first, a), (second, b)):
            wait_until(
                functools.partial(ready, settings), timeout=60, message=f"ready: {process.tail()}"
            )
        ca = secret_ca(installed)
        assert ca_bundle(configuration) == [ca]
        for settings in (first, second):
            assert authority.signed_by(served_cert(settings, [ca]), ca)
        outcomes = sorted(e["outcome"] for p in (a, b) for e in p.named("certs.synced"))
        assert outcomes in (["adopted", "created"], ["created", "unchanged"])


def test_external_mode_reads_the_mounted_pair_and_creates_or_patches_nothing(
    cluster: Cluster,
    installed: Installed,  # noqa: F811
    configuration: client.AdmissionregistrationV1Api,
    tmp_path: Path,
) -> None:
    # As cert-manager leaves it: tls.crt, tls.key and ca.crt (no ca.key), mounted by the kubelet.
    ca = authority.make_ca()
    dns = authority.service_dns_names(service=SA_NAME, namespace=installed.system)
    serving_pair = authority.make_serving(ca=ca, dns_names=dns)
    bundle = files.Bundle(ca_cert=ca.cert_pem, serving=serving_pair)
    core = client.CoreV1Api(installed.admin)
    core.create_namespaced_secret(
        installed.system,
        install.secret_body(
            namespace=installed.system, secret=install.secret_name(SA_NAME), bundle=bundle
        ),
    )
    files.write_bundle(tmp_path / "tls", bundle)
    before = core.read_namespaced_secret(install.secret_name(SA_NAME), installed.system)
    kubeconfig = sa_kubeconfig(cluster, installed, tmp_path / "kubeconfig")
    settings = serve_settings(kubeconfig, installed, tmp_path / "tls", cert_mode="external")
    with serving(settings, tmp_path / "serve.log") as process:
        wait_until(lambda: ready(settings), timeout=60, message=f"ready: {process.tail()}")
        assert served_cert(settings, [ca.cert_pem]) == serving_pair.cert_pem
        assert ca_bundle(configuration) == []  # cert-manager's CA injector's job
        after = core.read_namespaced_secret(install.secret_name(SA_NAME), installed.system)
        assert after.metadata.resource_version == before.metadata.resource_version
        assert process.named("certs.synced") == []


def test_every_call_the_certificate_controller_makes_is_granted_by_the_manifests(
    cluster: Cluster,
    installed: Installed,  # noqa: F811
    configuration: client.AdmissionregistrationV1Api,
    tmp_path: Path,
) -> None:
    api_client = client.ApiClient(installed.sa_api.configuration)
    recorder = Recorder(api_client)
    settings = serve_settings("", installed, tmp_path / "tls")
    secret = install.secret_name(SA_NAME)
    admin = client.CoreV1Api(installed.admin)
    # As `serve` wires it: installing on every replica, renewing as the leader (no
    # watcher here, so no Lease: the one replica leads).
    with running_service(settings, api_client=api_client, renew_certificates=True):
        bundle = install.read_secret(admin, namespace=installed.system, secret=secret)
        assert bundle is not None  # created by the controller: the replica is ready
        assert bundle.ca_key is not None
        # Due for renewal: the leader replaces it (get, update), caBundle first (get, patch).
        ca = authority.KeyPair(bundle.ca_cert, bundle.ca_key)
        dns = authority.service_dns_names(service=SA_NAME, namespace=installed.system)
        expiring = authority.make_serving(ca=ca, dns_names=dns, validity=timedelta(days=1))
        install.write_secret(
            admin,
            namespace=installed.system,
            secret=secret,
            bundle=files.Bundle(ca_cert=ca.cert_pem, serving=expiring, ca_key=ca.key_pem),
        )

        def renewed() -> bytes | None:
            now = install.read_secret(admin, namespace=installed.system, secret=secret)
            fresh = now is not None and now.serving.cert_pem != expiring.cert_pem
            return now.serving.cert_pem if now is not None and fresh else None

        cert = wait_until(renewed, timeout=30, message="the leader to renew the expiring pair")
        wait_until(
            lambda: Path(settings.cert_file).read_bytes() == cert,
            timeout=30,
            message="the renewed pair on disk",
        )
    api_client.close()
    verbs = {(c.verb, c.resource) for c in recorder.calls}
    for needed in (
        ("create", "secrets"),
        ("get", "secrets"),
        ("update", "secrets"),
        ("get", "mutatingwebhookconfigurations"),
        ("patch", "mutatingwebhookconfigurations"),
    ):
        assert needed in verbs, f"{needed} not recorded: the run did not exercise it"
    assert (
        refused(
            recorder.calls, rendered_rbac(), namespaces={names.SYSTEM_NAMESPACE: installed.system}
        )
        == []
    )
