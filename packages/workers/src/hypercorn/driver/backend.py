"""The small interface an event loop offers the shared driver core.

Everything the asyncio and trio workers have in common — feeding bytes to the protocol
layer, running applications, timers, lifespan, graceful shutdown — is written once in
:mod:`hypercorn.driver` against these two Protocols. Each event loop implements them in a
few dozen lines (:mod:`hypercorn.asyncio.backend`, :mod:`hypercorn.trio.backend`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ("Backend", "Flag", "SendDatagram", "Spawn", "Timer", "Transport")

#: Starts ``function(*args)`` as a task of a connection's task group (nursery).
Spawn = Callable[..., None]
#: Sends one datagram to an address (a UDP socket's ``sendto``); never blocks.
SendDatagram = Callable[[bytes, tuple[Any, ...]], None]


class Flag(Protocol):
    """A resettable event: ``wait()`` returns once ``set()`` was called (until ``clear()``)."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...

    async def wait(self) -> object: ...


class Timer(Protocol):
    """A scheduled call that can be cancelled."""

    def cancel(self) -> None: ...


class Backend(Protocol):
    """What the driver core needs from an event loop."""

    @property
    def time(self) -> Callable[[], float]:
        """The loop's monotonic clock, in seconds: a method, or an attribute holding the
        loop's own clock function (the driver reads the time several times a request)."""

    def flag(self) -> Flag:
        """A new, unset :class:`Flag`."""

    async def wait_for(self, flag: Flag, timeout: float) -> bool:
        """Wait for ``flag``, at most ``timeout`` seconds; False if the time ran out."""

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` on the loop once :meth:`time` reaches ``when``."""

    async def run_in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking ``function(*args)`` in a worker thread and return its result."""

    def run_from_thread(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """From a worker thread: run ``await function(*args)`` on the loop, wait, return."""


class Transport(Protocol):
    """One accepted connection's byte stream, as the driver core sees it."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the peer (never blocks)."""

    def close(self) -> None:
        """Close once everything queued was written."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def can_write(self) -> bool:
        """False while more is queued than the transport's high-water mark."""

    async def drain(self) -> None:
        """Wait until :meth:`can_write` is true again (or the transport closed)."""
