"""`stellar-peers status`, beyond one cluster: each link, and which local nodes hold
which remote ones; each validator's advertised address or what is wrong with it.

Reads only: the link Secrets and their Events in the injector's namespace (the
injector's own view: reachable, unreachable since, stale), the linked cluster
itself through the link's credential (does it answer now, how many entries it
exports), the canonical `peers.json` here (remote entries per cluster), the
validators' connection-status annotations (which remote peers their node
holds), and `AdvertisedAddress` Events. The tables are pure functions of those.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from webhook import names
from webhook.core.lease import parse_time
from webhook.core.peerset.links import LinkError, configmap_entries, parse_link, remote_peers
from webhook.core.peerset.peers import PeerSet
from webhook.core.pod import as_dict, as_list, as_str
from webhook.kube import api as kube
from webhook.kube.remote import read_named, remote_client
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

_REACH_FAILURES: tuple[type[BaseException], ...] = (*kube.FAILURES, ValueError)
LINK_REASONS: Final = ("LinkReachable", "LinkUnreachable", "LinkStale", "LinkRefused")


@dataclass(frozen=True)
class LinkRow:
    secret: str
    cluster: str
    reachable: str  # "yes", or why not
    exported: str  # entries the linked cluster owns and advertises, as it answers now
    published: int  # remote entries of that cluster in this cluster's set
    injector: str  # the injector's last word (Event reason), and how long ago


def link_rows(
    secrets: Iterable[Mapping[str, Any]],
    *,
    cluster_name: str,
    peers: PeerSet,
    reached: Mapping[str, str],
    exported: Mapping[str, int],
    events: Iterable[Mapping[str, Any]],
    now: dt.datetime,
) -> list[LinkRow]:
    """One row per link Secret (refused ones say why). Pure."""
    latest: dict[str, tuple[str, str]] = {}
    for event in events:
        name = as_str(as_dict(event.get("involvedObject")).get("name"))
        when = as_str(event.get("lastTimestamp"))
        if as_str(event.get("reason")) in LINK_REASONS and when >= latest.get(name, ("", ""))[0]:
            latest[name] = (when, as_str(event.get("reason")))
    rows = []
    for secret in sorted(secrets, key=lambda s: as_str(as_dict(s.get("metadata")).get("name"))):
        name = as_str(as_dict(secret.get("metadata")).get("name"))
        when, reason = latest.get(name, ("", "-"))
        said = f"{reason} {_ago(when, now)}" if when else reason
        try:
            link = parse_link(secret, cluster_name=cluster_name)
        except LinkError as exc:
            rows.append(LinkRow(name, "-", f"refused: {exc}", "-", 0, said))
            continue
        count = sum(1 for p in peers.peers if p.source == "remote" and p.cluster == link.cluster)
        shown = str(exported[name]) if name in exported else "-"
        rows.append(LinkRow(name, link.cluster, reached.get(name, "-"), shown, count, said))
    return rows


def _ago(when: str, now: dt.datetime) -> str:
    then = parse_time(when)
    if then is None:
        return ""
    return f"{int((now - then).total_seconds())}s ago"


def connected_remote(
    peers: PeerSet, pods: Iterable[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """(pod, cluster, "connected/expected") for each local validator and each linked cluster
    whose advertised validators its node should hold, from its connection status. Pure."""
    remote = [p for p in peers.peers if p.source == "remote"]
    found = []
    for pod in pods:
        metadata = as_dict(pod.get("metadata"))
        try:
            raw = as_dict(metadata.get("annotations")).get(names.CONNECTION_STATUS_ANNOTATION)
            status = as_dict(orjson.loads(raw or "{}"))
        except orjson.JSONDecodeError:
            status = {}
        if "expected" not in status:
            continue
        missing = {as_str(as_dict(m).get("peer")) for m in as_list(status.get("missing"))}
        network = as_str(as_dict(metadata.get("labels")).get(names.NETWORK_LABEL))
        by_cluster: dict[str, list[str]] = {}
        for peer in remote:
            if not network or not peer.network or peer.network == network:
                by_cluster.setdefault(peer.cluster, []).append(peer.peer_string)
        who = f"{as_str(metadata.get('namespace'))}/{as_str(metadata.get('name'))}"
        for cluster, wanted in sorted(by_cluster.items()):
            held = sum(1 for w in wanted if w not in missing)
            found.append((who, cluster, f"{held}/{len(wanted)}"))
    return found


def links_table(rows: Sequence[LinkRow], connected: Sequence[tuple[str, str, str]]) -> str:
    if not rows:
        return ""
    lines = ["", "LINK SECRET\tCLUSTER\tREACHABLE\tEXPORTED\tPUBLISHED\tINJECTOR"]
    lines += [
        f"{r.secret}\t{r.cluster}\t{r.reachable}\t{r.exported}\t{r.published}\t{r.injector}"
        for r in rows
    ]
    if connected:
        lines += ["", "VALIDATOR\tREMOTE CLUSTER\tCONNECTED"]
        lines += ["\t".join(row) for row in connected]
    return "\n".join(lines) + "\n"


def advertised_table(peers: PeerSet, problems: Mapping[tuple[str, str], str]) -> str:
    """Each local validator's advertised address, or the reported problem."""
    lines = []
    for p in peers.peers:
        if p.source != "pod":
            continue
        problem = problems.get((p.namespace, p.name), "")
        shown = p.advertised or (f"none: {problem}" if problem else "none")
        lines.append(f"{p.namespace}/{p.name}\t{shown}")
    return ("\nVALIDATOR\tADVERTISED\n" + "\n".join(lines) + "\n") if lines else ""


