"""A stand-in for stellar-core's admin HTTP interface, as far as the project uses it.

It mimics stellar-core's `src/main/CommandHandler.cpp` and `src/lib/http/server.cpp`:

- the whole request URI is URL-decoded first (`server::url_decode`: `%XX` and
  `+` -> space; a bad escape is a 400), then split at the first `?`;
  parameters are parsed like `server::parseParams` (a trailing pair with an
  empty name or value is dropped, earlier ones are kept even when empty);
- every known command answers `{"error": "Core is booting, try again later"}`
  until the node is ready (`CommandHandler::safeRouter`), and an exception in a
  command answers `{"exception": "<what()>"}`;
- `connect` answers `Connect to: PEER:PORT`, or without both parameters
  `Must specify a peer and port: connect&peer=PEER&port=PORT`; the address is
  then checked like `PeerBareAddress::resolve` (so `port=abc` answers
  `{"exception": "Cannot parse peer address 'h:abc'"}`);
- `peers` answers the JSON of `CommandHandler::peers`; like jsoncpp, a
  direction with no peers is `null`, not `[]`;
- an unknown command answers the "Welcome to stellar-core!" HTML page
  (`CommandHandler::fileNotFound`). Versions before stellar-core PR #2822 sent
  it with status 200 (issue #2495), later ones with 404: `welcome_status`
  picks which.

Before `start()` nothing listens (connection refused); `booting_requests` /
`booting_seconds` keep it answering the booting error after that; `delay_seconds`
makes every answer slow. Every request's raw path is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOOTING = '{"error": "Core is booting, try again later"}'
MUST_SPECIFY = "Must specify a peer and port: connect&peer=PEER&port=PORT"
WELCOME = (
    "<b>Welcome to stellar-core!</b><p>"
    'Supported HTTP commands are listed in the <a href="'
    "https://github.com/stellar/stellar-core/blob/master/docs/software/"
    'commands.md#http-commands">docs</a> as well as in the man pages.</p>'
    "<p>Have fun!</p>"
)
# PeerBareAddress::resolve
_ADDRESS = re.compile(r"^(?:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$")


@dataclass(frozen=True)
class Received:
    """One request as it arrived: the raw path (with query) and its decoded command and params."""

    raw_path: str
    command: str
    params: dict[str, str]
    at: float  # time.monotonic() when it arrived


def url_decode(raw: str) -> str | None:
    """`server::url_decode`: `%XX` and `+`; None for a malformed escape."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "%":
            code = raw[i + 1 : i + 3]
            if len(code) < 2 or not re.fullmatch(r"[0-9A-Fa-f]{1,2}", code):
                return None
            out.append(chr(int(code, 16)))
            i += 3
            continue
        out.append(" " if c == "+" else c)
        i += 1
    return "".join(out)


def parse_params(params: str) -> dict[str, str]:
    """`server::parseParams`, character by character, quirks included."""
    result: dict[str, str] = {}
    building_name = True
    name = value = ""
    for c in params:
        if c == "?":
            continue
        if c == "=":
            building_name = False
        elif c == "&":
            building_name = True
            result[name] = value
            name = value = ""
        elif building_name:
            name += c
        else:
            value += c
    if name and value:
        result[name] = value
    return result


class CommandError(Exception):
    """A command threw; stellar-core answers `{"exception": "<message>"}`."""


