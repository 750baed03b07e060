"""`stellar-peers status`: per validator, whether its node holds the peers it should.

What an operator runs first. Reads only: the canonical `stellar-peers` ConfigMap
(the peer set as published) and the injected validator pods of every enabled
namespace. Each pod is judged with the reload controller's own plan
(`reload_plan.plan_round`), so `status` and the controller agree on which peer set
a pod should hold; what its node really did comes from the pod's
`stellar.org/peers-connection-status` annotation, written by the controller after
it read the node's `peers`.

States:
- `current`: the node holds the whole set, or its limits explain the rest;
- `behind`: judged against the current set, and peers are missing (the reasons);
- `waiting`: not judged against the current set yet (a reload round is due);
- `not-running`, `no-ip`: not a node the set is handed to yet (its container is not
  running, or it has no IP). A node that runs but is not Ready is handed its peers like
  any other: it often turns Ready only once it has met them (DESIGN.md "Bootstrap").

Beside each row: the pod's Ready condition, and the node's own `info.state` (`Synced!`,
`Joining SCP`, ...) asked live the way the reload controller asks it (http, or
`stellar-core http-command` through pods/exec), bounded in time; `?` with the reason
when it cannot be asked from where `status` runs (e.g. pod IPs from outside the cluster).

Exit 0 when every running validator is `current`, 1 when any is behind or waiting,
2 when the cluster cannot be read.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

import orjson
from kubernetes import client

from webhook import names
from webhook.cli.check import enabled_namespaces
from webhook.cli.link_status import read_links
from webhook.core import admin_protocol
from webhook.core.peerset import networks
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.pod import as_dict, as_list, is_ready, is_running, pod_ip
from webhook.core.reload.reload_plan import NodePlan, plan_round, reload_mode
from webhook.kube import api as kube
from webhook.kube.rest import Rest, path
from webhook.settings import Settings
from webhook.stellar import admin

NODE_TIME_LIMIT_SECONDS: Final = 3.0  # per node asked for its state
NODE_CONCURRENCY: Final = 16
SOURCES: Final = ("pod", "stellarnode", "static", "remote")


class StatusError(Exception):
    """The cluster could not be read as `status` needs it; the message says what to do."""


@dataclass(frozen=True)
class Row:
    namespace: str
    pod: str
    ip: str
    mode: str
    state: str
    peers: str  # "connected/expected" as the node last answered, or "-"
    missing: str  # "reason: peer, peer; ..." or ""
    network: str = "-"  # the network it is handed, as published ("unknown": not known)
    key: str = "-"  # its node's full public key, as published
    ready: str = "-"  # the pod's Ready condition: True or False
    core: str = "-"  # the node's `info.state` as it answered just now, or `?` and why

    @property
    def behind(self) -> bool:
        return self.state in ("behind", "waiting")


@dataclass(frozen=True)
class _Snapshot:
    peers: PeerSet
    validators: Sequence[Mapping[str, Any]]


def peer_set(configmap: Mapping[str, Any]) -> PeerSet:
    """The published set, read back from `peers.json`; StatusError when it does not parse."""
    raw = as_dict(configmap.get("data")).get(names.KEY_JSON)
    try:
        entries = orjson.loads(raw or "")
    except orjson.JSONDecodeError as exc:
        raise StatusError(f"{names.KEY_JSON} of the canonical ConfigMap is not JSON") from exc
    peers = []
    for entry in as_list(entries):
        item = as_dict(entry)
        source = item.get("source")
        port = item.get("port")
        if source not in SOURCES or not isinstance(port, int):
            raise StatusError(f"{names.KEY_JSON} holds an entry that is not a peer: {entry!r}")
        peers.append(
            Peer(
                namespace=str(item.get("namespace", "")),
                name=str(item.get("name", "")),
                node_type=str(item.get("nodeType", "")),
                ip=str(item.get("ip", "")),
                port=port,
                source=source,
                network=str(item.get("network") or ""),
                public_key=str(item.get("publicKey") or ""),
                advertised=str(item.get("advertised") or ""),
                cluster=str(item.get("cluster") or ""),
            )
        )
    return PeerSet(tuple(peers))


def _missing_text(status: Mapping[str, Any]) -> str:
    by_reason: dict[str, list[str]] = {}
    for item in as_list(status.get("missing")):
        entry = as_dict(item)
        by_reason.setdefault(str(entry.get("reason", "?")), []).append(str(entry.get("peer", "?")))
    parts = [f"{reason}: {', '.join(peers)}" for reason, peers in sorted(by_reason.items())]
    more = status.get("moreMissing")
    if isinstance(more, int) and more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def plans(
    peers: PeerSet, pods: Iterable[Mapping[str, Any]], *, settings: Settings
) -> list[NodePlan]:
    """The reload controller's plans for the running pods: whom it tells, and how."""
    running = [p for p in pods if is_running(p)]
    return plan_round(_Snapshot(peers, running), settings=settings)


