#!/usr/bin/env python3
"""A stand-in for stellar-core: its admin port, its `http-command`, and peers that authenticate.

Standard library only (Python 3.11+), so it runs as a script in a container and is imported
as `tests.standin` by the tests. Its pure parts lie beside it, stdlib only as well, and ship
with it in the stand-in image: `standin_keys.py` (StrKey, ed25519 node keys),
`standin_config.py` (what stellar-core refuses in a config file) and `standin_quorum.py`
(quorum sets, jsoncpp's writer). What it copies, from stellar-core's source (v25.2.0:
`lib/http/server.cpp`, `lib/http/HttpClient.cpp`, `src/main/CommandHandler.cpp`,
`CommandLine.cpp`, `ApplicationUtils.cpp`, `Config.cpp`, `src/herder/HerderImpl.cpp`,
`src/overlay/Peer.cpp`, `OverlayManagerImpl.cpp`) and from what the real binary did
(STELLAR.md, "Measured on v25.2.0"):

- admin port `HTTP_PORT` on 127.0.0.1 (`PUBLIC_HTTP_PORT=true`: 0.0.0.0), HTTP/1.0, closed after
  each reply; the URI is %-decoded, split at `?`, params parsed like `server::parseParams`;
  known commands answer 200 `application/json`; unknown ones the HTML welcome page, 404 (200
  before v15.2); `connect` answers `Connect to: P:N` (or the must-specify text, or
  `{"exception": ...}` for an address that does not parse or resolve, IPv4 only) before
  anything is dialed; `peers` and `info` are jsoncpp `StyledWriter` text (`"key" : value`,
  3 spaces, sorted keys, `null` for an empty direction); `connect` and `peers` exist only
  with `RUN_STANDALONE=false` (the default);
- starting: the admin port refuses connections until it is bound (measured), then binds at
  once; for `STANDIN_HANG_SECONDS` a request is accepted and answered only afterwards; then
  for `STANDIN_BOOT_SECONDS` / `STANDIN_BOOT_REQUESTS` it is booting: v25.2+ answers every
  command `{"error": "Core is booting, try again later"}`, older versions answer `info` with
  `"state" : "Booting"` (other commands work, nothing is dialed until booted);
- consensus, as `info` shows it (measured, and `HerderImpl::trackingHeartBeat`): once booted
  it says `Synced!` at its last ledger (1 after `new-db`) with no peer at all, for a start
  window of `STANDIN_START_WINDOW_SECONDS` (35: CONSENSUS_STUCK_TIMEOUT_SECONDS); past that
  window without consensus it says `Joining SCP`. Consensus here is its quorum slice being
  met by the keys of its authenticated peers, itself included when it is a validator and
  in its own quorum set (the quorum set of its config, `[QUORUM_SET]` or the one generated
  from `[[VALIDATORS]]`: `standin_config`); it says `Synced!` again as soon as the slice is
  met, and a ledger closes every `STANDIN_LEDGER_SECONDS` (5) while it is. Losing the slice,
  it stays `Synced!` for another window, as the herder does. Not modelled: the other nodes'
  slices (a real quorum is transitive), catching up, ledger contents. `STANDIN_STATE` fixes
  the state instead; without a quorum set (tests) its slice is itself alone, always met;
- its database: with `DATABASE="sqlite3://PATH"` a small JSON file at PATH (not sqlite)
  holds its last ledger and its peer database; `new-db` resets it (ledger 1, no peers), `run`
  reads it at start and writes it as it goes, so a restart with data kept starts at its old
  ledger and redials the peers learned by `connect` (measured). In memory (the default
  `sqlite3://:memory:`) nothing is kept;
- peers: `PEER_PORT` carries a small handshake of this stand-in's own (JSON lines: `hello`
  with sha256 of `NETWORK_PASSPHRASE`, the node key and the listening port, then `auth`), with
  stellar-core's drop reasons: `connecting to self`, `wrong network passphrase` (so nodes of
  another network never authenticate, either way), `connecting already-connected peer`,
  `peer rejected` (`PREFERRED_PEERS_ONLY` and not preferred, or the slots of its direction
  full: outbound `TARGET_PEER_CONNECTIONS`, inbound `MAX_ADDITIONAL_PEER_CONNECTIONS`; a
  preferred peer evicts a non-preferred one instead, `preferred peer selected instead`).
  Preferred is `PREFERRED_PEERS` by address (with the `[[VALIDATORS]]` ADDRESSes of its own
  home domain) or `PREFERRED_PEER_KEYS` by key (`OverlayManagerImpl::isPreferred`), and a
  peer found preferred is kept so in the peer database (`updatePeerRecordAfterEcho`).
  `connect` writes the peer into the peer database and dials unless already connected (or
  out of pending slots, `MAX_PENDING_CONNECTIONS`/2); with the outbound slots full the dial
  is refused at authentication. The database is re-dialed every `STANDIN_REDIAL_SECONDS`
  up to the outbound slots (preferred peers always);
- `peers` ids and `info`/`quorum`'s node: the name the config gives the key (a second word
  in NODE_SEED or a `[QUORUM_SET]` entry, a `[[VALIDATORS]]` NAME), else its first 5
  characters; the full key with `fullkeys=true` (`Config::toShortString`);
- the node key is the real `G...` ed25519 key of `NODE_SEED`, random without a seed;
- every admin request is logged as one line, `<time> <GABCD> [Http INFO] <path>`, on stderr
  when run from the command line (stellar-core logs to the console's stderr).

Command line, like stellar-core's (`--conf` defaults to `stellar-core.cfg`):
`run [--conf F] [--console]`, `new-db [--conf F]`, `http-command CMD [--conf F]`, `version`,
`gen-seed`. Each of the first three logs `Config from FILE` and loads the config the way
`Config::load` does: what it logs while loading (`Using QUORUM_SET: {` or `Generated
QUORUM_SET: {` and the quorum set as multi-line JSON, ...) goes to stderr, and a config
stellar-core refuses stops it with `Got an exception: Failed to parse 'FILE' :<reason>` and
exit 1 (`standin_config` lists the reasons). `run` then refuses to start without a readable
history archive unless `RUN_STANDALONE=true` ("History archives misconfigured.", exit 1).
`http-command` reads `HTTP_PORT`, always dials 127.0.0.1, %-escapes every non-alphanumeric
character after `?`, has no timeout; on 200 it prints the headers (`Name: value\\r`), a blank
line and the body on stdout, and nothing else there; otherwise it logs `http failed(CODE)
port: P command: C` (1 = no answer) on stderr; it exits 0 whatever the node answered.

Switches (a `STANDIN_*` key in the config file; an environment variable of the same name wins):
`STANDIN_VERSION` (25.2.0: picks the 404 and the boot answer), `STANDIN_WELCOME_STATUS` (404|200),
`STANDIN_BOOT_ANSWER` (error|state), `STANDIN_HANG_SECONDS`, `STANDIN_BOOT_SECONDS`,
`STANDIN_BOOT_REQUESTS`, `STANDIN_STATE` (a fixed state after booting instead of the
modelled one), `STANDIN_START_WINDOW_SECONDS` (35), `STANDIN_LEDGER_SECONDS` (5),
`STANDIN_DELAY_SECONDS` (every answer), `STANDIN_REDIAL_SECONDS` (5), `STANDIN_RESOLVE`
(system: the resolver, IPv4 only; table: only `STANDIN_HOSTS`), `STANDIN_HOSTS`
(`name=ip,name=ip`), `STANDIN_BIND_HOST` (bind admin and peer sockets and dial from this
address, for many stand-ins on one machine), `STANDIN_DIAL_ONLY` (networks it may dial,
default `127.0.0.0/8,198.18.0.0/24`, `any` for all; others count as unreachable, no packet
sent). stellar-core itself refuses unknown keys; the stand-in ignores its own.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

try:  # imported as tests.standin (or run with -m)
    from tests import standin_config as rules
    from tests import standin_keys as keys
    from tests import standin_quorum as quorum
except ImportError:  # run as a script (the image's /usr/bin/stellar-core): they lie beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import standin_config as rules  # type: ignore[no-redef]
    import standin_keys as keys  # type: ignore[no-redef]
    import standin_quorum as quorum  # type: ignore[no-redef]

QuorumSet = quorum.QuorumSet
styled = quorum.styled
random_seed = keys.random_seed

TESTNET = "Test SDF Network ; September 2015"
PUBNET = "Public Global Stellar Network ; September 2015"
BOOTING = '{"error": "Core is booting, try again later"}'
MUST_SPECIFY = "Must specify a peer and port: connect&peer=PEER&port=PORT"
WELCOME = (
    "<b>Welcome to stellar-core!</b><p>"
    'Supported HTTP commands are listed in the <a href="'
    "https://github.com/stellar/stellar-core/blob/master/docs/software/"
    'commands.md#http-commands">docs</a> as well as in the man pages.</p>'
    "<p>Have fun!</p>"
)
BAD_REQUEST = "<html><head><title>Bad Request</title></head></html>"
DEFAULT_PEER_PORT = 11625
DIAL_ONLY = "127.0.0.0/8,198.18.0.0/24"  # test addresses: nothing else is ever dialed
OVERLAY_VERSION = 35
START_WINDOW_SECONDS = 35.0  # Herder::CONSENSUS_STUCK_TIMEOUT_SECONDS
LEDGER_SECONDS = 5.0  # a ledger closes about every 5 s
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}
_ADDRESS = re.compile(r"^(?:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$")


# The admin protocol's pure parts


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


def escape_command(command: str) -> str:
    """`httpCommand`'s path: `/` + the command, every non-alphanumeric after `?` as `%xx`."""
    head, sep, query = command.partition("?")
    escaped = "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02x}" for c in query)
    return "/" + head + sep + escaped


