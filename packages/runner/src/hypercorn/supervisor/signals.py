"""Signals for the supervisor loop: the handlers only record, the loop acts.

:class:`SignalInbox` installs a handler for each signal that appends the signal number to a
list, and points Python's wakeup file descriptor at one end of a socket pair, so a loop
waiting on the other end (:attr:`SignalInbox.waker`) wakes up at once. The loop then
calls :meth:`SignalInbox.take`. Nothing blocking ever runs inside a handler. The previous
handlers and wakeup descriptor are restored on exit.

Outside the main thread Python cannot install handlers: the inbox then stays empty.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import FrameType, TracebackType

__all__ = ("SignalInbox", "signal_name", "signals_named")


def signals_named(*names: str) -> list[int]:
    """The numbers of the named signals that exist on this platform."""
    return [number for name in names if (number := getattr(signal, name, None)) is not None]


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@final
class SignalInbox:
    """Receive ``signums`` as a list the supervisor loop takes from (a context manager)."""

    def __init__(self, signums: Iterable[int]) -> None:
        self._signums = list(signums)
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._installed = False

    @property
    def waker(self) -> socket.socket:
        """Readable when a signal arrived (or :meth:`wake` was called)."""
        return self._reader

    def wake(self) -> None:
        """Wake the loop from another thread (the reloader's watcher)."""
        with contextlib.suppress(OSError):  # full buffer: a wake-up is pending anyway
            self._writer.send(b"\0")

    def take(self) -> list[int]:
        """The signals received since the last call, oldest first."""
        with contextlib.suppress(OSError):
            while self._reader.recv(4096):
                pass
        taken, self._pending[:] = self._pending[:], []
        return taken

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)

    def __enter__(self) -> SignalInbox:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._previous_wakeup = signal.set_wakeup_fd(
            self._writer.fileno(), warn_on_full_buffer=False
        )
        for signum in self._signums:
            self._previous[signum] = signal.signal(signum, self._record)
        self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            signal.set_wakeup_fd(self._previous_wakeup)
            self._installed = False
        self._reader.close()
        self._writer.close()
