"""Self-managed certificates (`--cert-mode self`): the serving pair comes from the cluster.

Every replica runs this: it gets or creates the TLS Secret and puts its CA in
the webhook's caBundle (`certs.bootstrap`), then writes the serving pair to
`cert_file`/`key_file` (an emptyDir in the Deployment), where the server loads
it and later reloads it. The Lease holder also renews. Until the first pair is
written the replica is not ready and its TLS port is not open. Each replica
reads the Secret again every `cert_sync_seconds`, so a renewal or a deleted
(then recreated) Secret reaches every replica without a restart, and the old
files keep serving meanwhile.

In policy mode (`follow_only`) a replica only reads: it serves the Secret's pair, when
it can, so that a webhook configuration of ours left during a mode switch never calls
a replica that cannot answer; it creates, renews and patches nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs import authority, bootstrap, files, install
from webhook.core.injection import admission_switch as switch
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.rest import Rest
from webhook.kube.rest import path as url_path
from webhook.settings import Settings

log = logging.getLogger(__name__)

# Before the first pair: try again soon (the API server may be starting too).
RETRY_SECONDS: Final = 2.0
_SYNC_FAILURES: Final[tuple[type[BaseException], ...]] = (
    *FAILURES,
    bootstrap.StepFailed,
    ValueError,
)


def managed(settings: Settings, *, local: bool) -> bool:
    """Whether this process obtains its own certificate from the cluster."""
    return settings.cert_mode == "self" and not local


def target(settings: Settings) -> bootstrap.Target:
    return bootstrap.Target(
        namespace=settings.namespace,
        secret=install.secret_name(settings.service_name),
        configuration_name=settings.webhook_config_name,
        dns=authority.service_dns_names(
            service=settings.service_name, namespace=settings.namespace
        ),
    )


def write_pair(settings: Settings, serving: authority.KeyPair) -> bool:
    """Write the pair where the server reads it, key first; False when it is already there."""
    cert, key = Path(settings.cert_file), Path(settings.key_file)
    with contextlib.suppress(OSError):
        if cert.read_bytes() == serving.cert_pem and key.read_bytes() == serving.key_pem:
            return False
    for path in (cert, key):
        path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(key, serving.key_pem, mode=0o600)
    files.write_atomic(cert, serving.cert_pem, mode=0o644)
    return True


class CertificateController:
    """Obtain the serving pair, then keep it current; `installed` is set once it is on disk."""

    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        is_leader: Callable[[], bool],
        follow_only: bool = False,
    ) -> None:
        self.settings = settings
        self.rest = Rest(api_client)
        self.is_leader = is_leader
        self.follow_only = follow_only
        self.installed = asyncio.Event()
        self.last_error = ""
        # follow_only: whether our webhook configuration is in force (until seen: assume so).
        self.webhook_configured = True

    def serving_what_is_in_force(self) -> bool:
        """Policy mode's readiness: a replica the Service routes reviews to must answer
        them while our webhook configuration is in force (a mode switch under way)."""
        return self.installed.is_set() or not self.webhook_configured

    def sync_once(self) -> bootstrap.Outcome:
        """One round: Secret and caBundle as they should be, the files as the Secret says."""
        if self.follow_only:
            return self._follow()
        found = bootstrap.obtain(
            self.rest, target=target(self.settings), may_renew=self.is_leader()
        )
        if found.bundle is None:
            log.warning("certs.waiting", extra={"reason": "the Secret holds no servable pair"})
            return found.outcome
        written = write_pair(self.settings, found.bundle.serving)
        if found.outcome != "unchanged" or found.patched or written:
            log.info(
                "certs.synced",
                extra={
                    "outcome": found.outcome,
                    "ca_bundle_patched": found.patched,
                    "files_written": written,
                    "not_after": authority.not_after(found.bundle.serving.cert_pem).isoformat(),
                },
            )
        return found.outcome

    def _follow(self) -> bootstrap.Outcome:
        configuration = url_path(
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            name=self.settings.webhook_config_name,
        )
        try:
            # Only one the API server can call matters: without a caBundle nobody answers it.
            self.webhook_configured = switch.webhook_in_force(self.rest.get(configuration))
        except ApiException as exc:
            if exc.status == 403:
                # RBAC older than this version: not knowing must not hold a rollout up.
                log.warning("certs.cannot_read_webhook_configuration", extra={"status": 403})
            elif exc.status != 404:
                raise bootstrap.StepFailed(
                    f"read {configuration}: API answered {exc.status} {exc.reason}", exc.status
                ) from exc
            self.webhook_configured = False
        found = bootstrap.follow(self.rest, target=target(self.settings))
        if found is None:
            return "waiting"
        if write_pair(self.settings, found.serving):
            log.info("certs.following", extra={"files_written": True})
        return "unchanged"

    def detail(self) -> dict[str, str]:
        """For /readyz while no certificate is in place."""
        if self.installed.is_set():
            return {}
        if self.follow_only:
            if not self.webhook_configured:
                return {}
            return {
                "certificate": "policy mode: our webhook configuration is still in force and this "
                "replica has no certificate to answer it (ready once the leader removes it, "
                "or the TLS Secret can be read)"
            }
        why = self.last_error or "not obtained yet"
        return {"certificate": f"{why}; see docs/troubleshooting.md (certificate errors)"}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                outcome = await asyncio.to_thread(self.sync_once)
            except _SYNC_FAILURES as exc:  # the API, a lost 409, the disk, a bad PEM
                self.last_error = describe_failure(exc)
                log.warning("certs.sync_failed", extra={"error": self.last_error})
            else:
                if outcome != "waiting":
                    self.last_error = ""
                    self.installed.set()
                elif not self.follow_only:
                    self.last_error = "the Secret holds no servable pair; the leader renews it"
            # Policy mode without a Secret: nothing to hurry for once the first look is done.
            settled = self.installed.is_set() or self.follow_only
            interval = self.settings.cert_sync_seconds if settled else RETRY_SECONDS
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(interval, self.settings.cert_sync_seconds)):
                    await stop.wait()
