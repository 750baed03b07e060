"""Links to other clusters, as plain values: the link Secret, the remote entries, the
credential's rights, and when a silent link's entries go stale.

A link is a Secret in the injector's namespace labeled `stellar.org/peer-link=true`
holding `cluster` (the other cluster's name), `kubeconfig` (a ServiceAccount there
that may only get, list and watch its canonical `stellar-peers` ConfigMap) and
optionally `namespace` (where that ConfigMap is; default `stellar-system`). From
the remote canonical ConfigMap only the entries that cluster owns and advertises
are taken (never those it imported itself: A↔B↔C must not loop), as
`source: remote`, reached by their advertised address only. No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml

from webhook import names
from webhook.address import is_dns_label, static_address
from webhook.core.admin_protocol import is_peer_host
from webhook.core.peerset.peers import Peer
from webhook.core.pod import as_dict, as_list, as_str

Obj = Mapping[str, Any]
KEY_NAMESPACE = "namespace"
# What a link credential may do besides reading the one ConfigMap: what every
# authenticated identity gets from the default `system:basic-user` role.
_SELF_REVIEWS = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
)
READ_VERBS = frozenset({"get", "list", "watch"})
# Public by design: every authenticated identity may read these by a default role
# (a v1.37 API server's rules review of a bare ServiceAccount lists them).
_PUBLIC_READS = frozenset({("certificates.k8s.io", "clustertrustbundles")})
# Rights a link credential must not have, asked of the remote API server one by one
# (a rules review shows one namespace only): (verb, group, resource, namespace).
FORBIDDEN_PROBES: tuple[tuple[str, str, str, str], ...] = (
    ("list", "", "pods", ""),
    ("get", "", "secrets", ""),
    ("list", "", "secrets", ""),
    ("list", "", "configmaps", ""),
)


class LinkError(ValueError):
    """A link Secret that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Link:
    secret: str  # the link Secret's name
    cluster: str  # the other cluster's name
    namespace: str  # where its canonical ConfigMap lives
    kubeconfig: Mapping[str, Any] = field(compare=False, repr=False)
    version: str = ""  # the Secret's resourceVersion: a change restarts the link


