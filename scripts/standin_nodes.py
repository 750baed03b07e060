"""Serve stellar-core admin stand-ins on loopback addresses for the demo.

`python -m scripts.standin_nodes --record FILE 127.0.0.10 127.0.0.11 ...`
serves one stand-in per address (admin port 11626, peer port 11625) until
SIGTERM, and keeps FILE updated with the `connect` commands each one received,
so the demo can show that running validators were told about their new peers
(and, told, really connect to each other).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from tests.standin import StellarCoreStandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.standin_nodes")
    parser.add_argument("--record", required=True, help="JSON file of connects received")
    parser.add_argument("--port", type=int, default=11626)
    parser.add_argument("--peer-port", type=int, default=11625, help="PEER_PORT of each")
    parser.add_argument("addresses", nargs="+")
    args = parser.parse_args(argv)
    for address in args.addresses:
        if not address.startswith("127."):
            parser.error(f"{address}: stand-ins listen on loopback addresses only")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    nodes = [
        StellarCoreStandIn(host=a, port=args.port, peer_port=args.peer_port).start()
        for a in args.addresses
    ]
    record = Path(args.record)
    try:
        while not stop.wait(0.2):
            snapshot = {node.host: node.connects() for node in nodes}
            record.write_text(json.dumps(snapshot, indent=1))
    finally:
        for node in nodes:
            node.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
