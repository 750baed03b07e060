"""Processes the benchmarks start: free ports, waiting for a listener, memory, stopping.

Every process is stopped by the id we started it with, never by name.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, process: subprocess.Popen[Any] | None = None, timeout: float = 30.0
) -> None:
    """Until something accepts on host:port; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of `pid`, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def stop(process: subprocess.Popen[Any], *, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: only this process, by its id."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def running(
    argv: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the duration of the block, its output in `log` (or discarded)."""
    sink: IO[bytes] | int = subprocess.DEVNULL
    with contextlib.ExitStack() as stack:
        if log is not None:
            sink = stack.enter_context(open(log, "wb"))
        process = subprocess.Popen(
            list(argv), stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
        try:
            yield process
        finally:
            stop(process)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx's workers are children of its master)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids += _tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
