"""The Lease rules, pure: who may take it, and how long this replica may go on leading.

Expiry is judged as client-go's leader election judges it: by when *this* replica
last saw the record change (its own monotonic clock), never by comparing its
wall clock with the holder's `renewTime`, so clock skew between nodes cannot
make two leaders. A holder leads until `renew deadline` after its last good
renewal: one failed renewal within it does not drop leadership; a read showing
another live holder does, at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["create", "renew", "takeover", "wait"]
# What one attempt found: still ours, another live holder, or no answer (retry).
Outcome = Literal["held", "lost", "failed"]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def micro_time(moment: dt.datetime) -> str:
    """The API's MicroTime format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> dt.datetime | None:
    """An API timestamp (`...Z` or with offset; none means UTC), or None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Observed:
    """The Lease record as last read, and when (monotonic seconds) it last changed."""

    record: tuple[Any, ...]
    at: float


def record(lease: dict[str, Any] | None) -> tuple[Any, ...]:
    spec = (lease or {}).get("spec") or {}
    keys = ("holderIdentity", "renewTime", "acquireTime", "leaseDurationSeconds")
    return (*(spec.get(k) for k in keys), spec.get("leaseTransitions"))


def observe(previous: Observed | None, lease: dict[str, Any] | None, *, now: float) -> Observed:
    """The observation after a read: its time moves only when the record changed."""
    current = record(lease)
    if previous is not None and previous.record == current:
        return previous
    return Observed(record=current, at=now)


def decide(
    lease: dict[str, Any] | None, *, identity: str, observed: Observed, now: float
) -> Action:
    """What to do with the Lease as read; `now` is this replica's monotonic clock."""
    if lease is None:
        return "create"
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return "renew"
    duration = float(spec.get("leaseDurationSeconds") or 0)
    if not holder or now >= observed.at + duration:
        return "takeover"
    return "wait"


def lease_spec(
    lease: dict[str, Any] | None,
    *,
    action: Action,
    identity: str,
    now: dt.datetime,
    duration_seconds: int,
) -> dict[str, Any]:
    """The Lease spec to write for `action` (create, renew or takeover)."""
    spec = dict((lease or {}).get("spec") or {})
    stamp = micro_time(now)
    spec.update(holderIdentity=identity, renewTime=stamp, leaseDurationSeconds=duration_seconds)
    if action != "renew":
        spec["acquireTime"] = stamp
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
            1 if action == "takeover" else 0
        )
    return spec


def leading_until(current: float, outcome: Outcome, *, started: float, deadline: float) -> float:
    """Until when (monotonic) this replica leads after an attempt begun at `started`.

    0 means not leading. A failed attempt keeps what the last good renewal gave.
    """
    if outcome == "held":
        return started + deadline
    if outcome == "lost":
        return 0.0
    return current


def next_attempt_in(until: float, *, now: float, renew_seconds: float, failed: bool) -> float:
    """Seconds to the next attempt: sooner after a failure, while leadership lasts."""
    if failed and until > now:
        return max(0.05, min(renew_seconds, (until - now) / 3))
    if until > now:
        return max(0.0, min(renew_seconds, until - now))
    return renew_seconds
