"""The publish plan: what to write or delete so every namespace holds the peer set.

Targets are the system namespace and every enabled one; a `stellar-peers`
ConfigMap someone else owns is a conflict, left alone. No I/O here: the
ConfigMap publisher (`webhook.controllers.publisher`) carries the steps out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook import names
from webhook.core.publishing.publish import content_digest, is_owned
from webhook.core.publishing.watched import KIND_CONFIGMAP, State
from webhook.settings import Settings

Verb = Literal["write", "delete", "conflict"]


@dataclass(frozen=True)
class Step:
    verb: Verb
    namespace: str
    uid: str = ""
    # What the watch last saw there (trimmed): a write trusts it instead of reading first.
    observed: Mapping[str, Any] | None = field(default=None, compare=False)


def canonical_ref(settings: Settings) -> str:
    return f"{settings.namespace}/{names.CONFIGMAP_NAME}"


def plan(
    state: State,
    *,
    desired_digest: str,
    mirror_digest: str | None = None,
    system_namespace: str,
    enabled: Iterable[str],
    canonical: str,
) -> list[Step]:
    """What to do so every target namespace holds our content and no stray mirror is left.

    Targets are the system namespace (which should hold `desired_digest`) and every
    enabled one (`mirror_digest`, the same unless the mirrors carry fewer keys,
    `webhook.core.publishing.publish_size`). Only mirrors of
    this canonical ConfigMap (by annotation) are ever deleted, so two
    installations in one cluster never remove each other's.
    """
    targets = {system_namespace, *enabled}
    steps: list[Step] = []
    for namespace in sorted(targets):
        wanted = desired_digest if namespace == system_namespace else mirror_digest
        observed = state.get((KIND_CONFIGMAP, namespace, names.CONFIGMAP_NAME))
        if observed is None:
            steps.append(Step("write", namespace))
        elif not is_ours(observed, canonical=canonical):
            steps.append(Step("conflict", namespace, str(observed["metadata"].get("uid") or "")))
        elif observed.get("digest") != (wanted or desired_digest):
            steps.append(Step("write", namespace, observed=observed))
    for (kind, namespace, name), observed in sorted(state.items()):
        if kind != KIND_CONFIGMAP or name != names.CONFIGMAP_NAME or namespace in targets:
            continue
        annotations = observed["metadata"].get("annotations") or {}
        if is_owned(observed) and annotations.get(names.CANONICAL_ANNOTATION) == canonical:
            steps.append(Step("delete", namespace, str(observed["metadata"].get("uid") or "")))
    return steps


def is_ours(configmap: Mapping[str, Any], *, canonical: str) -> bool:
    """Owner labels, and not a mirror of another installation's canonical ConfigMap.

    Two installations whose namespace selectors overlap would otherwise rewrite
    each other's mirror forever; the first one there keeps it.
    """
    annotations = (configmap.get("metadata") or {}).get("annotations") or {}
    claimed = annotations.get(names.CANONICAL_ANNOTATION)
    return is_owned(configmap) and claimed in (None, canonical)


def observed_digest(configmap: Mapping[str, Any]) -> str:
    """A watched (trimmed) ConfigMap carries its content digest; a fresh read is hashed."""
    known = configmap.get("digest")
    return known if isinstance(known, str) else content_digest(configmap)


# A replace of ours the watch may not show yet: (the resourceVersion it replaced, the
# object as written, trimmed like a watched one).
Written = tuple[str, Mapping[str, Any]]


def with_own_writes(state: State, written: Mapping[str, Written]) -> tuple[State, frozenset[str]]:
    """The state with each ConfigMap this writer wrote last in place of what the watch
    still shows from before that write; and the namespaces where that applied.

    Without it a round that follows soon after another plans every mirror the watch
    has not echoed yet again, and each such write is a whole ConfigMap sent for a 409.
    Where the watch shows any other version (it caught up, or someone else wrote),
    the watch wins.
    """
    fresh: dict[Any, Mapping[str, Any]] | None = None
    applied = []
    for namespace, (before, after) in written.items():
        key = (KIND_CONFIGMAP, namespace, names.CONFIGMAP_NAME)
        seen = state.get(key)
        seen_version = (seen.get("metadata") or {}).get("resourceVersion") if seen else None
        if seen_version != before:
            continue
        if fresh is None:
            fresh = dict(state)
        fresh[key] = after
        applied.append(namespace)
    return (state if fresh is None else fresh), frozenset(applied)
