"""The TLS server: protocol floor, cipher choice, and certificate hot reload."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs import authority, files
from tests.polling import wait_until
from webhook.admission import server
from webhook.metrics import Metrics
from webhook.settings import Settings


def make_bundle(directory: Path) -> files.Bundle:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    bundle = files.Bundle(ca_cert=ca.cert_pem, serving=serving)
    files.write_bundle(directory, bundle)
    return bundle


@dataclasses.dataclass
class Running:
    port: int
    metrics_port: int
    metrics: Metrics


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    make_bundle(tmp_path)
    settings = Settings(
        port=0,
        metrics_port=0,
        cert_file=str(tmp_path / "tls.crt"),
        key_file=str(tmp_path / "tls.key"),
    )
    # metrics_port=0 disables the plain port in bind(); bind one on a free port instead.
    listeners = server.bind(settings=settings)
    plain = socket.create_server(("127.0.0.1", 0))
    listeners.plain = plain
    metrics = Metrics()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    serving = server.serve(
        settings=settings, metrics=metrics, readiness=None, stop=stop, listeners=listeners
    )
    thread = threading.Thread(target=loop.run_until_complete, args=(serving,), daemon=True)
    thread.start()
    yield Running(port=listeners.port, metrics_port=plain.getsockname()[1], metrics=metrics)
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)
    assert not thread.is_alive(), "server did not stop when asked"
    loop.close()


def handshake(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert(binary_form=True)
        assert cert is not None
        return cert


def client_context(*, maximum: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Let the client itself offer old protocols: the refusal must come from the server.
    context.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = maximum
    return context


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_tls_1_1_handshake_fails(running: Running) -> None:
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(running.port, client_context(maximum=ssl.TLSVersion.TLSv1_1))


def test_tls_1_2_handshake_succeeds_with_aead_cipher(running: Running) -> None:
    context = client_context(maximum=ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[0].startswith("ECDHE-")
        assert "GCM" in cipher[0] or "CHACHA20" in cipher[0]


def test_tls_1_2_weak_cipher_refused(running: Running) -> None:
    context = client_context(maximum=ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(running.port, context)


def test_plain_port_serves_health_and_metrics(running: Running) -> None:
    url = f"http://127.0.0.1:{running.metrics_port}"
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        assert b"stellar_cert_expiry_timestamp_seconds" in answer.read()


def test_new_certificate_files_are_served_without_restart(running: Running, tmp_path: Path) -> None:
    context = client_context(maximum=ssl.TLSVersion.TLSv1_3)
    first = handshake(running.port, context)
    renewed = make_bundle(tmp_path)
    assert der(renewed.serving.cert_pem) != first
    wait_until(
        lambda: handshake(running.port, context) == der(renewed.serving.cert_pem),
        timeout=10,
        message="the renewed certificate to be served",
    )
    assert running.metrics.cert_reloads_total._value.get() == 1


def test_mismatched_pair_keeps_the_old_certificate(
    running: Running, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = client_context(maximum=ssl.TLSVersion.TLSv1_3)
    first = handshake(running.port, context)
    stranger = authority.make_serving(ca=authority.make_ca(), dns_names=["localhost"])
    files.write_atomic(tmp_path / files.TLS_KEY, stranger.key_pem, mode=0o600)
    wait_until(
        lambda: "tls.reload_failed" in caplog.messages,
        timeout=10,
        message="the mismatched pair to be refused",
    )
    assert handshake(running.port, context) == first
    assert running.metrics.cert_reloads_total._value.get() == 0
    renewed = make_bundle(tmp_path)
    wait_until(
        lambda: handshake(running.port, context) == der(renewed.serving.cert_pem),
        timeout=10,
        message="the next good pair to be served",
    )


def test_tls_context_error_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(server.CertificateError) as caught:
        server.tls_context(cert_file=str(tmp_path / "no.crt"), key_file=str(tmp_path / "no.key"))
    assert "no.crt" in str(caught.value)
    assert "no.key" in str(caught.value)


def test_with_certificate_ready_the_tls_port_opens_only_once_it_is_set(tmp_path: Path) -> None:
    settings = Settings(
        port=0,
        metrics_port=0,
        cert_file=str(tmp_path / "tls.crt"),
        key_file=str(tmp_path / "tls.key"),
    )
    listeners = server.bind(settings=settings)
    plain = socket.create_server(("127.0.0.1", 0))
    listeners.plain = plain
    loop = asyncio.new_event_loop()
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = server.serve(
        settings=settings,
        metrics=Metrics(),
        readiness=ready.is_set,
        stop=stop,
        listeners=listeners,
        certificate_ready=ready,
    )
    thread = threading.Thread(target=loop.run_until_complete, args=(serving,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{plain.getsockname()[1]}"
    try:
        # No files yet: health answers, readiness says no, the TLS port accepts no handshake.
        wait_until(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200)
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/readyz", timeout=2)
        with pytest.raises((OSError, ssl.SSLError)):
            handshake(listeners.port, client_context(maximum=ssl.TLSVersion.TLSv1_3))
        bundle = make_bundle(tmp_path)
        loop.call_soon_threadsafe(ready.set)
        served = wait_until(
            lambda: handshake(listeners.port, client_context(maximum=ssl.TLSVersion.TLSv1_3)),
            timeout=10,
        )
        assert served == der(bundle.serving.cert_pem)
        assert urllib.request.urlopen(f"{url}/readyz", timeout=2).status == 200
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
