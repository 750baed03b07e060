"""The Lease rules: expiry by our own observation, leadership through a failed renewal."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook.core.lease import (
    Observed,
    decide,
    leading_until,
    lease_spec,
    micro_time,
    next_attempt_in,
    observe,
)


def lease(holder: str | None, *, renewed: dt.datetime, duration: int = 15) -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "renewTime": micro_time(renewed),
            "leaseDurationSeconds": duration,
        },
    }


NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_holder_whose_clock_runs_behind_is_not_deposed_while_it_renews() -> None:
    # The holder's clock is an hour behind ours: its renewTime looks long expired.
    stale_looking = lease("other", renewed=NOW - dt.timedelta(hours=1))
    seen = observe(None, stale_looking, now=100.0)
    assert decide(stale_looking, identity="me", observed=seen, now=100.0) == "wait"
    # It renews (renewTime moves, still an hour "old"): the record changed, the wait restarts.
    renewed = lease("other", renewed=NOW - dt.timedelta(hours=1) + dt.timedelta(seconds=5))
    later = observe(seen, renewed, now=112.0)
    assert later.at == 112.0
    assert decide(renewed, identity="me", observed=later, now=120.0) == "wait"


def test_a_holder_whose_clock_runs_ahead_is_deposed_once_its_record_stops_changing() -> None:
    ahead = lease("other", renewed=NOW + dt.timedelta(hours=1), duration=15)
    seen = observe(None, ahead, now=100.0)
    assert decide(ahead, identity="me", observed=seen, now=114.9) == "wait"
    # Unchanged for the whole duration by our own clock: taken, whatever its renewTime says.
    assert observe(seen, ahead, now=115.0) is seen
    assert decide(ahead, identity="me", observed=seen, now=115.0) == "takeover"


def test_released_missing_and_own_leases() -> None:
    observed = Observed(record=(), at=0.0)
    assert decide(None, identity="me", observed=observed, now=0.0) == "create"
    released = lease(None, renewed=NOW)
    assert decide(released, identity="me", observed=observed, now=0.0) == "takeover"
    mine = lease("me", renewed=NOW - dt.timedelta(days=1))
    assert decide(mine, identity="me", observed=observed, now=0.0) == "renew"


def test_one_failed_renewal_within_the_deadline_keeps_leadership() -> None:
    until = leading_until(0.0, "held", started=100.0, deadline=10.0)
    assert until == 110.0
    assert leading_until(until, "failed", started=105.0, deadline=10.0) == 110.0
    # Retried sooner than the renew period, and before the deadline.
    pause = next_attempt_in(until, now=105.0, renew_seconds=5.0, failed=True)
    assert 0 < pause < 5.0
    assert 105.0 + pause < 110.0
    assert leading_until(until, "held", started=106.0, deadline=10.0) == 116.0


def test_another_holder_seen_ends_leadership_at_once() -> None:
    assert leading_until(110.0, "lost", started=105.0, deadline=10.0) == 0.0


def test_a_leader_wakes_at_its_deadline() -> None:
    assert next_attempt_in(101.0, now=100.0, renew_seconds=5.0, failed=False) == 1.0
    assert next_attempt_in(0.0, now=100.0, renew_seconds=5.0, failed=False) == 5.0


def test_takeover_counts_a_transition_and_renew_keeps_acquire_time() -> None:
    current = lease("other", renewed=NOW)
    current["spec"].update(acquireTime="then", leaseTransitions=2)
    taken = lease_spec(current, action="takeover", identity="me", now=NOW, duration_seconds=15)
    assert (taken["holderIdentity"], taken["leaseTransitions"]) == ("me", 3)
    kept = lease_spec({"spec": taken}, action="renew", identity="me", now=NOW, duration_seconds=15)
    assert kept["acquireTime"] == taken["acquireTime"]
    assert kept["leaseTransitions"] == 3


def test_api_timestamps_are_read_by_one_parser() -> None:
    """`parse_time` reads the Lease's MicroTime and an Event's plain Time alike (`status`'s
    link rows once parsed only the latter)."""
    import datetime as dt

    from webhook.cli.link_status import _ago
    from webhook.core.lease import micro_time, parse_time

    moment = dt.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)
    assert parse_time(micro_time(moment)) == moment
    assert parse_time("2026-01-01T00:00:00Z") == moment.replace(microsecond=0)
    assert parse_time("yesterday") is None
    later = moment + dt.timedelta(seconds=10)
    assert _ago("2026-01-01T00:00:00.500000Z", later) == "10s ago"