def rows(
    peers: PeerSet,
    pods: Iterable[Mapping[str, Any]],
    *,
    settings: Settings,
    core_states: Mapping[tuple[str, str], str] | None = None,
) -> list[Row]:
    """One row per injected validator pod, sorted by namespace and name. Pure.

    `core_states`: each node's answer to `info` by (namespace, pod), when it was asked."""
    listed = sorted(
        pods,
        key=lambda p: (
            str(as_dict(p.get("metadata")).get("namespace", "")),
            str(as_dict(p.get("metadata")).get("name", "")),
        ),
    )
    planned = {(p.namespace, p.name): p for p in plans(peers, listed, settings=settings)}
    asked = core_states or {}
    published = {(p.namespace, p.name): p for p in peers.peers if p.source == "pod"}
    found = []
    for pod in listed:
        metadata = as_dict(pod.get("metadata"))
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        annotations = as_dict(metadata.get("annotations"))
        mode = reload_mode(annotations, default=settings.reload_mode)
        try:
            raw = annotations.get(names.CONNECTION_STATUS_ANNOTATION) or "{}"
            status = as_dict(orjson.loads(raw))
        except orjson.JSONDecodeError:
            status = {}
        plan = planned.get((namespace, name))
        counted = f"{status['connected']}/{status['expected']}" if "expected" in status else "-"
        missing = ""
        if not is_running(pod):
            state = "not-running"
        elif plan is None:
            state = "no-ip" if pod_ip(pod) is None else "no-container"
        elif plan.current:
            state = "current"
            missing = _missing_text(status) if status.get("hash") == plan.hash else ""
        elif status.get("hash") == plan.hash:
            state = "behind"
            missing = _missing_text(status)
        else:
            state = "waiting"
        peer = published.get((namespace, name))
        network = plan.network if plan is not None else networks.UNKNOWN
        key = peer.public_key if peer is not None and peer.public_key else "-"
        row = Row(
            namespace,
            name,
            pod_ip(pod) or "-",
            mode,
            state,
            counted,
            missing,
            network,
            key,
            ready=str(is_ready(pod)),
            core=asked.get((namespace, name), "-"),
        )
        found.append(row)
    return found


