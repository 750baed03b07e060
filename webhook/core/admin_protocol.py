"""stellar-core's admin port: what its answers mean, and the requests we make of it.

stellar-core answers 200 (or, since PR #2822, 404) with an HTML welcome page to
any command it does not know, so a status code proves nothing: every answer is
classified by its body (`src/main/CommandHandler.cpp`):

- `connect?peer=P&port=N` answers `Connect to: P:N`; without both parameters
  `Must specify a peer and port: connect&peer=PEER&port=PORT`; a command that
  throws answers `{"exception": "..."}`;
- any command answers `{"error": "Core is booting, try again later"}` while the
  node starts, which, like a refused connection or a timeout, means "later";
- `peers` answers `{"pending_peers": {"outbound": [...], "inbound": [...]},
  "authenticated_peers": {"outbound": [{"address": ...}], "inbound": [...]}}`,
  with `null` for an empty direction; only `authenticated_peers` are connected;
- `info` answers `{"info": {"state": ..., "network": <passphrase>, "quorum": {"node": ...}}}`,
  `state` `Booting` until the node can use its overlay (before v25.2);
- `Connect to: P:N` means "asked": the node took the address, and may still never
  connect (another network, preferred peers only, full slots).

`stellar-core http-command` prints the response headers, a blank line and the body on
stdout, logs `Config from FILE`, the quorum set it uses as multi-line JSON (v25: `Using
QUORUM_SET: {` ... `}`) and, on failure, `http failed(CODE) ...` to stderr, and exits 0
whatever happened: `parse_http_command_output` takes the two streams apart.

URLs are built only from a validated IP address and an integer port; query
values are URL-encoded. Pure: the client that sends them is `webhook.stellar.admin`.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

MAX_ANSWER_BYTES = 4 * 1024 * 1024
_PEER_HOST = re.compile(r"[A-Za-z0-9.-]+")
# A stellar-core log line's prefix: `2024-05-01T10:00:00.123 GABCD [Default INFO] `; the
# node id is missing from lines logged before the config is read (`Config from FILE`).
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)? (?:\S+ )?\[[^\]]*\] ")
_HTTP_FAILED = re.compile(r"^http failed\((-?\d+)\) port: ")
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ")
# What `http-command` logs of its config before it asks (the quorum set follows as JSON).
_CONFIG_LOG = ("Config from ", "Using QUORUM_SET", "Generated QUORUM_SET")
NETWORK_NAMES = {
    "Public Global Stellar Network ; September 2015": "pubnet",
    "Test SDF Network ; September 2015": "testnet",
}
# `info.state` values in which the overlay runs (src/herder and ApplicationImpl::getStateHuman)
PAST_BOOTING = frozenset({"Joining SCP", "Connected", "Catching up", "Synced!"})


class Outcome(enum.Enum):
    SUCCESS = "success"
    TRANSIENT = "transient"  # ask again later
    FAILED = "failed"  # asking again will not help


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str  # short and from a fixed vocabulary: fit for events and logs
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCESS

    @property
    def transient(self) -> bool:
        return self.outcome is Outcome.TRANSIENT


ASKED = Result(Outcome.SUCCESS, "asked")  # `Connect to:`: taken, not yet connected


class AnswerError(ValueError):
    """The node answered something that is not the JSON we asked for."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.reason)
        self.result = result


def is_peer_host(host: str) -> bool:
    """A host stellar-core's `PeerBareAddress::resolve` accepts: a dotted IPv4 or a name."""
    return _PEER_HOST.fullmatch(host) is not None


def _shorten(body: str) -> str:
    return body.strip()[:200]


