"""Accepted TCP connections on trio: a reader, a writer and the applications, per connection.

:func:`listen` runs a ``trio.serve_listeners``-style accept loop on one socket (waiting and
retrying when the process is out of file descriptors) and starts a task per accepted
connection in the worker's nursery.

Plain TCP connections (:class:`SocketTransport`) use the socket's own non-blocking calls.
The connection's task is its reader and nothing more while the connection is idle: no
nursery and no cancel scope of its own, so a kept-alive connection costs one waiting task
and its objects. The applications (and a writer task, when the kernel does not take a
write at once) run in the worker's nursery, each under a cancel scope the transport keeps
while it runs; the transport itself is registered for graceful shutdown, and cancelling it
drops the connection and cancels those scopes. The connection's task still ends only after
the socket was closed (once what is queued was sent, unless aborted) and every task of the
connection ended; an exception escaping one of them (not an application's: AppRunner
catches those) is logged as an error in the connection, which is dropped.

TLS connections run in their own nursery, under a cancel scope registered for graceful
shutdown:

- the TLS handshake first (``trio.SSLStream`` with ``https_compatible=True``, bounded by
  ``ssl_handshake_timeout``; ALPN picks ``h2``);
- a reader task: ``receive_some`` feeds ``ConnectionDriver.data_received``; it waits while
  the protocol paused reading, and with ``read_timeout`` set a read that gets nothing for
  that long aborts the connection (a bound on each read, as on asyncio and plain TCP);
- a writer task: :class:`StreamTransport` queues the driver's writes in a buffer that this
  one task sends, so two writes never overlap; ``can_write`` is false while more than
  :data:`HIGH_WATER` bytes wait (queued or being sent) and ``drain`` waits for it;
- the applications, started by the driver in the same nursery.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, final

import trio
from hypercorn.driver.connection import ConnectionDriver
from hypercorn.driver.serve import ACCEPT_CAPACITY_ERRNOS, ACCEPT_RETRY_DELAY
from hypercorn.trio.backend import TrioFlag
from hypercorn.utils import parse_socket_addr

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState

__all__ = ("HIGH_WATER", "MAX_RECV", "SocketTransport", "StreamTransport", "listen")

#: Largest read from a connection.
MAX_RECV = 65536
#: Bytes waiting to be sent above which applications' ``send`` waits (backpressure).
HIGH_WATER = 65536
#: How long closing a TLS stream may wait to send its close_notify.
TLS_CLOSE_TIMEOUT = 30.0

# The names trio gives the tasks of plain TCP connections (what it would make from the
# function), given so that it does not format a new string for each task.
_SERVE_TASK = f"{__name__}.SocketTransport.serve"
_RUN_TASK = f"{__name__}.SocketTransport._run_task"


@final
class _Listener:
    """A listening socket being served: :meth:`close` stops the accept loop."""

    __slots__ = ("_listener", "_scope")

    def __init__(self, listener: trio.SocketListener, scope: trio.CancelScope) -> None:
        self._listener = listener
        self._scope = scope

    def close(self) -> None:
        self._scope.cancel()
        self._listener.socket.close()


async def listen(
    nursery: trio.Nursery,
    sock: socket.socket,
    ssl_context: ssl.SSLContext | None,
    worker: WorkerState,
    connections: ConnectionTasks,
) -> _Listener:
    """Serve connections accepted on ``sock``, each as a task of ``nursery``."""
    sock.listen(worker.config.backlog)  # adopted (fd://) sockets may not listen yet
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    scope = trio.CancelScope()
    await nursery.start(_accept_loop, nursery, listener, scope, ssl_context, worker, connections)
    return _Listener(listener, scope)


async def _accept_loop(
    nursery: trio.Nursery,
    listener: trio.SocketListener,
    scope: trio.CancelScope,
    ssl_context: ssl.SSLContext | None,
    worker: WorkerState,
    connections: ConnectionTasks,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        task_status.started()
        while True:
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                return
            except OSError as error:
                if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                await worker.config.log.error(
                    "accept() failed (%s); retrying in %ss", error, ACCEPT_RETRY_DELAY
                )
                await trio.sleep(ACCEPT_RETRY_DELAY)
                continue
            if ssl_context is None:
                # Only the socket is kept: trio's stream and socket wrappers are dropped.
                # (Given family, type and proto, this makes no system call and cannot fail.)
                trio_sock = stream.socket
                sock = socket.socket(
                    trio_sock.family, trio_sock.type, trio_sock.proto, trio_sock.detach()
                )
                transport = SocketTransport(sock, nursery, worker)
                nursery.start_soon(transport.serve, connections, name=_SERVE_TASK)
            else:
                nursery.start_soon(_serve_tls, stream, ssl_context, worker, connections)


async def _serve_tls(
    stream: trio.SocketStream,
    ssl_context: ssl.SSLContext,
    worker: WorkerState,
    connections: ConnectionTasks,
) -> None:
    """A TLS connection's task: everything runs in a nursery under a registered scope."""
    scope = trio.CancelScope()
    connections.add(scope)
    try:
        with scope:
            await serve_tls_stream(stream, ssl_context, worker)
    except Exception:
        # Applications' errors are caught by AppRunner; this is anything else.
        await worker.config.log.exception("Error in connection")
    finally:
        connections.discard(scope)


