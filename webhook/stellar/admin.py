"""How we ask a node's admin port: over HTTP, or through pods/exec (the one way, `ask`).

Both ways answer the same pair: the verdict common to every command (None when the
body is the command's own answer) and the body. `exec` runs `stellar-core
http-command` in the node's container, with `--conf` from the pod
(`webhook.core.pod.core_conf`), bounded by a watchdog in the container and by a
deadline of our own. Its stdout (headers, blank line, the answer) and stderr (its log:
the config it read, the quorum set as multi-line JSON, `http failed(CODE)`) come on two
channels and are read apart by `admin_protocol.command_verdict`: merged, the log's JSON
reads as the answer (every exec reload of real v25 nodes failed so). "refused" is "ask
again later"; the exit status is 0 whatever happened.

Over HTTP it is a plain HTTP/1.1 GET over asyncio with one deadline for the whole
exchange (stellar-core answers with Content-Length and closes the connection), to a
validated IP address and an integer port only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from webhook.core import admin_protocol
from webhook.core.admin_protocol import MAX_ANSWER_BYTES, Outcome, Result
from webhook.core.reload.reload_plan import NodePlan, exec_command

Answer = tuple[Result | None, str]


async def ask(
    plan: NodePlan, command: str, *, api_client: client.ApiClient, time_limit: float
) -> Answer:
    """`command` (`peers`, `info`, `connect?...`, no leading slash) asked of the node."""
    if plan.mode == "exec":
        return await _ask_exec(plan, command, api_client=api_client, time_limit=time_limit)
    try:
        status, body = await get(
            ip=plan.ip, port=plan.http_port, path="/" + command, time_limit=time_limit
        )
    except (OSError, TimeoutError, admin_protocol.AnswerError) as exc:
        return admin_protocol.classify_error(exc), ""
    return admin_protocol.classify_answer(status, body), body


async def _ask_exec(
    plan: NodePlan, command: str, *, api_client: client.ApiClient, time_limit: float
) -> Answer:
    argv = exec_command(command, conf=plan.conf, seconds=max(1, math.ceil(time_limit)))

    def call() -> tuple[str, str]:
        # `stream` swaps the client's request method while it runs: use a client of its own.
        with client.ApiClient(api_client.configuration) as own:
            api = client.CoreV1Api(own)
            session = stream(
                api.connect_get_namespaced_pod_exec,
                plan.name,
                plan.namespace,
                command=argv,
                container=plan.container,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=time_limit + 5,
            )
            try:
                session.run_forever(timeout=time_limit + 5)
                return str(session.read_stdout(timeout=0)), str(session.read_stderr(timeout=0))
            finally:
                session.close()

    try:
        # The watchdog ends the command; this deadline ends a stuck exec stream.
        async with asyncio.timeout(time_limit + 10):
            stdout, stderr = await asyncio.to_thread(call)
    except ApiException as exc:
        transient = exc.status in (None, 0, 429, 500, 502, 503, 504)
        return Result(Outcome.TRANSIENT if transient else Outcome.FAILED, f"exec-{exc.status}"), ""
    except (OSError, TimeoutError) as exc:
        return admin_protocol.classify_error(exc), ""
    return admin_protocol.command_verdict(stdout, stderr)


def _authority(ip: str, port: int) -> tuple[str, int, str]:
    """(host to dial, port, Host header) from a validated IP address and an integer port."""
    address = ipaddress.ip_address(ip)
    port = int(port)
    if not 0 < port < 65536:
        raise ValueError(f"not a TCP port: {port}")
    header = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    return str(address), port, header


async def get(*, ip: str, port: int, path: str, time_limit: float) -> tuple[int, str]:
    """GET `path` from `ip:port` within `time_limit` seconds; (status, body)."""
    host, port, authority = _authority(ip, port)
    if not path.startswith("/") or any(c in path for c in "\r\n "):
        raise ValueError(f"not a request path: {path!r}")
    async with asyncio.timeout(time_limit):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("ascii"))
            await writer.drain()
            raw = await reader.read(MAX_ANSWER_BYTES)
            while chunk := await reader.read(MAX_ANSWER_BYTES - len(raw)):
                raw += chunk
        finally:
            writer.close()
    return _parse_response(raw)


def _parse_response(raw: bytes) -> tuple[int, str]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise admin_protocol.AnswerError(Result(Outcome.FAILED, "bad-answer", lines[0][:200]))
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            body = body[: int(value.strip())]
    return int(parts[1]), body.decode("utf-8", "replace")
