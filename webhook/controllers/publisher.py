"""The `stellar-peers` ConfigMaps: the canonical one and a mirror per enabled namespace.

Owns deciding which ConfigMaps to create, update or delete (`plan`, pure) and
doing it (`ConfigMapWriter`). Writes are compare-then-write: a ConfigMap whose
data and hash annotation already match is never touched, and every update
carries the resourceVersion just read, so a concurrent writer makes us re-read
(409) instead of overwriting. A ConfigMap named `stellar-peers` without our
owner labels belongs to someone else: we leave it, count it, and say so once
in a Warning Event. Which keys go where follows their sizes
(`webhook.core.publishing.publish_size`): mirrors without `peers.json` past 512 KiB, the
canonical one with it gzipped past 1 MiB, each change said in an Event; a set
that does not fit even then is not written: the last good one stays.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook import names
from webhook.core.peerset.peers import PeerSet
from webhook.core.publishing.publish import content_digest, merged, render
from webhook.core.publishing.publish_plan import (
    Step,
    Written,
    canonical_ref,
    is_ours,
    observed_digest,
    plan,
    with_own_writes,
)
from webhook.core.publishing.publish_size import (
    Layout,
    Mode,
    Notice,
    configmap_bodies,
    layout,
    notice,
)
from webhook.core.publishing.watched import KIND_CONFIGMAP, State, trim
from webhook.kube.api import FAILURES, describe_failure
from webhook.kube.events import EventRecorder
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
        self._events = EventRecorder(rest=self._rest)
        self._last_good: tuple[PeerSet, Layout] | None = None
        self._mode: Mode = "full"  # the layout last published, to say when it changes
        self._warned: set[str] = set()  # uids and hashes already reported in an Event
        # Writes of their own threads: a hung one never takes a thread others need.
        self._executor = ThreadPoolExecutor(WRITE_CONCURRENCY * 2, thread_name_prefix="cm-write")
        self._in_flight: dict[str, asyncio.Future[int | None]] = {}  # namespace -> its write
        self._written: dict[str, Written] = {}  # namespace -> our last write there

    def fit(self, peers: PeerSet) -> tuple[tuple[PeerSet, Layout] | None, str]:
        """The set to publish with its layout (`peers` if it fits, else the last good
        one) and a warning, if new."""
        shaped = layout(render(peers))
        if shaped.canonical is not None:
            self._last_good = (peers, shaped)
            return self._last_good, ""
        if peers.hash in self._warned:
            return self._last_good, ""
        self._warned.add(peers.hash)
        self.metrics.configmap_oversize_total.inc()
        log.error(
            "configmap.oversize",
            extra={
                "bytes": shaped.compressed_bytes,
                "plain_bytes": shaped.full_bytes,
                "limit": names.CONFIGMAP_MAX_BYTES,
                "peers": len(peers.peers),
                "keeping": self._last_good[0].hash if self._last_good else None,
            },
        )
        warning = (
            f"{len(peers.peers)} peers need {shaped.compressed_bytes} bytes even with "
            f"peers.json gzip-compressed ({shaped.full_bytes} in plain text), over the "
            f"ConfigMap limit of {names.CONFIGMAP_MAX_BYTES}; keeping the last peer set that fit"
        )
        return self._last_good, warning

    async def reconcile(
        self,
        *,
        peers: PeerSet,
        state: State,
        enabled: Iterable[str],
    ) -> bool:
        """Bring every `stellar-peers` ConfigMap in line; False when some call failed."""
        fitted, warning = self.fit(peers)
        if warning:
            await asyncio.to_thread(self._canonical_event, "PeerSetTooLarge", warning, "Warning")
        if fitted is None:
            return True
        published, shaped = fitted
        canonical = canonical_ref(self.settings)
        bodies = configmap_bodies(published, shaped, canonical=canonical)
        digests = {kind: content_digest(body) for kind, body in bodies.items()}
        state, applied = with_own_writes(state, dict(self._written))
        for namespace in set(self._written) - applied:  # the watch caught up there
            self._written.pop(namespace, None)
        steps = plan(
            state,
            desired_digest=digests["canonical"],
            mirror_digest=digests["mirror"],
            system_namespace=self.settings.namespace,
            enabled=enabled,
            canonical=canonical,
        )
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def run(step: Step) -> int | None:
            if step.namespace in self._in_flight:
                return None  # the previous write there is still hanging: a later round
            async with gate:
                kind = self._kind(step.namespace)
                call = functools.partial(self._do, step, bodies[kind], digests[kind])
                return await self._bounded(
                    step.namespace, loop.run_in_executor(self._executor, call)
                )

        # The canonical ConfigMap first: it is what the reload controller's hash
        # and operators look at, and with a hundred mirrors it would otherwise
        # wait behind them all.
        first = [step for step in steps if step.namespace == self.settings.namespace]
        rest = [step for step in steps if step.namespace != self.settings.namespace]
        started = time.monotonic()
        try:
            results = [await run(step) for step in first]
            results += await asyncio.gather(*(run(step) for step in rest))
        except asyncio.CancelledError:  # leadership lost: nothing of ours goes on writing
            for task in self._in_flight.values():
                task.cancel()
            raise
        if steps:
            sent = sum(r or 0 for r in results)
            log.info(
                "configmap.round",
                extra={
                    "hash": published.hash,
                    "steps": len(steps),
                    "bytes": sent,
                    "mode": shaped.mode,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
        said = notice(self._mode, shaped, canonical=canonical)
        self._mode = shaped.mode
        if said is not None:
            await asyncio.to_thread(self._announce, said, shaped)
        return all(r is not None for r in results)

    def _kind(self, namespace: str) -> str:
        return "canonical" if namespace == self.settings.namespace else "mirror"

    def _announce(self, said: Notice, shaped: Layout) -> None:
        """The layout changed: a log line and an Event on the canonical ConfigMap."""
        log.log(
            logging.WARNING if said.event_type == "Warning" else logging.INFO,
            "configmap.layout",
            extra={
                "mode": shaped.mode,
                "reason": said.reason,
                "json_bytes": shaped.json_bytes,
                "plain_bytes": shaped.full_bytes,
                "compressed_bytes": shaped.compressed_bytes,
                "says": said.message,
            },
        )
        self._canonical_event(said.reason, said.message, said.event_type)

    async def _bounded(self, namespace: str, write: asyncio.Future[int | None]) -> int | None:
        """The write's result, but one still hanging `ROUND_WAIT_SECONDS` after it
        started is left to finish on its own thread (bounded by the call timeout) and
        its namespace skipped until then, so one hung write never holds up the other
        ConfigMaps' rounds. The clock starts at the write, not in the queue for the
        gate: with a hundred mirrors, eight at a time, most of them wait there longer."""
        self._in_flight[namespace] = write
        write.add_done_callback(lambda _: self._in_flight.pop(namespace, None))
        done, _ = await asyncio.wait({write}, timeout=ROUND_WAIT_SECONDS)
        if not done:
            log.warning("configmap.write-slow", extra={"namespace": namespace})
            return None
        return write.result()

    def _do(self, step: Step, body: dict[str, Any], digest: str) -> int | None:
        """Carry out one step; the bytes of JSON sent (0 for none), None when a call failed."""
        kind = self._kind(step.namespace)
        try:
            if step.verb == "conflict":
                self._conflict(step.namespace, step.uid)
            elif step.verb == "delete":
                self._delete(step.namespace, step.uid, kind)
            else:
                return self._write(step.namespace, body, digest, kind, known=step.observed)
        except FAILURES as exc:
            self.metrics.configmap_writes_total.labels(kind=kind, result="error").inc()
            log.warning(
                "configmap.write-failed",
                extra={
                    "namespace": step.namespace,
                    "verb": step.verb,
                    "error": describe_failure(exc),
                },
            )
            return None
        return 0

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
    ) -> int:
        """Create or replace, carrying the resourceVersion last seen; the bytes of JSON sent.

        The first try trusts what the watch last saw (`known`, no read: with a
        hundred mirrors the reads were half the time); a 409 means it was stale,
        or someone wrote in between: read afresh and try again.
        """
        current: Mapping[str, Any] | None = known
        sent = 0
        for attempt in range(CONFLICT_RETRIES):
            if attempt:
                current = self._read(namespace)
            if current is not None and not is_ours(current, canonical=canonical_ref(self.settings)):
                self._conflict(namespace, str(current["metadata"].get("uid") or ""))
                return sent
            if current is not None and observed_digest(current) == digest:
                return sent
            wanted = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
            try:
                if current is None:
                    sent += self._count(wanted, kind)
                    answer = self._rest.create(
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
                    # with labels); ours are as `body` has them (`publish.merged`).
                    content = merged(current, body)
                    wanted["data"] = content["data"]
                    wanted.pop("binaryData", None)
                    if content["binaryData"]:
                        wanted["binaryData"] = content["binaryData"]
                    sent += self._count(wanted, kind)
                    answer = self._rest.replace(
                        _configmap(namespace), wanted, field_manager=names.FIELD_MANAGER
                    )
                    result = "updated"
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            if current is not None:  # not a create: a delete before its echo would hide
                written = trim(answer, kind=KIND_CONFIGMAP)
                self._written[namespace] = (current["metadata"]["resourceVersion"], written)
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
            return sent
        raise ApiException(status=409, reason=f"{namespace}: still conflicting after retries")

    def _count(self, wanted: Mapping[str, Any], kind: str) -> int:
        """Bytes of the body about to be sent (compact JSON), counted in the metric."""
        size = len(orjson.dumps(wanted))
        self.metrics.configmap_write_bytes_total.labels(kind=kind).inc(size)
        return size

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

    def _canonical_event(self, reason: str, message: str, event_type: str) -> None:
        """An Event on the canonical ConfigMap: the place an operator looks first."""
        namespace = self.settings.namespace
        try:
            current = self._read(namespace)
            uid = str((current or {}).get("metadata", {}).get("uid") or "")
            self._event(
                namespace=namespace,
                uid=uid,
                reason=reason,
                message=message,
                event_type=event_type,
            )
        except FAILURES as exc:
            log.warning("configmap.event-failed", extra={"error": describe_failure(exc)})

    def _event(
        self, *, namespace: str, uid: str, reason: str, message: str, event_type: str = "Warning"
    ) -> None:
        try:
            self._events.record_now(
                key=reason,
                kind="ConfigMap",
                name=names.CONFIGMAP_NAME,
                namespace=namespace,
                uid=uid,
                reason=reason,
                message=message,
                event_type=event_type,
            )
        except FAILURES as exc:
            log.warning(
                "configmap.event-failed", extra={"reason": reason, "error": describe_failure(exc)}
            )


def _configmap(namespace: str) -> str:
    return path("v1", "configmaps", namespace=namespace, name=names.CONFIGMAP_NAME)