async def serve_tls_stream(
    stream: trio.SocketStream, ssl_context: ssl.SSLContext, worker: WorkerState
) -> None:
    """Run one accepted TLS connection until it is closed and its applications returned."""
    sock = stream.socket
    try:
        client = parse_socket_addr(sock.family, sock.getpeername())
        server = parse_socket_addr(sock.family, sock.getsockname())
    except OSError:  # the peer is already gone
        await trio.aclose_forcefully(stream)
        return
    ssl_stream = trio.SSLStream(stream, ssl_context, server_side=True, https_compatible=True)
    handshake_done = False
    with trio.move_on_after(worker.config.ssl_handshake_timeout):
        try:
            await ssl_stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        else:
            handshake_done = True
    if not handshake_done:
        await trio.aclose_forcefully(ssl_stream)
        return
    transport = StreamTransport(ssl_stream, worker.config.read_timeout)
    async with trio.open_nursery() as nursery:
        driver = ConnectionDriver(
            worker,
            transport,
            nursery.start_soon,
            ssl=True,
            client=client,
            server=server,
            alpn_protocol=ssl_stream.selected_alpn_protocol(),
        )
        # The writer closes the stream however the connection ends (even cancelled).
        nursery.start_soon(transport.write_loop, driver)
        await transport.read_loop(driver)


@final
class StreamTransport:
    """The driver's :class:`~hypercorn.driver.backend.Transport` over a trio stream."""

    __slots__ = (
        "_aborted",
        "_buffer",
        "_closing",
        "_drained",
        "_in_flight",
        "_read_scope",
        "_read_timeout",
        "_reading",
        "_stream",
        "_wake_writer",
        "_write_scope",
        "finished",
    )

    def __init__(self, stream: trio.abc.Stream, read_timeout: float | None) -> None:
        self._stream = stream
        self._read_timeout = read_timeout
        self._buffer = bytearray()
        self._in_flight = 0
        self._closing = False
        self._aborted = False
        #: True once the writer closed the stream.
        self.finished = False
        self._wake_writer = TrioFlag()
        self._drained = TrioFlag()
        self._drained.set()
        self._reading = TrioFlag()
        self._reading.set()
        self._read_scope = trio.CancelScope()
        self._write_scope = trio.CancelScope()

    # -- the Transport interface --------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        self._buffer += data
        self._wake_writer.set()
        if len(self._buffer) + self._in_flight > HIGH_WATER:
            self._drained.clear()

    def close(self) -> None:
        """Stop reading; the writer sends what is queued, then closes the stream."""
        if not self._closing:
            self._closing = True
            self._read_scope.cancel()
            self._wake_writer.set()

    def abort(self) -> None:
        """Close without sending what is queued (the peer stalled or is gone)."""
        self.close()
        if not self._aborted:
            self._aborted = True
            self._buffer.clear()
            self._write_scope.cancel()
            self._drained.set()

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def can_write(self) -> bool:
        return self._drained.is_set()

    async def drain(self) -> None:
        await self._drained.wait()

    # -- the tasks -----------------------------------------------------------------------

    async def read_loop(self, driver: ConnectionDriver) -> None:
        stream = self._stream
        timeout = self._read_timeout
        with self._read_scope:
            try:
                while True:
                    if not self._reading.is_set():
                        await self._reading.wait()
                    if timeout is None:
                        data = await stream.receive_some(MAX_RECV)
                    else:
                        with trio.move_on_after(timeout) as read_scope:
                            data = await stream.receive_some(MAX_RECV)
                        if read_scope.cancelled_caught:
                            # The peer stalled: drop the connection.
                            self.abort()
                            driver.connection_lost()
                            return
                    if not data:
                        driver.eof_received()
                        return
                    driver.data_received(data if type(data) is bytes else bytes(data))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.abort()
                driver.connection_lost()

    async def write_loop(self, driver: ConnectionDriver) -> None:
        stream = self._stream
        closed = False
        try:
            with self._write_scope:
                try:
                    while True:
                        if self._buffer:
                            data, self._buffer = self._buffer, bytearray()
                            self._in_flight = len(data)
                            await stream.send_all(data)
                            self._in_flight = 0
                            if len(self._buffer) <= HIGH_WATER:
                                self._drained.set()
                        elif self._closing:
                            break
                        else:
                            self._wake_writer.clear()
                            await self._wake_writer.wait()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.abort()
            if not self._aborted:
                # Everything was sent: close (TLS: send close_notify, boundedly).
                with trio.move_on_after(TLS_CLOSE_TIMEOUT):
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await stream.aclose()
                closed = True  # even when cancelled, aclose() closed the stream
        finally:
            self._drained.set()
            self._read_scope.cancel()
            if not closed:
                await trio.aclose_forcefully(stream)
            self.finished = True
            driver.connection_lost()


