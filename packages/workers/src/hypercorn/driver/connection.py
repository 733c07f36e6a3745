"""The driver core: one accepted connection, on any event loop.

:class:`ConnectionDriver` sits between a transport (bytes from and to the peer, written by
each event loop in its own way) and a :class:`hypercorn.protocol.ServerConnection` (which
decides everything about the wire). It is driven by plain method calls —
:meth:`~ConnectionDriver.data_received`, :meth:`~ConnectionDriver.eof_received`,
:meth:`~ConnectionDriver.connection_lost`, :meth:`~ConnectionDriver.shutdown` — so asyncio
can call it from its protocol callbacks and trio from a reading task.

After every call into the protocol the driver *pumps*: it writes what the protocol produced,
acts on its events (start an application, wake one, log a finished stream), follows its
backpressure (pause reading, block an application's ``send``), re-arms the one timer the
connection needs, and closes the transport when the protocol says so. Pumping never awaits,
so it can run from a callback or a task alike, and nothing re-enters it.

Each application runs in an :class:`AppRunner` task, whose ``receive`` and ``send`` are the
only places that wait: ``receive`` for :class:`~hypercorn.protocol.events.ReceiveReady`,
``send`` for :class:`~hypercorn.protocol.events.SendReady` (HTTP/2 flow control) and for the
transport to drain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, final

from hypercorn.protocol import ServerConnection
from hypercorn.protocol.events import ReceiveReady, SendReady, SpawnApp, StreamEnded

if TYPE_CHECKING:
    from hypercorn.driver.backend import Flag, SendDatagram, Spawn, Timer, Transport
    from hypercorn.driver.worker import WorkerState
    from hypercorn.protocol.context import BaseConnection, DatagramConnection
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, WWWScope

__all__ = ("AppRunner", "ConnectionDriver")


@final
class ConnectionDriver:
    """Moves bytes and events between one transport and its protocol connection."""

    __slots__ = (
        "_data_to_send",
        "_datagrams",
        "_deadline",
        "_events",
        "_next_deadline",
        "_on_closed",
        "_reading_paused",
        "_sendto",
        "_spawn",
        "_stream",
        "_timer",
        "apps",
        "closed",
        "connection",
        "transport",
        "transport_closed",
        "worker",
    )

    def __init__(
        self,
        worker: WorkerState,
        transport: Transport,
        spawn: Spawn,
        *,
        ssl: bool = False,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
        alpn_protocol: str | None = None,
        datagrams: tuple[DatagramConnection, SendDatagram] | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        """A connection over ``transport``: a byte stream (HTTP/1.1, HTTP/2), for which the
        driver makes the :class:`ServerConnection` from ``ssl``, ``client``, ``server`` and
        ``alpn_protocol``; or, with ``datagrams``, one QUIC connection of a UDP socket and
        the function that sends its datagrams (``transport`` then only closes it).
        ``on_closed`` is called once the transport is closed and every application
        returned."""
        self.worker = worker
        self.transport = transport
        self._spawn = spawn
        worker.context.now = worker.backend.time()
        self._stream: ServerConnection | None
        self._datagrams: DatagramConnection | None
        self._sendto: SendDatagram | None
        self.connection: BaseConnection
        if datagrams is None:
            self.connection = self._stream = ServerConnection(
                worker.context, ssl=ssl, client=client, server=server, alpn_protocol=alpn_protocol
            )
            self._datagrams = self._sendto = None
        else:
            self.connection, self._sendto = datagrams
            self._datagrams = self.connection
            self._stream = None
        #: The applications running for this connection's streams, by stream id.
        self.apps: dict[int, AppRunner] = {}
        #: True once the transport is closed and every application has returned.
        self.closed = False
        self._on_closed = on_closed
        self._timer: Timer | None = None
        self._deadline: float | None = None
        self._reading_paused = False
        #: True once the transport was closed (by us or the peer); nothing is written after.
        self.transport_closed = False
        # The protocol's methods the pump calls each time, looked up once. (The protocol
        # package is compiled apart from this one, so each call would look them up.)
        self._data_to_send: Callable[[], bytes] | None = (
            None if self._stream is None else self._stream.data_to_send
        )
        self._events = self.connection.events
        self._next_deadline = self.connection.next_deadline
        worker.connections.add(self)
        if worker.terminating:
            self.connection.shutdown()
        self.pump()

    # -----------------------------------------------------------------------------------
    # Calls from the transport
    # -----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes arrived from the peer (ignored once the transport is closed)."""
        if self.transport_closed:
            return
        assert self._stream is not None
        self.worker.context.now = self.worker.backend.time()
        self._stream.receive_data(data)
        self.pump()

    def eof_received(self) -> None:
        """The peer closed its side of the connection."""
        self.data_received(b"")

    def connection_lost(self) -> None:
        """The transport is gone (closed by us, by the peer, or by an error)."""
        if not self.transport_closed:
            self.transport_closed = True
            if self._stream is not None and not self._stream.closed:
                self.worker.context.now = self.worker.backend.time()
                self._stream.receive_data(b"")
                self.pump()
        self._stop_timer()
        for runner in self.apps.values():
            runner.wake()
        self._check_closed()

    def shutdown(self) -> None:
        """Begin the graceful shutdown of this connection (see ``Connection.shutdown``)."""
        if not self.transport_closed:
            self.worker.context.now = self.worker.backend.time()
            self.connection.shutdown()
            self.pump()

    # -----------------------------------------------------------------------------------
    # The pump
    # -----------------------------------------------------------------------------------

    def pump(self) -> None:
        """Write the protocol's output and act on its events.

        One pass is enough: acting on an event never calls into the protocol (it sets a
        flag or starts a task, which runs later), so it cannot produce more output.
        """
        if self.transport_closed:
            return
        connection = self.connection
        transport = self.transport
        if self._data_to_send is not None:
            data = self._data_to_send()
            if data:
                transport.write(data)
        else:
            assert self._datagrams is not None
            assert self._sendto is not None
            for datagram, address in self._datagrams.datagrams_to_send():
                self._sendto(datagram, address)
        for event in self._events():
            kind = type(event)
            if kind is ReceiveReady:
                runner = self.apps.get(event.stream_id)
                if runner is not None and runner.receive_flag is not None:
                    runner.receive_flag.set()
            elif kind is SendReady:
                runner = self.apps.get(event.stream_id)
                if runner is not None and runner.send_flag is not None:
                    runner.send_flag.set()
            elif kind is SpawnApp:
                assert isinstance(event, SpawnApp)
                self._start_app(event)
            else:
                assert isinstance(event, StreamEnded)
                self._stream_ended(event)
        if connection.closed:
            self.transport_closed = True
            self._stop_timer()
            transport.close()
            for runner in self.apps.values():
                runner.wake()
            self._check_closed()
            return
        paused = connection.reading_paused
        if paused is not self._reading_paused:
            self._reading_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()
        deadline = self._next_deadline()
        if deadline is not None and (self._deadline is None or deadline < self._deadline):
            # Armed lazily: a timer that would fire too early (the deadline moved later or
            # went away) is left alone and re-armed when it fires, so a keep-alive
            # connection does not cancel and re-create its timer for every request.
            self._stop_timer()
            self._deadline = deadline
            self._timer = self.worker.backend.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        if self.transport_closed:
            return
        now = self.worker.context.now = self.worker.backend.time()
        connection = self.connection
        deadline = connection.next_deadline()
        if deadline is None or deadline > now:
            self.pump()  # nothing due: re-arm for the deadline as it is now (if any)
            return
        connection.handle_timer()
        self.pump()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None

    def _start_app(self, event: SpawnApp) -> None:
        runner = AppRunner(self, event.stream_id, event.scope)
        self.apps[event.stream_id] = runner
        worker = self.worker
        worker.requests += 1  # HTTP/1.1 request, HTTP/2 or HTTP/3 stream, WebSocket
        if worker.max_requests is not None and worker.requests >= worker.max_requests:
            worker.max_requests_reached.set()
        self._spawn(runner.run)

    def _stream_ended(self, event: StreamEnded) -> None:
        if not self.worker.logs_access:
            return
        runner = self.apps.get(event.stream_id)
        if runner is not None and not runner.finished:
            runner.ended = event  # logged by the runner when the application returns
            return
        started = runner.started if runner is not None else self.worker.backend.time()
        self._spawn(self.worker.log_access, event, self.worker.backend.time() - started)

    def _check_closed(self) -> None:
        if self.transport_closed and not self.apps and not self.closed:
            self.closed = True
            self.worker.connections.discard(self)
            if self._on_closed is not None:
                self._on_closed()

    def is_open(self) -> bool:
        """True until the transport closed."""
        return not self.transport_closed

    def app_done(self, runner: AppRunner) -> None:
        """``runner``'s application returned or raised."""
        self.apps.pop(runner.stream_id, None)
        if not self.transport_closed:
            self.worker.context.now = self.worker.backend.time()
            self.connection.app_finished(runner.stream_id)
            self.pump()
        self._check_closed()