def _decoded(data: Mapping[str, Any], key: str) -> str:
    raw = data.get(key)
    if raw is None:
        return ""
    try:
        return base64.b64decode(str(raw), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise LinkError(f"key {key!r} is not base64 text: {exc}") from exc


def parse_link(secret: Obj, *, cluster_name: str) -> Link:
    """The link a Secret describes, or LinkError saying what is wrong with it."""
    metadata = as_dict(secret.get("metadata"))
    name = as_str(metadata.get("name"))
    data = as_dict(secret.get("data"))
    cluster = _decoded(data, names.LINK_KEY_CLUSTER).strip()
    text = _decoded(data, names.LINK_KEY_KUBECONFIG)
    namespace = _decoded(data, KEY_NAMESPACE).strip() or names.SYSTEM_NAMESPACE
    hint = "apply the Secret `stellar-peers link --cluster-name NAME` printed"
    if not cluster:
        raise LinkError(f"no {names.LINK_KEY_CLUSTER!r} key (the other cluster's name): {hint}")
    if not is_dns_label(cluster):
        raise LinkError(f"cluster {cluster!r} is not a DNS label (lower-case, digits, '-')")
    if cluster == cluster_name:
        raise LinkError(
            f"cluster {cluster!r} is this cluster's own name (setting cluster_name): "
            "give each cluster a name of its own"
        )
    if not is_dns_label(namespace):
        raise LinkError(f"namespace {namespace!r} is not a namespace name")
    if not text.strip():
        raise LinkError(f"no {names.LINK_KEY_KUBECONFIG!r} key: {hint}")
    try:
        kubeconfig = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LinkError(f"kubeconfig is not YAML: {str(exc)[:200]}") from exc
    _check_kubeconfig(kubeconfig)
    return Link(
        secret=name,
        cluster=cluster,
        namespace=namespace,
        kubeconfig=kubeconfig,
        version=as_str(metadata.get("resourceVersion")),
    )


def _check_kubeconfig(kubeconfig: Any) -> None:
    if not isinstance(kubeconfig, dict):
        raise LinkError("kubeconfig is not a kubeconfig (expected a mapping)")
    contexts = {as_str(as_dict(c).get("name")): c for c in as_list(kubeconfig.get("contexts"))}
    current = as_str(kubeconfig.get("current-context"))
    context = as_dict(as_dict(contexts.get(current)).get("context"))
    if not context:
        raise LinkError(f"kubeconfig: current-context {current!r} is not among its contexts")
    clusters = {as_str(as_dict(c).get("name")): c for c in as_list(kubeconfig.get("clusters"))}
    named_cluster = as_dict(clusters.get(as_str(context.get("cluster"))))
    server = as_str(as_dict(named_cluster.get("cluster")).get("server"))
    if not server.startswith("https://"):
        raise LinkError("kubeconfig: its cluster has no https:// server")
    users = {as_str(as_dict(u).get("name")): u for u in as_list(kubeconfig.get("users"))}
    user = as_dict(as_dict(users.get(as_str(context.get("user")))).get("user"))
    if not (user.get("token") or user.get("client-certificate-data")):
        raise LinkError("kubeconfig: its user has no token (a ServiceAccount token is expected)")
    if "exec" in user or "auth-provider" in user or "tokenFile" in user:
        raise LinkError("kubeconfig: exec, auth-provider and tokenFile users are not used")


def choose(secrets: Iterable[Obj], *, cluster_name: str) -> tuple[dict[str, Link], dict[str, str]]:
    """(links by Secret name, errors by Secret name): each usable once; two Secrets naming
    one cluster are both refused, as a guess between them would be."""
    links: dict[str, Link] = {}
    errors: dict[str, str] = {}
    for secret in secrets:
        name = as_str(as_dict(secret.get("metadata")).get("name"))
        try:
            links[name] = parse_link(secret, cluster_name=cluster_name)
        except LinkError as exc:
            errors[name] = str(exc)
    by_cluster: dict[str, list[str]] = {}
    for name, link in links.items():
        by_cluster.setdefault(link.cluster, []).append(name)
    for cluster, secret_names in by_cluster.items():
        if len(secret_names) > 1:
            for name in secret_names:
                others = ", ".join(n for n in sorted(secret_names) if n != name)
                errors[name] = f"cluster {cluster!r} is linked by other Secrets too ({others})"
                del links[name]
    return links, errors


def configmap_entries(configmap: Obj) -> list[Mapping[str, Any]]:
    """The entries of a canonical `stellar-peers` ConfigMap (`peers.json`, or gzipped
    `peers.json.gz` past 1 MiB); ValueError when there are none to read."""
    data = as_dict(configmap.get("data"))
    binary = as_dict(configmap.get("binaryData"))
    if names.KEY_JSON in data:
        text: bytes = str(data[names.KEY_JSON]).encode()
    elif names.KEY_JSON_GZ in binary:
        text = gzip.decompress(base64.b64decode(str(binary[names.KEY_JSON_GZ])))
    else:
        raise ValueError("the ConfigMap holds neither peers.json nor peers.json.gz")
    entries = orjson.loads(text)
    if not isinstance(entries, list):
        raise ValueError("peers.json is not a JSON array")
    return [e for e in entries if isinstance(e, dict)]


def remote_peers(entries: Iterable[Mapping[str, Any]], *, cluster: str) -> tuple[Peer, ...]:
    """The peers a linked cluster owns and advertises, reached by advertised address only;
    what it imported (`source: remote`) is never taken again, so links never loop."""
    peers = []
    for entry in entries:
        source = as_str(entry.get("source"))
        advertised = as_str(entry.get("advertised"))
        if source == "remote" or not advertised:
            continue
        try:
            host, port = static_address(advertised)
        except ValueError:
            continue
        if not is_peer_host(host):
            continue  # stellar-core dials IPv4 and names only
        peers.append(
            Peer(
                namespace=as_str(entry.get("namespace")),
                name=as_str(entry.get("name")),
                node_type=as_str(entry.get("nodeType")) or "validator",
                ip=host,
                port=port,
                source="remote",
                network=as_str(entry.get("network")) if is_dns_label(entry.get("network")) else "",
                public_key=as_str(entry.get("publicKey")),
                advertised=f"{host}:{port}",
                cluster=cluster,
            )
        )
    return tuple(sorted(peers, key=lambda p: (p.namespace, p.name)))


def excess_rights(rules: Obj, *, namespace: str) -> list[str]:
    """What a SelfSubjectRulesReview's status (in `namespace`) grants beyond reading the
    ConfigMap `stellar-peers` there and the self-reviews everyone may make."""
    found = []
    for rule in as_list(rules.get("resourceRules")):
        rule = as_dict(rule)
        groups = [as_str(g) for g in as_list(rule.get("apiGroups"))]
        resources = [as_str(r) for r in as_list(rule.get("resources"))]
        verbs = {as_str(v) for v in as_list(rule.get("verbs"))}
        names_ = [as_str(n) for n in as_list(rule.get("resourceNames"))]
        pairs = {(g, r) for g in groups for r in resources}
        if pairs and pairs <= _SELF_REVIEWS and verbs <= {"create"}:
            continue
        if pairs and pairs <= _PUBLIC_READS and verbs <= READ_VERBS:
            continue
        reads_ours = (
            groups == [""]
            and resources == ["configmaps"]
            and names_ == [names.CONFIGMAP_NAME]
            and verbs <= READ_VERBS
        )
        if not reads_ours:
            named = f" {','.join(names_)}" if names_ else ""
            found.append(
                f"{','.join(sorted(verbs))} on {','.join(resources)}{named} in {namespace}"
            )
    return found
