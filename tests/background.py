"""Product loops run in a test: `main(stop)` on an event loop of its own, in a thread.

Every e2e test that runs the watcher, the reload controller, an elector or a
server needs the same five steps (loop, stop event, thread; then stop, join,
check it ended); one copy of them here. A loop that does not end within its
bound is a bug the test reports, with every thread's stack printed.
"""

from __future__ import annotations

import asyncio
import faulthandler
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any


class Background:
    def __init__(
        self,
        main: Callable[[asyncio.Event], Awaitable[Any]],
        *,
        what: str,
        stop_within: float = 10.0,
        must_stop: bool = True,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop = stop if stop is not None else asyncio.Event()
        self.what = what
        self.stop_within = stop_within
        self.must_stop = must_stop
        self._closed = False

        async def run() -> Any:
            return await main(self.stop)

        self._thread = threading.Thread(
            target=self.loop.run_until_complete, args=(run(),), daemon=True
        )
        self._thread.start()

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        """`function(*args)` on the loop's thread: the product's objects are not thread-safe."""
        self.loop.call_soon_threadsafe(function, *args)

    def close(self) -> None:
        """Set `stop`, wait for `main` to end; fail (or, if not `must_stop`, say so) if it hangs."""
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.stop.set)
        self._thread.join(timeout=self.stop_within)
        if self._thread.is_alive():
            faulthandler.dump_traceback(all_threads=True)  # where it hangs, in the test output
            message = f"{self.what} did not stop within {self.stop_within:g} s"
            if self.must_stop:
                raise AssertionError(message)
            print(message, flush=True)
            return
        self.loop.close()

    def __enter__(self) -> Background:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
