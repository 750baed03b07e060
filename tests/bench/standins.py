"""Many stellar-core admin stand-ins in one process, reporting when each `connect` arrived.

    python -m tests.bench.standins --first 127.0.1.1 --count 200 --port 21626 \
        --peer 127.0.1.1:11625 ...

Runs `tests.standin.StellarCoreStandIn` on consecutive loopback addresses,
each with the `--peer` list (minus itself) as KNOWN_PEERS and its overlay on
that list's port: each dials them as stellar-core does, up to its outbound
slots (`--target`, TARGET_PEER_CONNECTIONS), and accepts as many inbound. It prints `ready` and
then answers commands on stdin, one a line: `report` prints a JSON list of
`[host, monotonic seconds, "peer:port"]` for every connect answered since the
last report (time.monotonic is one clock for every process on the machine);
`quit` (or end of input) stops them all. Kept apart from the benchmark so the
controller's CPU time is its own.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import orjson

from tests.standin import StellarCoreStandIn


class TimedStandIn(StellarCoreStandIn):
    """A stand-in that notes when each accepted `connect` was answered."""

    def __init__(
        self, *, log: list[tuple[str, float, str]], lock: threading.Lock, **kwargs: object
    ):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._log = log
        self._log_lock = lock

    def answer(self, raw_path: str) -> tuple[int, str, str]:
        status, content_type, body = super().answer(raw_path)
        if body.startswith("Connect to: "):
            with self._log_lock:
                self._log.append((self.host, time.monotonic(), body[len("Connect to: ") :]))
        return status, content_type, body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", default="127.0.1.1")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--port", type=int, default=21626)
    parser.add_argument("--peer", action="append", default=[], help="KNOWN_PEERS, ip:port")
    parser.add_argument("--peer-port", type=int, default=11625)
    parser.add_argument("--target", type=int, default=8, help="TARGET_PEER_CONNECTIONS")
    args = parser.parse_args(argv)
    first = ipaddress.ip_address(args.first)
    if not first.is_loopback or not 0 < args.count <= 1000:
        parser.error("--first must be a loopback address and --count at most 1000")
    log: list[tuple[str, float, str]] = []
    lock = threading.Lock()
    nodes = []
    for offset in range(args.count):
        host = str(first + offset)
        peers = [p for p in args.peer if not p.startswith(f"{host}:")]
        node = TimedStandIn(
            log=log,
            lock=lock,
            host=host,
            port=args.port,
            peer_port=args.peer_port,
            known_peers=peers,
            target_peer_connections=args.target,
            max_additional_peer_connections=args.target,
            redial_seconds=1.0,
        )
        nodes.append(node.start())
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "report":
                with lock:
                    sys.stdout.write(orjson.dumps(log).decode() + "\n")
                    log.clear()
                sys.stdout.flush()
            elif command == "quit":
                break
    finally:
        # Each stop waits for its server's poll loop: stop them side by side.
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(TimedStandIn.stop, nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
