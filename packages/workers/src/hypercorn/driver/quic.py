"""HTTP/3 on one UDP socket, written once for every event loop.

A :class:`QuicListener` owns the sans-IO :class:`~hypercorn.protocol.quic.QuicEndpoint` of
one socket. Each event loop reads datagrams its own way and hands them to
:meth:`QuicListener.datagram_received`; the endpoint says which QUIC connection a datagram
belongs to (creating one for a valid Initial packet), and that connection is driven by an
ordinary :class:`~hypercorn.driver.connection.ConnectionDriver` — the same pump, timers,
application runners and access log as a TCP connection — whose output goes out with the
socket's non-blocking ``sendto`` (a datagram the kernel cannot take is dropped, as on any
congested path: QUIC retransmits).

Shutdown: :meth:`QuicListener.close` (the worker stops listening) makes the endpoint refuse
new connections; the open ones finish through the worker's graceful shutdown like TCP
connections. The socket is closed, and the listener leaves the worker's
:class:`~hypercorn.driver.serve.ConnectionTasks`, once the last QUIC connection is gone.
:meth:`QuicListener.cancel` (the graceful timeout ran out) closes everything at once.

aioquic is imported here, lazily, only when a worker serves a ``quic_bind`` socket.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, final

from hypercorn.config import ConfigError
from hypercorn.driver.connection import ConnectionDriver

if TYPE_CHECKING:
    from collections.abc import Callable

    from hypercorn.driver.backend import SendDatagram, Spawn
    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState
    from hypercorn.protocol.context import Address
    from hypercorn.protocol.h3 import H3Connection
    from hypercorn.protocol.quic import QuicEndpoint

__all__ = ("QuicListener", "load_quic")


def load_quic(worker: WorkerState, server: tuple[str, int] | None) -> QuicEndpoint:
    """The endpoint of one QUIC socket; a clear ConfigError without aioquic or TLS."""
    config = worker.config
    if not config.ssl_enabled:
        raise ConfigError("quic_bind needs TLS: set certfile and keyfile (HTTP/3 is always TLS)")
    try:
        from hypercorn.protocol.quic import QuicEndpoint, quic_configuration
    except ImportError as error:
        raise ConfigError(
            f"quic_bind needs aioquic, which is not installed ({error}): "
            "pip install 'hypercorn-cli[h3]'"
        ) from error
    return QuicEndpoint(worker.context, quic_configuration(config), server=server)


@final
class _QuicTransport:
    """The transport of one QUIC connection's driver: bytes go out as datagrams (through
    the driver's ``sendto``), so only closing means anything here."""

    __slots__ = ("_connection", "_listener")

    def __init__(self, listener: QuicListener, connection: H3Connection) -> None:
        self._listener = listener
        self._connection = connection

    def write(self, data: bytes) -> None:
        raise AssertionError("a QUIC connection sends datagrams, not a byte stream")

    def close(self) -> None:
        self._listener.connection_closed(self._connection)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write(self) -> bool:
        return True

    async def drain(self) -> None:
        return None


@final
class QuicListener:
    """One UDP socket serving HTTP/3 (see the module docstring).

    ``sendto`` sends a datagram without blocking; ``spawn`` starts an application task
    that :meth:`cancel` can cancel (``cancel_tasks``); ``close_socket`` closes the socket
    and stops the reading loop.
    """

    def __init__(
        self,
        worker: WorkerState,
        endpoint: QuicEndpoint,
        connections: ConnectionTasks,
        *,
        sendto: SendDatagram,
        spawn: Spawn,
        cancel_tasks: Callable[[], None],
        close_socket: Callable[[], None],
    ) -> None:
        self._worker = worker
        self._endpoint = endpoint
        self._connections = connections
        self._sendto = sendto
        self._spawn = spawn
        self._cancel_tasks = cancel_tasks
        self._close_socket = close_socket
        self._drivers: dict[H3Connection, ConnectionDriver] = {}
        self._listening = True
        self._socket_open = True
        connections.add(self)  # counted by the graceful shutdown until its connections end

    def sendto(self, data: bytes, address: Address) -> None:
        if self._socket_open:
            with contextlib.suppress(OSError):  # full buffer, unreachable peer: QUIC resends
                self._sendto(data, address)

    def datagram_received(self, data: bytes, address: Any) -> None:
        """A datagram arrived on the socket (from the event loop's reading code)."""
        if not self._socket_open:
            return
        worker = self._worker
        worker.context.now = worker.backend.time()
        connection = self._endpoint.receive_datagram(data, address)
        for datagram, destination in self._endpoint.datagrams_to_send():
            self.sendto(datagram, destination)
        if connection is None:
            return
        driver = self._drivers.get(connection)
        if driver is None:
            driver = ConnectionDriver(
                worker,
                _QuicTransport(self, connection),
                self._spawn,
                datagrams=(connection, self.sendto),
            )
            self._drivers[connection] = driver
            if worker.terminating:
                driver.shutdown()
        # The endpoint fed the datagram to the connection already: pump its output.
        driver.pump()

    def connection_closed(self, connection: H3Connection) -> None:
        """A connection's driver closed it: forget it (and end, if nothing else is open)."""
        self._drivers.pop(connection, None)
        self._endpoint.discard(connection)
        self._maybe_finish()

    def close(self) -> None:
        """Take no new connections; the open ones carry on (the worker shuts them down)."""
        if self._listening:
            self._listening = False
            self._endpoint.shutdown()
            for driver in list(self._drivers.values()):
                driver.pump()  # what the endpoint's shutdown queued (closes, rejections)
            self._maybe_finish()

    def cancel(self) -> None:
        """Close every connection and the socket now (the graceful timeout ran out)."""
        self._listening = False
        self._cancel_tasks()
        for driver in list(self._drivers.values()):
            driver.connection_lost()
        self._drivers.clear()
        self._finish()

    def _maybe_finish(self) -> None:
        if not self._listening and not self._drivers:
            self._finish()

    def _finish(self) -> None:
        if self._socket_open:
            self._socket_open = False
            self._close_socket()
        self._connections.discard(self)
