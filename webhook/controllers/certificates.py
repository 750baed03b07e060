"""Self-managed certificates (`--cert-mode self`): the serving pair comes from the cluster.

Every replica runs this: it gets or creates the TLS Secret and puts its CA in
the webhook's caBundle (`certs.bootstrap`), then writes the serving pair to
`cert_file`/`key_file` (an emptyDir in the Deployment), where the server loads
it and later reloads it. The Lease holder also renews. Until the first pair is
written the replica is not ready and its TLS port is not open. Each replica
reads the Secret again every `cert_sync_seconds`, so a renewal or a deleted
(then recreated) Secret reaches every replica without a restart, and the old
files keep serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from kubernetes import client

from certs import authority, bootstrap, files, install
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.rest import Rest
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
        self, *, settings: Settings, api_client: client.ApiClient, is_leader: Callable[[], bool]
    ) -> None:
        self.settings = settings
        self.rest = Rest(api_client)
        self.is_leader = is_leader
        self.installed = asyncio.Event()
        self.last_error = ""

    def sync_once(self) -> bootstrap.Outcome:
        """One round: Secret and caBundle as they should be, the files as the Secret says."""
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

    def detail(self) -> dict[str, str]:
        """For /readyz while no certificate is in place."""
        if self.installed.is_set():
            return {}
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
                else:
                    self.last_error = "the Secret holds no servable pair; the leader renews it"
            interval = self.settings.cert_sync_seconds if self.installed.is_set() else RETRY_SECONDS
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(interval, self.settings.cert_sync_seconds)):
                    await stop.wait()
