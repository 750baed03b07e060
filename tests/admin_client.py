"""A small client of the admin port for tests and benchmarks: connect, peers, info.

The product asks nodes only through `webhook.stellar.admin.ask`; these read the
stand-ins (and real nodes) directly, classified by the same `admin_port` rules.
"""

from __future__ import annotations

from webhook.core import admin_protocol
from webhook.stellar import admin


async def connect(
    *, ip: str, port: int, peer_host: str, peer_port: int, time_limit: float
) -> admin_protocol.Result:
    """Ask the node at `ip:port` to connect to `peer_host:peer_port`."""
    try:
        status, body = await admin.get(
            ip=ip,
            port=port,
            path=admin_protocol.connect_path(host=peer_host, port=peer_port),
            time_limit=time_limit,
        )
    except (OSError, TimeoutError, admin_protocol.AnswerError) as exc:
        return admin_protocol.classify_error(exc)
    return admin_protocol.classify_connect(status, body, host=peer_host, port=peer_port)


async def peers(*, ip: str, port: int, time_limit: float) -> tuple[admin_protocol.Result, set[str]]:
    """The node's connected and pending peers, with how asking went."""
    try:
        status, body = await admin.get(ip=ip, port=port, path="/peers", time_limit=time_limit)
        verdict = admin_protocol.classify_answer(status, body)
        if verdict is not None:
            return verdict, set()
        return admin_protocol.Result(
            admin_protocol.Outcome.SUCCESS, "listed"
        ), admin_protocol.parse_peers(body)
    except (OSError, TimeoutError, admin_protocol.AnswerError) as exc:
        return admin_protocol.classify_error(exc), set()


async def info(
    *, ip: str, port: int, time_limit: float
) -> tuple[admin_protocol.Result, admin_protocol.NodeInfo | None]:
    """The node's state, network and short key, with how asking went."""
    try:
        status, body = await admin.get(ip=ip, port=port, path="/info", time_limit=time_limit)
        verdict = admin_protocol.classify_answer(status, body)
        if verdict is not None:
            return verdict, None
        return admin_protocol.Result(
            admin_protocol.Outcome.SUCCESS, "info"
        ), admin_protocol.parse_info(body)
    except (OSError, TimeoutError, admin_protocol.AnswerError) as exc:
        return admin_protocol.classify_error(exc), None
