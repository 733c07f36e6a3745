"""Accepted TCP connections on asyncio: the transport/protocol API around ConnectionDriver.

asyncio calls :class:`ConnectionProtocol`'s callbacks (``data_received``,
``eof_received``, ``connection_lost``, ``pause_writing``...) and they call the
:class:`~hypercorn.driver.connection.ConnectionDriver` directly, with no stream layer and
no task per read. The same object is the driver's
:class:`~hypercorn.driver.backend.Transport`: writes go straight to the asyncio transport,
whose high-water mark (``pause_writing``/``resume_writing``) is what ``can_write`` and
``drain`` report.

Accepting: :class:`Listener` watches the listening socket with ``loop.add_reader`` and hands
each accepted socket to ``loop.connect_accepted_socket`` (TLS and its handshake timeout
included) in a short task of the worker's task group, which ends once the connection is
made. From then on the connection has no task of its own (an idle keep-alive connection
costs only its objects): its :class:`ConnectionProtocol` is registered in the worker's
``connections`` until the driver is closed (transport closed, every application returned)
and the tasks it started (applications, access log lines) have ended. Cancelling it
(graceful shutdown ran out of time) cancels a pending TLS handshake, or aborts the
transport and cancels those tasks. An exception escaping one of them (not an application's:
AppRunner catches those) is logged as an error in the connection, which is aborted.
``loop.create_server`` is not used because ``Server.close()`` races with connections
accepted just before it: their transport creation fails inside asyncio
(``Server._attach`` asserts) and the socket leaks.

Writes: a connection often writes several times in one turn of the loop (a WebSocket
application echoing a burst of messages that came in one read, HTTP/2 streams answering
together). The first write of a turn goes straight to the transport; further writes in the
same turn are gathered and written together by one callback at the end of the turn
(:data:`CORK_LIMIT` bytes at most), so a burst costs two system calls, not one per message.
A single response per read (plain HTTP/1.1) is written at once, with no callback at all.

``read_timeout``: a timer re-armed by every ``data_received`` closes (aborts) a connection
whose peer sends nothing for that long while the server is reading; it does not run while
reading is paused for backpressure. This is a bound on each read, so a connection whose
peer only downloads (a long response, an idle WebSocket) is closed too once the peer has
been silent that long. The reference implementation only stopped reading from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast, final

from hypercorn.driver.connection import ConnectionDriver
from hypercorn.driver.serve import ACCEPT_CAPACITY_ERRNOS, ACCEPT_RETRY_DELAY
from hypercorn.utils import parse_socket_addr

if TYPE_CHECKING:
    import ssl

    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState

__all__ = ("ConnectionProtocol", "Listener", "listen")

#: Bytes gathered from the writes of one turn of the loop before they are written at once.
CORK_LIMIT = 65536

#: Starts a coroutine as a task of the worker's task group.
CreateTask = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


async def listen(
    sock: socket.socket,
    ssl_context: ssl.SSLContext | None,
    worker: WorkerState,
    connections: ConnectionTasks,
    create_task: CreateTask,
) -> Listener:
    """Serve connections accepted on ``sock``; :meth:`Listener.close` stops accepting."""
    return Listener(sock, ssl_context, worker, connections, create_task)


@final
class Listener:
    """Accepts connections on one listening socket (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        worker: WorkerState,
        connections: ConnectionTasks,
        create_task: CreateTask,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._ssl_context = ssl_context
        self._worker = worker
        self._connections = connections
        self._create_task = create_task
        self._backlog = worker.config.backlog
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        sock.setblocking(False)
        sock.listen(self._backlog)  # adopted (fd://) sockets may not listen yet
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._accept)

    def close(self) -> None:
        """Stop accepting and close the socket (accepted connections carry on)."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self._fd)
        self._sock.close()

    def _accept(self) -> None:
        for _ in range(self._backlog):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:
                self._accept_failed(error)
                return
            conn.setblocking(False)
            protocol = ConnectionProtocol(
                self._worker, ssl=self._ssl_context is not None, connections=self._connections
            )
            coroutine = self._serve(conn, protocol)
            try:
                protocol.handshake = self._create_task(coroutine)
            except RuntimeError:  # the worker is stopping: its task group takes no new task
                coroutine.close()
                conn.close()
                continue
            self._connections.add(protocol)

    def _accept_failed(self, error: OSError) -> None:
        log = self._worker.config.log
        if error.errno not in ACCEPT_CAPACITY_ERRNOS:
            self._spawn_log(log.exception, "accept() failed on a listening socket")
            return
        # Out of file descriptors (or memory): stop watching for a moment, then retry.
        self._loop.remove_reader(self._fd)
        self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
        self._spawn_log(log.error, f"accept() failed ({error}); retrying in {ACCEPT_RETRY_DELAY}s")

    def _spawn_log(self, method: Callable[[str], Coroutine[Any, Any, None]], text: str) -> None:
        coroutine = method(text)
        try:
            self._create_task(coroutine)
        except RuntimeError:
            coroutine.close()

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self._loop.add_reader(self._fd, self._accept)

    async def _serve(self, conn: socket.socket, protocol: ConnectionProtocol) -> None:
        """Make the connection (the TLS handshake first, on secure sockets)."""
        secure = self._ssl_context is not None
        timeout = self._worker.config.ssl_handshake_timeout if secure else None
        made = False
        try:
            # (uvloop returns its TLS wrapper as the protocol: use our own reference.)
            await self._loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self._ssl_context, ssl_handshake_timeout=timeout
            )
            made = True
        except (OSError, asyncio.TimeoutError):
            pass  # a failed or timed-out TLS handshake; asyncio closed the socket
        finally:
            protocol.handshake = None
            if not made:
                protocol.not_made()


@final
class ConnectionProtocol(asyncio.Protocol):
    """One accepted connection: an asyncio protocol and the driver's transport."""

    __slots__ = (
        "_connections",
        "_corked",
        "_corked_size",
        "_drained",
        "_driver",
        "_finished",
        "_last_read",
        "_loop",
        "_lost",
        "_read_timeout",
        "_read_timer",
        "_reading",
        "_ssl",
        "_tasks",
        "_transport",
        "_worker",
        "_writable",
        "_wrote",
        "handshake",
    )

    def __init__(
        self, worker: WorkerState, *, ssl: bool, connections: ConnectionTasks | None = None
    ) -> None:
        self._worker = worker
        self._ssl = ssl
        self._connections = connections
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._driver: ConnectionDriver | None = None
        #: The task making the connection (TLS handshake), until it is made or failed.
        self.handshake: asyncio.Task[None] | None = None
        # The tasks the driver started (applications, access log lines) that still run.
        self._tasks: set[asyncio.Task[object]] | None = None  # (made for the first)
        self._finished = False  # left ``connections``
        # Backpressure: False between pause_writing and resume_writing; ``drain`` waits on
        # a future made only then.
        self._writable = True
        self._drained: asyncio.Future[None] | None = None
        # Write gathering (see the module docstring): whether this turn wrote already, and
        # the writes waiting for the end of the turn.
        self._wrote = False
        self._corked: list[bytes] | None = None
        self._corked_size = 0
        self._lost = False
        self._reading = True
        self._read_timeout = worker.config.read_timeout
        self._read_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    # -----------------------------------------------------------------------------------
    # asyncio protocol callbacks
    # -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        family = sock.family if sock is not None else socket.AF_INET
        alpn_protocol = None
        if self._ssl:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                alpn_protocol = ssl_object.selected_alpn_protocol()
        self._driver = ConnectionDriver(
            self._worker,
            self,
            self._spawn,
            ssl=self._ssl,
            client=parse_socket_addr(family, transport.get_extra_info("peername")),
            server=parse_socket_addr(family, transport.get_extra_info("sockname")),
            alpn_protocol=alpn_protocol,
            on_closed=self._maybe_finished,
        )
        self._last_read = self._loop.time()
        self._arm_read_timer()

    def data_received(self, data: bytes) -> None:
        self._wrote = False  # a new turn of the loop
        if self._read_timeout is not None:
            self._last_read = self._loop.time()
        if self._driver is not None:
            self._driver.data_received(data)

    def eof_received(self) -> bool | None:
        if self._driver is not None:
            self._driver.eof_received()
        # Stay open to answer a peer that half-closed; the protocol closes when done.
        # (TLS transports ignore the answer, and warn when it is true.)
        return None if self._ssl else True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._corked = None
        self._stop_read_timer()
        self.resume_writing()
        if self._driver is not None:
            self._driver.connection_lost()

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        drained = self._drained
        if drained is not None:
            self._drained = None
            if not drained.done():
                drained.set_result(None)

    # -----------------------------------------------------------------------------------
    # The driver's Transport
    # -----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        corked = self._corked
        if corked is not None:
            corked.append(data)
            self._corked_size += len(data)
            if self._corked_size >= CORK_LIMIT:
                self._write_corked()  # the turn goes on: later writes gather again
        elif self._wrote:
            self._corked = [data]
            self._corked_size = len(data)
            self._loop.call_soon(self._flush)
        else:
            assert self._transport is not None
            self._transport.write(data)
            self._wrote = True

    def _flush(self) -> None:
        """The end of the turn (or the connection closes): write what was gathered."""
        self._wrote = False
        self._write_corked()

    def _write_corked(self) -> None:
        corked = self._corked
        if corked is None:
            return
        self._corked = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def close(self) -> None:
        self._flush()
        self._stop_read_timer()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def pause_reading(self) -> None:
        self._reading = False
        self._stop_read_timer()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def resume_reading(self) -> None:
        self._reading = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()
            self._last_read = self._loop.time()
            self._arm_read_timer()

    def can_write(self) -> bool:
        return self._writable

    async def drain(self) -> None:
        if self._writable:
            return
        if self._drained is None:
            self._drained = self._loop.create_future()
        await asyncio.shield(self._drained)  # (shared by every waiting application)

    # -----------------------------------------------------------------------------------
    # Tasks and the end of the connection
    # -----------------------------------------------------------------------------------

    def _spawn(self, function: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        task: asyncio.Task[object] = self._loop.create_task(function(*args))
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        tasks = self._tasks
        assert tasks is not None
        tasks.discard(task)
        if not tasks:
            self._tasks = None  # an idle connection keeps no set
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                # Applications' errors are caught by AppRunner; this is anything else.
                self._abort()
                self._spawn(self._log_error, error)
                return
        self._maybe_finished()

    async def _log_error(self, error: BaseException) -> None:
        with contextlib.suppress(Exception):  # (a failing logger must not loop back here)
            await self._worker.config.log.exception("Error in connection", exc_info=error)

    def _maybe_finished(self) -> None:
        """Leave ``connections`` once the driver closed and every task ended."""
        driver = self._driver
        if self._tasks or self._finished or driver is None or not driver.closed:
            return
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        if self._connections is not None:
            self._connections.discard(self)

    def not_made(self) -> None:
        """The connection could not be made (TLS handshake failed, timed out, cancelled)."""
        if self._driver is None:
            self._finish()

    def cancel(self) -> None:
        """Graceful shutdown ran out of time: drop the connection and cancel its tasks."""
        if self.handshake is not None:
            self.handshake.cancel()
            return
        self._abort()
        for task in list(self._tasks or ()):
            task.cancel()

    def _abort(self) -> None:
        """Drop the connection now, without sending what is queued."""
        self._corked = None
        if self._driver is not None:
            self._driver.connection_lost()
        if self._transport is not None:
            self._transport.abort()

    # -----------------------------------------------------------------------------------
    # read_timeout
    # -----------------------------------------------------------------------------------

    def _arm_read_timer(self) -> None:
        if self._read_timeout is None or self._read_timer is not None:
            return
        if self._lost or not self._reading:
            return
        deadline = self._last_read + self._read_timeout
        self._read_timer = self._loop.call_at(deadline, self._on_read_timer)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _on_read_timer(self) -> None:
        self._read_timer = None
        if self._lost or not self._reading or self._read_timeout is None:
            return
        if self._loop.time() < self._last_read + self._read_timeout:
            self._arm_read_timer()  # data came since the timer was set
            return
        self._abort()  # the peer stalled: do not wait to flush to it