@final
class AppRunner:
    """Runs one stream's ASGI application and gives it ``receive`` and ``send``."""

    __slots__ = (
        "driver",
        "ended",
        "finished",
        "receive_flag",
        "scope",
        "send_flag",
        "started",
        "stream_id",
    )

    def __init__(self, driver: ConnectionDriver, stream_id: int, scope: WWWScope) -> None:
        backend = driver.worker.backend
        self.driver = driver
        self.stream_id = stream_id
        self.scope = scope
        # Made on the first wait: most applications never wait (their request is there
        # when they start and the transport takes the response at once).
        self.receive_flag: Flag | None = None
        self.send_flag: Flag | None = None
        # (Only the access log needs it.)
        self.started = backend.time() if driver.worker.logs_access else 0.0
        self.finished = False
        #: The stream's end, when it came before the application returned.
        self.ended: StreamEnded | None = None

    def wake(self) -> None:
        """Wake a ``receive`` or ``send`` that waits (the connection is gone)."""
        if self.receive_flag is not None:
            self.receive_flag.set()
        if self.send_flag is not None:
            self.send_flag.set()

    async def run(self) -> None:
        worker = self.driver.worker
        asgi = worker.asgi
        try:
            if asgi is not None:
                await asgi(self.scope, self.receive, self.send)
            else:
                await worker.app(
                    self.scope,
                    self.receive,
                    self.send,
                    worker.backend.run_in_thread,
                    worker.backend.run_from_thread,
                )
        except Exception:
            await worker.config.log.exception("Error in ASGI Framework")
        finally:
            self.finished = True
            self.driver.app_done(self)
        ended = self.ended
        if ended is not None:  # (only set when the worker logs accesses)
            await worker.log_access(ended, worker.backend.time() - self.started)

    async def receive(self) -> ASGIReceiveEvent:
        driver = self.driver
        connection = driver.connection
        while True:
            message = connection.app_receive(self.stream_id)
            # Taking a message may release flow-control window; asking for one may send
            # "100 Continue" (HTTP/1.1 Expect): write whatever the protocol produced.
            driver.pump()
            if message is not None:
                return message
            if driver.transport_closed:
                # The connection is gone and the stream had nothing more to say.
                if self.scope["type"] == "websocket":
                    return {"type": "websocket.disconnect", "code": 1006}
                return {"type": "http.disconnect"}
            flag = self.receive_flag
            if flag is None:
                flag = self.receive_flag = driver.worker.backend.flag()
            else:
                flag.clear()
            await flag.wait()

    async def send(self, message: ASGISendEvent) -> None:
        driver = self.driver
        if driver.transport_closed:
            return  # the client went away; the application may not know yet
        connection = driver.connection
        driver.worker.context.now = driver.worker.backend.time()
        connection.app_send(self.stream_id, message)
        driver.pump()
        while driver.is_open() and not connection.can_send(self.stream_id):
            flag = self.send_flag
            if flag is None:
                flag = self.send_flag = driver.worker.backend.flag()
            else:
                flag.clear()
            await flag.wait()
        if driver.is_open() and not driver.transport.can_write():
            await driver.transport.drain()
