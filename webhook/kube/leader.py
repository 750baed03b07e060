"""Leader election over a `coordination.k8s.io/v1` Lease: one replica writes.

Owns the Lease `settings.lease_name` in `settings.namespace`. The holder
renews it every `lease_renew_seconds`; anyone may take it once
`renewTime + leaseDurationSeconds` has passed. Every write carries the
resourceVersion that was read, so two replicas racing for it cannot both win
(the loser gets a 409). `is_leader()` turns False the moment a renewal fails or
the renew deadline passes, well before another replica may take over; a clean
stop releases the Lease so a successor need not wait for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import socket
import time
from typing import Any, Literal

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube.api import FAILURES
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

Action = Literal["create", "renew", "takeover", "wait"]


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


def decide(lease: dict[str, Any] | None, *, identity: str, now: dt.datetime) -> Action:
    """What to do with the Lease as read: pure, so the rules read in one place."""
    if lease is None:
        return "create"
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return "renew"
    renewed = parse_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    if not holder or renewed is None or renewed + dt.timedelta(seconds=duration) < now:
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


class LeaderElector:
    def __init__(
        self, *, settings: Settings, api_client: client.ApiClient, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        self._api = client.CoordinationV1Api(api_client)
        self._duration = max(1, math.ceil(settings.lease_duration_seconds))
        # Stop writing this long after the last good renewal: sooner than anyone may take over.
        self._renew_deadline = settings.lease_duration_seconds - settings.lease_renew_seconds
        self._leading_until = 0.0  # time.monotonic() value; 0 means not leading

    def is_leader(self) -> bool:
        if not self.settings.leader_election:
            return True
        return time.monotonic() < self._leading_until

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire, renew and, on a clean stop, release the Lease."""
        if not self.settings.leader_election:
            self.metrics.leader.set(1)
            await stop.wait()
            return
        try:
            while not stop.is_set():
                was_leader = self.is_leader()
                started = time.monotonic()
                try:
                    won = await asyncio.to_thread(self._attempt)
                except FAILURES as exc:
                    won = False
                    log.warning("leader.renew-failed", extra={"error": repr(exc)[:300]})
                self._leading_until = started + self._renew_deadline if won else 0.0
                self._report(was_leader=was_leader)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.lease_renew_seconds):
                        await stop.wait()
        finally:
            if self._leading_until:
                self._leading_until = 0.0
                await asyncio.to_thread(self._release)
            self.metrics.leader.set(0)

    def _report(self, *, was_leader: bool) -> None:
        leading = self.is_leader()
        self.metrics.leader.set(1 if leading else 0)
        if leading and not was_leader:
            log.info(
                "leader.acquired",
                extra={"identity": self.identity, "lease": self.settings.lease_name},
            )
        elif was_leader and not leading:
            log.warning(
                "leader.lost", extra={"identity": self.identity, "lease": self.settings.lease_name}
            )

    def _read(self) -> dict[str, Any] | None:
        try:
            response = self._api.read_namespaced_lease(
                self.settings.lease_name,
                self.settings.namespace,
                _preload_content=False,
                _request_timeout=self.settings.lease_renew_seconds,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        lease: dict[str, Any] = orjson.loads(response.data)
        return lease

    def _attempt(self) -> bool:
        """One round: True when this replica holds the Lease afterwards."""
        lease = self._read()
        now = now_utc()
        action = decide(lease, identity=self.identity, now=now)
        if action == "wait":
            return False
        spec = lease_spec(
            lease, action=action, identity=self.identity, now=now, duration_seconds=self._duration
        )
        name, namespace = self.settings.lease_name, self.settings.namespace
        try:
            if lease is None:
                body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
                self._api.create_namespaced_lease(
                    namespace, body, _request_timeout=self.settings.lease_renew_seconds
                )
            else:
                metadata = {
                    "name": name,
                    "namespace": namespace,
                    "resourceVersion": lease["metadata"]["resourceVersion"],
                }
                self._api.replace_namespaced_lease(
                    name,
                    namespace,
                    {"metadata": metadata, "spec": spec},
                    _request_timeout=self.settings.lease_renew_seconds,
                )
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote first: they won this round
                return False
            raise
        if action == "takeover":
            log.info(
                "leader.takeover",
                extra={
                    "identity": self.identity,
                    "previous": (lease or {}).get("spec", {}).get("holderIdentity"),
                },
            )
        return True

    def _release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration) so a successor takes it at once."""
        try:
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease["spec"])
            spec.update(
                holderIdentity=None, leaseDurationSeconds=1, renewTime=micro_time(now_utc())
            )
            self._api.replace_namespaced_lease(
                self.settings.lease_name,
                self.settings.namespace,
                {"metadata": lease["metadata"], "spec": spec},
                _request_timeout=self.settings.lease_renew_seconds,
            )
            log.info("leader.released", extra={"identity": self.identity})
        except FAILURES as exc:
            log.warning("leader.release-failed", extra={"error": repr(exc)[:300]})