async def reach(secret: Mapping[str, Any], *, cluster_name: str) -> tuple[str, int | None]:
    """Does the linked cluster answer the link's credential now, with how many entries?"""
    try:
        link = parse_link(secret, cluster_name=cluster_name)
        api = remote_client(link.kubeconfig)
    except (LinkError, ValueError, OSError) as exc:
        return f"refused: {exc}", None
    try:
        configmap, _ = await read_named(
            Rest(api), namespace=link.namespace, name=names.CONFIGMAP_NAME
        )
        if configmap is None:
            return "yes (no ConfigMap)", 0
        return "yes", len(remote_peers(configmap_entries(configmap), cluster=link.cluster))
    except _REACH_FAILURES as exc:
        return f"no: {kube.describe_failure(exc)}", None
    finally:
        api.close()


def read_links(settings: Settings, peers: PeerSet, pods: Sequence[Mapping[str, Any]]) -> str:
    """Both tables, read from the cluster ("" when there is nothing to show)."""
    api = kube.api_client(settings)
    try:
        rest = Rest(api)
        secrets = (
            rest.get(
                path("v1", "secrets", namespace=settings.namespace),
                label_selector=f"{names.LINK_LABEL}=true",
            ).get("items")
            or []
        )
        events = rest.get(path("v1", "events", namespace=settings.namespace)).get("items") or []
        problems: dict[tuple[str, str], str] = {}
        spaces = {as_str(as_dict(p.get("metadata")).get("namespace")) for p in pods}
        for namespace in sorted(spaces):
            listed = rest.get(
                path("v1", "events", namespace=namespace), field_selector="reason=AdvertisedAddress"
            )
            for event in listed.get("items") or []:
                involved = as_dict(event.get("involvedObject"))
                problems[(namespace, as_str(involved.get("name")))] = as_str(event.get("message"))
    except kube.FAILURES as exc:
        return f"\n(links and advertised addresses not read: {kube.describe_failure(exc)})\n"
    finally:
        api.close()
    reached: dict[str, str] = {}
    exported: dict[str, int] = {}
    for secret in secrets:
        name = as_str(as_dict(secret.get("metadata")).get("name"))
        answer, count = asyncio.run(reach(secret, cluster_name=settings.cluster_name))
        reached[name] = answer
        if count is not None:
            exported[name] = count
    rows = link_rows(
        secrets,
        cluster_name=settings.cluster_name,
        peers=peers,
        reached=reached,
        exported=exported,
        events=events,
        now=dt.datetime.now(dt.UTC),
    )
    return advertised_table(peers, problems) + links_table(rows, connected_remote(peers, pods))
