"""The driver core's :class:`~hypercorn.driver.backend.Backend` on asyncio (and uvloop)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, final

from hypercorn.driver.backend import Flag, Timer

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup
else:  # pragma: no cover - the backport is a dependency on 3.10
    from taskgroup import TaskGroup

__all__ = ("AsyncioBackend", "TaskGroup")


@final
class AsyncioBackend:
    """asyncio's clock, events, timers and thread hand-offs, as the driver core uses them.

    Flags are plain :class:`asyncio.Event` objects; timers are the loop's ``call_at``
    handles. Create it inside the running loop (or pass the loop).
    """

    __slots__ = ("_loop", "time")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = asyncio.get_running_loop() if loop is None else loop
        self.time: Callable[[], float] = self._loop.time

    def flag(self) -> Flag:
        return asyncio.Event()

    async def wait_for(self, flag: Flag, timeout: float) -> bool:
        if flag.is_set():
            return True
        try:
            await asyncio.wait_for(flag.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self._loop.call_at(when, callback)

    async def run_in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        # The default executor; the caller's context variables go along (asyncio.to_thread).
        return await asyncio.to_thread(function, *args)

    def run_from_thread(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(_call(function, args), self._loop)
        return future.result()


async def _call(function: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> Any:
    # Create the awaitable on the loop, not in the calling thread.
    return await function(*args)
