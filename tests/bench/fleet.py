"""Many injected validator pods on the API server, fast, and ways to watch what follows.

`Fleet` creates namespaces and pods as the webhook would have left them (label
`stellar.org/peers-injected=true`) through a thread pool over one pooled
client, and plays the kubelet: Ready (or not) with an IP through the
pods/status subresource, written without reading first. Pod IPs are loopback
addresses (127.10.0.0 and up); nothing here ever dials them.

`ConfigMapObserver` follows `stellar-peers` ConfigMaps with watches and
records when each resourceVersion arrived, to time convergence and count
writes. `NaivePoller` is the baseline: list every pod each period and write
one ConfigMap when the set differs.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.bench import pods
from tests.kubelet import crashed_statuses, running_status
from webhook import names

PEER_PORT = 11625
WORKERS = 32


class RawClient:
    """JSON in, JSON out over the official client's own connection pool and credentials.

    The generated API methods validate and convert every argument and answer in
    Python, which caps a thread pool at a few dozen calls a second; setting up
    thousands of pods needs only the HTTP request.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.pool = api.rest_client.pool_manager
        self.host = api.configuration.host
        self.timeout = urllib3.Timeout(connect=10, read=60)

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (),
    ) -> Any:
        answer = self.pool.request(
            method,
            self.host + path,
            body=None if body is None else orjson.dumps(body),
            headers={"Content-Type": content_type, "Accept": "application/json"},
            timeout=self.timeout,
        )
        if answer.status >= 300 and answer.status not in ok:
            raise ApiException(status=answer.status, reason=answer.data[:300].decode("replace"))
        return orjson.loads(answer.data) if answer.data else None

    def watch(self, path: str, *, params: dict[str, str], seconds: int) -> Iterator[Any]:
        """The events of one watch request, decoded, until the server ends it."""
        query = urllib.parse.urlencode({**params, "watch": "1", "timeoutSeconds": str(seconds)})
        answer = self.pool.request(
            "GET",
            f"{self.host}{path}?{query}",
            headers={"Accept": "application/json"},
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=seconds + 10),
        )
        try:
            if answer.status >= 300:
                raise ApiException(status=answer.status, reason=answer.read()[:300].decode())
            pending = b""
            for chunk in answer.stream(amt=65536, decode_content=False):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
        finally:
            answer.release_conn()


def pod_ip(index: int) -> str:
    return f"127.{10 + index // 65536}.{(index // 256) % 256}.{index % 256}"


def validator(name: str) -> dict[str, Any]:
    """A realistic validator pod, as stored after injection, without status."""
    pod = pods.validator_pod(name=name)
    metadata = pod["metadata"]
    for key in ("ownerReferences", "managedFields", "generateName", "namespace"):
        metadata.pop(key, None)
    metadata["labels"][names.INJECTED_LABEL] = "true"
    pod.pop("status", None)
    return pod


def ready_status(ip: str, *, running: bool = True) -> dict[str, Any]:
    """The status patch body for a fleet pod (its two containers) as the kubelet writes it:
    running and Ready, or crash-looping (no peer: a pod that is only not Ready still is)."""
    containers = (("stellar-core", pods.IMAGE), ("core-exporter", "x/core-exporter:1"))
    status = running_status(ip=ip, containers=containers, ready=running)
    if not running:
        status["containerStatuses"] = crashed_statuses(name for name, _ in containers)
    return {"status": status}


@dataclass
class Fleet:
    core: client.CoreV1Api
    raw: RawClient
    run: str
    namespace_count: int
    labels: dict[str, str]
    pods: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, name) -> ip
    next_index: int = 0

    @property
    def namespaces(self) -> list[str]:
        return [f"bc{self.run}-{i:03d}" for i in range(self.namespace_count)]

    def create_namespaces(self) -> None:
        def one(name: str) -> None:
            self.core.create_namespace({"metadata": {"name": name, "labels": self.labels}})

        self._parallel(one, self.namespaces)
        for name in self.namespaces:  # pods are refused until the default ServiceAccount exists
            deadline = time.monotonic() + 120
            while True:
                try:
                    self.core.read_namespaced_service_account("default", name)
                    break
                except ApiException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def grow(self, total: int) -> None:
        """Create and mark Ready pods until the fleet has `total`, spread over the namespaces."""
        wanted: list[tuple[str, str, str]] = []
        while len(self.pods) + len(wanted) < total:
            index = self.next_index
            self.next_index += 1
            namespace = self.namespaces[index % self.namespace_count]
            wanted.append((namespace, f"validator-{index:05d}", pod_ip(index)))
        self.add(wanted)

    def add(self, wanted: list[tuple[str, str, str]]) -> None:
        def one(item: tuple[str, str, str]) -> None:
            namespace, name, ip = item
            self.raw.call("POST", f"/api/v1/namespaces/{namespace}/pods", validator(name))
            self.set_ready(namespace, name, ip)
            self.pods[(namespace, name)] = ip

        self._parallel(one, wanted)

    def new_pod(self, namespace: str) -> tuple[str, str, str]:
        index = self.next_index
        self.next_index += 1
        return namespace, f"validator-{index:05d}", pod_ip(index)

    def set_ready(self, namespace: str, name: str, ip: str, *, running: bool = True) -> None:
        self.raw.call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            ready_status(ip, running=running),
            content_type="application/merge-patch+json",
        )

    def remove(self, keys: Iterable[tuple[str, str]]) -> None:
        def one(key: tuple[str, str]) -> None:
            namespace, name = key
            self.raw.call(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                {"gracePeriodSeconds": 0},
                ok=(404,),
            )
            self.pods.pop(key, None)

        self._parallel(one, list(keys))

    def delete_namespaces(self) -> None:
        def one(name: str) -> None:
            with contextlib.suppress(ApiException):
                self.core.delete_namespace(name, propagation_policy="Background")

        self._parallel(one, self.namespaces)

    def peer_strings(self) -> frozenset[str]:
        return frozenset(f"{ip}:{PEER_PORT}" for ip in self.pods.values())

    @staticmethod
    def _parallel(func: Callable[[Any], None], items: list[Any]) -> None:
        with ThreadPoolExecutor(WORKERS) as pool:
            for future in [pool.submit(func, item) for item in items]:
                future.result()


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when the event arrived
    resource_version: str
    peers: frozenset[str]


