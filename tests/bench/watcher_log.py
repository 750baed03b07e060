"""What the watcher's own JSON log says about a change: when each ConfigMap was written,
and how many bytes each round sent. Its clock is the benchmark's (one machine)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson


def log_events(path: Path, event: str) -> list[dict[str, object]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            entry = orjson.loads(line)
            if isinstance(entry, dict) and entry.get("event") == event:
                found.append(entry)
    return found


def log_time(entry: dict[str, object]) -> float:
    stamp = str(entry["ts"]).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).timestamp()


def set_hash(peers: Iterable[str]) -> str:
    """The `stellar.org/peers-hash` of a one-network set (sha256 of its peers.txt)."""
    text = "".join(f"{p}\n" for p in sorted(peers))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def write_breakdown(path: Path, *, since: float) -> str:
    """From the watcher's log: median delay from a new peer set to its canonical and last write."""
    changed = {
        str(e["hash"]): log_time(e)
        for e in log_events(path, "watcher.peers-changed")
        if log_time(e) >= since
    }
    canonical: dict[str, float] = {}
    last: dict[str, float] = {}
    for entry in log_events(path, "configmap.written"):
        digest, at = str(entry.get("hash")), log_time(entry)
        if digest not in changed:
            continue
        last[digest] = max(last.get(digest, at), at)
        if entry.get("kind") == "canonical":
            canonical.setdefault(digest, at)
    to_canonical = [canonical[d] - changed[d] for d in canonical]
    to_last = [last[d] - changed[d] for d in last]
    if not to_canonical or not to_last:
        return ""
    return (
        f"watcher log: new set → canonical written, median {statistics.median(to_canonical):.2f} s"
        f"; → last ConfigMap written, median {statistics.median(to_last):.2f} s"
    )


@dataclass(frozen=True)
class Change:
    """One change the benchmark made: the set it leads to and when (wall clock)."""

    hash: str
    at: float


def every_mirror_written(
    path: Path, changes: list[Change], *, mirrors: int
) -> tuple[list[float], int]:
    """Per change, seconds from it to the last of `mirrors` mirrors written with its set
    before the next change; and how many changes had not reached every mirror by then."""
    writes: list[tuple[float, str, str]] = sorted(
        (log_time(e), str(e.get("hash")), str(e.get("namespace")))
        for e in log_events(path, "configmap.written")
        if e.get("kind") == "mirror"
    )
    delays, short = [], 0
    for index, change in enumerate(changes):
        until = changes[index + 1].at if index + 1 < len(changes) else float("inf")
        first: dict[str, float] = {}
        for at, digest, namespace in writes:
            if change.at <= at < until and digest == change.hash:
                first.setdefault(namespace, at)
        if len(first) >= mirrors:
            delays.append(max(first.values()) - change.at)
        else:
            short += 1
    return delays, short


def every_mirror_current(
    path: Path, changes: list[Change], *, mirrors: int
) -> tuple[list[float], int]:
    """Per change, seconds from it until every mirror held the set then in force: its
    own, or a later change's once that was made (a set a newer one made stale need
    never reach the mirrors). What a mirror holds is its last logged write, so one
    that already held the set in force counts without a write. Also how many changes
    had not reached every mirror by the end of the log."""
    writes: dict[str, list[tuple[float, str]]] = {}
    for entry in log_events(path, "configmap.written"):
        if entry.get("kind") == "mirror":
            writes.setdefault(str(entry.get("namespace")), []).append(
                (log_time(entry), str(entry.get("hash")))
            )
    for held in writes.values():
        held.sort()
    delays, unreached = [], 0
    for index, change in enumerate(changes):
        later = changes[index:]
        reached = [_current_from(held, later) for held in writes.values()]
        if len(writes) >= mirrors and all(at is not None for at in reached):
            delays.append(max(at for at in reached if at is not None) - change.at)
        else:
            unreached += 1
    return delays, unreached


def _current_from(held: list[tuple[float, str]], later: list[Change]) -> float | None:
    """The first moment from `later[0]` on when the mirror held the set in force."""
    moments = sorted({c.at for c in later} | {at for at, _ in held if at >= later[0].at})
    for moment in moments:
        holds = [digest for at, digest in held if at <= moment]
        in_force = [c.hash for c in later if c.at <= moment]
        if holds and in_force and holds[-1] == in_force[-1]:
            return moment
    return None


def round_bytes(path: Path, *, since: float, peers_hash: str = "") -> list[int]:
    """Bytes of ConfigMap bodies each write round sent (the watcher's `configmap.round`),
    of the rounds that wrote something (and wrote set `peers_hash`, if given)."""
    return [
        int(str(e["bytes"]))
        for e in log_events(path, "configmap.round")
        if log_time(e) >= since
        and int(str(e["bytes"])) > 0
        and e["hash"] == (peers_hash or e["hash"])
    ]


def layouts(path: Path) -> list[str]:
    """The ConfigMap layouts the watcher announced (`configmap.layout`), in order."""
    return [str(e.get("mode")) for e in log_events(path, "configmap.layout")]
