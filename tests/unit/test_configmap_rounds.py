"""The ConfigMap publisher's rounds against an in-memory API server: a newer peer set
makes the older one's mirror writes stale, and they are skipped, not sent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from kubernetes import client

from webhook import names
from webhook.controllers.configmaps import CHURN_WINDOW_SECONDS, ConfigMapPublisher, Fold
from webhook.controllers.exposure import ExposureReport
from webhook.controllers.publisher import WRITE_CONCURRENCY, ConfigMapWriter
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.metrics import Metrics
from webhook.settings import Settings

MIRRORS = [f"m{i:02}" for i in range(3 * WRITE_CONCURRENCY)]


class Answer:
    """What `Rest` reads of an answer: the urllib3 response and its status."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.reason = "fake"
        self.headers: dict[str, str] = {}
        self.data = orjson.dumps(body)
        self.response = self

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict[str, str]:
        return {}


class ConfigMapServer(client.ApiClient):
    """ConfigMaps and Events in memory. While `hold` is set, each mirror write waits
    for `release`, so a round's first writes can be kept in flight."""

    def __init__(self) -> None:
        super().__init__(client.Configuration())
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, Any]] = {}  # namespace -> its ConfigMap
        self.writes: list[tuple[str, str]] = []  # (namespace, peers hash), in order
        self.canonical_at: list[tuple[str, float]] = []  # (peers hash, monotonic time)
        self.held = 0
        self.hold = threading.Event()
        self.release = threading.Event()
        self.version = 0

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Answer:
        body = kwargs.get("body", args[1] if len(args) > 1 else None)
        parts = url.split("?")[0].split("/")
        if "events" in parts:
            return Answer(201, body)
        namespace = parts[parts.index("namespaces") + 1]
        with self.lock:
            current = self.objects.get(namespace)
        if method == "GET":
            return Answer(200, current) if current else Answer(404, {})
        if method == "POST" and current is not None:
            return Answer(409, {})
        if namespace != names.SYSTEM_NAMESPACE and self.hold.is_set():
            with self.lock:
                self.held += 1
            self.release.wait(10)
        with self.lock:
            self.version += 1
            stored = {
                **body,
                "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
            }
            stored["metadata"].setdefault("uid", f"uid-{namespace}")
            self.objects[namespace] = stored
            hash_ = stored["metadata"]["annotations"][names.PEERS_HASH_ANNOTATION]
            self.writes.append((namespace, hash_))
            if namespace == names.SYSTEM_NAMESPACE:
                self.canonical_at.append((hash_, time.monotonic()))
        return Answer(200 if method == "PUT" else 201, stored)

    def holding(self, namespace: str) -> str | None:
        with self.lock:
            found = self.objects.get(namespace)
        return found["metadata"]["annotations"][names.PEERS_HASH_ANNOTATION] if found else None


def peers(*ips: str) -> PeerSet:
    return PeerSet(
        tuple(Peer("m00", f"v{i}", "validator", ip, 11625, "pod") for i, ip in enumerate(ips))
    )


def fold(peer_set: PeerSet) -> Fold:
    return Fold(peers=peer_set, state={}, enabled=frozenset(MIRRORS))


@pytest.fixture
def server() -> Iterator[ConfigMapServer]:
    api = ConfigMapServer()
    yield api
    api.release.set()


