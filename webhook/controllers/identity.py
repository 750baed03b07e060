"""Node identities: each running injected validator's network and full public key, asked once.

The peer set needs to know which network every node is on (nodes of different
networks never connect) and which key it holds (`peers.json`, the
`preferred_peer_keys-<network>.cfg` and `validators-<network>.cfg` snippets).
The node says both: `info` names its `NETWORK_PASSPHRASE`, `quorum?fullkeys=true`
its full key. This learner asks each node once per pod uid and IP, the way the
reload controller asks it (`http`, or `exec` through pods/exec for a
localhost-only admin port; `webhook.stellar.admin`), bounded in time and with backoff
while the node does not answer. Every replica asks (two reads per node), so a
new leader publishes warm. The watcher hands it the validators (`want`) and,
woken by `changed`, reads what it learned into its next snapshot
(`identities()`); a pod not asked even once yet is `pending()`: it is handed to
nobody and nothing is handed to it until its first answer (or failure) is in,
so no node is told of a peer whose network is merely not asked yet. A node that
answers "Core is booting" (v25.2+ answers every command so) stays pending: it
will name its network shortly, and two booting nodes of different networks
are no `unknown` pair to connect once they boot.

A pod labeled `stellar.org/network` keeps its label's network; when its node
reports another one the disagreement is logged and put on the pod as one Warning
Event `NetworkMismatch`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from webhook.controllers.supervision import guarded
from webhook.controllers.waiting import unless_stopped, wait_any
from webhook.core import admin_protocol
from webhook.core.peerset import networks
from webhook.core.peerset.networks import Identity
from webhook.core.pod import label_network
from webhook.core.reload.reload_plan import NodePlan, Reachable
from webhook.kube.backoff import backoff_delay
from webhook.kube.events import EventRecorder
from webhook.kube.rest import Rest
from webhook.settings import Settings
from webhook.stellar import admin

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1.0
# A node that did not answer sits in the `unknown` set until asked again: not for long.
RETRY_CAP_SECONDS = 30.0
BOOTING_RETRY_CAP_SECONDS = 10.0  # a booting node answers soon: ask it again soon
# How long a (re)started injector waits for its first pass before publishing without it.
FIRST_PASS_LIMIT_SECONDS = 60.0
Key = tuple[str, str]  # (pod uid, pod IP): a new IP is a new node to ask


class IdentityLearner:
    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
    ) -> None:
        self._settings = settings
        self._api_client = api_client
        self.changed = asyncio.Event()  # a pass ended: the watcher publishes again
        self._known: dict[Key, Identity] = {}
        self._retry: dict[Key, tuple[int, float]] = {}  # attempts, when to ask again
        self._booting: set[Key] = set()  # answered "Core is booting" when last asked
        self._plans: list[NodePlan] = []
        self._reachable = Reachable(settings=settings)  # plans again only the pods that changed
        self._wanted: tuple[Mapping[str, Any], ...] = ()
        self._labels: dict[str, str] = {}  # pod uid -> its network label
        self._reported: set[str] = set()  # pod uids whose mismatch is reported
        self._wake = asyncio.Event()
        self._events = EventRecorder(rest=Rest(api_client))
        self.asked = 0  # admin requests sent, for tests and measurements
        self.passes = 0  # passes that asked someone
        self._first_seen: float | None = None  # when the first validators were wanted

    def identities(self) -> dict[str, Identity]:
        """What the nodes said, by pod uid, for the pods seen last (at their current IP)."""
        return {
            p.uid: self._known[(p.uid, p.ip)] for p in self._plans if (p.uid, p.ip) in self._known
        }

    def pending(self) -> frozenset[str]:
        """Uids of the pods seen last that were never asked, or are booting: not placed yet."""
        return frozenset(
            p.uid
            for p in self._plans
            if (p.uid, p.ip) not in self._known
            and ((p.uid, p.ip) not in self._retry or (p.uid, p.ip) in self._booting)
        )

    def first_pass_pending(self) -> bool:
        """True until the nodes seen first were each asked once (at most a minute).

        A restarted injector finds every node not asked yet; publishing then would
        replace good ConfigMaps with a set that leaves them all out.
        """
        if self.passes or self._first_seen is None:
            return False
        return time.monotonic() - self._first_seen < FIRST_PASS_LIMIT_SECONDS

    def want(self, validators: Sequence[Mapping[str, Any]]) -> None:
        """The running injected validators now, Ready or not: ask those not known yet."""
        if tuple(validators) == self._wanted:
            return  # the same pods: the same plans, and whoever is unknown is asked already
        self._wanted = tuple(validators)
        self._plans = self._reachable.plans(validators)
        if self._plans and self._first_seen is None:
            self._first_seen = time.monotonic()
        live = {(p.uid, p.ip) for p in self._plans}
        self._known = {k: v for k, v in self._known.items() if k in live}
        self._retry = {k: v for k, v in self._retry.items() if k in live}
        self._booting &= live
        self._labels = {
            str((pod.get("metadata") or {}).get("uid", "")): label_network(pod)
            for pod in validators
        }
        self._events.forget(lambda uid: uid in self._labels)
        if any(key not in self._known for key in live):
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            due = [t for k, (_, t) in self._retry.items() if k not in self._known]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            await wait_any(self._wake, stop, seconds=timeout)
            self._wake.clear()
            if stop.is_set():
                return
            learning = unless_stopped(self.learn_once(), stop)
            if await guarded(learning, event="identity.pass-crashed", failed=None) is None:
                await wait_any(stop, seconds=RETRY_BASE_SECONDS)

    async def learn_once(self) -> int:
        """Ask every node not known and due; return how many were learned."""
        now = time.monotonic()
        todo = [
            p
            for p in self._plans
            if (p.uid, p.ip) not in self._known
            and self._retry.get((p.uid, p.ip), (0, 0.0))[1] <= now
        ]
        gate = asyncio.Semaphore(self._settings.reload_concurrency)

        async def one(plan: NodePlan) -> bool:
            async with gate:
                return await self._learn(plan)

        before = (self.identities(), self.pending())
        learned = sum(await asyncio.gather(*(one(p) for p in todo)))
        if todo:
            first, self.passes = not self.passes, self.passes + 1
            # Learned, or no longer pending (the `unknown` set until it answers). A pass
            # of nodes failing again changes neither: the watcher need not work it out.
            if first or (self.identities(), self.pending()) != before:
                self.changed.set()
        return learned

    async def _ask(self, plan: NodePlan, command: str) -> str | None:
        self.asked += 1
        verdict, body = await admin.ask(
            plan,
            command,
            api_client=self._api_client,
            time_limit=self._settings.reload_timeout_seconds,
        )
        key = (plan.uid, plan.ip)
        if verdict is not None and verdict.reason == "booting":
            self._booting.add(key)
        else:
            self._booting.discard(key)
        return body if verdict is None else None

    async def _learn(self, plan: NodePlan) -> bool:
        key = (plan.uid, plan.ip)
        identity: Identity | None = None
        info = await self._ask(plan, "info")
        quorum = await self._ask(plan, "quorum?fullkeys=true") if info is not None else None
        if info is not None and quorum is not None:
            try:
                passphrase = admin_protocol.parse_info(info).network
                public_key = admin_protocol.node_key(quorum)
            except admin_protocol.AnswerError:
                pass
            else:
                if passphrase and public_key.startswith("G"):
                    identity = Identity(admin_protocol.network_name(passphrase), public_key)
        if identity is None:
            attempts = self._retry.get(key, (0, 0.0))[0]
            cap = BOOTING_RETRY_CAP_SECONDS if key in self._booting else RETRY_CAP_SECONDS
            delay = backoff_delay(attempts, base=RETRY_BASE_SECONDS, cap=cap)
            self._retry[key] = (attempts + 1, time.monotonic() + delay)
            log.info(
                "identity.unknown",
                extra={
                    "namespace": plan.namespace,
                    "pod": plan.name,
                    "booting": key in self._booting,
                    "retry_in": round(delay, 1),
                },
            )
            return False
        self._retry.pop(key, None)
        self._booting.discard(key)
        self._known[key] = identity
        log.info(
            "identity.learned",
            extra={
                "namespace": plan.namespace,
                "pod": plan.name,
                "network": identity.network,
                "key": identity.public_key[:5],
            },
        )
        await self._check_label(plan, identity)
        return True

    async def _check_label(self, plan: NodePlan, identity: Identity) -> None:
        label = self._labels.get(plan.uid, "")
        reported = networks.mismatch(label, identity)
        if not reported or plan.uid in self._reported:
            return
        self._reported.add(plan.uid)
        message = (
            f"label stellar.org/network={label} wins, but the node reports network "
            f"{reported}: it is handed {label} peers, which it will never authenticate"
        )
        log.warning(
            "identity.network-mismatch",
            extra={"namespace": plan.namespace, "pod": plan.name, "label": label, "node": reported},
        )
        await self._events.record(
            key="NetworkMismatch",
            kind="Pod",
            name=plan.name,
            namespace=plan.namespace,
            uid=plan.uid,
            reason="NetworkMismatch",
            message=message,
            event_type="Warning",
        )