def _json_object(body: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def classify_answer(status: int, body: str) -> Result | None:
    """The verdict common to every command, or None when the body is the command's own answer."""
    if "Welcome to stellar-core!" in body:
        return Result(Outcome.FAILED, "unknown-command", _shorten(body))
    obj = _json_object(body)
    if obj is not None and "booting" in str(obj.get("error", "")):
        return Result(Outcome.TRANSIENT, "booting", _shorten(body))
    if obj is not None and "exception" in obj:
        return Result(Outcome.FAILED, "exception", str(obj["exception"])[:200])
    if status != 200:
        return Result(Outcome.FAILED, f"http-{status}", _shorten(body))
    return None


def classify_connect(status: int, body: str, *, host: str, port: int) -> Result:
    """ "asked" only for stellar-core's own `Connect to:` text for exactly this peer."""
    verdict = classify_answer(status, body)
    if verdict is not None:
        return verdict
    if body.strip() == f"Connect to: {host}:{port}":
        return ASKED
    if body.startswith("Must specify a peer and port"):
        return Result(Outcome.FAILED, "must-specify", _shorten(body))
    return Result(Outcome.FAILED, "unexpected-answer", _shorten(body))


def classify_error(exc: BaseException) -> Result:
    """A failed exchange: refused, timed out or unreachable all mean "later"."""
    if isinstance(exc, TimeoutError):
        return Result(Outcome.TRANSIENT, "timeout")
    if isinstance(exc, ConnectionRefusedError):
        return Result(Outcome.TRANSIENT, "refused")
    if isinstance(exc, AnswerError):
        return exc.result
    if isinstance(exc, OSError):
        return Result(Outcome.TRANSIENT, "unreachable", str(exc)[:200])
    return Result(Outcome.FAILED, "bad-answer", str(exc)[:200])


def _addresses(entries: Any) -> Iterable[str]:
    for entry in entries or ():  # jsoncpp writes null for an empty direction
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict) and isinstance(entry.get("address"), str):
            yield entry["address"]


def parse_peers(body: str) -> set[str]:
    """Addresses (`ip:port`) the node is connected or connecting to; AnswerError if not `peers`."""
    obj = _peers_object(body)
    found: set[str] = set()
    for group in ("pending_peers", "authenticated_peers"):
        directions = obj.get(group) or {}
        if isinstance(directions, dict):
            for direction in ("outbound", "inbound"):
                found.update(_addresses(directions.get(direction)))
    return found


def authenticated_addresses(body: str) -> set[str]:
    """Addresses (`ip:listening port`) of the peers the node is connected to, both directions."""
    obj = _peers_object(body)
    directions = obj.get("authenticated_peers") or {}
    found: set[str] = set()
    if isinstance(directions, dict):
        for direction in ("outbound", "inbound"):
            found.update(_addresses(directions.get(direction)))
    return found


def _peers_object(body: str) -> dict[str, Any]:
    verdict = classify_answer(200, body)
    if verdict is not None:
        raise AnswerError(verdict)
    obj = _json_object(body)
    if obj is None or not ({"pending_peers", "authenticated_peers"} & obj.keys()):
        raise AnswerError(Result(Outcome.FAILED, "unexpected-answer", _shorten(body)))
    return obj


@dataclass(frozen=True)
class NodeInfo:
    """What `info` says of the node itself."""

    state: str
    network: str  # the NETWORK_PASSPHRASE
    node: str  # its key's first 5 characters (`quorum?fullkeys=true` has the full key)


def parse_info(body: str) -> NodeInfo:
    """`info`'s state, network and key; AnswerError if the body is not an `info` answer."""
    verdict = classify_answer(200, body)
    if verdict is not None:
        raise AnswerError(verdict)
    obj = _json_object(body)
    info = obj.get("info") if obj is not None else None
    if not isinstance(info, dict) or not isinstance(info.get("state"), str):
        raise AnswerError(Result(Outcome.FAILED, "unexpected-answer", _shorten(body)))
    quorum = info.get("quorum")
    node = quorum.get("node") if isinstance(quorum, dict) else None
    return NodeInfo(
        state=info["state"],
        network=str(info.get("network") or ""),
        node=node if isinstance(node, str) else "",
    )


def node_state(body: str) -> str:
    """`info.state`, e.g. `Booting` or `Synced!`; AnswerError if not an `info` answer."""
    return parse_info(body).state


