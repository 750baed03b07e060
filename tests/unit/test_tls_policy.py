"""The TLS policy of the admission server, probed from outside like a scanner would.

Every refusal is checked against a positive control: the same client context
completes a handshake with a deliberately permissive server holding the same
certificate, so "refused" means the policy refused it, not that the local
OpenSSL could not speak it. Also: key files are written 0600, and private key
material never reaches a log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from certs import authority, files
from tests.polling import wait_until
from webhook.admission import server
from webhook.metrics import Metrics
from webhook.settings import Settings

STELLAR_PEERS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "stellar-peers"
# Every cipher suite the local OpenSSL knows below TLS 1.3, weak ones included.
ALL_SUITES = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
WEAK = {
    "CBC": "ECDHE-ECDSA-AES128-SHA",
    "CBC-SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "CBC-SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "CAMELLIA-CBC": "ECDHE-ECDSA-CAMELLIA128-SHA256",
    "NULL": "ECDHE-ECDSA-NULL-SHA",
    "anonymous": "AECDH-AES128-SHA",
}
# RC4 and 3DES are gone from OpenSSL 3 (a client cannot even offer them), and a
# static-RSA suite cannot be negotiated with an ECDSA certificate: no test could
# fail for them here. The suite-by-suite test below covers every suite the
# local OpenSSL knows.
FORWARD_SECRET_AEAD = re.compile(
    r"ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)"
)
AEAD_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


def make_pair(folder: Path) -> files.Bundle:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=["127.0.0.1"])
    bundle = files.Bundle(ca_cert=ca.cert_pem, serving=serving, ca_key=ca.key_pem)
    files.write_bundle(folder, bundle)
    return bundle


class Served:
    def __init__(self, folder: Path, *, log_level: str = "DEBUG") -> None:
        self.folder = folder
        self.bundle = make_pair(folder)
        self.settings = Settings(
            port=0,
            metrics_port=0,
            cert_file=str(folder / files.TLS_CERT),
            key_file=str(folder / files.TLS_KEY),
            log_level=log_level,
        )
        self.listeners = server.bind(settings=self.settings)
        self.port = self.listeners.port


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[Served]:
    served = Served(folder)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    run = server.serve(
        settings=served.settings,
        metrics=Metrics(),
        readiness=None,
        stop=stop,
        listeners=served.listeners,
    )
    thread = threading.Thread(target=loop.run_until_complete, args=(run,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: _connects(served.port), timeout=10, message="the TLS server to listen")
        yield served
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        assert not thread.is_alive()
        loop.close()


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as running:
        yield running


@contextlib.contextmanager
def permissive(bundle_folder: Path) -> Iterator[int]:
    """A server that accepts anything this OpenSSL can do: the positive control."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers(ALL_SUITES)
    context.load_cert_chain(bundle_folder / files.TLS_CERT, bundle_folder / files.TLS_KEY)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(raw, server_side=True):
                pass
            raw.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()


