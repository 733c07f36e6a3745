"""The driver core's :class:`~hypercorn.driver.backend.Backend` on trio."""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, final

import trio
from hypercorn.driver.backend import Flag, Timer

__all__ = ("TrioBackend", "TrioFlag")


@final
class TrioFlag:
    """A :class:`trio.Event` that can be cleared (a new Event replaces a set one)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        if self._event.is_set():
            self._event = trio.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


@final
class _Timer:
    __slots__ = ("_backend", "callback", "when")

    def __init__(self, backend: TrioBackend, when: float, callback: Callable[[], None]) -> None:
        self._backend: TrioBackend | None = backend
        self.when = when
        self.callback = callback

    @property
    def cancelled(self) -> bool:
        return self._backend is None

    def cancel(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend._timer_cancelled()


@final
class TrioBackend:
    """trio's clock, events, timers and thread hand-offs, as the driver core uses them.

    trio has no ``call_at``: one task, started here in ``nursery``, keeps the timers in a
    heap and sleeps until the earliest (cancelled timers are dropped lazily, and the heap
    is compacted when they are the majority). Create it inside ``trio.run``.
    """

    __slots__ = ("_cancelled", "_heap", "_sequence", "_token", "_wake")

    def __init__(self, nursery: trio.Nursery) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._heap: list[tuple[float, int, _Timer]] = []
        self._sequence = itertools.count()
        self._cancelled = 0
        self._wake = TrioFlag()
        nursery.start_soon(self._run_timers)

    def time(self) -> float:
        return trio.current_time()

    def flag(self) -> Flag:
        return TrioFlag()

    async def wait_for(self, flag: Flag, timeout: float) -> bool:  # noqa: ASYNC109 - Backend API
        if flag.is_set():
            return True
        with trio.move_on_after(timeout):
            await flag.wait()
            return True
        return False

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _Timer(self, when, callback)
        heap = self._heap
        heapq.heappush(heap, (when, next(self._sequence), timer))
        if heap[0][2] is timer:
            self._wake.set()  # the timer task sleeps until a later time
        return timer

    def _timer_cancelled(self) -> None:
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 64 and self._cancelled * 2 > len(heap):
            heap[:] = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(heap)
            self._cancelled = 0

    async def _run_timers(self) -> None:
        heap = self._heap
        wake = self._wake
        while True:
            now = trio.current_time()
            while heap and (heap[0][2].cancelled or heap[0][0] <= now):
                _, _, timer = heapq.heappop(heap)
                if timer.cancelled:
                    self._cancelled = max(self._cancelled - 1, 0)
                    continue
                timer._backend = None  # fired: a later cancel() is a no-op
                try:
                    timer.callback()
                except Exception:
                    logging.getLogger("hypercorn.error").exception("Error in a timer callback")
            wake.clear()
            if heap:
                with trio.move_on_at(heap[0][0]):
                    await wake.wait()
            else:
                await wake.wait()

    async def run_in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        # abandon_on_cancel: a cancelled task does not wait for a blocked thread (as with
        # asyncio's executor); the thread's later calls back into trio then fail.
        return await trio.to_thread.run_sync(partial(function, *args), abandon_on_cancel=True)

    def run_from_thread(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        # With the token this works from any thread. (From run_in_thread's threads trio
        # would run the call in its system nursery anyway, because of abandon_on_cancel.)
        return trio.from_thread.run(function, *args, trio_token=self._token)
