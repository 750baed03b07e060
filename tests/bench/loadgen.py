"""An open-loop, fixed-rate HTTPS load generator: latency percentiles at a given request rate.

wrk sends as fast as it can (closed loop), which says nothing about latency at
a realistic rate. This client runs in its own process on uvloop, keeps N
keep-alive TLS connections, and releases requests on a fixed schedule whether
or not earlier ones have been answered. A request waits for a free connection
when all are busy, and that wait counts in its latency, so a slow server cannot
hide behind a slow client (no coordinated omission). Latency runs from the
moment the scheduler releases a request to the last byte of its answer; the
event loop's timer granularity (about 1 ms) is the client's, not the server's,
and is left out.

Targets loopback only. Prints one JSON object on stdout.

    python -m tests.bench.loadgen --url https://127.0.0.1:8443/mutate \
        --body review.json --cafile ca.crt --rate 200 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

try:
    import uvloop
except ImportError:  # the plain loop works too, only slower
    uvloop = None  # type: ignore[assignment]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, after warm-up
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise ValueError("answer without Content-Length")
    await reader.readexactly(length)
    return status


async def run(
    *,
    url: str,
    body: bytes,
    cafile: str,
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"loadgen: {host} is not a loopback address")
    context = ssl.create_default_context(cafile=cafile)
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    pairs = [await asyncio.open_connection(host, port, ssl=context) for _ in range(connections)]
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    tally = Tally()
    total = int(rate * (duration + warmup))
    measured_from = 0.0

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (released := await queue.get()) is not None:
            try:
                status = await asyncio.wait_for(_exchange(reader, writer, request), 10.0)
            except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
                tally.errors += 1
                return  # this connection is unusable; the others carry on
            done = time.perf_counter()
            if released >= measured_from:
                tally.latencies.append(done - released)
                tally.statuses[status] = tally.statuses.get(status, 0) + 1

    async def scheduler() -> float:
        nonlocal measured_from
        # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds.
        start = time.perf_counter() + 0.01
        measured_from = start + warmup
        sent = 0
        while sent < total:
            now = time.perf_counter()
            due = min(total, int((now - start) * rate) + 1)
            while sent < due:
                queue.put_nowait(now)
                sent += 1
            next_due = start + sent / rate
            await asyncio.sleep(max(0.0, next_due - time.perf_counter()))
        for _ in pairs:
            queue.put_nowait(None)
        return time.perf_counter() - measured_from

    workers = [asyncio.create_task(worker(r, w)) for r, w in pairs]
    wall_started = time.monotonic()
    elapsed = await scheduler()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=duration + 30)
    lat = sorted(tally.latencies)
    for _reader, writer in pairs:
        writer.close()

    def pct(q: float) -> float | None:
        if not lat:
            return None
        rank = max(1, min(len(lat), round(q / 100 * len(lat) + 0.5)))
        return lat[rank - 1] * 1000

    return {
        "rate": rate,
        "connections": connections,
        "completed": len(lat),
        "achieved_rate": len(lat) / elapsed if elapsed > 0 else 0.0,
        "errors": tally.errors + sum(n for s, n in tally.statuses.items() if s != 200),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "p999_ms": pct(99.9),
        "max_ms": lat[-1] * 1000 if lat else None,
        "wall_seconds": time.monotonic() - wall_started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="open-loop fixed-rate HTTPS POST load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="file with the request body")
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 20_000 or not 0 < args.duration <= 120:
        parser.error("--rate must be in (0, 20000] and --duration in (0, 120]")
    with open(args.body, "rb") as handle:
        body = handle.read()
    runner = uvloop.run if uvloop is not None else asyncio.run
    result = runner(
        run(
            url=args.url,
            body=body,
            cafile=args.cafile,
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            connections=args.connections,
        )
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
