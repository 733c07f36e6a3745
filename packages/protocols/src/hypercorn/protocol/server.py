"""One client connection, whatever version of HTTP it speaks.

:class:`ServerConnection` is what a driver creates for each accepted connection. It starts
as HTTP/2 when TLS negotiated ``h2`` through ALPN and as HTTP/1.1 otherwise, and it
carries out the HTTP/1.1 connection's hand-over to HTTP/2 (prior knowledge or
``Upgrade: h2c``) itself: the driver sees one :class:`~hypercorn.protocol.context.Connection`
from accept to close, and never learns that the protocol changed underneath it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from hypercorn.protocol.h2 import H2Connection
from hypercorn.protocol.h11 import H11Connection

if TYPE_CHECKING:
    from hypercorn.protocol.context import ProtocolContext
    from hypercorn.protocol.events import DriverEvent
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent

__all__ = ("ServerConnection",)


@final
class ServerConnection:
    """A client connection speaking HTTP/1.1 or HTTP/2 (see the module docstring).

    It offers the :class:`~hypercorn.protocol.context.Connection` API, delegating to the
    connection of the protocol in use.
    """

    __slots__ = (
        "_client",
        "_connection",
        "_context",
        "_pending_data",
        "_pending_events",
        "_server",
        "_ssl",
    )

    def __init__(
        self,
        context: ProtocolContext,
        *,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        alpn_protocol: str | None = None,
    ) -> None:
        self._context = context
        self._ssl = ssl
        self._client = client
        self._server = server
        # Output of a replaced HTTP/1.1 connection, handed out before the HTTP/2 output.
        self._pending_data = b""
        self._pending_events: list[DriverEvent] = []
        self._connection: H11Connection | H2Connection
        if alpn_protocol == "h2":
            self._connection = H2Connection(context, ssl=ssl, client=client, server=server)
        else:
            self._connection = H11Connection(context, ssl=ssl, client=client, server=server)

    @property
    def protocol(self) -> str:
        """``"h2"`` or ``"h11"``: the protocol spoken now."""
        return "h2" if isinstance(self._connection, H2Connection) else "h11"

    @property
    def closed(self) -> bool:
        return self._connection.closed

    @property
    def reading_paused(self) -> bool:
        return self._connection.reading_paused

    def receive_data(self, data: bytes) -> None:
        connection = self._connection
        connection.receive_data(data)
        if isinstance(connection, H11Connection) and connection.switch is not None:
            self._switch_to_h2(connection)

    def _switch_to_h2(self, h11: H11Connection) -> None:
        switch = h11.switch
        assert switch is not None
        # Keep what the HTTP/1.1 connection still had for the peer (the 101 of an h2c
        # upgrade) and for the driver, in order, ahead of the HTTP/2 connection's output.
        self._pending_data = h11.data_to_send()
        self._pending_events = h11.events()
        self._connection = H2Connection(
            self._context, ssl=self._ssl, client=self._client, server=self._server, switch=switch
        )

    def data_to_send(self) -> bytes:
        data = self._connection.data_to_send()
        if self._pending_data:
            data, self._pending_data = self._pending_data + data, b""
        return data

    def events(self) -> list[DriverEvent]:
        events = self._connection.events()
        if self._pending_events:
            events, self._pending_events = self._pending_events + events, []
        return events

    def app_receive(self, stream_id: int) -> ASGIReceiveEvent | None:
        return self._connection.app_receive(stream_id)

    def app_send(self, stream_id: int, message: ASGISendEvent) -> None:
        self._connection.app_send(stream_id, message)

    def app_finished(self, stream_id: int) -> None:
        self._connection.app_finished(stream_id)

    def can_send(self, stream_id: int) -> bool:
        return self._connection.can_send(stream_id)

    def next_deadline(self) -> float | None:
        return self._connection.next_deadline()

    def handle_timer(self) -> None:
        self._connection.handle_timer()

    def shutdown(self) -> None:
        self._connection.shutdown()