def public_key(seed: str | None) -> str:
    """The `G...` node key of a NODE_SEED (its first word: a second one only names it), a
    random one without; ValueError("invalid seed") for anything that is no `S...` seed."""
    if not seed or not seed.split():
        return keys.public_key_of(keys.random_seed())
    return keys.public_key_of(seed.split()[0])


def network_id(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode()).hexdigest()


def version_at_least(version: str, wanted: tuple[int, int]) -> bool:
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]] + [0, 0]
    return (parts[0], parts[1]) >= wanted


class CommandError(Exception):
    """A command threw; stellar-core answers `{"exception": "<message>"}`."""


@dataclass(frozen=True)
class Received:
    """One admin request as it arrived: the raw path (with query), its command and params."""

    raw_path: str
    command: str
    params: dict[str, str]
    at: float  # time.monotonic() when it arrived


@dataclass
class Peer:
    """One overlay connection, pending until both sides sent `auth`."""

    sock: socket.socket
    outbound: bool
    address: str  # ip:port, the listening port once known (inbound pending: ip:0)
    key: str = ""
    authenticated: bool = False
    since: float = 0.0
    preferred: bool = False


def _now_text() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}"


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


class StellarCoreStandIn:
    """A fake stellar-core: admin port on `host:port`, overlay on `host:peer_port`.

    Use as a context manager or start()/stop(). Port 0 picks a free one (see `.port`,
    `.peer_port` once started).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.2",
        port: int = 11626,
        peer_port: int = 0,
        peer_host: str | None = None,
        source_host: str | None = None,
        network_passphrase: str = TESTNET,
        node_seed: str | None = None,
        preferred_peers: Iterable[str] = (),
        preferred_peer_keys: Iterable[str] = (),
        preferred_peers_only: bool = False,
        target_peer_connections: int = 8,
        max_additional_peer_connections: int = -1,
        max_pending_connections: int = 500,
        known_peers: Iterable[str] = (),
        version: str = "25.2.0",
        welcome_status: int | None = None,
        boot_answer: str | None = None,
        hang_seconds: float = 0.0,
        booting_seconds: float = 0.0,
        booting_requests: int = 0,
        state: str | None = None,
        quorum_set: QuorumSet | None = None,
        names: Mapping[str, str] | None = None,
        node_is_validator: bool = True,
        start_window_seconds: float = START_WINDOW_SECONDS,
        ledger_seconds: float = LEDGER_SECONDS,
        database: str | None = None,
        run_standalone: bool = False,
        delay_seconds: float = 0.0,
        redial_seconds: float = 5.0,
        dial_only: str = DIAL_ONLY,
        resolve: str = "table",
        hosts: Mapping[str, str] | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.peer_host = peer_host or host
        self.peer_port = peer_port
        self.source_host = source_host if source_host is not None else self.peer_host
        self.network_passphrase = network_passphrase
        self.public_key = public_key(node_seed)
        # The quorum set it needs to hear from; none given: itself alone (always met).
        self.quorum_set = quorum_set or QuorumSet(1, (self.public_key,))
        self.names = dict(names or {})  # VALIDATOR_NAMES: key -> name
        self.node_is_validator = node_is_validator
        self.start_window_seconds = start_window_seconds
        self.ledger_seconds = ledger_seconds
        self.database = database
        self.run_standalone = run_standalone
        self.preferred_peer_keys = set(preferred_peer_keys)
        self.preferred_peers_only = preferred_peers_only
        self.target_peer_connections = target_peer_connections
        # Config.cpp: -1 means TARGET_PEER_CONNECTIONS * 8
        self.max_inbound = (
            max_additional_peer_connections
            if max_additional_peer_connections >= 0
            else target_peer_connections * 8
        )
        # Config.cpp splits MAX_PENDING_CONNECTIONS between inbound and outbound
        self.max_pending_outbound = max(1, max_pending_connections // 2)
        self.version = version
        self.welcome_status = welcome_status or (404 if version_at_least(version, (15, 2)) else 200)
        self.boot_answer = boot_answer or (
            "error" if version_at_least(version, (25, 2)) else "state"
        )
        self.hang_seconds = hang_seconds
        self.booting_seconds = booting_seconds
        self.state = state  # a fixed state after booting (STANDIN_STATE); None: modelled
        self.delay_seconds = delay_seconds
        self.redial_seconds = redial_seconds
        self.dial_only = (
            [ipaddress.ip_network(n.strip()) for n in dial_only.split(",") if n.strip() != "any"]
            if dial_only.strip() != "any"
            else None
        )
        self.resolve_mode = resolve
        self.hosts = {"localhost": "127.0.0.1", **(hosts or {})}
        self.log_stream = log
        self._lock = threading.RLock()
        self._received: list[Received] = []
        self._connects: list[str] = []
        self._events: list[tuple[str, str]] = []  # (address, what happened)
        self._peer_db: dict[str, bool] = {}  # address -> preferred
        self._links: list[Peer] = []
        self._booting_left = booting_requests
        self._started_at = 0.0
        self._last_consensus = 0.0  # monotonic: when its quorum slice was last met
        self._last_close = 0.0  # monotonic: when its ledger last advanced
        self._met_since: float | None = None  # monotonic: since when its slice is met
        self._ledger = 1
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._servers: list[socketserver.TCPServer] = []
        self._threads: list[threading.Thread] = []
        self._preferred = set()
        for address in preferred_peers:
            self._preferred.add(self._resolve_quietly(address))
            self._peer_db[self._resolve_quietly(address)] = True
        for address in known_peers:
            self._peer_db.setdefault(self._resolve_quietly(address), False)
        self._load_database()

    # lifecycle

    def start(self) -> StellarCoreStandIn:
        node = self

        class Admin(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                node._serve_admin(self.rfile, self.wfile)

        class Overlay(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                node._serve_peer(self.request, self.client_address[0])

        admin = _Server((self.host, self.port), Admin)
        overlay = _Server((self.peer_host, self.peer_port), Overlay)
        self.port = admin.server_address[1]
        self.peer_port = overlay.server_address[1]
        self._servers = [admin, overlay]
        self._started_at = time.monotonic()
        for server in self._servers:
            self._spawn(server.serve_forever, 0.05)
        self._spawn(self._main_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._save_database()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            peers = list(self._links)
        for peer in peers:
            _close(peer.sock)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> StellarCoreStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    # what tests look at

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def peer_address(self) -> str:
        """`ip:port` other nodes dial (the overlay's listening address)."""
        return f"{self.source_host or self.peer_host}:{self.peer_port}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def paths(self) -> list[str]:
        return [r.raw_path for r in self.received]

    def connects(self) -> list[str]:
        """`ip:port` of every `connect` answered `Connect to:` (the address as resolved)."""
        with self._lock:
            return list(self._connects)

    def authenticated(self) -> set[str]:
        """Addresses (`ip:listening port`) of the authenticated peers, both directions."""
        with self._lock:
            return {p.address for p in self._links if p.authenticated}

    def events(self) -> list[tuple[str, str]]:
        """(address, what happened) for every dial skipped, refused or dropped, in order."""
        with self._lock:
            return list(self._events)

    def booted(self) -> bool:
        return self._ready.is_set()

    @property
    def ledger(self) -> int:
        with self._lock:
            return self._ledger

    def short(self, key: str) -> str:
        """`Config::toShortString`: the name the config gives a key, else its first 5."""
        return self.names.get(key, key[:5])

    # consensus, as far as `info` shows it

    def quorum_met(self) -> bool:
        """Whether the authenticated peers (and itself, a validator) meet its quorum slice."""
        with self._lock:
            present = {p.key for p in self._links if p.authenticated}
        if self.node_is_validator:
            present.add(self.public_key)
        return self.quorum_set.met(present)

    def scp_state(self) -> str:
        """`Synced!` or `Joining SCP` once booted: the herder tracks the network from its
        last ledger at start, and falls out of sync after CONSENSUS_STUCK_TIMEOUT_SECONDS
        (35) without consensus (`HerderImpl::trackingHeartBeat`). Here consensus is its
        quorum slice being met; a ledger closes every `ledger_seconds` while it is."""
        now = self._tick()
        if self.state is not None:
            return self.state
        with self._lock:
            since = now - max(self._last_consensus, self._started_at)
        return "Synced!" if since < self.start_window_seconds else "Joining SCP"

    def _tick(self) -> float:
        """Brings consensus up to now (called whenever the peers change, and when asked)."""
        now = time.monotonic()
        with self._lock:
            if not self.quorum_met():
                self._met_since = None
                return now
            if self._met_since is None:
                self._met_since = self._last_close = now
            closes = int((now - self._last_close) / self.ledger_seconds)
            self._ledger += closes
            self._last_close += closes * self.ledger_seconds
            self._last_consensus = now
        return now

    # the database: its last ledger and its peers, kept across a restart

    def _load_database(self) -> None:
        if not self.database:
            return
        try:
            with open(self.database, encoding="utf-8") as f:
                saved = json.load(f)
            ledger, peers = int(saved["ledger"]), dict(saved["peers"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # none yet (or not ours): a new database
        self._ledger = max(1, ledger)
        for address, preferred in peers.items():
            self._peer_db[address] = bool(preferred) or self._peer_db.get(address, False)

    def _save_database(self) -> None:
        if not self.database:
            return
        with self._lock:
            data = {"ledger": self._ledger, "peers": dict(sorted(self._peer_db.items()))}
        temporary = f"{self.database}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(temporary, self.database)
        except OSError as exc:
            self._logline("Database", f"not saved: {exc}")

    # logging

    def _logline(self, partition: str, text: str) -> None:
        if self.log_stream is not None:
            line = f"{_now_text()} {self.public_key[:5]} [{partition} INFO] {text}\n"
            with self._lock:
                self.log_stream.write(line)
                self.log_stream.flush()

    def _event(self, address: str, what: str) -> None:
        with self._lock:
            self._events.append((address, what))
        self._logline("Overlay", f"{address}: {what}")

    # the admin port

    def _phase(self) -> str:
        """ "hang", "booting" or "ready", from the time since start."""
        elapsed = time.monotonic() - self._started_at
        if elapsed < self.hang_seconds:
            return "hang"
        with self._lock:
            if elapsed < self.hang_seconds + self.booting_seconds or self._booting_left > 0:
                return "booting"
        return "ready"

    def _serve_admin(self, rfile: Any, wfile: Any) -> None:
        lines: list[bytes] = []
        while len(lines) < 100:
            line = rfile.readline(65537)
            if not line or line in (b"\r\n", b"\n"):
                break
            lines.append(line)
        while self._phase() == "hang" and not self._stopping.is_set():
            self._stopping.wait(0.05)  # accepted, never read: like a node before its main loop
        if self._stopping.is_set():
            return
        if self.delay_seconds:
            self._stopping.wait(self.delay_seconds)
        parts = lines[0].decode("latin-1").split() if lines else []
        if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/"):
            status, ctype, body = (
                400,
                "text/html",
                "<html><head><title>Bad Request</title></head></html>",
            )
        else:
            status, ctype, body = self.answer(parts[1])
        data = body.encode()
        head = (
            f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Length: {len(data)}\r\nContent-Type: {ctype}\r\n\r\n"
        )
        try:
            wfile.write(head.encode() + data)
            wfile.flush()
        except OSError:
            pass  # the caller gave up waiting, as a caller with a timeout does

    def answer(self, raw_path: str) -> tuple[int, str, str]:
        """(status, content type, body) for one GET, as stellar-core would."""
        self._logline("Http", raw_path)
        decoded = url_decode(raw_path)
        if decoded is None:
            return 400, "text/html", BAD_REQUEST
        path = decoded[1:] if decoded.startswith("/") else decoded
        command, sep, rest = path.partition("?")
        params = parse_params(sep + rest)
        with self._lock:
            self._received.append(Received(raw_path, command, params, time.monotonic()))
        route = _ROUTES.get(command)
        if command in _OVERLAY_ROUTES and self.run_standalone:
            route = None  # CommandHandler adds them only when RUN_STANDALONE=false
        if route is None:
            return self.welcome_status, "text/html", WELCOME
        booting = self._booting_now()
        if booting and self.boot_answer == "error":
            return 200, "application/json", BOOTING
        try:
            return 200, "application/json", route(self, params, booting)
        except CommandError as exc:
            return 200, "application/json", json.dumps({"exception": str(exc)})

    def _booting_now(self) -> bool:
        """Whether this request finds the node booting (it counts towards `booting_requests`)."""
        if self._phase() == "ready":
            return False
        with self._lock:
            self._booting_left = max(0, self._booting_left - 1)
        return True

    def _cmd_connect(self, params: dict[str, str], booting: bool) -> str:
        if "peer" not in params or "port" not in params:
            return MUST_SPECIFY
        given = f"{params['peer']}:{params['port']}"
        address = self.resolve(given)
        with self._lock:
            self._connects.append(address)
            self._peer_db.setdefault(address, address in self._preferred)
        self._save_database()
        if self._ready.is_set():
            # `connectToImpl` puts the peer in the pending list before `connect` answers.
            peer = self._begin_dial(address)
            if peer is not None:
                self._spawn(self._complete_dial, peer)
        return f"Connect to: {given}"

    def resolve(self, given: str) -> str:
        """`PeerBareAddress::resolve`: `ip:port` or CommandError, IPv4 only."""
        match = _ADDRESS.match(given)
        if match is None:
            raise CommandError(f"Cannot parse peer address '{given}'")
        port = int(match.group(3) or DEFAULT_PEER_PORT)
        ip = match.group(1)
        if ip is None:
            ip = self._resolve_name(match.group(2), given)
        if not 0 < port <= 65535:
            raise CommandError(f"Could not resolve '{given}': Success")
        return f"{ip}:{port}"

    def _resolve_name(self, name: str, given: str) -> str:
        if name in self.hosts:
            return self.hosts[name]
        if self.resolve_mode == "system":
            try:
                return str(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])
            except socket.gaierror as exc:
                if exc.errno == socket.EAI_AGAIN:
                    raise CommandError(
                        f"Could not resolve '{given}': Host not found (non-authoritative), "
                        "try again later"
                    ) from exc
        raise CommandError(f"Could not resolve '{given}': Host not found (authoritative)")

    def _resolve_quietly(self, given: str) -> str:
        try:
            return self.resolve(given)
        except CommandError:
            return given

    def _peers(self, params: dict[str, str], booting: bool) -> str:
        full = params.get("fullkeys") == "true"
        now = time.monotonic()
        with self._lock:
            peers = list(self._links)

        def entries(outbound: bool, authenticated: bool) -> list[Any] | None:
            found: list[Any] = []
            for p in peers:
                if p.outbound != outbound or p.authenticated != authenticated:
                    continue
                if not authenticated:
                    found.append(p.address)
                    continue
                found.append(
                    {
                        "address": p.address,
                        "elapsed": int(now - p.since),
                        "latency": 1,
                        "ver": f"stellar-core {self.version} (standin)",
                        "olver": OVERLAY_VERSION,
                        "flow_control": {
                            "local_capacity": {"flood": 200, "reading": 200},
                            "peer_capacity": 200,
                        },
                        "id": p.key if full else self.short(p.key),
                    }
                )
            return found or None  # jsoncpp writes an empty Json::Value as null

        return styled(
            {
                "authenticated_peers": {
                    "inbound": entries(False, True),
                    "outbound": entries(True, True),
                },
                "pending_peers": {
                    "inbound": entries(False, False),
                    "outbound": entries(True, False),
                },
            }
        )

    def _cmd_info(self, params: dict[str, str], booting: bool) -> str:
        # CommandHandler::info reads only `compact`: its quorum node is the short key (or name)
        with self._lock:
            authenticated = sum(1 for p in self._links if p.authenticated)
            pending = len(self._links) - authenticated
        info = {
            "build": f"v{self.version} (standin)",
            "history_failure_rate": "0.0",
            "ledger": {
                "age": 3,
                "baseFee": 100,
                "baseReserve": 5000000,
                "closeTime": 1700000000,
                "hash": "0" * 64,
                "maxTxSetSize": 100,
                "num": self.ledger,
                "version": 21,
            },
            "network": self.network_passphrase,
            "peers": {"authenticated_count": authenticated, "pending_count": pending},
            "protocol_version": 21,
            "quorum": {"node": self.short(self.public_key)},
            "startedOn": "2024-01-01T00:00:00Z",
            "state": "Booting" if booting else self.scp_state(),
        }
        return styled({"info": info})

    def _cmd_quorum(self, params: dict[str, str], booting: bool) -> str:
        full = params.get("fullkeys") == "true"
        key = self.public_key if full else self.short(self.public_key)
        qset = {"agree": 1, "delayed": None, "disagree": None, "fail_at": 0, "missing": None}
        return styled({"node": key, "qset": {**qset, "phase": "EXTERNALIZE"}})

    # the overlay

    def _main_loop(self) -> None:
        while self._phase() != "ready" and not self._stopping.wait(0.05):
            pass
        self._ready.set()
        while not self._stopping.is_set():
            self._tick()
            self._save_database()
            with self._lock:
                wanted = sorted(self._peer_db, key=lambda a: not self._peer_db[a])
            for known in wanted:
                # `PeerManager` keeps resolved addresses only: a name that does not
                # resolve (no DNS in a pod here) is skipped, and tried again next time.
                try:
                    address = self.resolve(known)
                except CommandError as exc:
                    self._event(known, f"not dialed: {exc}")
                    continue
                self._spawn(self._dial, address, True)  # a connection lives in its thread
            # jittered, so two nodes dialing each other do not keep colliding
            self._stopping.wait(self.redial_seconds * (0.5 + secrets.randbelow(1000) / 1000))

    def _dial(self, address: str, redial: bool = False) -> None:
        peer = self._begin_dial(address, redial=redial)
        if peer is not None:
            self._complete_dial(peer)

    def _begin_dial(self, address: str, redial: bool = False) -> Peer | None:
        """`connectToImpl`: a pending outbound peer, unless already connected or out of
        pending slots (None then).

        A full set of authenticated outbound slots stops only the redials (`tick` fills
        up to TARGET_PEER_CONNECTIONS); a `connect` still dials, and the peer is then
        refused at authentication ("peer rejected"), as stellar-core does.
        """
        with self._lock:
            if any(p.address == address for p in self._links):
                return None  # already connected or connecting
            pending = sum(1 for p in self._links if p.outbound and not p.authenticated)
            if pending >= self.max_pending_outbound:
                self._event(address, "all outbound pending connections taken, not dialed")
                return None
            outbound = sum(1 for p in self._links if p.outbound and p.authenticated)
            if (
                redial
                and outbound >= self.target_peer_connections
                and not self._peer_db.get(address)
            ):
                return None
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            peer = Peer(sock, True, address, preferred=self._is_preferred(address, ""))
            self._links.append(peer)
        return peer

    def _complete_dial(self, peer: Peer) -> None:
        """TCP connect and handshake of a pending outbound peer (`_begin_dial`)."""
        sock, address = peer.sock, peer.address
        host, _, port = address.rpartition(":")
        if self.dial_only is not None and not any(
            ipaddress.ip_address(host) in net for net in self.dial_only
        ):
            self._drop(peer, "unreachable: outside STANDIN_DIAL_ONLY, not dialed")
            return
        try:
            sock.settimeout(5)
            if self.source_host not in ("", "0.0.0.0"):
                sock.bind((self.source_host, 0))
            sock.connect((host, int(port)))
            sock.settimeout(None)
        except OSError as exc:
            self._drop(peer, f"unreachable: {exc}")
            return
        self._run_peer(peer, first=self._hello())

    def _serve_peer(self, sock: socket.socket, ip: str) -> None:
        peer = Peer(sock, False, f"{ip}:0")
        with self._lock:
            self._links.append(peer)
        self._run_peer(peer, first=None)

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "network": network_id(self.network_passphrase),
            "key": self.public_key,
            "port": self.peer_port,
            "version": self.version,
        }

    def _is_preferred(self, address: str, key: str) -> bool:
        return address in self._preferred or key in self.preferred_peer_keys

    def _check_hello(self, peer: Peer, hello: dict[str, Any]) -> str | None:
        """Peer::recvHello's drop reason, or None; fills in the peer's key and address."""
        key = str(hello.get("key", ""))
        if key == self.public_key:
            return "connecting to self"
        if hello.get("network") != network_id(self.network_passphrase):
            return "wrong network passphrase"
        with self._lock:
            if not peer.outbound:
                peer.address = f"{peer.address.rpartition(':')[0]}:{int(hello.get('port', 0))}"
            if any(p is not peer and p.key == key for p in self._links):
                return "connecting already-connected peer"
            peer.key = key
            peer.preferred = self._is_preferred(peer.address, key)
        return None

    def _accept_authenticated(self, peer: Peer) -> str | None:
        """`PeersList::acceptAuthenticatedPeer`: a refusal, or None (authenticated).

        Each direction has its slots (outbound TARGET_PEER_CONNECTIONS, inbound
        MAX_ADDITIONAL_PEER_CONNECTIONS); a preferred peer evicts a non-preferred one
        when they are full; PREFERRED_PEERS_ONLY refuses every other peer.
        """
        victim: Peer | None = None
        with self._lock:
            same = [p for p in self._links if p.authenticated and p.outbound == peer.outbound]
            limit = self.target_peer_connections if peer.outbound else self.max_inbound
            if len(same) >= limit:
                victim = (
                    next((p for p in same if not p.preferred), None) if peer.preferred else None
                )
                if victim is None:
                    return "peer rejected"
            elif self.preferred_peers_only and not peer.preferred:
                return "peer rejected"
            peer.authenticated = True
            peer.since = time.monotonic()
            # Peer::updatePeerRecordAfterEcho: a preferred peer (by address or key) is
            # kept as preferred; one it dialed is in the database already.
            remember = peer.preferred and not self._peer_db.get(peer.address, False)
            if remember:
                self._peer_db[peer.address] = True
        if victim is not None:
            # Dropped (and said why) before the error goes out: the victim's reader would
            # otherwise see the socket close first and record "closed" instead.
            evicted = "preferred peer selected instead"
            with self._lock:
                gone = victim in self._links
                if gone:
                    self._links.remove(victim)
            if gone:
                if not self._stopping.is_set():
                    self._event(victim.address, evicted)
                with contextlib.suppress(OSError):
                    _send(victim.sock, {"type": "error", "message": evicted})
                _close(victim.sock)
        self._logline("Overlay", f"authenticated {peer.address} {self.short(peer.key)}")
        self._tick()
        if remember:
            self._save_database()
        return None

    def _run_peer(self, peer: Peer, first: dict[str, Any] | None) -> None:
        reader = peer.sock.makefile("rb")
        try:
            if first is not None:
                _send(peer.sock, first)
            for raw in reader:
                message = json.loads(raw)
                kind = message.get("type")
                reason: str | None = None
                if kind == "error":
                    self._drop(peer, f"dropped by remote: {message.get('message')}")
                    return
                if kind == "hello":
                    reason = self._check_hello(peer, message)
                    if reason is None:
                        _send(peer.sock, {"type": "auth"} if peer.outbound else self._hello())
                elif kind == "auth" and not peer.authenticated:
                    if not peer.outbound:  # Peer::recvAuth answers AUTH before it decides
                        _send(peer.sock, {"type": "auth"})
                    reason = self._accept_authenticated(peer)
                if reason is not None:
                    _send(peer.sock, {"type": "error", "message": reason})
                    self._drop(peer, reason)
                    return
        except (OSError, ValueError):
            pass
        finally:
            reader.close()
        self._drop(peer, "closed")

    def _drop(self, peer: Peer, why: str) -> None:
        with self._lock:
            if peer not in self._links:
                return
            if peer.authenticated:
                self._tick()  # consensus lasted until now
            self._links.remove(peer)
        _close(peer.sock)
        if not self._stopping.is_set():
            self._event(peer.address, why)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # like asio's reuse_address on the acceptor
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64


_OVERLAY_ROUTES = frozenset({"connect", "peers", "quorum"})
_ROUTES: dict[str, Callable[[StellarCoreStandIn, dict[str, str], bool], str]] = {
    "connect": StellarCoreStandIn._cmd_connect,
    "peers": StellarCoreStandIn._peers,
    "info": StellarCoreStandIn._cmd_info,
    "quorum": StellarCoreStandIn._cmd_quorum,
}


# The command line


SWITCHES = (
    "STANDIN_VERSION",
    "STANDIN_WELCOME_STATUS",
    "STANDIN_BOOT_ANSWER",
    "STANDIN_HANG_SECONDS",
    "STANDIN_BOOT_SECONDS",
    "STANDIN_BOOT_REQUESTS",
    "STANDIN_STATE",
    "STANDIN_START_WINDOW_SECONDS",
    "STANDIN_LEDGER_SECONDS",
    "STANDIN_DELAY_SECONDS",
    "STANDIN_REDIAL_SECONDS",
    "STANDIN_RESOLVE",
    "STANDIN_HOSTS",
    "STANDIN_BIND_HOST",
    "STANDIN_DIAL_ONLY",
)
REPORT_INTERNAL_BUG = "Please report this bug along with this log file if this was not expected"


def validator_config(
    seed: str,
    *,
    validators: Mapping[str, str] | None = None,
    name: str = "self",
    threshold_percent: int = 67,
    http_port: int = 11626,
    peer_port: int = DEFAULT_PEER_PORT,
    network_passphrase: str = TESTNET,
    **extra: Any,
) -> str:
    """The config of a private network's validator that stellar-core v25.2.0 accepts:
    NODE_SEED bare (a name there and on its own key in [QUORUM_SET] is "naming node
    twice"), a [QUORUM_SET] of itself (`name`) and `validators` (name -> key),
    UNSAFE_QUORUM and FAILURE_SAFETY=0 (a small private network), and a local history
    archive (RUN_STANDALONE=false needs a readable one). `extra` keys (stellar-core's or
    `STANDIN_*`) go on top, before the tables."""
    members = {name: public_key(seed), **(validators or {})}
    top: dict[str, Any] = {
        "NODE_SEED": seed,
        "NODE_IS_VALIDATOR": True,
        "UNSAFE_QUORUM": True,
        "FAILURE_SAFETY": 0,
        "HTTP_PORT": http_port,
        "PEER_PORT": peer_port,
        "NETWORK_PASSPHRASE": network_passphrase,
        **extra,
    }
    lines = [f"{k}={_toml(v)}" for k, v in top.items()]
    lines += [
        "",
        "[QUORUM_SET]",
        f"THRESHOLD_PERCENT={threshold_percent}",
        f"VALIDATORS={_toml([f'{key} {n}' for n, key in members.items()])}",
        "",
        "[HISTORY.local]",
        'get="cp /tmp/stellar-history/{0} {1}"',
    ]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def load_config(path: str) -> dict[str, Any]:
    """The config file as TOML; ValueError with `Config::load`'s message if it is none."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ValueError(f"No config file {path} found") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"Failed to parse '{path}' :{exc}") from exc


def read_config(path: str) -> tuple[dict[str, Any], rules.CoreConfig]:
    """`Config::load`: the file and what stellar-core makes of it; ValueError with the
    message it throws (its config checks: `standin_config`). What loading logged is
    written to stderr as it goes, as stellar-core does."""
    table = load_config(path)
    try:
        core = rules.load({k: v for k, v in table.items() if not k.startswith("STANDIN_")})
    except rules.ConfigError as exc:
        for level, text in exc.log:
            log_line(text, level=level)
        raise ValueError(f"Failed to parse '{path}' :{exc}") from exc
    for level, text in core.log:
        log_line(text, level=level)
    return table, core


def switches(config: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """The `STANDIN_*` switches: the config file's, overridden by the environment's."""
    found = {k: str(config[k]) for k in SWITCHES if k in config}
    found.update({k: environ[k] for k in SWITCHES if k in environ})
    return found


def database_path(config: Mapping[str, Any]) -> str | None:
    """The file of `DATABASE="sqlite3://PATH"` (default `sqlite3://:memory:`: none)."""
    url = str(config.get("DATABASE", "sqlite3://:memory:"))
    path = url.removeprefix("sqlite3://") if url.startswith("sqlite3://") else ""
    return path if path and path != ":memory:" else None


def node_from_config(
    config: Mapping[str, Any],
    environ: Mapping[str, str],
    log: TextIO | None,
    core: rules.CoreConfig | None = None,
) -> StellarCoreStandIn:
    """A stand-in set up the way `stellar-core run` reads its config file (`core`: the file
    as loaded; loaded here if not given, so a config stellar-core refuses raises)."""
    if core is None:
        core = rules.load({k: v for k, v in config.items() if not k.startswith("STANDIN_")})
    sw = switches(config, environ)
    bind = sw.get("STANDIN_BIND_HOST", "")
    public = bool(config.get("PUBLIC_HTTP_PORT", False))
    hosts = dict(
        item.split("=", 1) for item in sw.get("STANDIN_HOSTS", "").split(",") if "=" in item
    )
    return StellarCoreStandIn(
        host=bind or ("0.0.0.0" if public else "127.0.0.1"),
        port=int(config.get("HTTP_PORT", 11626)),
        peer_host=bind or "0.0.0.0",
        source_host=bind,
        peer_port=int(config.get("PEER_PORT", DEFAULT_PEER_PORT)),
        network_passphrase=str(config.get("NETWORK_PASSPHRASE", "")),
        node_seed=core.node_seed,
        quorum_set=core.quorum_set,
        names=core.names,
        node_is_validator=core.node_is_validator,
        run_standalone=core.run_standalone,
        database=database_path(config),
        preferred_peers=core.preferred_peers,
        preferred_peer_keys=core.preferred_peer_keys,
        preferred_peers_only=bool(config.get("PREFERRED_PEERS_ONLY", False)),
        target_peer_connections=int(config.get("TARGET_PEER_CONNECTIONS", 8)),
        max_additional_peer_connections=int(config.get("MAX_ADDITIONAL_PEER_CONNECTIONS", -1)),
        max_pending_connections=int(config.get("MAX_PENDING_CONNECTIONS", 500)),
        known_peers=core.known_peers,
        version=sw.get("STANDIN_VERSION", "25.2.0"),
        welcome_status=int(sw["STANDIN_WELCOME_STATUS"])
        if "STANDIN_WELCOME_STATUS" in sw
        else None,
        boot_answer=sw.get("STANDIN_BOOT_ANSWER"),
        hang_seconds=float(sw.get("STANDIN_HANG_SECONDS", 0)),
        booting_seconds=float(sw.get("STANDIN_BOOT_SECONDS", 0)),
        booting_requests=int(sw.get("STANDIN_BOOT_REQUESTS", 0)),
        state=sw.get("STANDIN_STATE"),
        start_window_seconds=float(sw.get("STANDIN_START_WINDOW_SECONDS", START_WINDOW_SECONDS)),
        ledger_seconds=float(sw.get("STANDIN_LEDGER_SECONDS", LEDGER_SECONDS)),
        delay_seconds=float(sw.get("STANDIN_DELAY_SECONDS", 0)),
        redial_seconds=float(sw.get("STANDIN_REDIAL_SECONDS", 5)),
        dial_only=sw.get("STANDIN_DIAL_ONLY", DIAL_ONLY),
        resolve=sw.get("STANDIN_RESOLVE", "system"),
        hosts=hosts,
        log=log,
    )


def log_line(text: str, *, partition: str = "default", level: str = "INFO", node: str = "") -> None:
    """One log record on stderr, spdlog's pattern `%Y-%m-%dT%H:%M:%S.%e [%n %l] %v`, the
    node's short key after the time once the config is read (`Logging::setFmt`)."""
    who = f"{node} " if node else ""
    sys.stderr.write(f"{_now_text()} {who}[{partition} {level}] {text}\n")
    sys.stderr.flush()


def _refused(exc: Exception) -> int:
    """What `handleCommandLine` (and `run`) do with an exception: log it, exit 1."""
    log_line(f"Got an exception: {exc}", level="FATAL")
    log_line(REPORT_INTERNAL_BUG, level="FATAL")
    return 1


def http_request(port: int, path: str) -> tuple[int, bytes, list[str]]:
    """`http_request` of lib/http/HttpClient.cpp: (code, body, header lines); code 1 = no answer."""
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:  # no timeout, like it
            sock.sendall(
                f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: */*\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
    except OSError:
        return 1, b"", []
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return 1, b"", []
    if int(parts[1]) != 200:
        return int(parts[1]), b"", []
    if not sep:
        return 1, b"", []
    return 200, body, lines[1:]


def http_command(command: str, conf: str) -> int:
    """`stellar-core http-command`: the config log on stderr, the answer on stdout (headers
    first), failures logged; exit 0 whatever the node answered."""
    log_line(f"Config from {conf}")
    try:
        config, core = read_config(conf)
    except ValueError as exc:
        return _refused(exc)
    port = int(config.get("HTTP_PORT", 11626))
    code, body, headers = http_request(port, escape_command(command))
    if code == 200:
        out = sys.stdout.buffer
        for line in headers:
            out.write(line.encode("latin-1") + b"\r\n")  # getline kept the \r, then "\n"
        out.write(b"\n" + body + b"\n")
        out.flush()
    else:
        log_line(f"http failed({code}) port: {port} command: {command}", node=core.public_key[:5])
    return 0


def new_db(conf: str) -> int:
    """`stellar-core new-db`: the config checked, the database back to its genesis ledger."""
    log_line(f"Config from {conf}")
    try:
        config, core = read_config(conf)
    except ValueError as exc:
        return _refused(exc)
    path = database_path(config)
    node = core.public_key[:5]
    if path is not None:
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"ledger": 1, "peers": {}}, f)
        except OSError as exc:
            return _refused(exc)
    for line in ("*", "* The next launch will catchup from the network afresh.", "*"):
        log_line(line, node=node)
    return 0


def run(conf: str) -> int:
    """`stellar-core run`: the config checked, then `setupApp`'s check of the history
    archives, then serve until SIGTERM or SIGINT. Logs go to stderr, as with `--console`."""
    import signal

    log_line(f"Config from {conf}")
    try:
        config, core = read_config(conf)
        node = node_from_config(config, os.environ, sys.stderr, core)
    except ValueError as exc:
        return _refused(exc)
    short = core.public_key[:5]
    log_line(f"Starting stellar-core v{node.version} (standin)", node=short)
    problems = rules.history_archive_problems(core)
    if problems:
        for level, text in problems:
            log_line(text, partition="History", level=level, node=short)
        log_line("Unable to setup the application to run", level="ERROR", node=short)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node.start()
    node._logline("default", f"Listening on {node.host}:{node.port} for HTTP requests")
    node._logline("Overlay", f"Binding to endpoint {node.peer_host}:{node.peer_port}")
    try:
        stop.wait()
    finally:
        node.stop()
    return 0


def gen_seed() -> int:
    """`stellar-core gen-seed`."""
    seed = keys.random_seed()
    print(f"Secret seed: {seed}\nPublic: {keys.public_key_of(seed)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stellar-core", description="a stellar-core stand-in")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("run", "new-db", "http-command"):
        p = sub.add_parser(verb)
        p.add_argument("--conf", default="stellar-core.cfg")
        p.add_argument("--console", action="store_true")
        p.add_argument("--ll", default="INFO")
        if verb == "http-command":
            p.add_argument("command")
    sub.add_parser("version")
    sub.add_parser("gen-seed")
    args = parser.parse_args(argv)
    if args.verb == "version":
        print(f"v{os.environ.get('STANDIN_VERSION', '25.2.0')} (standin)")
        return 0
    if args.verb == "gen-seed":
        return gen_seed()
    if args.verb == "http-command":
        return http_command(args.command, args.conf)
    if args.verb == "new-db":
        return new_db(args.conf)
    return run(args.conf)


if __name__ == "__main__":
    sys.exit(main())