class StellarCoreStandIn:
    """A fake stellar-core admin port on `host:port`; use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.2",
        port: int = 11626,
        booting_requests: int = 0,
        booting_seconds: float = 0.0,
        delay_seconds: float = 0.0,
        welcome_status: int = 200,
        peers: Iterable[str] = (),
        inbound: Iterable[str] = (),
    ) -> None:
        """`peers`/`inbound`: addresses (`ip:port`) it is connected to from the start."""
        self.host = host
        self.port = port
        self.booting_requests = booting_requests
        self.booting_seconds = booting_seconds
        self.delay_seconds = delay_seconds
        self.welcome_status = welcome_status
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._outbound: list[str] = list(peers)
        self._connects: list[str] = []
        self._inbound: list[str] = list(inbound)
        self._started_at = 0.0
        self._booting_left = booting_requests
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> StellarCoreStandIn:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._started_at = time.monotonic()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-{self.host}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StellarCoreStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # what tests look at
    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def paths(self) -> list[str]:
        return [r.raw_path for r in self.received]

    def connects(self) -> list[str]:
        """`peer:port` of every `connect` that was answered `Connect to:`."""
        with self._lock:
            return list(self._connects)

    @property
    def connected(self) -> set[str]:
        with self._lock:
            return set(self._outbound) | set(self._inbound)

    # behaviour
    def answer(self, raw_path: str) -> tuple[int, str, str]:
        """(status, content type, body) for one GET, exactly as stellar-core would."""
        decoded = url_decode(raw_path)
        if decoded is None:
            return 400, "text/html", "<html><head><title>Bad Request</title></head></html>"
        path = decoded[1:] if decoded.startswith("/") else decoded
        command, sep, rest = path.partition("?")
        params = parse_params(sep + rest)
        with self._lock:
            self._received.append(Received(raw_path, command, params, time.monotonic()))
        if command not in _ROUTES:
            return self.welcome_status, "text/html", WELCOME
        if self._booting():
            return 200, "application/json", BOOTING
        try:
            return 200, "application/json", _ROUTES[command](self, params)
        except CommandError as exc:
            return 200, "application/json", json.dumps({"exception": str(exc)})

    def _booting(self) -> bool:
        with self._lock:
            if time.monotonic() - self._started_at < self.booting_seconds:
                return True
            if self._booting_left > 0:
                self._booting_left -= 1
                return True
            return False

    def _connect(self, params: dict[str, str]) -> str:
        if "peer" not in params or "port" not in params:
            return MUST_SPECIFY
        address = f"{params['peer']}:{params['port']}"
        match = _ADDRESS.match(address)
        if match is None:
            raise CommandError(f"Cannot parse peer address '{address}'")
        port = int(match.group(3) or 11625)
        if match.group(2) is not None and match.group(2) != "localhost":
            # The stand-in resolves no names (no DNS in tests).
            raise CommandError(f"Could not resolve '{address}': Host not found (authoritative)")
        if not 0 < port <= 65535:
            raise CommandError(f"Could not resolve '{address}': Success")
        host = match.group(1) or "127.0.0.1"
        with self._lock:
            self._connects.append(f"{host}:{port}")
            if f"{host}:{port}" not in self._outbound:
                self._outbound.append(f"{host}:{port}")
        return f"Connect to: {address}"

    def _peers(self, params: dict[str, str]) -> str:
        with self._lock:
            outbound = list(self._outbound)
            inbound = list(self._inbound)

        def authenticated(addresses: list[str]) -> list[dict[str, Any]] | None:
            return [
                {
                    "address": a,
                    "elapsed": 3,
                    "latency": 1,
                    "olver": 35,
                    "ver": "stellar-core 21.0.0",
                    "id": f"GPEER{i:02d}",
                }
                for i, a in enumerate(addresses)
            ] or None

        body = {
            "authenticated_peers": {
                "inbound": authenticated(inbound),
                "outbound": authenticated(outbound),
            },
            "pending_peers": {"inbound": None, "outbound": None},
        }
        return json.dumps(body, indent=3, sort_keys=True) + "\n"

    def _info(self, params: dict[str, str]) -> str:
        with self._lock:
            count = len(self._outbound) + len(self._inbound)
        body = {
            "info": {
                "build": "stellar-core 21.0.0 (standin)",
                "history_failure_rate": "0",
                "ledger": {
                    "age": 3,
                    "baseFee": 100,
                    "baseReserve": 5000000,
                    "closeTime": 1700000000,
                    "hash": "0" * 64,
                    "maxTxSetSize": 100,
                    "num": 2,
                    "version": 21,
                },
                "network": "Test SDF Network ; September 2015",
                "peers": {"authenticated_count": count, "pending_count": 0},
                "protocol_version": 21,
                "startedOn": "2024-01-01T00:00:00Z",
                "state": "Synced!",
            }
        }
        return json.dumps(body, indent=3, sort_keys=True) + "\n"


_ROUTES = {
    "connect": StellarCoreStandIn._connect,
    "peers": StellarCoreStandIn._peers,
    "info": StellarCoreStandIn._info,
}


def _handler_for(node: StellarCoreStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection, like stellar-core

        def do_GET(self) -> None:
            if node.delay_seconds:
                time.sleep(node.delay_seconds)
            status, content_type, body = node.answer(self.path)
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller gave up waiting, as a caller with a timeout does

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