def node_key(body: str) -> str:
    """The node's key from `quorum` (full with `?fullkeys=true`); AnswerError if absent."""
    obj = _json_object(body)
    if obj is None or not isinstance(obj.get("node"), str):
        raise AnswerError(classify_answer(200, body) or Result(Outcome.FAILED, "unexpected-answer"))
    return str(obj["node"])


def network_name(passphrase: str) -> str:
    """A short, bounded name for a network: `pubnet`, `testnet` or `net-<8 hex of sha256>`."""
    known = NETWORK_NAMES.get(passphrase)
    if known is not None:
        return known
    return "net-" + hashlib.sha256(passphrase.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class CommandOutput:
    """What `stellar-core http-command` wrote, taken apart."""

    status: int  # 200; the code of `http failed(CODE)` (1: no answer); 0: it wrote nothing
    body: str
    headers: dict[str, str]


def parse_http_command_output(stdout: str, stderr: str = "") -> CommandOutput:
    """Headers, body and failure code from what `http-command` wrote, stream by stream.

    The answer is on stdout alone. stderr is the log, of which only `http failed(CODE)`
    counts: the rest (`Config from FILE`, and the quorum set as multi-line JSON, on v25)
    would read as a body if the streams were merged, so they never are (pods/exec keeps
    them on two channels). On stdout, a log line is read too: versions that logged the
    answer instead of printing it put it there, and a config line is dropped.
    """
    headers: dict[str, str] = {}
    body: list[str] = []
    failed: int | None = None
    in_headers = True
    for line in stderr.splitlines():
        prefix = _LOG_PREFIX.match(line)
        code = _HTTP_FAILED.match(line[prefix.end() :]) if prefix is not None else None
        if code is not None:
            failed = int(code.group(1))
    for line in stdout.splitlines():
        prefix = _LOG_PREFIX.match(line)
        if prefix is not None:
            message = line[prefix.end() :]
            code = _HTTP_FAILED.match(message)
            if code is not None:
                failed = int(code.group(1))
            elif not message.startswith(_CONFIG_LOG):
                body.append(message)
            continue
        line = line.rstrip("\r")
        if in_headers and not body and _HEADER.match(line):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
            continue
        if in_headers and headers and line == "":
            in_headers = False
            continue
        body.append(line)
    text = "\n".join(body).strip()
    if failed is not None:
        return CommandOutput(failed, text, headers)
    return CommandOutput(200 if headers or text else 0, text, headers)


def command_verdict(stdout: str, stderr: str = "") -> tuple[Result | None, str]:
    """(the verdict common to every command, or None; the answer) from `http-command` output."""
    parsed = parse_http_command_output(stdout, stderr)
    if parsed.status == 1:
        return Result(Outcome.TRANSIENT, "refused", "http failed(1)"), ""
    if parsed.status == 0:
        return Result(Outcome.TRANSIENT, "no-answer"), ""
    if parsed.status == 404:
        return Result(Outcome.FAILED, "unknown-command", "http failed(404)"), ""
    if parsed.status != 200:
        return Result(Outcome.FAILED, f"http-{parsed.status}"), ""
    return classify_answer(200, parsed.body), parsed.body


def bounded_function(seconds: int) -> str:
    """The sh function `bounded CMD [ARG...]`: CMD, killed after `seconds`, the shell's
    `Terminated` kept out of the output. `http-command` has no timeout and a starting node
    may accept and never answer; the one watchdog, for the postStart hook and exec reloads."""
    return (
        f'bounded() {{ "$@" & c=$!; ( sleep {int(seconds)}; kill "$c" ) >/dev/null 2>&1 & d=$!; '
        '{ wait "$c"; } 2>/dev/null; kill "$d" 2>/dev/null; }'
    )


# URLs


def connect_path(*, host: str, port: int) -> str:
    """`/connect?peer=HOST&port=PORT`, the host checked and encoded."""
    if not is_peer_host(host):
        raise ValueError(f"not a peer host: {host!r}")
    return f"/connect?peer={quote(host, safe='')}&port={int(port)}"


def connect_command(*, host: str, port: int) -> str:
    """The same as an argument of `stellar-core http-command` (no leading slash)."""
    return connect_path(host=host, port=port)[1:]
