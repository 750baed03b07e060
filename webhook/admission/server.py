"""The servers: the admission app over TLS and the health/metrics app over plain HTTP.

Owns the listening sockets, the TLS context (TLS 1.2+, ECDHE with AES-GCM or
ChaCha20 only) and its hot reload: the certificate files are polled, and a new
valid pair is loaded into the live context so new handshakes use it with no
restart. Both uvicorn servers run inside the caller's event loop and stop when
the caller's `stop` event is set; the caller owns signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from certs.authority import not_after
from webhook.admission.app import build_app
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"
RELOAD_INTERVAL_SECONDS: Final = 2.0


class CertificateError(RuntimeError):
    """The serving certificate or key cannot be loaded; the message names both files."""


def tls_context(*, cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with no protocol older than TLS 1.2 and only AEAD forward-secret suites."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"cannot load the serving certificate {cert_file} with key {key_file}: {exc}"
        ) from exc
    return context


Stamp = tuple[tuple[int, int, int], ...]


class CertificateReloader:
    """Reloads the serving pair into a live context when its files change."""

    def __init__(
        self, *, context: ssl.SSLContext, cert_file: str, key_file: str, metrics: Metrics
    ) -> None:
        self.context = context
        self.cert_file = cert_file
        self.key_file = key_file
        self.metrics = metrics
        self.loaded = self._stamp()
        self.refused: Stamp | None = None
        self._record_expiry()

    def _stamp(self) -> Stamp | None:
        """Identity of both files; a Secret volume swaps a symlink, so the inode changes too."""
        try:
            stats = [os.stat(path) for path in (self.cert_file, self.key_file)]
        except OSError:
            return None
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def _record_expiry(self) -> None:
        try:
            with open(self.cert_file, "rb") as handle:
                expiry = not_after(handle.read())
        except (OSError, ValueError) as exc:
            log.warning(
                "tls.expiry_unknown", extra={"cert_file": self.cert_file, "error": str(exc)}
            )
            return
        self.metrics.cert_expiry_timestamp_seconds.set(expiry.timestamp())

    def check(self) -> bool:
        """Load the files if they changed and form a valid pair; True when reloaded."""
        stamp = self._stamp()
        if stamp is None or stamp == self.loaded or stamp == self.refused:
            return False
        try:
            # Try a scratch context first: a failed load_cert_chain can leave a
            # context with the new certificate and no key.
            tls_context(cert_file=self.cert_file, key_file=self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (CertificateError, OSError, ssl.SSLError) as exc:
            self.refused = stamp  # log once per bad pair, retry when the files change again
            log.error(
                "tls.reload_failed",
                extra={"cert_file": self.cert_file, "key_file": self.key_file, "error": str(exc)},
            )
            return False
        self.loaded = stamp
        self.refused = None
        self.metrics.cert_reloads_total.inc()
        self._record_expiry()
        log.info("tls.reloaded", extra={"cert_file": self.cert_file})
        return True

    async def run(self, *, stop: asyncio.Event, interval: float = RELOAD_INTERVAL_SECONDS) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()
            if not stop.is_set():
                self.check()


@dataclass
class Listeners:
    """Sockets bound before serving, so callers learn the ports (e.g. port 0) in advance."""

    tls: socket.socket
    plain: socket.socket | None

    @property
    def port(self) -> int:
        return int(self.tls.getsockname()[1])

    @property
    def metrics_port(self) -> int | None:
        return None if self.plain is None else int(self.plain.getsockname()[1])

    def close(self) -> None:
        self.tls.close()
        if self.plain is not None:
            self.plain.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def bind(*, settings: Settings) -> Listeners:
    """Bind the TLS port and, unless `metrics_port` is 0, the plain health/metrics port."""
    tls = _listen(settings.host, settings.port)
    try:
        plain = (
            _listen(settings.metrics_host, settings.metrics_port) if settings.metrics_port else None
        )
    except OSError:
        tls.close()
        raise
    return Listeners(tls=tls, plain=plain)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The caller owns SIGTERM/SIGINT and sets `stop`; uvicorn must not touch them.
        yield


def _uvicorn(app: ASGIApp, *, context: ssl.SSLContext | None) -> _Server:
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        ssl_context_factory=None if context is None else (lambda _config, _default: context),
    )
    return _Server(config)


async def _first(*events: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Until one of `events` is set or one of `tasks` ends."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait([*waits, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def serve(
    *,
    settings: Settings,
    metrics: Metrics,
    readiness: Callable[[], bool] | None,
    stop: asyncio.Event,
    readiness_detail: Callable[[], Mapping[str, str]] | None = None,
    listeners: Listeners | None = None,
    certificate_ready: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set; a server that ends before that raises.

    With `certificate_ready` the health/metrics port opens at once and the TLS
    port once the event is set (the certificate files are written by then).
    """
    listeners = listeners or bind(settings=settings)
    if certificate_ready is None:
        try:
            tls_context(cert_file=settings.cert_file, key_file=settings.key_file)
        except CertificateError:
            listeners.close()
            raise
    servers: list[_Server] = []
    tasks: list[asyncio.Task[None]] = []
    reload_task: asyncio.Task[None] | None = None

    def start(app: ASGIApp, sock: socket.socket, context: ssl.SSLContext | None) -> None:
        server = _uvicorn(app, context=context)
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))

    try:
        if listeners.plain is not None:
            health = build_app(
                settings=settings,
                metrics=metrics,
                readiness=readiness,
                readiness_detail=readiness_detail,
                mutate=False,
            )
            start(health, listeners.plain, None)
        if certificate_ready is not None:
            await _first(certificate_ready, stop, tasks=tasks)
        if not stop.is_set() and not any(t.done() for t in tasks):
            context = tls_context(cert_file=settings.cert_file, key_file=settings.key_file)
            reloader = CertificateReloader(
                context=context,
                cert_file=settings.cert_file,
                key_file=settings.key_file,
                metrics=metrics,
            )
            admission = build_app(
                settings=settings,
                metrics=metrics,
                readiness=readiness,
                readiness_detail=readiness_detail,
            )
            start(admission, listeners.tls, context)
            reload_task = asyncio.create_task(reloader.run(stop=stop))
            log.info(
                "server.listening",
                extra={
                    "address": f"https://{settings.host}:{listeners.port}/mutate",
                    "metrics_port": listeners.metrics_port,
                },
            )
            await _first(stop, tasks=tasks)
    finally:
        for server in servers:
            server.should_exit = True
        if reload_task is not None:
            reload_task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if reload_task is not None:
            await asyncio.gather(reload_task, return_exceptions=True)
        listeners.close()
    if not stop.is_set():
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        raise RuntimeError(f"a server stopped before it was asked to: {failure!r}") from failure
