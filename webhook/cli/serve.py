"""`stellar-peers serve`: the process that runs the servers and the background components.

Owns the process lifecycle: logs, metrics, SIGTERM/SIGINT (the first one
drains: unready, still serving for `shutdown_grace_seconds`; then one stop
event that every part watches), and `--local` mode, where the process makes
its own certificate and registers a MutatingWebhookConfiguration pointing at
itself on 127.0.0.1, removing it again on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from kubernetes import client
from kubernetes.config import ConfigException

from certs import authority, files
from webhook import log as logs
from webhook.admission import server
from webhook.cli import startup, wiring
from webhook.cli.registration import register, unregister, webhook_configuration
from webhook.controllers import admission_policy, certificates
from webhook.core.injection import policy
from webhook.core.selector import SelectorError
from webhook.kube import api as kube
from webhook.kube.rest import Rest
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

_DISCOVERY_TRIES = 30  # one a second: an API server restarting with us gets that long


@dataclasses.dataclass(frozen=True)
class Components:
    """The background parts that run beside the servers, and when the replica is ready."""

    parts: list[Coroutine[Any, Any, None]]
    ready: Callable[[], bool]
    # Sources that cannot list, and what to do: shown by /readyz.
    detail: Callable[[], dict[str, str]] = dict
    # Set once the serving certificate is on disk (self-managed certificates only).
    certificate_ready: asyncio.Event | None = None


def components(
    *,
    settings: Settings,
    metrics: Metrics,
    api_client: client.ApiClient,
    stop: asyncio.Event,
    renew_certificates: bool = False,
    admission: tuple[policy.Mode, str] | None = None,
) -> Components:
    """The parts `wiring.wire` declares, started (leader-only ones under the Lease);
    each returns once `stop` is set."""
    service = wiring.wire(
        settings=settings,
        metrics=metrics,
        api_client=api_client,
        renew_certificates=renew_certificates,
        admission=admission,
    )
    return Components(
        parts=service.parts(stop),
        ready=service.ready,
        detail=service.detail,
        certificate_ready=service.certificate_ready,
    )


@contextlib.contextmanager
def _local_certificates(settings: Settings) -> Iterator[tuple[Settings, bytes]]:
    """A throwaway CA and a serving pair for 127.0.0.1, in a folder removed on exit."""
    with tempfile.TemporaryDirectory(prefix="stellar-peers-") as folder:
        ca = authority.make_ca()
        serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
        files.write_bundle(folder, files.Bundle(ca_cert=ca.cert_pem, serving=serving))
        local = dataclasses.replace(
            settings,
            cert_file=f"{folder}/{files.TLS_CERT}",
            key_file=f"{folder}/{files.TLS_KEY}",
        )
        yield local, ca.cert_pem


async def _run_all(
    *,
    settings: Settings,
    metrics: Metrics,
    api_client: client.ApiClient,
    listeners: server.Listeners,
    stop: asyncio.Event,
    renew_certificates: bool,
    draining: asyncio.Event | None = None,
    admission: tuple[policy.Mode, str] | None = None,
) -> int:
    """Run the servers and the components; the first failure stops them all.

    Once `draining` is set the replica reports unready but keeps serving: the
    caller sets `stop` after the grace period.
    """
    draining = draining or asyncio.Event()
    background = components(
        settings=settings,
        metrics=metrics,
        api_client=api_client,
        stop=stop,
        renew_certificates=renew_certificates,
        admission=admission,
    )
    parts = [
        server.serve(
            settings=settings,
            metrics=metrics,
            readiness=lambda: not draining.is_set() and background.ready(),
            readiness_detail=background.detail,
            stop=stop,
            listeners=listeners,
            certificate_ready=background.certificate_ready,
        ),
        *background.parts,
    ]
    tasks = [asyncio.create_task(part) for part in parts]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        log.error("serve.part_failed", exc_info=failure)
    return 1 if failures else 0


async def drain(*, draining: asyncio.Event, stop: asyncio.Event, grace_seconds: float) -> None:
    """After the first signal: unready at once, serving for `grace_seconds`, then stop.

    The endpoints controller and kube-proxy take a moment to stop routing
    reviews to a terminating pod; closing at once would have the API server
    admit validators uninjected (failurePolicy Ignore) during an injector
    rollout. A second signal stops at once.
    """
    await draining.wait()
    log.info("serve.draining", extra={"grace_seconds": grace_seconds})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=grace_seconds)
    stop.set()


def _on_signal(draining: asyncio.Event, stop: asyncio.Event) -> None:
    if draining.is_set():
        stop.set()
    draining.set()


async def _serve(settings: Settings, *, local: bool) -> int:
    stop = asyncio.Event()
    draining = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, draining, stop)
    drainer = asyncio.create_task(
        # --local has no Service routing reviews to drain away from: it stops at once.
        drain(
            draining=draining,
            stop=stop,
            grace_seconds=0.0 if local else settings.shutdown_grace_seconds,
        )
    )
    metrics = Metrics()
    api_client = kube.api_client(settings)
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.callback(api_client.close)
        ca_bundle = b""
        if local:
            settings, ca_bundle = cleanup.enter_context(_local_certificates(settings))
        # The cluster first: an API server that cannot be reached is said so plainly.
        await _check_cluster(settings, api_client, local=local)
        admission = await _admission_mode(settings, api_client)
        webhook_mode = admission[0] == "webhook"
        if webhook_mode and not certificates.managed(settings, local=local):
            # Fail before binding or registering anything, with a message naming the files.
            server.tls_context(cert_file=settings.cert_file, key_file=settings.key_file)
        listeners = server.bind(settings=settings)
        if local and not webhook_mode:
            # --local leaves nothing behind: its policy goes on exit, as its webhook would.
            cleanup.push_async_callback(
                asyncio.to_thread, admission_policy.remove_policy, Rest(api_client), settings
            )
        if local and webhook_mode:
            url = f"https://127.0.0.1:{listeners.port}/mutate"
            api = client.AdmissionregistrationV1Api(api_client)
            body = webhook_configuration(
                settings=settings, ca_bundle=ca_bundle, client_config={"url": url}
            )
            await asyncio.to_thread(register, api, body)
            cleanup.push_async_callback(
                asyncio.to_thread, unregister, api, settings.webhook_config_name
            )
            log.info(
                "serve.local",
                extra={
                    "url": url,
                    "webhook_configuration": settings.webhook_config_name,
                    "metrics_port": listeners.metrics_port,
                },
            )
        code = await _run_all(
            settings=settings,
            metrics=metrics,
            api_client=api_client,
            listeners=listeners,
            stop=stop,
            # In a cluster (cert mode self) the certificate comes from the Secret, made if
            # missing (policy mode only reads it, for a switch); --local makes a throwaway pair.
            renew_certificates=certificates.managed(settings, local=local),
            draining=draining,
            admission=admission,
        )
    drainer.cancel()
    log.info("serve.stopped", extra={"exit_code": code})
    return code


async def _admission_mode(
    settings: Settings, api_client: client.ApiClient
) -> tuple[policy.Mode, str]:
    """The mode in force (API discovery decides `auto`), logged with why. `auto` never
    guesses: a wrong guess would have the leader delete the other mode's objects."""
    served = None
    for _ in range(_DISCOVERY_TRIES if settings.admission_mode != "webhook" else 0):
        served = await asyncio.to_thread(admission_policy.discover, Rest(api_client))
        if served is not None:
            break
        await asyncio.sleep(1.0)
    if served is None and settings.admission_mode == "auto":
        raise OSError(
            "API discovery of admissionregistration.k8s.io/v1 did not answer: admission_mode "
            "auto cannot choose (set --admission-mode policy or webhook, or check the API server)"
        )
    mode, why = policy.active_mode(settings, served=served)
    log.info("serve.admission_mode", extra={"mode": mode, "why": why})
    return mode, why


async def _check_cluster(settings: Settings, api_client: client.ApiClient, *, local: bool) -> None:
    """What must be there before any part runs: the namespace of the Lease and ConfigMap."""
    if settings.leader_election or settings.enable_watcher:
        await asyncio.to_thread(
            startup.ensure_namespace,
            Rest(api_client),
            settings.namespace,
            create=local,
        )


def _api_server(settings: Settings) -> str:
    """The API server's address for a message, or empty when even that cannot be read."""
    try:
        with kube.api_client(settings) as api:
            return str(api.configuration.host)
    except (ConfigException, OSError):
        return ""


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (the `fast` extra, as in the image), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# Every failure on start ends the process with a line that says what to do.
_START_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    server.CertificateError,
    SelectorError,
    *startup.STARTUP_FAILURES,
)


def run(settings: Settings, *, local: bool) -> int:
    """Entry point of `stellar-peers serve`; returns the exit code."""
    logs.configure(settings.log_level)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(settings, local=local))
    except _START_FAILURES as exc:
        message = startup.explain(exc, server=_api_server(settings))
        log.error("serve.failed", extra={"error": message})
    return 1
