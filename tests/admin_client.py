"""A client of a node's admin port for tests: `connect`, `peers` and `info` over HTTP.

The service asks nodes one way only (`webhook.controllers.node_admin.ask`); these
three answer the tests' and benchmarks' questions with the same GET and the same
classification (`webhook.core.stellar_admin`).
"""

from __future__ import annotations

from webhook.core import stellar_admin
from webhook.core.stellar_admin import NodeInfo, Outcome, Result


async def connect(
    *, ip: str, port: int, peer_host: str, peer_port: int, time_limit: float
) -> Result:
    """Ask the node at `ip:port` to connect to `peer_host:peer_port`."""
    try:
        status, body = await stellar_admin.get(
            ip=ip,
            port=port,
            path=stellar_admin.connect_path(host=peer_host, port=peer_port),
            time_limit=time_limit,
        )
    except (OSError, TimeoutError, stellar_admin.AnswerError) as exc:
        return stellar_admin.classify_error(exc)
    return stellar_admin.classify_connect(status, body, host=peer_host, port=peer_port)


async def peers(*, ip: str, port: int, time_limit: float) -> tuple[Result, set[str]]:
    """The node's connected and pending peers, with how asking went."""
    try:
        status, body = await stellar_admin.get(
            ip=ip, port=port, path="/peers", time_limit=time_limit
        )
        verdict = stellar_admin.classify_answer(status, body)
        if verdict is not None:
            return verdict, set()
        return Result(Outcome.SUCCESS, "listed"), stellar_admin.parse_peers(body)
    except (OSError, TimeoutError, stellar_admin.AnswerError) as exc:
        return stellar_admin.classify_error(exc), set()


async def info(*, ip: str, port: int, time_limit: float) -> tuple[Result, NodeInfo | None]:
    """The node's state, network and short key, with how asking went."""
    try:
        status, body = await stellar_admin.get(
            ip=ip, port=port, path="/info", time_limit=time_limit
        )
        verdict = stellar_admin.classify_answer(status, body)
        if verdict is not None:
            return verdict, None
        return Result(Outcome.SUCCESS, "info"), stellar_admin.parse_info(body)
    except (OSError, TimeoutError, stellar_admin.AnswerError) as exc:
        return stellar_admin.classify_error(exc), None