class ConfigMapObserver:
    """Follows ConfigMaps named `name` (in `namespace`, or in every namespace) through a watch."""

    def __init__(self, raw: RawClient, *, name: str, namespace: str | None) -> None:
        self.raw = raw
        self.name = name
        self.namespace = namespace
        self.latest: dict[str, Seen] = {}
        self.history: list[tuple[str, Seen]] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"observe-{name}")

    def __enter__(self) -> ConfigMapObserver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _follow(self) -> None:
        # "0": start from the API server's cache as it is. Without a version the server
        # first waits for its cache to reach etcd's latest revision, which on this etcd
        # can take seconds and then fail with 504 "Too large resource version".
        version = "0"
        if self.namespace is None:
            path = "/api/v1/configmaps"
        else:
            path = f"/api/v1/namespaces/{self.namespace}/configmaps"
        params = {"fieldSelector": f"metadata.name={self.name}"}
        while not self._stop.is_set():
            try:
                for event in self.raw.watch(
                    path,
                    params={**params, "resourceVersion": version} if version else params,
                    seconds=5,
                ):
                    if event.get("type") == "ERROR":
                        version = "0"  # too old (410): start again from the cache
                        break
                    self._record(event)
                    version = event["object"]["metadata"].get("resourceVersion") or version
                    if self._stop.is_set():
                        break
            except (ApiException, urllib3.exceptions.HTTPError, OSError):
                time.sleep(0.2)

    def _record(self, event: dict[str, Any]) -> None:
        at = time.monotonic()
        obj = event["object"]
        namespace = obj["metadata"]["namespace"]
        version = obj["metadata"].get("resourceVersion", "")
        text = (obj.get("data") or {}).get(names.KEY_TXT, "")
        peers = frozenset() if event["type"] == "DELETED" else frozenset(text.split())
        with self._changed:
            previous = self.latest.get(namespace)
            if previous is not None and previous.resource_version == version:
                return
            seen = Seen(at, version, peers)
            self.latest[namespace] = seen
            self.history.append((namespace, seen))
            self._changed.notify_all()

    def wait(self, predicate: Callable[[dict[str, Seen]], bool], *, timeout: float) -> float | None:
        """The arrival time of the event after which `predicate(latest)` held, or None."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if predicate(self.latest):
                    return max((s.at for s in self.latest.values()), default=time.monotonic())
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if not self._thread.is_alive():
                    raise RuntimeError(f"the watch of {self.name} ended unexpectedly")
                self._changed.wait(left)

    def writes(self, namespace: str, *, since: float) -> int:
        with self._changed:
            return sum(1 for ns, seen in self.history if ns == namespace and seen.at >= since)


class NaivePoller:
    """The baseline: each `period`, list all injected pods; write the set when it changed."""

    def __init__(
        self, core: client.CoreV1Api, *, namespace: str, enabled: Iterable[str], period: float
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.enabled = frozenset(enabled)
        self.period = period
        self.name = "stellar-peers-naive"
        self.poll_seconds: list[float] = []  # list + compute + write, per poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="naive-poller")

    def __enter__(self) -> NaivePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        written: frozenset[str] | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            written = self.poll_once(written)
            self.poll_seconds.append(time.monotonic() - started)
            self._stop.wait(max(0.0, self.period - (time.monotonic() - started)))

    def poll_once(self, written: frozenset[str] | None) -> frozenset[str]:
        response = self.core.list_pod_for_all_namespaces(
            label_selector=f"{names.INJECTED_LABEL}=true", _preload_content=False
        )
        peers = frozenset(
            f"{pod['status']['podIP']}:{PEER_PORT}"
            for pod in orjson.loads(response.data)["items"]
            if pod["metadata"]["namespace"] in self.enabled
            and not pod["metadata"].get("deletionTimestamp")
            and pod.get("status", {}).get("podIP")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in pod["status"].get("conditions") or ()
            )
        )
        if peers != written:
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "data": {names.KEY_TXT: "".join(f"{p}\n" for p in sorted(peers))},
            }
            try:
                self.core.replace_namespaced_config_map(self.name, self.namespace, body)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.core.create_namespaced_config_map(self.namespace, body)
        return peers


@contextlib.contextmanager
def quiet(observer: ConfigMapObserver, *, seconds: float, timeout: float) -> Iterator[None]:
    """Wait until `observer` saw no event for `seconds` (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = max((s.at for s in observer.latest.values()), default=0.0)
        if time.monotonic() - last >= seconds:
            break
        time.sleep(0.05)
    yield
