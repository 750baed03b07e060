"""Many stellar-core stand-ins in one process, reporting when each `connect` arrived.

    python -m tests.bench.standins --first 127.0.1.1 --count 200 --port 21626 [--target 8]

`tests.standin.StellarCoreStandIn` answers every admin request here (jsoncpp
text, `null` for an empty direction, `Connect to: HOST:PORT` before anything is
dialed, `peers` entries as stellar-core lists them) and keeps its slot rules
(`connect` dials unless already connected or out of pending slots; a full
direction refuses the peer at authentication). What is cheaper than the tests'
stand-in, so 200 nodes and tens of thousands of requests per round fit one
process: the admin ports are asyncio servers on one event loop (HTTP/1.0,
closed after each reply, as stellar-core does), and the overlay is a model in
memory, not sockets: a dial is pending for `HANDSHAKE_SECONDS`, then runs the
stand-in's own HELLO and AUTH checks on both nodes (an address where no
stand-in listens is unreachable). The mesh starts settled, as a running
network's is: node i has the next `--target` nodes as authenticated outbound
peers and the previous ones as inbound (TARGET_PEER_CONNECTIONS and
MAX_ADDITIONAL_PEER_CONNECTIONS both `--target`, so every slot is taken).

It prints `ready`, then answers commands on stdin, one a line: `report` prints
`{"connects": [[host, monotonic seconds, "peer:port"], ...], "requests":
{command: count}}` for every connect answered and every request since the last
report (time.monotonic is one clock for every process
on the machine); `quit` (or end of input) stops. Kept apart from the benchmark
so the controller's CPU time is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import uvloop

from tests.standin import _REASONS, BAD_REQUEST, Peer, StellarCoreStandIn

HANDSHAKE_SECONDS = 0.002  # a dial on loopback: TCP, HELLO and AUTH
MAX_HEADER_LINES = 100


class ModelStandIn(StellarCoreStandIn):
    """A stand-in whose overlay is modelled in memory, on the event loop of its admin port."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        nodes: dict[str, ModelStandIn],
        log: list[tuple[str, float, str]],
        asked: Counter[str],
        lock: threading.Lock,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._loop = loop
        self._nodes = nodes  # peer address (ip:PEER_PORT) -> its stand-in
        self._log = log
        self._asked = asked
        self._log_lock = lock

    def start(self) -> ModelStandIn:
        """Ready at once (no boot); the admin server is started by `serve_admin`."""
        self._started_at = time.monotonic() - 1.0
        self._ready.set()
        return self

    def link(self, other: ModelStandIn) -> None:
        """An authenticated connection from this node to `other`, as a finished dial leaves it."""
        now = time.monotonic()
        outbound = Peer(None, True, other.peer_address, key=other.public_key)  # type: ignore[arg-type]
        inbound = Peer(None, False, self.peer_address, key=self.public_key)  # type: ignore[arg-type]
        for peer in (outbound, inbound):
            peer.authenticated, peer.since = True, now
        self._links.append(outbound)
        other._links.append(inbound)

    def answer(self, raw_path: str) -> tuple[int, str, str]:
        status, content_type, body = super().answer(raw_path)
        with self._log_lock:
            self._asked[raw_path.lstrip("/").partition("?")[0]] += 1
            if body.startswith("Connect to: "):
                self._log.append((self.host, time.monotonic(), body[len("Connect to: ") :]))
        return status, content_type, body

    # The overlay, in memory

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        self._loop.call_soon(target, *args)

    def _begin_dial(self, address: str, redial: bool = False) -> Peer | None:
        """`connectToImpl`: a pending peer unless already connected or out of pending slots."""
        with self._lock:
            if any(p.address == address for p in self._links):
                return None
            pending = sum(1 for p in self._links if p.outbound and not p.authenticated)
            if pending >= self.max_pending_outbound:
                self._event(address, "all outbound pending connections taken, not dialed")
                return None
            peer = Peer(None, True, address, preferred=self._is_preferred(address, ""))  # type: ignore[arg-type]
            self._links.append(peer)
        return peer

    def _complete_dial(self, peer: Peer) -> None:
        self._loop.call_later(HANDSHAKE_SECONDS, self._handshake, peer)

    def _handshake(self, peer: Peer) -> None:
        """The stand-in's HELLO then AUTH exchange, both nodes' checks in its order."""
        remote = self._nodes.get(peer.address)
        if remote is None:
            self._drop(peer, "unreachable: [Errno 111] Connection refused")
            return
        inbound = Peer(None, False, f"{self.peer_address.rpartition(':')[0]}:0")  # type: ignore[arg-type]
        with remote._lock:
            remote._links.append(inbound)
        # The acceptor checks the HELLO, the dialer the answer; the acceptor answers
        # AUTH and decides, then the dialer decides.
        steps: tuple[tuple[Callable[[], str | None], ModelStandIn, Peer, ModelStandIn, Peer], ...]
        steps = (
            (lambda: remote._check_hello(inbound, self._hello()), remote, inbound, self, peer),
            (lambda: self._check_hello(peer, remote._hello()), self, peer, remote, inbound),
            (lambda: remote._accept_authenticated(inbound), remote, inbound, self, peer),
            (lambda: self._accept_authenticated(peer), self, peer, remote, inbound),
        )
        for check, judge, own, other, theirs in steps:
            reason = check()
            if reason is not None:
                judge._drop(own, reason)
                other._drop(theirs, f"dropped by remote: {reason}")
                return

    def _drop(self, peer: Peer, why: str) -> None:
        with self._lock:
            if peer not in self._links:
                return
            self._links.remove(peer)
        self._event(peer.address, why)

    # The admin port

    async def serve_admin(self) -> asyncio.Server:
        return await asyncio.start_server(self._admin, self.host, self.port, backlog=1024)

    async def _admin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one answer, then close: stellar-core's HTTP/1.0 server."""
        try:
            lines: list[bytes] = []
            while len(lines) < MAX_HEADER_LINES:
                line = await reader.readline()
                if not line or line in (b"\r\n", b"\n"):
                    break
                lines.append(line)
            parts = lines[0].decode("latin-1").split() if lines else []
            if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/"):
                status, ctype, body = 400, "text/html", BAD_REQUEST
            else:
                status, ctype, body = self.answer(parts[1])
            data = body.encode()
            head = (
                f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Length: {len(data)}\r\nContent-Type: {ctype}\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except OSError:
            pass  # the caller gave up waiting
        finally:
            writer.close()


def mesh(nodes: Sequence[ModelStandIn], degree: int) -> None:
    """Node i dials the next `degree` nodes: every node `degree` out and `degree` in."""
    for index, node in enumerate(nodes):
        for step in range(1, min(degree, len(nodes) - 1) + 1):
            node.link(nodes[(index + step) % len(nodes)])


def run_loop(
    loop: asyncio.AbstractEventLoop, nodes: Sequence[ModelStandIn], started: threading.Event
) -> None:
    asyncio.set_event_loop(loop)

    async def serve() -> None:
        servers = [await node.serve_admin() for node in nodes]
        started.set()
        try:
            await asyncio.Event().wait()  # until the loop is stopped
        finally:
            for server in servers:
                server.close()

    task = loop.create_task(serve())
    loop.run_forever()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(task)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", default="127.0.1.1")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--port", type=int, default=21626)
    parser.add_argument("--peer-port", type=int, default=11625)
    parser.add_argument("--target", type=int, default=8, help="TARGET_PEER_CONNECTIONS")
    args = parser.parse_args(argv)
    first = ipaddress.ip_address(args.first)
    if not first.is_loopback or not 0 < args.count <= 1000:
        parser.error("--first must be a loopback address and --count at most 1000")
    loop = uvloop.new_event_loop()
    log: list[tuple[str, float, str]] = []
    asked: Counter[str] = Counter()
    lock = threading.Lock()
    by_address: dict[str, ModelStandIn] = {}
    nodes = []
    for offset in range(args.count):
        node = ModelStandIn(
            loop=loop,
            nodes=by_address,
            log=log,
            asked=asked,
            lock=lock,
            host=str(first + offset),
            port=args.port,
            peer_port=args.peer_port,
            target_peer_connections=args.target,
            max_additional_peer_connections=args.target,
        ).start()
        by_address[node.peer_address] = node
        nodes.append(node)
    mesh(nodes, args.target)
    started = threading.Event()
    thread = threading.Thread(target=run_loop, args=(loop, nodes, started), daemon=True)
    thread.start()
    if not started.wait(60):
        raise RuntimeError("the admin servers did not start")
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "report":
                with lock:
                    answer = {"connects": log, "requests": dict(asked)}
                    sys.stdout.write(orjson.dumps(answer).decode() + "\n")
                    log.clear()
                    asked.clear()
                sys.stdout.flush()
            elif command == "quit":
                break
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
