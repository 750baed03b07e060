"""One node in a reload round: ask its `peers`, `connect` what it lacks, wait for them.

`Connect to:` only means "asked", so after the connects the node's `peers` is read
again, bounded by `reload_connect_wait_seconds` and no longer than it takes the
node's answer to explain every peer still out. A node is told each peer once in
its pod's life (`NodeRecord.told`) and asked its network (`info`) once per pod.
Transient answers are retried with backoff, unless a newer peer set waits: its
round asks again at once. What the node said is judged by
`webhook.core.reload.reload_state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

from kubernetes import client

from webhook.controllers.rollout import RETRY_BASE_SECONDS, RETRY_CAP_SECONDS
from webhook.controllers.waiting import wait_any
from webhook.core import admin_protocol
from webhook.core.admin_protocol import Outcome, Result
from webhook.core.peerset.peers import Peer, PeerSet
from webhook.core.reload import connection
from webhook.core.reload.connection import PeersSeen
from webhook.core.reload.reload_plan import NodePlan, Observation, handed, missing_peers
from webhook.core.reload.reload_state import ReloadState
from webhook.kube.backoff import backoff_delay
from webhook.settings import Settings
from webhook.stellar import admin


class NodeDialog:
    """Talks to the round's nodes (http or exec), at most `reload_concurrency` at once."""

    def __init__(
        self,
        *,
        settings: Settings,
        api_client: client.ApiClient,
        state: ReloadState,
        wake: asyncio.Event,
        pending: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._api_client = api_client
        self._state = state
        self._wake = wake  # set when a newer peer set arrives
        self._pending = pending  # a newer peer set waits for its round
        self._semaphore = asyncio.Semaphore(settings.reload_concurrency)

    def new_round(self) -> None:
        self._semaphore = asyncio.Semaphore(self._settings.reload_concurrency)

    async def observe(self, plan: NodePlan, peer_set: PeerSet) -> Observation:
        """Ask `peers`, `connect` each missing peer, wait for them; `info` if some stay out."""
        if plan.mode == "none":
            return Observation(plan, Result(Outcome.SUCCESS, "skipped"))
        if plan.mode == "rollout":  # created from the current template: nothing to tell it
            return Observation(plan, Result(Outcome.SUCCESS, "rolled-out"))
        expected = missing_peers(handed(peer_set, plan), set(), own_ip=plan.ip)
        listed, peers_seen = await self._peers(plan)
        if peers_seen is None:
            return Observation(plan, listed)
        connects, stopped = await self._tell(plan, expected, peers_seen)
        if stopped is not None:  # the admin port stopped answering: the whole node is later
            return Observation(plan, stopped, asked=_asked(connects))
        wanted = tuple(sorted(p.peer_string for p in expected))
        failed, peers_seen = await self._wait(
            plan, wanted=wanted, seen=peers_seen, connects=connects
        )
        if failed is not None:
            return Observation(plan, failed, asked=_asked(connects))
        if not set(wanted) <= peers_seen.authenticated and not self._state.network_known(plan):
            await self._learn_network(plan)
        return Observation(
            plan,
            Result(Outcome.SUCCESS, "listed"),
            seen=peers_seen,
            expected=wanted,
            connects=connects,
            asked=_asked(connects),
        )

    async def _tell(
        self, plan: NodePlan, expected: Sequence[Peer], seen: PeersSeen
    ) -> tuple[dict[str, Result], Result | None]:
        """`connect` each expected peer the node neither holds nor was told; the answers,
        and the transient result that stopped it, if one did."""
        connects: dict[str, Result] = {}
        told = self._state.node(plan).told
        for peer in expected:
            if peer.peer_string in seen.authenticated or peer.peer_string in told:
                continue
            command = admin_protocol.connect_command(host=peer.ip, port=peer.port)
            verdict, body = await self._retrying(plan, command)
            result = verdict or admin_protocol.classify_connect(
                200, body, host=peer.ip, port=peer.port
            )
            if result.transient:
                return connects, result
            connects[peer.peer_string] = result
            if result.ok:
                told.add(peer.peer_string)
        return connects, None

    async def _wait(
        self,
        plan: NodePlan,
        *,
        wanted: tuple[str, ...],
        seen: PeersSeen,
        connects: Mapping[str, Result],
    ) -> tuple[Result | None, PeersSeen]:
        """Read `peers` until the node's word explains every peer still out (slots full,
        another network, ...): waiting longer changes nothing. Never judged on the answer
        from before the connects, nor while a peer just told is still dialing: one
        preferred by key evicts another from full slots. A failed read ends it."""
        deadline = time.monotonic() + self._settings.reload_connect_wait_seconds
        pause = 0.1
        read_since = False  # a `peers` answer read after the connects
        while connects:
            judged = self._state.verdict(plan, expected=wanted, seen=seen, connects=connects)
            if read_since and judged["settled"] and not seen.pending & connects.keys():
                break
            if time.monotonic() + pause > deadline or self._pending():
                break  # a newer peer set's round asks again at once
            await wait_any(self._wake, seconds=pause)
            pause = min(1.0, pause * 2)
            again, newer = await self._peers(plan)
            if newer is None:
                return again, seen
            seen, read_since = newer, True
        return None, seen

    async def _peers(self, plan: NodePlan) -> tuple[Result, PeersSeen | None]:
        verdict, body = await self._retrying(plan, "peers")
        if verdict is not None:
            return verdict, None
        try:
            return Result(Outcome.SUCCESS, "listed"), connection.read_peers(body)
        except admin_protocol.AnswerError as exc:
            return exc.result, None

    async def _learn_network(self, plan: NodePlan) -> None:
        verdict, body = await self._retrying(plan, "info")
        if verdict is None:
            # An odd `info` tells no network; the verdict goes without.
            with contextlib.suppress(admin_protocol.AnswerError):
                self._state.learned(plan, admin_protocol.parse_info(body).network)

    async def _retrying(self, plan: NodePlan, command: str) -> admin.Answer:
        """Ask again after a capped, jittered backoff while the answer is transient."""
        attempt = 0
        while True:
            async with self._semaphore:
                answer = await admin.ask(
                    plan,
                    command,
                    api_client=self._api_client,
                    time_limit=self._settings.reload_timeout_seconds,
                )
            result = answer[0]
            if result is None or not result.transient:
                return answer
            if attempt >= self._settings.reload_retries or self._pending():
                # A newer peer set waits: its round asks this node again, so
                # retrying here would only hold that round back.
                return answer
            await wait_any(
                self._wake,
                seconds=backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS),
            )
            attempt += 1


def _asked(connects: Mapping[str, Result]) -> int:
    """Connects the node took ("asked")."""
    return sum(r.ok for r in connects.values())