@final
class SocketTransport:
    """A plain TCP connection: the driver's :class:`~hypercorn.driver.backend.Transport`
    over its socket, and what is registered in the worker's ``connections``.

    ``write`` sends at once with the socket's non-blocking ``send``; only what the kernel
    does not take is queued, for a writer task started then (it waits with
    ``trio.lowlevel.wait_writable`` and ends once the queue is empty). The connection's
    task (:meth:`serve`) reads with ``recv``, waiting with ``trio.lowlevel.wait_readable``
    only when nothing is there. So an idle connection is one waiting task, and a response
    that fits the socket buffer costs one system call and no task switch.

    The reader has no cancel scope: :meth:`close` wakes it with
    ``trio.lowlevel.notify_closing`` (a wait on the socket then raises
    ``ClosedResourceError``), at once when nothing is queued, else once the writer sent the
    queue; only then is nothing else waiting on the socket, and the reader closes it next.
    :meth:`abort` wakes both at once.
    The driver's tasks (:meth:`spawn`) run in the worker's nursery under a cancel scope
    each, kept in a set made for the first. (TLS connections use :class:`StreamTransport`
    over ``trio.SSLStream``.)
    """

    __slots__ = (
        "_aborted",
        "_buffer",
        "_closing",
        "_drained",
        "_nursery",
        "_reading",
        "_sock",
        "_tasks",
        "_wake",
        "_worker",
        "_writing",
    )

    def __init__(self, sock: socket.socket, nursery: trio.Nursery, worker: WorkerState) -> None:
        self._sock = sock
        self._nursery = nursery
        self._worker = worker
        self._buffer = bytearray()  # what the kernel did not take yet
        self._writing = False  # a writer task runs
        self._closing = False
        self._aborted = False
        # Made when first needed: set when the queue is below HIGH_WATER again; set when
        # reading may go on; set when the connection's task may have something to do
        # (closing began, the writer ended, the last task ended: see _wait_until).
        self._drained: TrioFlag | None = None
        self._reading: TrioFlag | None = None
        self._wake: TrioFlag | None = None
        # The cancel scopes of the tasks started by spawn() that still run.
        self._tasks: set[trio.CancelScope] | None = None

    # -- the Transport interface --------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        if self._writing:
            self._buffer += data
            if len(self._buffer) > HIGH_WATER and self._drained is None:
                self._drained = TrioFlag()
            return
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.abort()  # the peer is gone; the reader sees it too
            return
        if sent < len(data):
            self._buffer += memoryview(data)[sent:]
            self._writing = True
            if len(self._buffer) > HIGH_WATER:
                self._drained = TrioFlag()
            self.spawn(self._write_loop)

    def close(self) -> None:
        """Stop reading; the socket closes once what is queued was sent."""
        if not self._closing:
            self._closing = True
            self._set(self._wake)
            self._set(self._reading)
            if not self._writing:
                # Nothing is queued: wake the reader if it waits for the socket.
                trio.lowlevel.notify_closing(self._sock)

    def abort(self) -> None:
        """Close without sending what is queued."""
        self.close()
        if not self._aborted:
            self._aborted = True
            self._buffer.clear()
            self._set(self._drained)
            self._drained = None
            if self._writing:
                trio.lowlevel.notify_closing(self._sock)  # the writer and the reader

    def pause_reading(self) -> None:
        if self._reading is None:
            self._reading = TrioFlag()
        else:
            self._reading.clear()

    def resume_reading(self) -> None:
        self._set(self._reading)
        self._reading = None

    def can_write(self) -> bool:
        return self._drained is None

    async def drain(self) -> None:
        if self._drained is not None:
            await self._drained.wait()

    @staticmethod
    def _set(flag: TrioFlag | None) -> None:
        if flag is not None:
            flag.set()

    # -- the driver's tasks and graceful shutdown -----------------------------------------

    def spawn(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        """Start ``function(*args)`` in the worker's nursery, as a task of this connection."""
        scope = trio.CancelScope()
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(scope)
        self._nursery.start_soon(self._run_task, scope, function, *args, name=_RUN_TASK)

    async def _run_task(
        self, scope: trio.CancelScope, function: Callable[..., Awaitable[object]], *args: object
    ) -> None:
        try:
            with scope:
                await function(*args)
        except Exception:
            # Applications' errors are caught by AppRunner; this is anything else.
            self.cancel()
            await self._worker.config.log.exception("Error in connection")
        finally:
            tasks = self._tasks
            assert tasks is not None
            tasks.discard(scope)
            if not tasks:
                self._tasks = None  # an idle connection keeps no set
                self._set(self._wake)

    def cancel(self) -> None:
        """Drop the connection and cancel its tasks (graceful shutdown ran out of time)."""
        self.abort()
        for scope in self._tasks or ():
            scope.cancel()

    # -- the connection's task -----------------------------------------------------------

    async def serve(self, connections: ConnectionTasks) -> None:
        """The connection's task: registered in ``connections`` until the connection is
        closed and every task it started has ended. (The read loop is written out here:
        this is the only frame of ours that an idle connection keeps.)"""
        connections.add(self)
        try:
            driver = self._make_driver()
            if driver is None:
                return  # the peer is already gone
            sock = self._sock
            timeout = self._worker.config.read_timeout
            try:
                # recv is tried first only when data may be there already: at the start and
                # after a read that filled MAX_RECV. After a shorter read the kernel had
                # nothing more, so the task waits at once (no failing recv), and that wait is
                # the read's schedule point.
                try_read = True
                while not self._closing:
                    if self._reading is not None:
                        await self._reading.wait()
                        continue
                    data = None
                    if try_read:
                        try:
                            data = sock.recv(MAX_RECV)
                        except BlockingIOError:
                            pass  # (waited for below, outside the handler: a suspended
                            # except block would keep the exception and its frames alive)
                        except OSError:
                            self.abort()  # reset by the peer
                            break
                    if data is None:
                        try:
                            if timeout is None:
                                await trio.lowlevel.wait_readable(sock)
                            else:
                                with trio.move_on_after(timeout) as read_scope:
                                    await trio.lowlevel.wait_readable(sock)
                                if read_scope.cancelled_caught:
                                    self.abort()  # the peer stalled: drop the connection
                        except trio.ClosedResourceError:
                            break  # close() or abort() woke the wait
                        try_read = True
                        continue
                    if not data:
                        driver.eof_received()
                        # The peer finished sending: the response may still be under way.
                        await self._wait_until(lambda: self._closing)
                        break
                    driver.data_received(data)
                    try_read = len(data) == MAX_RECV
                    if try_read:
                        # A schedule point per read, as trio's own sockets make: other tasks
                        # run (the application just started, say) and cancellation gets in.
                        await trio.lowlevel.checkpoint()
                # What is queued goes out before the socket closes.
                await self._wait_until(lambda: not self._writing or self._aborted)
            except BaseException:
                # A failure here, or the worker is cancelled: drop the connection at once.
                self.cancel()
                raise
            finally:
                self.abort()
                trio.lowlevel.notify_closing(sock)
                sock.close()
                driver.connection_lost()
                # The applications see the connection gone; cancel() cancels them.
                await self._wait_until(lambda: self._tasks is None)
        except Exception:
            # Applications' errors are caught by AppRunner; this is anything else.
            await self._worker.config.log.exception("Error in connection")
        finally:
            connections.discard(self)

    def _make_driver(self) -> ConnectionDriver | None:
        sock = self._sock
        try:
            sock.setblocking(False)
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
        except OSError:  # the peer is already gone
            sock.close()
            return None
        return ConnectionDriver(
            self._worker, self, self.spawn, ssl=False, client=client, server=server
        )

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait (in the connection's task) until ``condition()``, re-checked on each wake."""
        while not condition():
            flag = self._wake = TrioFlag()
            await flag.wait()

    async def _write_loop(self) -> None:
        sock = self._sock
        buffer = self._buffer
        try:
            while buffer and not self._aborted:
                await trio.lowlevel.wait_writable(sock)
                try:
                    sent = sock.send(buffer)
                except BlockingIOError:
                    sent = 0
                del buffer[:sent]
                if self._drained is not None and len(buffer) <= HIGH_WATER:
                    self._drained.set()
                    self._drained = None
        except (OSError, trio.ClosedResourceError):
            self.abort()
        finally:
            self._writing = False
            if self._closing and not self._aborted:
                # close() left the reader waiting for the socket until the queue was sent:
                # wake it now. (abort() woke it already.)
                trio.lowlevel.notify_closing(sock)
            self._set(self._wake)
