"""Reporting advertised-address problems: a log line and a Warning Event per pod.

The decision is `webhook.core.peerset.advertised`; this only says, once per pod and
problem, what it found wrong (a Service port that is not PEER_PORT, several
Services for one pod, a LoadBalancer still pending), so nothing is guessed
silently. Run by the leader-only ConfigMap publisher (`controllers.configmaps`),
so a replica that wins the Lease later says it then.
"""

from __future__ import annotations

import logging

from kubernetes import client

from webhook.core.pod import as_dict, as_str
from webhook.core.publishing.watched import KIND_POD, State, exposures_of
from webhook.kube.events import EventRecorder
from webhook.kube.rest import Rest

log = logging.getLogger(__name__)

REASON = "AdvertisedAddress"


class ExposureReport:
    """Says each new advertised-address problem once; forgets pods that are fixed or gone."""

    def __init__(self, *, api_client: client.ApiClient) -> None:
        self._events = EventRecorder(rest=Rest(api_client))
        self._said: dict[tuple[str, str], str] = {}  # (namespace, name) -> problem, as Event
        self._logged: dict[tuple[str, str], str] = {}  # the same, as a log line
        self.problems: dict[tuple[str, str], str] = {}

    async def report(self, state: State, *, enabled: frozenset[str]) -> None:
        found = exposures_of(state, enabled=enabled)
        self.problems = {key: e.problem for key, e in found.items() if e.problem}
        for key, problem in sorted(self.problems.items()):
            if self._logged.get(key) != problem:
                self._logged[key] = problem
                log.warning(
                    "advertised.problem",
                    extra={"namespace": key[0], "pod": key[1], "problem": problem},
                )
            if self._said.get(key) == problem:
                continue
            pod = state.get((KIND_POD, *key), {})
            uid = as_str(as_dict(pod.get("metadata")).get("uid"))
            self._said[key] = problem
            await self._events.record(
                key=REASON,
                kind="Pod",
                name=key[1],
                namespace=key[0],
                uid=uid,
                reason=REASON,
                message=problem,
                event_type="Warning",
            )
        self._said = {k: v for k, v in self._said.items() if self.problems.get(k) == v}
        self._logged = {k: v for k, v in self._logged.items() if self.problems.get(k) == v}
