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
from typing import TYPE_CHECKING, final

import trio
from hypercorn.driver.connection import ConnectionDriver
from hypercorn.driver.serve import ACCEPT_CAPACITY_ERRNOS, ACCEPT_RETRY_DELAY
from hypercorn.trio.backend import TrioFlag
from hypercorn.utils import parse_socket_addr

if TYPE_CHECKING:
    import socket
    import ssl

    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState

__all__ = ("HIGH_WATER", "MAX_RECV", "StreamTransport", "listen")

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
    transport_stream: trio.abc.Stream = stream
    alpn_protocol = None
    if ssl_context is not None:
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
        alpn_protocol = ssl_stream.selected_alpn_protocol()
        transport_stream = ssl_stream

    transport = StreamTransport(transport_stream, worker.config.read_timeout)
    async with trio.open_nursery() as nursery:
        driver = ConnectionDriver(
            worker,
            transport,
            nursery.start_soon,
            ssl=ssl_context is not None,
            client=client,
            server=server,
            alpn_protocol=alpn_protocol,
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
