"""Leader election over a `coordination.k8s.io/v1` Lease: one replica writes.

Owns the Lease `settings.lease_name` in `settings.namespace`. The holder
renews it every `lease_renew_seconds`; another replica takes it once it has
seen the record unchanged for `leaseDurationSeconds` (`webhook.core.lease`:
its own monotonic clock, never the holder's). Every write carries the
resourceVersion that was read, so two replicas racing for it cannot both win
(the loser gets a 409). The holder leads until the renew deadline after its
last good renewal (a failed renewal is retried sooner, and drops nothing
until then); a read showing another holder ends it at once. Renewals run on
a thread of their own, so they never queue behind other work.

Leader-only work is a `Runnable` declared `leader_only`, started by `start`
(the one place that asks who leads): it runs while the Lease is held and is
cancelled the moment leadership ends, as controller-runtime's manager does
with its leader-election runnables, not at its next check. A clean stop
releases the Lease so a successor need not wait for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.core.lease import (
    Observed,
    Outcome,
    decide,
    leading_until,
    lease_spec,
    micro_time,
    next_attempt_in,
    now_utc,
    observe,
    parse_time,
)
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["LeaderElector", "Runnable", "micro_time", "now_utc", "parse_time", "start"]


@dataclasses.dataclass(frozen=True)
class Runnable:
    """One part of the service: `run(stop)` works until `stop` is set.

    A `leader_only` one runs only while this replica holds the Lease: started
    when it is won, cancelled when it is lost, started afresh when won again.
    """

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]
    leader_only: bool = False


def start(
    runnables: Iterable[Runnable], *, leader: LeaderElector | None, stop: asyncio.Event
) -> list[Coroutine[Any, Any, None]]:
    """The one place runnables start: each as a coroutine for the caller to run.

    With no elector (no Lease is taken: the watcher is off) every replica
    runs the leader-only ones too, as before there was anything to lead.
    """
    parts: list[Coroutine[Any, Any, None]] = []
    for runnable in runnables:
        if runnable.leader_only and leader is not None:
            parts.append(leader.run_leading(runnable.run, stop))
        else:
            parts.append(_awaited(runnable.run(stop)))
    return parts


async def _awaited(work: Awaitable[None]) -> None:
    await work


class LeaderElector:
    def __init__(
        self, *, settings: Settings, api_client: client.ApiClient, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        self._rest = Rest(api_client)
        self._path = path(
            "coordination.k8s.io/v1",
            "leases",
            namespace=settings.namespace,
            name=settings.lease_name,
        )
        self._duration = max(1, math.ceil(settings.lease_duration_seconds))
        # Stop writing this long after the last good renewal: sooner than anyone may take over.
        self._renew_deadline = settings.lease_duration_seconds - settings.lease_renew_seconds
        self._leading_until = 0.0  # time.monotonic() value; 0 means not leading
        self._observed: Observed | None = None
        self._changed = asyncio.Event()  # set, then replaced, whenever leadership changes
        self._executor: ThreadPoolExecutor | None = None

    def is_leader(self) -> bool:
        if not self.settings.leader_election:
            return True
        return time.monotonic() < self._leading_until

    async def guard(self, work: Awaitable[T]) -> T | None:
        """Run leader-only `work`; cancel it the moment leadership ends (None then)."""
        task = asyncio.ensure_future(work)
        if not self.settings.leader_election:
            return await task
        try:
            while not task.done():
                if not self.is_leader():
                    task.cancel()
                    log.warning("leader.work-cancelled", extra={"identity": self.identity})
                    await asyncio.gather(task, return_exceptions=True)
                    return None
                changed = asyncio.ensure_future(self._changed.wait())
                # The deadline too: a renewal stuck in its call must not keep the work going.
                remaining = max(0.0, self._leading_until - time.monotonic()) + 0.01
                await asyncio.wait(
                    {task, changed}, timeout=remaining, return_when="FIRST_COMPLETED"
                )
                changed.cancel()
        except asyncio.CancelledError:
            task.cancel()
            raise
        return task.result()

    async def run_leading(
        self, runnable: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        """Run `runnable(stop)` while leading: started on election, cancelled on loss."""
        while not stop.is_set():
            while not self.is_leader():
                changed = asyncio.ensure_future(self._changed.wait())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({changed, stopping}, return_when="FIRST_COMPLETED")
                changed.cancel()
                stopping.cancel()
                if stop.is_set():
                    return
            await self.guard(runnable(stop))

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire, renew and, on a clean stop, release the Lease."""
        if not self.settings.leader_election:
            self.metrics.leader.set(1)
            await stop.wait()
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lease")
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                was_leader = self.is_leader()
                started = time.monotonic()
                outcome: Outcome
                try:
                    outcome = await loop.run_in_executor(self._executor, self._attempt)
                except FAILURES as exc:
                    outcome = "failed"
                    self._log_failure(exc)
                self._leading_until = leading_until(
                    self._leading_until, outcome, started=started, deadline=self._renew_deadline
                )
                self._report(was_leader=was_leader)
                leading = self.is_leader()
                pause = next_attempt_in(
                    self._leading_until,
                    now=time.monotonic(),
                    renew_seconds=self.settings.lease_renew_seconds,
                    failed=outcome == "failed",
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await stop.wait()
                self._report(was_leader=leading)  # the renew deadline may have passed
        finally:
            if self._leading_until:
                self._leading_until = 0.0
                self._report(was_leader=True)
                await loop.run_in_executor(self._executor, self._release)
            self.metrics.leader.set(0)
            self._executor.shutdown(wait=False)

    def _log_failure(self, exc: BaseException) -> None:
        hint = "retrying; leadership holds until the renew deadline"
        if isinstance(exc, ApiException) and exc.status == 404:
            hint = (
                f"namespace {self.settings.namespace!r} is gone: "
                f"`kubectl create namespace {self.settings.namespace}`"
            )
        log.warning(
            "leader.renew-failed",
            extra={"error": describe_failure(exc), "hint": hint, "leading": self.is_leader()},
        )

    def _report(self, *, was_leader: bool) -> None:
        leading = self.is_leader()
        self.metrics.leader.set(1 if leading else 0)
        if leading == was_leader:
            return
        self._changed.set()
        self._changed = asyncio.Event()
        if leading:
            log.info(
                "leader.acquired",
                extra={"identity": self.identity, "lease": self.settings.lease_name},
            )
        else:
            log.warning(
                "leader.lost", extra={"identity": self.identity, "lease": self.settings.lease_name}
            )

    def _read(self) -> dict[str, Any] | None:
        try:
            return self._rest.get(self._path, timeout=self.settings.lease_renew_seconds)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _attempt(self) -> Outcome:
        """One round: what this replica holds afterwards."""
        lease = self._read()
        self._observed = observe(self._observed, lease, now=time.monotonic())
        action = decide(
            lease, identity=self.identity, observed=self._observed, now=time.monotonic()
        )
        if action == "wait":
            return "lost"
        spec = lease_spec(
            lease,
            action=action,
            identity=self.identity,
            now=now_utc(),
            duration_seconds=self._duration,
        )
        name, namespace = self.settings.lease_name, self.settings.namespace
        try:
            if lease is None:
                body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
                self._rest.create(
                    path("coordination.k8s.io/v1", "leases", namespace=namespace),
                    body,
                    timeout=self.settings.lease_renew_seconds,
                )
            else:
                metadata = {
                    "name": name,
                    "namespace": namespace,
                    "resourceVersion": lease["metadata"]["resourceVersion"],
                }
                self._rest.replace(
                    self._path,
                    {"metadata": metadata, "spec": spec},
                    timeout=self.settings.lease_renew_seconds,
                )
        except ApiException as exc:
            if exc.status == 409:  # someone wrote in between: read again soon
                return "failed"
            raise
        if action == "takeover":
            log.info(
                "leader.takeover",
                extra={
                    "identity": self.identity,
                    "previous": (lease or {}).get("spec", {}).get("holderIdentity"),
                },
            )
        return "held"

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
            self._rest.replace(
                self._path,
                {"metadata": lease["metadata"], "spec": spec},
                timeout=self.settings.lease_renew_seconds,
            )
            log.info("leader.released", extra={"identity": self.identity})
        except FAILURES as exc:
            log.warning("leader.release-failed", extra={"error": describe_failure(exc)})
