"""A ConfigMap write that hangs in one namespace does not stall the others' publishing.

The hang is real: a validating admission webhook on 127.0.0.1 that holds every
ConfigMap write in one namespace for 30 s (the API server's own maximum), as a
broken policy engine would.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import logging
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client

from certs import authority, files
from tests.e2e.conftest import make_namespace
from tests.e2e.test_watcher import add_validator, settings, wait_for_peers
from tests.kube import label_enabled
from tests.kubelet import FakeKubelet
from tests.polling import wait_until
from tests.service import running_service
from webhook.controllers.publisher import WRITE_CONCURRENCY
from webhook.settings import Settings

__all__ = ["settings"]

HANG_SECONDS = 30


class HangingWebhook:
    """Answers every review "allowed", but only after `HANG_SECONDS` (or at close)."""

    def __init__(self, folder: Path) -> None:
        ca = authority.make_ca()
        serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
        files.write_bundle(str(folder), files.Bundle(ca_cert=ca.cert_pem, serving=serving))
        self.ca = ca.cert_pem
        self.released = threading.Event()
        self.held: list[str] = []  # namespaces of the reviews held
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                hook.held.append(str(request.get("namespace")))
                hook.released.wait(HANG_SECONDS)
                answer = {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": request["uid"], "allowed": True},
                }
                data = orjson.dumps(answer)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(folder / files.TLS_CERT, folder / files.TLS_KEY)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def hanging_configmap_writes(
    admreg: client.AdmissionregistrationV1Api, *namespaces: str
) -> Iterator[HangingWebhook]:
    with tempfile.TemporaryDirectory() as folder:
        hook = HangingWebhook(Path(folder))
        name = f"hang-{uuid.uuid4().hex[:8]}"
        admreg.create_validating_webhook_configuration(
            {
                "metadata": {"name": name},
                "webhooks": [
                    {
                        "name": "hang.stellar-e2e.example",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Ignore",
                        "timeoutSeconds": HANG_SECONDS,
                        "clientConfig": {
                            "url": f"https://127.0.0.1:{hook.port}/",
                            "caBundle": base64.b64encode(hook.ca).decode(),
                        },
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE", "UPDATE"],
                                "resources": ["configmaps"],
                                "scope": "Namespaced",
                            }
                        ],
                        "namespaceSelector": {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": list(namespaces),
                                }
                            ]
                        },
                    }
                ],
            }
        )
        try:
            yield hook
        finally:
            admreg.delete_validating_webhook_configuration(name)
            hook.close()


def test_a_hung_mirror_write_does_not_stall_the_other_configmaps(
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
) -> None:
    hung, healthy = make_namespace(core, "hung"), make_namespace(core, "healthy")
    try:
        for name in (hung, healthy):
            label_enabled(core, name, settings)
        add_validator(core, kubelet, healthy, "v1", "127.0.2.101")
        with (
            hanging_configmap_writes(admreg, hung) as hook,
            running_service(settings, must_stop=False),
        ):
            wait_for_peers(core, healthy, ["127.0.2.101:11625"], timeout=20)
            wait_until(lambda: hung in hook.held, timeout=20, message="the hung write to start")
            # While that write hangs, the peer set changes: the others follow promptly.
            add_validator(core, kubelet, healthy, "v2", "127.0.2.102")
            expected = ["127.0.2.101:11625", "127.0.2.102:11625"]
            wait_for_peers(core, settings.namespace, expected, timeout=8)
            wait_for_peers(core, healthy, expected, timeout=8)
    finally:
        for name in (hung, healthy):
            core.delete_namespace(name, propagation_policy="Background")


def test_mirrors_queued_behind_hung_writes_are_written_in_the_same_round(
    core: client.CoreV1Api,
    admreg: client.AdmissionregistrationV1Api,
    kubelet: FakeKubelet,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As many hung writes as the writer runs at once fill its gate; a mirror queued
    behind them is written once they are given up, not itself given up as slow."""
    hung = [make_namespace(core, "hung") for _ in range(WRITE_CONCURRENCY)]
    later = make_namespace(core, "later")  # sorts after "hung-": queued behind them
    try:
        for name in (*hung, later):
            label_enabled(core, name, settings)
        with hanging_configmap_writes(admreg, *hung) as hook:
            add_validator(core, kubelet, later, "v1", "127.0.2.111")
            warnings = caplog.at_level(logging.WARNING, logger="webhook.controllers.publisher")
            with warnings, running_service(settings, must_stop=False):
                wait_until(
                    lambda: set(hung) <= set(hook.held),
                    timeout=20,
                    message="every hung write to start",
                )
                wait_for_peers(core, later, ["127.0.2.111:11625"], timeout=20)

                def slow() -> set[str]:
                    return {
                        getattr(r, "namespace", "")
                        for r in caplog.records
                        if r.msg == "configmap.write-slow"
                    }

                # Each hung write is given up 2 s after it began; they began a moment apart,
                # so the last may be given up just after the queued one was written.
                wait_until(
                    lambda: set(hung) <= slow(), timeout=20, message="every hung write given up"
                )
        assert later not in slow()
    finally:
        for name in (*hung, later):
            core.delete_namespace(name, propagation_policy="Background")
