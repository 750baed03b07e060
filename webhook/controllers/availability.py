"""Which watched sources cannot list, why, and what an operator does about it.

A source refused by the API server (401/403: RBAC or credentials) is
unavailable at once, since retrying changes nothing until someone fixes the
rights; any other failure after a few attempts in a row. Each one is logged
once with a hint, counted in a gauge and shown by `/readyz`; a later LIST
brings it back.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from webhook.kube.api import describe_failure
from webhook.metrics import Metrics

log = logging.getLogger(__name__)

# A LIST failing this many times in a row (other than a refusal) marks its source unavailable.
UNAVAILABLE_AFTER_ATTEMPTS = 5
REFUSED_STATUSES = frozenset({401, 403})
# What each source lists, for the message that says which right is missing.
SOURCE_RESOURCES = {
    "pods": "pods",
    "namespaces": "namespaces",
    "configmaps": "configmaps",
    "crds": "customresourcedefinitions.apiextensions.k8s.io",
    "stellarnodes": "stellarnodes.stellar.org",
    "stellarnode-pods": "pods",
    "services": "services",
}


class Availability:
    def __init__(self, *, metrics: Metrics, holding: Collection[str]) -> None:
        self.metrics = metrics
        self.holding = frozenset(holding)  # sources without which nothing is written
        self.unavailable: dict[str, str] = {}  # source -> why, and what to do

    def failed(self, source: str, exc: BaseException, attempt: int) -> bool:
        """A LIST failed; True when this makes `source` unavailable now."""
        refused = getattr(exc, "status", None) in REFUSED_STATUSES
        if source in self.unavailable or not (refused or attempt + 1 >= UNAVAILABLE_AFTER_ATTEMPTS):
            return False
        resource = SOURCE_RESOURCES.get(source, source)
        if refused:
            hint = (
                f"grant list and watch on {resource} to the injector's ServiceAccount "
                "(manifests/base/clusterrole.yaml); it retries and recovers by itself"
            )
        else:
            hint = f"the API server cannot list {resource}: check its health; it retries"
        error = describe_failure(exc)
        self.unavailable[source] = f"{error}; {hint}"
        self.metrics.watch_source_unavailable.labels(resource=source).set(1)
        log.error(
            "watcher.source-unavailable",
            extra={
                "resource": source,
                "error": error,
                "hint": hint,
                "publishing": "held" if source in self.holding else "without it",
            },
        )
        return True

    def recovered(self, source: str, *, quiet: bool = False) -> None:
        if self.unavailable.pop(source, None) is None:
            return
        self.metrics.watch_source_unavailable.labels(resource=source).set(0)
        if not quiet:
            log.info("watcher.source-recovered", extra={"resource": source})

    def holding_back(self) -> list[str]:
        """The unavailable sources that stop every write."""
        return sorted(self.holding & self.unavailable.keys())
