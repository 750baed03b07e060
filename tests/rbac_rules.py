"""RBAC derived from what the code calls: record every API request, judge it by manifests' rules.

`Recorder` wraps an `ApiClient`'s `call_api`, so every request the product
makes through it (list, watch, read, write) is kept as a `Call`: verb, API
group, resource, subresource, namespace and name, as the API server's
authorizer sees them. `allowed` evaluates one call against the rules of the
ClusterRoles and Roles in a set of rendered manifests, the way RBAC does:
a rule matches on group, resource (with subresource), verb and, when it has
`resourceNames`, the object's name; a Role only in its own namespace.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "manifests" / "base"


@dataclasses.dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""  # empty: cluster-wide (or a cluster-scoped resource)
    name: str = ""

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " cluster-wide"
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{resource}{named}{where}"


def parse_call(method: str, path: str, query: Mapping[str, Any]) -> Call:
    """The authorizer's view of one request path (`/api/v1/...` or `/apis/group/version/...`)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:  # API discovery (`/apis/group/version`): every client may (system:discovery)
        return Call("get", group, "")
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name:
        namespace = name  # a namespace is authorized as its own namespace
    watching = str(query.get("watch", "")).lower() == "true"
    verb = {
        "GET": ("watch" if watching else "get" if name else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method.upper()]
    return Call(verb, group, resource, subresource, namespace, name)


class Recorder:
    """Wrap `api_client.call_api`; every request made through it lands in `calls`."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.calls: set[Call] = set()
        self._lock = threading.Lock()
        original = api_client.call_api

        def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urllib.parse.urlsplit(url)
            query = dict(urllib.parse.parse_qsl(parts.query))
            with self._lock:
                self.calls.add(parse_call(method, parts.path, query))
            return original(method, url, *args, **kwargs)

        api_client.call_api = call_api  # type: ignore[method-assign]


def rendered_rbac(folder: Path = BASE) -> list[dict[str, Any]]:
    """The ClusterRoles and Roles among the YAML documents of `folder`."""
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("ClusterRole", "Role"):
                docs.append(doc)
    return docs


def _rule_matches(rule: Mapping[str, Any], call: Call) -> bool:
    resource = f"{call.resource}/{call.subresource}" if call.subresource else call.resource
    names = rule.get("resourceNames") or []
    return (
        any(g in ("*", call.group) for g in rule.get("apiGroups") or [])
        and any(r in ("*", resource) for r in rule.get("resources") or [])
        and any(v in ("*", call.verb) for v in rule.get("verbs") or [])
        and (not names or call.name in names)
    )


def allowed(
    call: Call, roles: Iterable[Mapping[str, Any]], *, namespaces: Mapping[str, str] | None = None
) -> bool:
    """Whether some rule grants `call`; `namespaces` renames a Role's home (tests run elsewhere)."""
    if not call.resource:
        return True  # discovery: granted to every authenticated user by system:discovery
    renamed = namespaces or {}
    for role in roles:
        if role["kind"] == "Role":
            home = role["metadata"].get("namespace", "")
            if not call.namespace or renamed.get(home, home) != call.namespace:
                continue
        if any(_rule_matches(rule, call) for rule in role.get("rules") or []):
            return True
    return False


def refused(
    calls: Iterable[Call],
    roles: Iterable[Mapping[str, Any]],
    *,
    namespaces: Mapping[str, str] | None = None,
) -> list[str]:
    """The calls no rule grants, as readable lines, sorted."""
    return sorted(str(c) for c in calls if not allowed(c, roles, namespaces=namespaces))
