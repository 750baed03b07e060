"""How the reload controller asks a node's admin port: over HTTP, or through pods/exec.

Both ways answer the same pair: the verdict common to every command (None when the
body is the command's own answer) and the body. `exec` runs `stellar-core
http-command` in the node's container, with `--conf` from the pod
(`webhook.core.pod.core_conf`), bounded by a watchdog in the container and by a
deadline of our own. Its stdout (headers, blank line, the answer) and stderr (its log:
the config it read, the quorum set as multi-line JSON, `http failed(CODE)`) come on two
channels and are read apart by `stellar_admin.command_verdict`: merged, the log's JSON
reads as the answer (every exec reload of real v25 nodes failed so). "refused" is "ask
again later"; the exit status is 0 whatever happened.
"""

from __future__ import annotations

import asyncio
import math

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from webhook.core import stellar_admin
from webhook.core.reload_plan import NodePlan, exec_command
from webhook.core.stellar_admin import Outcome, Result

Answer = tuple[Result | None, str]


async def ask(
    plan: NodePlan, command: str, *, api_client: client.ApiClient, time_limit: float
) -> Answer:
    """`command` (`peers`, `info`, `connect?...`, no leading slash) asked of the node."""
    if plan.mode == "exec":
        return await _ask_exec(plan, command, api_client=api_client, time_limit=time_limit)
    try:
        status, body = await stellar_admin.get(
            ip=plan.ip, port=plan.http_port, path="/" + command, time_limit=time_limit
        )
    except (OSError, TimeoutError, stellar_admin.AnswerError) as exc:
        return stellar_admin.classify_error(exc), ""
    return stellar_admin.classify_answer(status, body), body


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
        return stellar_admin.classify_error(exc), ""
    return stellar_admin.command_verdict(stdout, stderr)