def table(found: Sequence[Row], *, peers: PeerSet) -> str:
    """The rows as aligned columns, under a line naming the published set."""
    header = (
        "NAMESPACE",
        "POD",
        "IP",
        "READY",
        "NETWORK",
        "KEY",
        "MODE",
        "STATE",
        "PEERS",
        "CORE",  # may hold a space (`Joining SCP`): next to last, so split() still reads the rest
        "MISSING",
    )
    lines = [header] + [
        (
            r.namespace,
            r.pod,
            r.ip,
            r.ready,
            r.network,
            r.key,
            r.mode,
            r.state,
            r.peers,
            r.core,
            r.missing or "-",
        )
        for r in found
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    sets = networks.split(peers)
    per = ", ".join(f"{n}: {len(s.strings)}" for n, s in sets.items()) if len(sets) > 1 else ""
    text = f"peer set {peers.hash[:19]} ({len(peers.strings)} peers{'; ' + per if per else ''})\n"
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        text += "  ".join([*cells, line[-1]]).rstrip() + "\n"
    behind = sum(r.behind for r in found)
    text += f"{len(found)} validators, {behind} behind\n" if found else "no injected validators\n"
    return text


def _canonical(rest: Rest, settings: Settings) -> dict[str, Any]:
    where = path("v1", "configmaps", namespace=settings.namespace, name=names.CONFIGMAP_NAME)
    return rest.get(where, timeout=kube.CALL_TIMEOUT_SECONDS)


def read_cluster(settings: Settings) -> tuple[PeerSet, list[dict[str, Any]]]:
    """The canonical set and the injected pods of the enabled namespaces."""
    api = kube.api_client(settings)
    rest = Rest(api)
    try:
        try:
            configmap = _canonical(rest, settings)
        except kube.FAILURES as exc:
            raise StatusError(
                f"cannot read ConfigMap {settings.namespace}/{names.CONFIGMAP_NAME} "
                f"({kube.describe_failure(exc)}): is the injector installed and running "
                f"(kubectl -n {settings.namespace} get pods)?"
            ) from exc
        pods: list[dict[str, Any]] = []
        try:
            for namespace in enabled_namespaces(rest, settings):
                listed = rest.get(
                    path("v1", "pods", namespace=namespace),
                    timeout=kube.CALL_TIMEOUT_SECONDS,
                    label_selector=f"{names.INJECTED_LABEL}=true",
                )
                pods.extend(dict(as_dict(item)) for item in as_list(listed.get("items")))
        except kube.FAILURES as exc:
            raise StatusError(f"cannot list validator pods ({kube.describe_failure(exc)})") from exc
    finally:
        api.close()
    return peer_set(configmap), pods


def published_peer(settings: Settings, *, namespace: str, name: str) -> Peer | None:
    """The pod's entry in the canonical `peers.json`, or None (not published, or unreadable)."""
    api = kube.api_client(settings)
    try:
        configmap = _canonical(Rest(api), settings)
        peers = peer_set(configmap)
    except kube.FAILURES:
        return None
    except StatusError:
        return None
    finally:
        api.close()
    return next(
        (p for p in peers.peers if (p.namespace, p.name, p.source) == (namespace, name, "pod")),
        None,
    )


async def ask_states(
    planned: Sequence[NodePlan], *, settings: Settings
) -> dict[tuple[str, str], str]:
    """Each node's `info.state` now, asked as the reload controller asks (http or exec);
    `?` and the reason when it does not answer (its pod IP unreachable from here, say)."""
    semaphore = asyncio.Semaphore(NODE_CONCURRENCY)
    # Only exec goes through the API; http asks the pod IP itself.
    exec_mode = any(p.mode == "exec" for p in planned)
    api = kube.api_client(settings) if exec_mode else client.ApiClient()

    async def one(plan: NodePlan) -> tuple[tuple[str, str], str]:
        async with semaphore:
            verdict, body = await admin.ask(
                plan, "info", api_client=api, time_limit=NODE_TIME_LIMIT_SECONDS
            )
        if verdict is not None:
            return (plan.namespace, plan.name), f"?{verdict.reason}"
        try:
            return (plan.namespace, plan.name), admin_protocol.node_state(body)
        except admin_protocol.AnswerError as exc:
            return (plan.namespace, plan.name), f"?{exc.result.reason}"

    try:
        return dict(await asyncio.gather(*(one(p) for p in planned)))
    finally:
        api.close()


def run(settings: Settings, *, out: TextIO = sys.stdout) -> int:
    try:
        peers, pods = read_cluster(settings)
    except StatusError as exc:
        print(f"stellar-peers status: {exc}", file=sys.stderr)
        # Still worth knowing: in policy mode pods are injected with the injector gone.
        out.write(_admission_line(settings) + "\n")
        return 2
    states = asyncio.run(ask_states(plans(peers, pods, settings=settings), settings=settings))
    found = rows(peers, pods, settings=settings, core_states=states)
    out.write(table(found, peers=peers))
    out.write(read_links(settings, peers, pods))
    out.write(_admission_line(settings) + "\n")
    return 1 if any(r.behind for r in found) else 0


def _admission_line(settings: Settings) -> str:
    """Which admission mode is in force, read from what is installed (`check_admission`)."""
    from kubernetes.config import ConfigException

    from webhook.cli import check_admission

    try:
        with kube.api_client(settings) as api:
            return check_admission.installed_line(settings, api)
    except (ConfigException, *kube.FAILURES) as exc:
        return f"admission: unknown (cannot ask the API server: {exc})"