async def until(predicate: Any, *, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def cut_short(server: ConfigMapServer, old: PeerSet, new: PeerSet) -> None:
    """Publish `old` with its mirror writes held until the gate is full, offer `new`,
    let the writes go, and wait until every mirror holds `new`."""
    settings = Settings.from_env({}, [])
    writer = ConfigMapWriter(settings=settings, api_client=server, metrics=Metrics())
    publisher = ConfigMapPublisher(writer=writer, exposure=ExposureReport(api_client=server))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        server.hold.set()
        publisher.offer(fold(old))
        await until(lambda: server.held == WRITE_CONCURRENCY)  # the gate is full
        publisher.offer(fold(new))
        server.hold.clear()
        server.release.set()
        await until(lambda: all(server.holding(ns) == new.hash for ns in MIRRORS))
        stop.set()
        await task

    asyncio.run(scenario())


def test_a_newer_set_skips_the_mirror_writes_it_made_stale(server: ConfigMapServer) -> None:
    """The old set's mirrors still queued when a newer set arrives are never written with
    it: only the writes already under way finish; then the newer canonical, then its
    mirrors. (Before, every mirror got the old set first, a whole round late.)"""
    old, new = peers("10.0.0.1"), peers("10.0.0.1", "10.0.0.2")
    cut_short(server, old, new)
    stale = [ns for ns, digest in server.writes if digest == old.hash and ns in MIRRORS]
    assert len(stale) == WRITE_CONCURRENCY, stale  # only those under way, not all of them
    newer = [ns for ns, digest in server.writes if digest == new.hash]
    assert newer[0] == names.SYSTEM_NAMESPACE  # the newest canonical first
    assert sorted(newer[1:]) == MIRRORS  # then every mirror, once


def test_the_mirrors_a_cut_short_round_skipped_go_first_in_the_next(
    server: ConfigMapServer,
) -> None:
    """Rounds cut short one after another must not leave the same namespaces behind."""
    old, new = peers("10.0.0.1"), peers("10.0.0.1", "10.0.0.2")
    cut_short(server, old, new)
    written_old = {ns for ns, digest in server.writes if digest == old.hash}
    newer = [ns for ns, digest in server.writes if digest == new.hash and ns in MIRRORS]
    skipped = len(MIRRORS) - WRITE_CONCURRENCY
    assert not written_old & set(newer[:skipped]), newer


def test_rounds_cut_short_one_after_another_are_paced(server: ConfigMapServer) -> None:
    """While each set goes stale before its round ends (a rolling update), a third round
    starts no sooner than `CHURN_WINDOW_SECONDS` after the first, and then with the
    newest set: the canonical ConfigMap is not rewritten for every fold."""
    settings = Settings.from_env({}, [])
    writer = ConfigMapWriter(settings=settings, api_client=server, metrics=Metrics())
    publisher = ConfigMapPublisher(writer=writer, exposure=ExposureReport(api_client=server))
    a, b, c, d = (peers(*(f"10.0.0.{i}" for i in range(1, n + 1))) for n in (1, 2, 3, 4))

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        server.hold.set()
        publisher.offer(fold(a))
        await until(lambda: server.held == WRITE_CONCURRENCY)
        publisher.offer(fold(b))
        first, server.release = server.release, threading.Event()
        first.set()  # a's writes under way finish; b's round starts and is held in turn
        await until(lambda: server.held == 2 * WRITE_CONCURRENCY)
        publisher.offer(fold(c))
        server.hold.clear()
        server.release.set()  # b's round ends cut short: the next one waits
        await asyncio.sleep(0.5)
        publisher.offer(fold(d))  # in the pause: the round after it writes this one
        await until(lambda: all(server.holding(ns) == d.hash for ns in MIRRORS))
        stop.set()
        await task

    asyncio.run(scenario())
    assert [digest for digest, _ in server.canonical_at] == [a.hash, b.hash, d.hash]
    waited = server.canonical_at[2][1] - server.canonical_at[0][1]
    assert waited >= CHURN_WINDOW_SECONDS - 0.5, waited


def test_a_new_leader_writes_no_fold_made_before_its_links_answered(
    server: ConfigMapServer,
) -> None:
    """A follower's folds have no remote entries (only the leader follows links): a new
    leader held by the link follower's first pass writes none of them, not even once the
    hold lifts, only the first fold offered after it. (Before, the follower's last fold
    went out at once and the remote peers left every ConfigMap until the links answered.)"""
    settings = Settings.from_env({}, [])
    writer = ConfigMapWriter(settings=settings, api_client=server, metrics=Metrics())
    held = {"links": True}
    publisher = ConfigMapPublisher(
        writer=writer, exposure=ExposureReport(api_client=server), hold=lambda: held["links"]
    )
    local, with_remote = peers("10.0.0.1"), peers("10.0.0.1", "192.0.2.7")

    async def scenario() -> None:
        stop = asyncio.Event()
        publisher.offer(fold(local))  # the follower's last fold
        task = asyncio.create_task(publisher.run(stop))
        await asyncio.sleep(0.3)
        held["links"] = False  # the first pass is over; the watcher folds again
        await asyncio.sleep(1.5)  # past a look again of the held publisher
        assert server.writes == []
        publisher.offer(fold(with_remote))
        await until(lambda: all(server.holding(ns) == with_remote.hash for ns in MIRRORS))
        stop.set()
        await task

    asyncio.run(scenario())
    assert {digest for _, digest in server.writes} == {with_remote.hash}
    assert server.canonical_at[0][0] == with_remote.hash
