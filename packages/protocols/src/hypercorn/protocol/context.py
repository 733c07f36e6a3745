"""What every connection of one worker shares, and the contracts between the pieces.

:class:`ProtocolContext` holds the configuration, the lifespan state and the *time*. The
protocol layer never reads a clock: the driver writes ``context.now`` (a monotonic time in
seconds, e.g. ``loop.time()``) before it calls into a connection, and calls
:meth:`ProtocolContext.set_date` about once a second with the wall-clock time, from which
the ``date`` response header is formatted. Tests simply set both by hand.

:class:`Stream` and :class:`StreamOwner` are the two sides of the seam between a
connection (HTTP/1.1 or HTTP/2 framing) and a stream (the ASGI HTTP or WebSocket state
machine); :class:`Connection` is the API every connection offers its driver.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol, final

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.protocol.events import DriverEvent, Event
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, LifespanState

__all__ = (
    "Address",
    "BaseConnection",
    "Connection",
    "DatagramConnection",
    "ProtocolContext",
    "Stream",
    "StreamOwner",
    "http_date",
)

Headers = list[tuple[bytes, bytes]]


def http_date(epoch_seconds: float) -> bytes:
    """``epoch_seconds`` as an HTTP date (RFC 9110 IMF-fixdate), e.g. for ``set_date``."""
    return formatdate(epoch_seconds, usegmt=True).encode("ascii")


@final
class ProtocolContext:
    """The configuration, lifespan state and time shared by the connections of a worker."""

    __slots__ = ("_date", "_default_headers", "config", "lifespan_state", "now", "stream_ends")

    def __init__(
        self,
        config: Config,
        *,
        lifespan_state: LifespanState | None = None,
        now: float = 0.0,
        date: bytes = b"Thu, 01 Jan 1970 00:00:00 GMT",
    ) -> None:
        #: The server configuration (read-only for the protocol layer).
        self.config = config
        #: The state the lifespan startup filled in; each request scope gets a shallow copy.
        self.lifespan_state: LifespanState = {} if lifespan_state is None else lifespan_state
        #: The driver's monotonic time in seconds; deadlines are expressed in it.
        self.now = now
        #: Whether streams emit ``StreamEnded`` (the driver sets it false when nothing
        #: would log them: one object and one event fewer per request).
        self.stream_ends = True
        self._date = date
        self._default_headers: dict[str, Headers] = {}

    @property
    def date(self) -> bytes:
        """The value of the ``date`` response header (set with :meth:`set_date`)."""
        return self._date

    def set_date(self, date: bytes) -> None:
        """Set the ``date`` header value: the wall-clock time formatted by :func:`http_date`."""
        if date != self._date:
            self._date = date
            self._default_headers.clear()

    def default_headers(self, protocol: str) -> Headers:
        """The headers added to every response of ``protocol`` (``h11``, ``h2``, ``h3``).

        ``date``, ``server`` and ``alt-svc`` as configured. The list is cached until the
        date changes; callers must not modify it.
        """
        headers = self._default_headers.get(protocol)
        if headers is None:
            headers = self.config.response_headers(protocol, date=self._date)
            self._default_headers[protocol] = headers
        return headers


class StreamOwner(Protocol):
    """What a stream needs from the connection that owns it."""

    def stream_send(self, event: Event) -> None:
        """Frame ``event`` (Response, InformationalResponse, Data, EndData, Trailers,
        StreamClosed, or Request to push) for the stream's peer."""

    def driver_event(self, event: DriverEvent) -> None:
        """Queue ``event`` for the driver (returned by the connection's ``events()``)."""


class Stream(Protocol):
    """An ASGI stream (HTTP or WebSocket), driven by its connection and its application."""

    @property
    def closed(self) -> bool:
        """True once the stream is finished on both sides."""

    @property
    def wants_data(self) -> bool:
        """True while the application's inbox has room (fewer than ``max_app_queue_size``
        messages waiting). A connection stops reading (HTTP/1.1) or stops granting flow
        control window (HTTP/2) for a stream that does not want data."""

    def handle(self, event: Event) -> None:
        """Take an event from the wire: Request, Body, EndBody, Trailers, StreamClosed."""

    def app_receive(self) -> ASGIReceiveEvent | None:
        """The next message for the application's ``receive()``, or None if none waits."""

    def app_send(self, message: ASGISendEvent) -> None:
        """Take a message from the application's ``send()``.

        Raises :class:`hypercorn.utils.UnexpectedMessageError` for a message the ASGI state
        rules do not allow now, and ValueError/TypeError for a malformed one.
        """

    def app_finished(self) -> None:
        """The application returned or raised; finish the stream (500, close 1011, ...)."""

    def next_deadline(self) -> float | None:
        """When the stream next needs :meth:`handle_timer` (``context.now`` units)."""

    def handle_timer(self) -> None:
        """Act on deadlines that have passed (``context.now`` is current)."""


class BaseConnection(Protocol):
    """What every connection offers its driver, whatever carries its bytes.

    The driver's loop: feed what arrived (:meth:`Connection.receive_data` bytes, or
    :meth:`DatagramConnection.receive_datagram` datagrams), then write what the connection
    has for the peer, then act on :meth:`events`; run applications as
    :class:`~hypercorn.protocol.events.SpawnApp` asks; close the transport once
    :attr:`closed` is true and everything was written; stop reading while
    :attr:`reading_paused`; call :meth:`handle_timer` at :meth:`next_deadline`.
    """

    @property
    def closed(self) -> bool:
        """True when the driver should close the transport (after writing what is left)."""

    @property
    def reading_paused(self) -> bool:
        """True while the driver should not read (backpressure towards the peer)."""

    def events(self) -> list[DriverEvent]:
        """Take the driver events that are waiting."""

    def app_receive(self, stream_id: int) -> ASGIReceiveEvent | None:
        """See :meth:`Stream.app_receive`."""

    def app_send(self, stream_id: int, message: ASGISendEvent) -> None:
        """See :meth:`Stream.app_send`."""

    def app_finished(self, stream_id: int) -> None:
        """See :meth:`Stream.app_finished`."""

    def can_send(self, stream_id: int) -> bool:
        """False while more of the stream's response is buffered than the high-water mark
        (HTTP/2: waiting for flow-control window); then wait for ``SendReady``."""

    def next_deadline(self) -> float | None:
        """The earliest deadline of the connection and its streams, or None."""

    def handle_timer(self) -> None:
        """Act on every deadline that has passed (``context.now`` is current)."""

    def shutdown(self) -> None:
        """Begin a graceful shutdown: take no new requests, finish the open ones, then
        close (HTTP/2: GOAWAY). Idle connections close at once."""


class Connection(BaseConnection, Protocol):
    """A connection over a byte stream (HTTP/1.1, HTTP/2 over TCP)."""

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side."""

    def data_to_send(self) -> bytes:
        """Take the bytes waiting to be written to the peer (``b""`` if none)."""


#: A UDP peer address, as the socket reports it.
Address = tuple[Any, ...]


class DatagramConnection(BaseConnection, Protocol):
    """A connection over datagrams (HTTP/3 over QUIC): one of many on a UDP socket."""

    def receive_datagram(self, data: bytes, address: Address) -> None:
        """Feed one datagram that arrived from ``address``."""

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Take the datagrams waiting to be sent, each with its destination."""
