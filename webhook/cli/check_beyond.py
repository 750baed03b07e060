"""`stellar-peers check`, beyond one cluster: advertised addresses and links.

`advertised` decides every validator's exposure afresh from the live pods,
Services and Nodes with the watcher's own rule (`webhook.core.peerset.advertised`) and
fails on each one that exists but cannot be used (a port other than PEER_PORT,
several Services, a pending LoadBalancer). `links` fails on a link Secret the
injector refuses or a linked cluster that does not answer its credential.
Each answers (name, ok, detail), which `check` prints as one line.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client

from webhook import names
from webhook.cli.link_status import reach
from webhook.core.peerset.advertised import exposures, trim_node, trim_service
from webhook.core.peerset.links import choose
from webhook.core.peerset.peers import pod_peer
from webhook.core.pod import as_dict, as_str
from webhook.core.publishing.watched import KIND_POD, trim
from webhook.kube import api as kube
from webhook.kube.rest import Rest, path
from webhook.settings import Settings

Check = tuple[str, bool, str]
_FAILURES: tuple[type[BaseException], ...] = (*kube.FAILURES, ValueError)


def advertised(api: client.ApiClient, settings: Settings, namespaces: list[str]) -> Check:
    name = "advertised"
    rest = Rest(api)
    try:
        pods: list[tuple[dict[str, Any], int]] = []
        services: list[dict[str, Any]] = []
        for namespace in namespaces:
            listed = rest.get(
                path("v1", "pods", namespace=namespace),
                label_selector=f"{names.INJECTED_LABEL}=true",
            )
            for item in listed.get("items") or []:
                trimmed = trim({**item, "kind": "Pod"}, kind=KIND_POD)
                peer = pod_peer(trimmed)
                if peer is not None:
                    pods.append((trimmed, peer.port))
            found = rest.get(path("v1", "services", namespace=namespace)).get("items") or []
            services += [trim_service(s) for s in found]
        nodes = [trim_node(n) for n in rest.get(path("v1", "nodes")).get("items") or []]
    except _FAILURES as exc:
        return name, False, f"cannot read pods, Services or Nodes: {kube.describe_failure(exc)}"
    found_all = exposures(pods, services=services, nodes=nodes)
    problems = sorted(f"{ns}/{pod}: {e.problem}" for (ns, pod), e in found_all.items() if e.problem)
    if problems:
        return name, False, "; ".join(problems)
    count = sum(1 for e in found_all.values() if e.address)
    return name, True, f"{count} of {len(pods)} validators have an advertised address"


def links(api: client.ApiClient, settings: Settings) -> Check:
    name = "links"
    try:
        secrets = (
            Rest(api)
            .get(
                path("v1", "secrets", namespace=settings.namespace),
                label_selector=f"{names.LINK_LABEL}=true",
            )
            .get("items")
            or []
        )
    except _FAILURES as exc:
        return name, False, f"cannot list link Secrets: {kube.describe_failure(exc)}"
    if not secrets:
        return name, True, "no links"
    usable, errors = choose(secrets, cluster_name=settings.cluster_name)
    failed = [f"{secret}: {error}" for secret, error in sorted(errors.items())]
    answered = 0
    for secret in secrets:
        secret_name = as_str(as_dict(secret.get("metadata")).get("name"))
        if secret_name not in usable:
            continue
        answer, _ = asyncio.run(reach(secret, cluster_name=settings.cluster_name))
        if answer.startswith("yes"):
            answered += 1
        else:
            failed.append(f"{secret_name} ({usable[secret_name].cluster}): {answer}")
    if failed:
        return name, False, "; ".join(failed)
    return name, True, f"{answered} linked clusters answer"
