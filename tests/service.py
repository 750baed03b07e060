"""The service as `serve` wires it (`webhook.cli.wiring.wire`), running on a loop of its own.

Every e2e harness, benchmark and measuring script starts the injector through
this, so each runs with the leader guard production uses; a test may change
the settings and the audit's clock, never the wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client

from tests.background import Background
from tests.polling import wait_until
from webhook.cli.wiring import Service, wire
from webhook.kube import api as kube
from webhook.metrics import Metrics
from webhook.settings import Settings


@contextlib.contextmanager
def running_service(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    api_client: client.ApiClient | None = None,
    ready_within: float = 20.0,
    stop_within: float = 15.0,
    must_stop: bool = True,
    observe: Callable[[Service], None] = lambda service: None,
    **clocks: Any,
) -> Iterator[Service]:
    """`wire(settings)` started in a thread; yields once ready, stopped (and checked) after.

    A fault test that leaves the API server gone passes `must_stop=False`: a slow
    stop is then reported, not failed. `observe` sees the wired service before it
    starts (to listen beside its parts, not to change them).
    """
    own = api_client is None
    api = kube.api_client(settings) if api_client is None else api_client
    service = wire(settings=settings, metrics=metrics or Metrics(), api_client=api, **clocks)
    observe(service)

    async def main(stop: asyncio.Event) -> None:
        await asyncio.gather(*service.parts(stop))

    try:
        with Background(main, what="the injector", stop_within=stop_within, must_stop=must_stop):
            wait_until(service.ready, timeout=ready_within, message="the injector ready")
            yield service
    finally:
        if own:
            api.close()
