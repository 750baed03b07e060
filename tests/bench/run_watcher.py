"""Run the injector's background parts as `serve` wires them, until SIGTERM: what the scale
benchmark measures (the watcher, publisher and reload controller; no admission server).

    python -m tests.bench.run_watcher --kubeconfig K --namespace NS --namespace-selector SEL

Flags are the service's own (`Settings`); logs go to stderr as JSON lines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import uvloop

from webhook import log as logs
from webhook.cli.wiring import wire
from webhook.kube import api as kube
from webhook.metrics import Metrics
from webhook.settings import Settings


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api_client = kube.api_client(settings)
    service = wire(settings=settings, metrics=Metrics(), api_client=api_client)
    try:
        await asyncio.gather(*service.parts(stop))
    finally:
        api_client.close()


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.from_env(os.environ, list(sys.argv[1:] if argv is None else argv))
    logs.configure(settings.log_level)
    uvloop.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
