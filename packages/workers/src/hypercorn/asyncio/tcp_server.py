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
included) in a task of the worker's task group. That task is the connection's task for its
whole life: it holds a task group of its own in which the applications of its streams run,
and ends once the driver is closed (transport closed and every application returned).
Cancelling it (graceful shutdown ran out of time) cancels a pending TLS handshake or the
applications, and aborts the transport. ``loop.create_server`` is not used because
``Server.close()`` races with connections accepted just before it: their transport
creation fails inside asyncio (``Server._attach`` asserts) and the socket leaks.

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
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast, final

from hypercorn.asyncio.backend import TaskGroup
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
            coroutine = self._serve(conn)
            try:
                task = self._create_task(coroutine)
            except RuntimeError:  # the worker is stopping: its task group takes no new task
                coroutine.close()
                conn.close()
                continue
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

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

    async def _serve(self, conn: socket.socket) -> None:
        """The connection's task: the TLS handshake, then the connection until it closes."""
        worker = self._worker
        secure = self._ssl_context is not None
        protocol = ConnectionProtocol(worker, ssl=secure)
        try:
            # (uvloop returns its TLS wrapper as the protocol: use our own reference.)
            await self._loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._ssl_context,
                ssl_handshake_timeout=worker.config.ssl_handshake_timeout if secure else None,
            )
        except (OSError, asyncio.TimeoutError):
            return  # a failed or timed-out TLS handshake; asyncio closed the socket
        await protocol.run()


@final
class ConnectionProtocol(asyncio.Protocol):
    """One accepted connection: an asyncio protocol and the driver's transport."""

    def __init__(self, worker: WorkerState, *, ssl: bool) -> None:
        self._worker = worker
        self._ssl = ssl
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._driver: ConnectionDriver | None = None
        # Applications started before the connection task runs wait here.
        self._group: Any = None
        self._pending: list[
            tuple[Callable[..., Coroutine[Any, Any, object]], tuple[Any, ...]]
        ] = []
        self._writable = asyncio.Event()
        self._writable.set()
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
        self._writable.set()
        if self._driver is not None:
            self._driver.connection_lost()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

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
        return self._writable.is_set()

    async def drain(self) -> None:
        await self._writable.wait()

    # -----------------------------------------------------------------------------------
    # The connection task
    # -----------------------------------------------------------------------------------

    def _spawn(self, function: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        if self._group is None:
            self._pending.append((function, args))
            return
        coroutine = function(*args)
        try:
            self._group.create_task(coroutine)
        except RuntimeError:  # the connection's task group is shutting down
            coroutine.close()

    def _abort(self) -> None:
        """Drop the connection now, without sending what is queued."""
        self._corked = None
        if self._driver is not None:
            self._driver.connection_lost()
        if self._transport is not None:
            self._transport.abort()

    async def run(self) -> None:
        """The connection task's body (see the module docstring)."""
        driver = self._driver
        assert driver is not None
        finished = False
        try:
            async with TaskGroup() as group:
                self._group = group
                for function, args in self._pending:
                    group.create_task(function(*args))
                self._pending.clear()
                try:
                    await driver.closed.wait()
                except asyncio.CancelledError:
                    # Cut (graceful shutdown ran out): drop the connection before the
                    # applications are cancelled, so that nothing more is written or spawned.
                    self._abort()
                    raise
            finished = True
        except Exception:
            # Applications' errors are caught by AppRunner; this is anything else.
            await self._worker.config.log.exception("Error in connection")
        finally:
            self._group = None
            if not finished:
                self._abort()

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
