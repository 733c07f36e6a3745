"""Accepted TCP connections on trio: a reader, a writer and the applications, per connection.

:func:`listen` runs a ``trio.serve_listeners``-style accept loop on one socket (waiting and
retrying when the process is out of file descriptors). Each accepted connection runs in
its own nursery (under a cancel scope registered for graceful shutdown):

- the TLS handshake first on secure sockets (``trio.SSLStream`` with
  ``https_compatible=True``, bounded by ``ssl_handshake_timeout``; ALPN picks ``h2``);
- a reader task: ``receive_some`` feeds ``ConnectionDriver.data_received``; it waits while
  the protocol paused reading, and with ``read_timeout`` set a read that gets nothing for
  that long aborts the connection (a bound on each read, as on asyncio);
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
    from collections.abc import Callable

    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState

__all__ = ("HIGH_WATER", "MAX_RECV", "SocketTransport", "StreamTransport", "listen")

#: Largest read from a connection.
MAX_RECV = 65536
#: Bytes waiting to be sent above which applications' ``send`` waits (backpressure).
HIGH_WATER = 65536
#: How long closing a TLS stream may wait to send its close_notify.
TLS_CLOSE_TIMEOUT = 30.0


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
            nursery.start_soon(_connection_task, stream, ssl_context, worker, connections)


async def _connection_task(
    stream: trio.SocketStream,
    ssl_context: ssl.SSLContext | None,
    worker: WorkerState,
    connections: ConnectionTasks,
) -> None:
    scope = trio.CancelScope()
    connections.add(scope)
    try:
        with scope:
            await serve_stream(stream, ssl_context, worker)
    except Exception:
        # Applications' errors are caught by AppRunner; this is anything else.
        await worker.config.log.exception("Error in connection")
    finally:
        connections.discard(scope)


async def serve_stream(
    stream: trio.SocketStream, ssl_context: ssl.SSLContext | None, worker: WorkerState
) -> None:
    """Run one accepted connection until it is closed and its applications returned."""
    sock = stream.socket
    try:
        client = parse_socket_addr(sock.family, sock.getpeername())
        server = parse_socket_addr(sock.family, sock.getsockname())
    except OSError:  # the peer is already gone
        await trio.aclose_forcefully(stream)
        return
    if ssl_context is None:
        await _serve_plain(stream, worker, client, server)
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


async def _serve_plain(
    stream: trio.SocketStream,
    worker: WorkerState,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
) -> None:
    """A plain TCP connection, on its socket's own non-blocking calls (SocketTransport)."""
    sock = socket.socket(fileno=stream.socket.detach())
    sock.setblocking(False)
    async with trio.open_nursery() as nursery:
        transport = SocketTransport(sock, nursery, worker.config.read_timeout)
        driver = ConnectionDriver(
            worker, transport, nursery.start_soon, ssl=False, client=client, server=server
        )
        try:
            await transport.read_loop(driver)
        finally:
            # However the connection ends (closed, gone, cancelled): the socket is closed
            # (after what is queued, unless aborted) and the driver told.
            await transport.finish(driver)


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
    """The driver's :class:`~hypercorn.driver.backend.Transport` over a plain TCP socket.

    ``write`` sends at once with the socket's non-blocking ``send``; only what the kernel
    does not take is queued, for a writer task started then (it waits with
    ``trio.lowlevel.wait_writable`` and ends once the queue is empty). The connection's
    task reads with ``recv``, waiting with ``trio.lowlevel.wait_readable`` only when
    nothing is there. So an idle connection is one waiting task, and a response that fits
    the socket buffer costs one system call and no task switch. (TLS connections use
    :class:`StreamTransport` over ``trio.SSLStream``.)
    """

    __slots__ = (
        "_aborted",
        "_buffer",
        "_closing",
        "_drained",
        "_nursery",
        "_read_scope",
        "_read_timeout",
        "_reading",
        "_sock",
        "_wake",
        "_writing",
    )

    def __init__(
        self, sock: socket.socket, nursery: trio.Nursery, read_timeout: float | None
    ) -> None:
        self._sock = sock
        self._nursery = nursery
        self._read_timeout = read_timeout
        self._buffer = bytearray()  # what the kernel did not take yet
        self._writing = False  # a writer task runs
        self._closing = False
        self._aborted = False
        # Made when first needed: set when the queue is below HIGH_WATER again; set when
        # reading may go on; set when closing began or the writer ended (_wait_until).
        self._drained: TrioFlag | None = None
        self._reading: TrioFlag | None = None
        self._wake: TrioFlag | None = None
        self._read_scope = trio.CancelScope()

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
            self._nursery.start_soon(self._write_loop)

    def close(self) -> None:
        """Stop reading; the socket closes once what is queued was sent."""
        if not self._closing:
            self._closing = True
            self._read_scope.cancel()
            self._set(self._wake)
            self._set(self._reading)

    def abort(self) -> None:
        """Close without sending what is queued."""
        self.close()
        if not self._aborted:
            self._aborted = True
            self._buffer.clear()
            self._set(self._drained)
            self._drained = None

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

    # -- the tasks -----------------------------------------------------------------------

    async def read_loop(self, driver: ConnectionDriver) -> None:
        """Feed the driver until the connection closes (or the peer's input ends)."""
        sock = self._sock
        timeout = self._read_timeout
        with self._read_scope:
            try:
                while True:
                    if self._reading is not None:
                        await self._reading.wait()
                        continue
                    try:
                        data = sock.recv(MAX_RECV)
                    except BlockingIOError:
                        data = None  # (waited for outside the handler: a suspended
                        # except block would keep the exception and its frames alive)
                    if data is None:
                        if timeout is None:
                            await trio.lowlevel.wait_readable(sock)
                        else:
                            with trio.move_on_after(timeout) as read_scope:
                                await trio.lowlevel.wait_readable(sock)
                            if read_scope.cancelled_caught:
                                self.abort()  # the peer stalled: drop the connection
                                return
                        continue
                    if not data:
                        driver.eof_received()
                        break
                    driver.data_received(data)
                    # A schedule point per read, as trio's own sockets make: other tasks
                    # run (the application just started, say) and cancellation gets in.
                    await trio.lowlevel.checkpoint()
            except OSError:
                self.abort()  # reset by the peer
                return
        # The peer finished sending: the response may still be under way.
        await self._wait_until(lambda: self._closing)

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
            self._set(self._wake)  # (finish() may wait for the queue)

    async def finish(self, driver: ConnectionDriver) -> None:
        """Close the socket (once what is queued was sent, unless aborted) and tell the
        driver. Cancellation (graceful shutdown ran out) drops what is left."""
        try:
            await self._wait_until(lambda: not self._writing or self._aborted)
        finally:
            self.abort()
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
            driver.connection_lost()
