"""The two event vocabularies of the protocol layer.

**Stream events** travel between a connection (which speaks the wire: HTTP/1.1, HTTP/2) and
the streams it owns (which speak ASGI). A connection turns bytes into ``Request``, ``Body``,
``EndBody``, ``Trailers`` and ``StreamClosed`` and hands them to a stream; a stream turns
what the application sends into ``Response``, ``InformationalResponse``, ``Data``,
``EndData``, ``Trailers`` and ``StreamClosed`` and hands them back to be framed. A stream
may also hand back a ``Request``: that asks the connection to push it (HTTP/2 server push).

**Driver events** are what a connection asks of the code that runs it (the "driver": an
asyncio or trio worker, or the selectors example). They come out of
``connection.events()``:

- :class:`SpawnApp` — start the ASGI application for a new stream with this scope;
- :class:`ReceiveReady` — the stream has messages waiting for the application's
  ``receive()`` (fetch them with ``connection.app_receive(stream_id)``);
- :class:`SendReady` — the stream's send buffer drained, so an application blocked in
  ``send()`` may continue (see ``connection.can_send(stream_id)``);
- :class:`StreamEnded` — the stream is finished; the driver writes the access log line.

Everything here is a frozen dataclass with ``__slots__``: cheap to make and safe to share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypercorn.typing import ConnectionState, ResponseSummary, WWWScope

__all__ = (
    "Body",
    "Data",
    "DriverEvent",
    "EndBody",
    "EndData",
    "Event",
    "H2Switch",
    "InformationalResponse",
    "ReceiveReady",
    "Request",
    "Response",
    "SendReady",
    "SpawnApp",
    "StreamClosed",
    "StreamEnded",
    "Trailers",
)

Headers = list[tuple[bytes, bytes]]


# ---------------------------------------------------------------------------------------
# Stream events (connection <-> stream)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every stream event; ``stream_id`` names the stream (1 for HTTP/1.1)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Request(Event):
    """A request head arrived (or, sent by a stream, a request to push).

    ``headers`` are lower-cased names (unless ``h11_pass_raw_headers``) with HTTP/2
    pseudo-headers removed and ``host`` first; ``raw_path`` is the request target including
    any query string; ``method`` is upper-case; ``http_version`` is ``"1.0"``, ``"1.1"``,
    ``"2"`` or ``"3"``. ``state`` is the connection's copy of the lifespan state.
    """

    headers: Headers
    http_version: str
    method: str
    raw_path: bytes
    state: ConnectionState = field(default_factory=lambda: ConnectionState({}))


@dataclass(frozen=True, slots=True)
class Body(Event):
    """A chunk of the request body (or, for a WebSocket, raw frame bytes from the peer)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndBody(Event):
    """The request body is complete."""


@dataclass(frozen=True, slots=True)
class Trailers(Event):
    """Trailing headers, after the body (request trailers in, response trailers out)."""

    headers: Headers


@dataclass(frozen=True, slots=True)
class Data(Event):
    """A chunk of the response body (or, for a WebSocket, raw frame bytes to the peer)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndData(Event):
    """The response body is complete."""


@dataclass(frozen=True, slots=True)
class Response(Event):
    """The final response head."""

    headers: Headers
    status_code: int


@dataclass(frozen=True, slots=True)
class InformationalResponse(Event):
    """A 1xx response head (100 Continue, 103 Early Hints, ...)."""

    headers: Headers
    status_code: int

    def __post_init__(self) -> None:
        if not 100 <= self.status_code < 200:
            raise ValueError(
                f"InformationalResponse needs a 1xx status code, not {self.status_code}"
            )


@dataclass(frozen=True, slots=True)
class StreamClosed(Event):
    """The stream is closed: the peer went away or reset it (in), or it is done (out)."""


# ---------------------------------------------------------------------------------------
# Driver events (connection -> driver)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpawnApp:
    """Start the ASGI application for ``stream_id`` with ``scope``.

    The driver runs ``app(scope, receive, send)`` where ``receive`` takes messages from
    ``connection.app_receive(stream_id)`` (waiting for :class:`ReceiveReady` when there are
    none), ``send`` passes messages to ``connection.app_send(stream_id, message)`` (then
    waits for :class:`SendReady` while ``connection.can_send(stream_id)`` is false), and the
    end of the application (return or exception) is reported with
    ``connection.app_finished(stream_id)``.
    """

    stream_id: int
    scope: WWWScope


@dataclass(frozen=True, slots=True)
class ReceiveReady:
    """Messages are waiting for the application's ``receive()`` on ``stream_id``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class SendReady:
    """The send buffer of ``stream_id`` drained: a blocked ``send()`` may continue."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """``stream_id`` is finished; ``response`` is what was sent (None when nothing was).

    The driver uses it for the access log (with the time it measured since
    :class:`SpawnApp`) and for statsd.
    """

    stream_id: int
    scope: WWWScope
    response: ResponseSummary | None


DriverEvent = SpawnApp | ReceiveReady | SendReady | StreamEnded


# ---------------------------------------------------------------------------------------
# Protocol switch (HTTP/1.1 connection -> HTTP/2 connection)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class H2Switch:
    """An HTTP/1.1 connection's hand-over to HTTP/2, as a value (never an exception).

    - Prior knowledge: ``data`` is every byte read so far, starting with the client's
      ``PRI * HTTP/2.0`` preface; ``request`` and ``settings`` are None.
    - ``Upgrade: h2c``: the 101 response has already been queued by the HTTP/1.1
      connection; ``request`` is the upgrading request, which becomes HTTP/2 stream 1
      (its body, if any, was complete); ``settings`` is the ``HTTP2-Settings`` header value;
      ``data`` is whatever the client sent after the request (its HTTP/2 preface).
    """

    data: bytes
    request: Request | None = None
    settings: bytes | None = None
