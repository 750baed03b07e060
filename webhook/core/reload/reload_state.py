"""What the reload controller remembers of each validator between rounds: pure.

One `NodeRecord` per pod, keyed by its uid, in one dict pruned in one place
(`ReloadState.begin`, at the start of every round): a pod gone from the round
leaves nothing behind, and a pod whose IP changed forgets the network its old
address answered. The state also judges a node's answers (`verdict`, `judge`)
with every node's network known so far. `webhook.controllers.reload` asks the
nodes and feeds their answers here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.core import admin_protocol
from webhook.core.admin_protocol import Outcome, Result
from webhook.core.peerset import networks
from webhook.core.peerset.peers import PeerSet
from webhook.core.reload import connection
from webhook.core.reload.connection import PeersSeen
from webhook.core.reload.reload_plan import NodeOutcome, NodePlan, Observation


@dataclass
class NodeRecord:
    """One validator's reload state, kept while its pod lives."""

    done: str | None = None  # the hash the node was brought up to
    asked_for: str = ""  # the hash a node that says why was asked for ...
    rounds: int = 0  # ... and in how many rounds
    states: dict[str, int] | None = None  # its peers by connection state, last judged
    # (pod IP, its node's `info.network`): asked once per pod, forgotten if the IP changes
    network: tuple[str, str] | None = None
    # Peers its node accepted a `connect` for: stellar-core keeps them in its peer
    # database and re-dials them itself, so telling it again only costs requests.
    told: set[str] = field(default_factory=set)


class ReloadState:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeRecord] = {}  # pod uid -> its record
        self._round: dict[str, NodePlan] = {}  # pod IP -> its plan, this round
        self._peers = PeerSet(())  # the set of this round, with each peer's network

    def begin(self, plans: Iterable[NodePlan], peers: PeerSet) -> set[str]:
        """Start a round over `plans`: drop the records of pods gone (the one place
        records are pruned), mark the nodes already current; the uids still live."""
        plans = list(plans)
        self._peers = peers
        self._round = {p.ip: p for p in plans}
        live = {p.uid: p for p in plans}
        self._nodes = {uid: r for uid, r in self._nodes.items() if uid in live}
        for uid, record in self._nodes.items():
            if record.network is not None and record.network[0] != live[uid].ip:
                record.network = None
        for plan in plans:
            if plan.current:
                self.node(plan).done = plan.hash
        return set(live)

    def node(self, plan: NodePlan) -> NodeRecord:
        return self._nodes.setdefault(plan.uid, NodeRecord())

    def is_done(self, plan: NodePlan) -> bool:
        record = self._nodes.get(plan.uid)
        return record is not None and record.done == plan.hash

    def gave_up(self, plan: NodePlan) -> bool:
        """A node that says why was asked `GIVE_UP_ROUNDS` rounds for this hash."""
        record = self._nodes.get(plan.uid)
        if record is None:
            return False
        return record.asked_for == plan.hash and record.rounds >= connection.GIVE_UP_ROUNDS

    def behind(self, plans: Iterable[NodePlan]) -> int:
        return sum(not self.is_done(p) for p in plans)

    def connection_totals(self) -> dict[str, int]:
        """Peers by connection state, summed over every node judged."""
        totals = dict.fromkeys(connection.STATES, 0)
        for record in self._nodes.values():
            for state, count in (record.states or {}).items():
                totals[state] += count
        return totals

    # Networks

    def network_known(self, plan: NodePlan) -> bool:
        return self._network_at(plan.ip) is not None

    def learned(self, plan: NodePlan, network: str) -> None:
        """The node's `info.network`, at the address it answered from."""
        self.node(plan).network = (plan.ip, network)

    def _network_at(self, ip: str) -> str | None:
        plan = self._round.get(ip)
        record = None if plan is None else self._nodes.get(plan.uid)
        if record is None or record.network is None or record.network[0] != ip:
            return None
        return record.network[1]

    # Judging

    def verdict(
        self,
        plan: NodePlan,
        *,
        expected: tuple[str, ...],
        seen: PeersSeen,
        connects: Mapping[str, Result],
    ) -> dict[str, Any]:
        """`connection.verdict` with every node's network known so far."""
        # By name: what a node reported wins over the set's (a label may disagree).
        by_peer = {p.peer_string: p.network for p in self._peers.peers if p.network}
        for ip, other in self._round.items():
            known = self._network_at(ip)
            if other.peer_port is not None and known is not None:
                by_peer[f"{ip}:{other.peer_port}"] = admin_protocol.network_name(known)
        own = self._network_at(plan.ip)
        return connection.verdict(
            expected=expected,
            seen=seen,
            connects=connects,
            network=admin_protocol.network_name(own) if own is not None else _known(plan.network),
            peer_networks=by_peer,
            node_limits=plan.limits,
        )

    def judge(self, seen: Observation) -> NodeOutcome:
        """The node's outcome, with every node's network learned this round."""
        plan = seen.plan
        if seen.seen is None:
            return NodeOutcome(plan, seen.result, seen.asked)
        node_verdict = self.verdict(
            plan, expected=seen.expected, seen=seen.seen, connects=seen.connects
        )
        if node_verdict["settled"]:
            result = Result(Outcome.SUCCESS, "connected", connection.summary(node_verdict))
        else:
            pending = "pending" in node_verdict["missing"].values()
            outcome = Outcome.TRANSIENT if pending else Outcome.FAILED
            result = Result(outcome, "peers-missing", connection.summary(node_verdict))
        return NodeOutcome(plan, result, seen.asked, node_verdict)

    # Outcomes

    def judged(self, outcome: NodeOutcome) -> None:
        """Before it is reported: the node's peers by state, and one more round for a
        node that says why it lacks some."""
        plan, result, node_verdict = outcome.plan, outcome.result, outcome.verdict
        if plan.mode == "none":
            return
        record = self.node(plan)
        if node_verdict is not None:
            record.states = connection.state_counts(node_verdict)
        if not result.ok and connection.says_why(result, node_verdict):
            record.rounds = record.rounds + 1 if record.asked_for == plan.hash else 1
            record.asked_for = plan.hash

    def reported(self, outcome: NodeOutcome) -> None:
        """Once reported: a node skipped or brought up to date is on its hash."""
        plan = outcome.plan
        if plan.mode == "none" or outcome.result.ok:
            record = self.node(plan)
            record.done = plan.hash
            if plan.mode != "none":
                record.asked_for, record.rounds = "", 0


def _known(network: str) -> str:
    """A network name that says something ("" for the `unknown` set)."""
    return "" if network == networks.UNKNOWN else network