def client(
    *, maximum: ssl.TLSVersion, ciphers: str = ALL_SUITES, minimum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(ciphers)
    context.minimum_version = minimum or ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = maximum
    return context


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """(protocol, cipher) of a completed handshake; raises when refused."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        version, cipher = tls.version(), tls.cipher()
        assert version is not None
        assert cipher is not None
        return version, cipher[0]


def refused(port: int, context: ssl.SSLContext) -> bool:
    try:
        handshake(port, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    return False


def require_control(folder: Path, context: ssl.SSLContext, what: str) -> None:
    with permissive(folder) as port:
        if refused(port, context):
            pytest.skip(f"the local OpenSSL cannot negotiate {what} at all")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1, "TLS 1.0"), (ssl.TLSVersion.TLSv1_1, "TLS 1.1")],
)
def test_tls_policy_old_protocol_refused(
    served: Served, version: ssl.TLSVersion, name: str
) -> None:
    context = client(minimum=version, maximum=version)
    require_control(served.folder, context, name)
    assert refused(served.port, context), f"{name} was accepted"


@pytest.mark.parametrize(
    ("version", "expected"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
)
def test_tls_policy_modern_protocol_accepted(
    served: Served, version: ssl.TLSVersion, expected: str
) -> None:
    protocol, cipher = handshake(served.port, client(minimum=version, maximum=version))
    assert protocol == expected
    if expected == "TLSv1.3":
        assert cipher in AEAD_TLS13
    else:
        assert cipher.startswith("ECDHE-")
        assert "GCM" in cipher or "CHACHA20" in cipher


@pytest.mark.parametrize("kind", sorted(WEAK))
def test_tls_policy_weak_cipher_refused(served: Served, kind: str) -> None:
    suite = WEAK[kind]
    try:
        context = client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=f"{suite}:@SECLEVEL=0")
    except ssl.SSLError:
        pytest.skip(f"the local OpenSSL has no {kind} suite ({suite}) to offer")
    require_control(served.folder, context, f"{kind} ({suite})")
    assert refused(served.port, context), f"{kind} suite {suite} was accepted"


def test_tls_policy_only_forward_secret_aead_suites_below_tls13(served: Served) -> None:
    """Offer each suite the local OpenSSL knows, one at a time: list what the server takes."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.set_ciphers(ALL_SUITES)
    suites = [c["name"] for c in probe.get_ciphers() if c["protocol"] != "TLSv1.3"]
    accepted = []
    for suite in suites:
        context = client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=f"{suite}:@SECLEVEL=0")
        if not refused(served.port, context):
            accepted.append(suite)
    assert accepted, "no TLS 1.2 suite was accepted at all"
    for suite in accepted:
        assert FORWARD_SECRET_AEAD.fullmatch(suite), suite


# --- Key files and logs ------------------------------------------------------


def test_tls_policy_key_files_are_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        make_pair(tmp_path)
    finally:
        os.umask(previous)
    for name in (files.TLS_KEY, files.CA_KEY):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    for name in (files.TLS_CERT, files.CA_CERT):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) & 0o077 != 0o077


def test_tls_policy_certs_generate_writes_keys_0600_and_prints_no_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [str(STELLAR_PEERS), "certs", "generate", "--out", str(out), "--dns", "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "PRIVATE KEY" not in done.stdout + done.stderr
    for name in (files.TLS_KEY, files.CA_KEY):
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
        assert _key_body(out / name) not in done.stdout + done.stderr


def _key_body(path: Path) -> str:
    """A distinctive stretch of the key's base64 body (not the PEM armour)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
    return "".join(lines)[8:40]


def test_tls_policy_no_private_key_in_serve_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start, answer, reload, refuse a bad pair, stop: every record at DEBUG is key-free."""
    caplog.set_level(logging.DEBUG)
    with serving(tmp_path) as running:
        port = running.port
        verify = ssl.create_default_context(cadata=running.bundle.ca_cert.decode())
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "operation": "CREATE", "object": {}},
        }
        with httpx.Client(verify=verify, timeout=5) as http:
            answer = http.post(f"https://127.0.0.1:{port}/mutate", content=orjson.dumps(body))
            assert answer.status_code == 200
            # A renewed pair (reloaded) and then a key that matches no certificate (refused).
            renewed = make_pair(tmp_path)
            wait_until(lambda: "tls.reloaded" in caplog.messages, timeout=10, message="the reload")
            stranger = authority.make_serving(ca=authority.make_ca(), dns_names=["x"])
            files.write_atomic(tmp_path / files.TLS_KEY, stranger.key_pem, mode=0o600)
            wait_until(
                lambda: "tls.reload_failed" in caplog.messages,
                timeout=10,
                message="the mismatched pair to be refused",
            )
    captured = capsys.readouterr()
    formatter = logging.Formatter()
    text = "\n".join(
        [
            *(formatter.format(r) + repr(r.__dict__) for r in caplog.records),
            captured.out,
            captured.err,
        ]
    )
    assert len(caplog.records) >= 3
    assert "PRIVATE KEY" not in text
    for pem in (renewed.serving.key_pem, stranger.key_pem, renewed.ca_key or b""):
        secret = base64.b64encode(pem).decode()[40:80]
        body_part = "".join(pem.decode().splitlines()[1:3])[8:40]
        assert secret not in text
        assert body_part not in text
