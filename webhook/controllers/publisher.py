"""The `stellar-peers` ConfigMaps: the canonical one and a mirror per enabled namespace.

Owns deciding which ConfigMaps to create, update or delete (`plan`, pure) and
doing it (`ConfigMapWriter`). Writes are compare-then-write: a ConfigMap whose
data and hash annotation already match is never touched, and every update
carries the resourceVersion just read, so a concurrent writer makes us re-read
(409) instead of overwriting. A ConfigMap named `stellar-peers` without our
owner labels belongs to someone else: we leave it, count it, and say so once
in a Warning Event. A peer set past the 1 MiB limit is not written: the last
good one stays.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.core.peers import PeerSet
from webhook.core.publish import configmap_body, content_digest, encoded_size, render
from webhook.core.publish_plan import Step, canonical_ref, is_ours, observed_digest, plan
from webhook.core.watched import State
from webhook.kube.api import FAILURES
from webhook.kube.events import event_body
from webhook.kube.rest import Rest, path
from webhook.metrics import Metrics
from webhook.settings import Settings

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8
# A round waits this long for one write; one still hanging then finishes alone.
ROUND_WAIT_SECONDS = 2.0
CONFLICT_RETRIES = 3


class ConfigMapWriter:
    def __init__(
        self, *, settings: Settings, api_client: client.ApiClient, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._rest = Rest(api_client)
        self._last_good: PeerSet | None = None
        self._warned: set[str] = set()  # uids and hashes already reported in an Event
        # Writes of their own threads: a hung one never takes a thread others need.
        self._executor = ThreadPoolExecutor(WRITE_CONCURRENCY * 2, thread_name_prefix="cm-write")
        self._in_flight: dict[str, asyncio.Future[bool]] = {}  # namespace -> its write

    def fit(self, peers: PeerSet) -> tuple[PeerSet | None, str]:
        """The set to publish (`peers` if it fits, else the last good one) and a warning, if new."""
        size = encoded_size(render(peers))
        if size <= names.CONFIGMAP_MAX_BYTES:
            self._last_good = peers
            return peers, ""
        if peers.hash in self._warned:
            return self._last_good, ""
        self._warned.add(peers.hash)
        self.metrics.configmap_oversize_total.inc()
        log.error(
            "configmap.oversize",
            extra={
                "bytes": size,
                "limit": names.CONFIGMAP_MAX_BYTES,
                "peers": len(peers.peers),
                "keeping": self._last_good.hash if self._last_good else None,
            },
        )
        warning = (
            f"{len(peers.peers)} peers need {size} bytes, over the ConfigMap limit of "
            f"{names.CONFIGMAP_MAX_BYTES}; keeping the last peer set that fit"
        )
        return self._last_good, warning

    async def reconcile(
        self,
        *,
        peers: PeerSet,
        state: State,
        enabled: Iterable[str],
        is_leader: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Bring every `stellar-peers` ConfigMap in line; False when some call failed."""
        published, warning = self.fit(peers)
        if warning:
            await asyncio.to_thread(self._oversize_event, warning)
        if published is None:
            return True
        canonical = canonical_ref(self.settings)
        body = configmap_body(
            published,
            name=names.CONFIGMAP_NAME,
            namespace="",
            annotations={names.CANONICAL_ANNOTATION: canonical},
        )
        digest = content_digest(body)
        steps = plan(
            state,
            desired_digest=digest,
            system_namespace=self.settings.namespace,
            enabled=enabled,
            canonical=canonical,
        )
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def run(step: Step) -> bool:
            async with gate:
                if not is_leader():  # lost the Lease mid-round: stop writing at once
                    return True
                call = functools.partial(self._do, step, body, digest)
                return await loop.run_in_executor(self._executor, call)

        # The canonical ConfigMap first: it is what the reload controller's hash
        # and operators look at, and with a hundred mirrors it would otherwise
        # wait behind them all.
        first = [step for step in steps if step.namespace == self.settings.namespace]
        rest = [step for step in steps if step.namespace != self.settings.namespace]
        try:
            results = [await self._bounded(step, run) for step in first]
            results += await asyncio.gather(*(self._bounded(step, run) for step in rest))
        except asyncio.CancelledError:  # leadership lost: nothing of ours goes on writing
            for task in self._in_flight.values():
                task.cancel()
            raise
        return all(results)

    async def _bounded(self, step: Step, run: Callable[[Step], Awaitable[bool]]) -> bool:
        """`run(step)`, but a write still hanging after `ROUND_WAIT_SECONDS` is left to
        finish on its own (bounded by the call timeout) and its namespace skipped until
        then, so one hung write never holds up the other ConfigMaps' rounds."""
        if step.namespace in self._in_flight:
            return False  # the previous write there is still hanging: a later round
        task = asyncio.ensure_future(run(step))
        self._in_flight[step.namespace] = task
        task.add_done_callback(lambda _: self._in_flight.pop(step.namespace, None))
        done, _ = await asyncio.wait({task}, timeout=ROUND_WAIT_SECONDS)
        if not done:
            log.warning("configmap.write-slow", extra={"namespace": step.namespace})
            return False
        return task.result()

    def _do(self, step: Step, body: dict[str, Any], digest: str) -> bool:
        kind = "canonical" if step.namespace == self.settings.namespace else "mirror"
        try:
            if step.verb == "conflict":
                self._conflict(step.namespace, step.uid)
            elif step.verb == "delete":
                self._delete(step.namespace, step.uid, kind)
            else:
                self._write(step.namespace, body, digest, kind, known=step.observed)
        except FAILURES as exc:
            self.metrics.configmap_writes_total.labels(kind=kind, result="error").inc()
            log.warning(
                "configmap.write-failed",
                extra={"namespace": step.namespace, "verb": step.verb, "error": repr(exc)[:300]},
            )
            return False
        return True

    def _read(self, namespace: str) -> dict[str, Any] | None:
        try:
            return self._rest.get(_configmap(namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _write(
        self,
        namespace: str,
        body: dict[str, Any],
        digest: str,
        kind: str,
        *,
        known: Mapping[str, Any] | None = None,
    ) -> None:
        """Create or replace, carrying the resourceVersion last seen.

        The first try trusts what the watch last saw (`known`, no read: with a
        hundred mirrors the reads were half the time); a 409 means it was stale,
        or someone wrote in between: read afresh and try again.
        """
        current: Mapping[str, Any] | None = known
        for attempt in range(CONFLICT_RETRIES):
            if attempt:
                current = self._read(namespace)
            if current is not None and not is_ours(current, canonical=canonical_ref(self.settings)):
                self._conflict(namespace, str(current["metadata"].get("uid") or ""))
                return
            if current is not None and observed_digest(current) == digest:
                return
            wanted = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
            try:
                if current is None:
                    self._rest.create(
                        path("v1", "configmaps", namespace=namespace),
                        wanted,
                        field_manager=names.FIELD_MANAGER,
                    )
                    result = "created"
                else:
                    wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    labels = current["metadata"].get("labels") or {}
                    annotations = current["metadata"].get("annotations") or {}
                    # Keep what others added beside ours; ours win on the keys we own.
                    wanted["metadata"]["labels"] = {**labels, **body["metadata"]["labels"]}
                    wanted["metadata"]["annotations"] = {
                        **annotations,
                        **body["metadata"]["annotations"],
                    }
                    # Data keys and binaryData someone else added stay too (a merge, as
                    # with labels): ours are DATA_KEYS, and ours win on them.
                    wanted["data"] = {**(current.get("data") or {}), **body["data"]}
                    if current.get("binaryData"):
                        wanted["binaryData"] = current["binaryData"]
                    self._rest.replace(
                        _configmap(namespace), wanted, field_manager=names.FIELD_MANAGER
                    )
                    result = "updated"
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            self.metrics.configmap_writes_total.labels(kind=kind, result=result).inc()
            log.info(
                "configmap.written",
                extra={
                    "namespace": namespace,
                    "kind": kind,
                    "result": result,
                    "hash": body["metadata"]["annotations"][names.PEERS_HASH_ANNOTATION],
                },
            )
            return
        raise ApiException(status=409, reason=f"{namespace}: still conflicting after retries")

    def _delete(self, namespace: str, uid: str, kind: str) -> None:
        options = {"preconditions": {"uid": uid}} if uid else None
        try:
            self._rest.delete(_configmap(namespace), options)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or replaced by someone else's
                raise
            return
        self.metrics.configmap_writes_total.labels(kind=kind, result="deleted").inc()
        log.info(
            "configmap.deleted", extra={"namespace": namespace, "reason": "namespace-disabled"}
        )

    def _conflict(self, namespace: str, uid: str) -> None:
        """Someone else's `stellar-peers`: never touched; reported once per object."""
        if uid in self._warned:
            return
        self._warned.add(uid)
        self.metrics.configmap_conflicts_total.inc()
        log.warning(
            "configmap.conflict",
            extra={"namespace": namespace, "configmap": names.CONFIGMAP_NAME, "uid": uid},
        )
        self._event(
            namespace=namespace,
            uid=uid,
            reason="NotOwned",
            message="a ConfigMap named stellar-peers that this peer injector does not own "
            "(no owner labels, or another installation's mirror) exists here; "
            "it is left untouched",
        )

    def _oversize_event(self, message: str) -> None:
        """A Warning Event on the canonical ConfigMap: the place an operator looks first."""
        namespace = self.settings.namespace
        try:
            current = self._read(namespace)
            uid = str((current or {}).get("metadata", {}).get("uid") or "")
            self._event(namespace=namespace, uid=uid, reason="PeerSetTooLarge", message=message)
        except FAILURES as exc:
            log.warning("configmap.event-failed", extra={"error": repr(exc)[:300]})

    def _event(self, *, namespace: str, uid: str, reason: str, message: str) -> None:
        body = event_body(
            kind="ConfigMap",
            name=names.CONFIGMAP_NAME,
            namespace=namespace,
            uid=uid,
            reason=reason,
            message=message,
            event_type="Warning",
        )
        try:
            self._rest.create(path("v1", "events", namespace=namespace), body)
        except FAILURES as exc:
            log.warning(
                "configmap.event-failed", extra={"reason": reason, "error": repr(exc)[:300]}
            )


def _configmap(namespace: str) -> str:
    return path("v1", "configmaps", namespace=namespace, name=names.CONFIGMAP_NAME)
