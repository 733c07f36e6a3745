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

Every event is a small value object (``__slots__``, compared by type and fields, with a
readable ``repr``), made many times per request: plain classes rather than dataclasses,
because they are made several times faster (compiled or not). Treat them as immutable.
"""

from __future__ import annotations

from typing import ClassVar

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


class _Value:
    """Equality, hashing and ``repr`` from the fields named in ``_FIELDS``."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Value)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__name__}({fields})"


# ---------------------------------------------------------------------------------------
# Stream events (connection <-> stream)
# ---------------------------------------------------------------------------------------


class Event(_Value):
    """Base of every stream event; ``stream_id`` names the stream (1 for HTTP/1.1)."""

    __slots__ = ("stream_id",)
    _FIELDS: ClassVar[tuple[str, ...]] = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class Request(Event):
    """A request head arrived (or, sent by a stream, a request to push).

    ``headers`` are lower-cased names (unless ``h11_pass_raw_headers``) with HTTP/2
    pseudo-headers removed and ``host`` first; ``raw_path`` is the request target including
    any query string; ``method`` is upper-case; ``http_version`` is ``"1.0"``, ``"1.1"``,
    ``"2"`` or ``"3"``. ``state`` is the connection's copy of the lifespan state.
    """

    __slots__ = ("headers", "http_version", "method", "raw_path", "state")
    _FIELDS = ("stream_id", "headers", "http_version", "method", "raw_path", "state")

    def __init__(
        self,
        stream_id: int,
        headers: Headers,
        http_version: str,
        method: str,
        raw_path: bytes,
        state: ConnectionState | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.http_version = http_version
        self.method = method
        self.raw_path = raw_path
        self.state: ConnectionState = ConnectionState({}) if state is None else state


class Body(Event):
    """A chunk of the request body (or, for a WebSocket, raw frame bytes from the peer)."""

    __slots__ = ("data",)
    _FIELDS = ("stream_id", "data")

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class EndBody(Event):
    """The request body is complete."""

    __slots__ = ()


class Trailers(Event):
    """Trailing headers, after the body (request trailers in, response trailers out)."""

    __slots__ = ("headers",)
    _FIELDS = ("stream_id", "headers")

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers


class Data(Event):
    """A chunk of the response body (or, for a WebSocket, raw frame bytes to the peer)."""

    __slots__ = ("data",)
    _FIELDS = ("stream_id", "data")

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class EndData(Event):
    """The response body is complete."""

    __slots__ = ()


class Response(Event):
    """The final response head."""

    __slots__ = ("headers", "status_code")
    _FIELDS = ("stream_id", "headers", "status_code")

    def __init__(self, stream_id: int, headers: Headers, status_code: int) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.status_code = status_code


class InformationalResponse(Event):
    """A 1xx response head (100 Continue, 103 Early Hints, ...)."""

    __slots__ = ("headers", "status_code")
    _FIELDS = ("stream_id", "headers", "status_code")

    def __init__(self, stream_id: int, headers: Headers, status_code: int) -> None:
        if not 100 <= status_code < 200:
            raise ValueError(f"InformationalResponse needs a 1xx status code, not {status_code}")
        self.stream_id = stream_id
        self.headers = headers
        self.status_code = status_code


class StreamClosed(Event):
    """The stream is closed: the peer went away or reset it (in), or it is done (out)."""

    __slots__ = ()


# ---------------------------------------------------------------------------------------
# Driver events (connection -> driver)
# ---------------------------------------------------------------------------------------


class SpawnApp(_Value):
    """Start the ASGI application for ``stream_id`` with ``scope``.

    The driver runs ``app(scope, receive, send)`` where ``receive`` takes messages from
    ``connection.app_receive(stream_id)`` (waiting for :class:`ReceiveReady` when there are
    none), ``send`` passes messages to ``connection.app_send(stream_id, message)`` (then
    waits for :class:`SendReady` while ``connection.can_send(stream_id)`` is false), and the
    end of the application (return or exception) is reported with
    ``connection.app_finished(stream_id)``.
    """

    __slots__ = ("scope", "stream_id")
    _FIELDS = ("stream_id", "scope")

    def __init__(self, stream_id: int, scope: WWWScope) -> None:
        self.stream_id = stream_id
        self.scope = scope


class ReceiveReady(_Value):
    """Messages are waiting for the application's ``receive()`` on ``stream_id``."""

    __slots__ = ("stream_id",)
    _FIELDS = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class SendReady(_Value):
    """The send buffer of ``stream_id`` drained: a blocked ``send()`` may continue."""

    __slots__ = ("stream_id",)
    _FIELDS = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamEnded(_Value):
    """``stream_id`` is finished; ``response`` is what was sent (None when nothing was).

    The driver uses it for the access log (with the time it measured since
    :class:`SpawnApp`) and for statsd.
    """

    __slots__ = ("response", "scope", "stream_id")
    _FIELDS = ("stream_id", "scope", "response")

    def __init__(self, stream_id: int, scope: WWWScope, response: ResponseSummary | None) -> None:
        self.stream_id = stream_id
        self.scope = scope
        self.response = response


DriverEvent = SpawnApp | ReceiveReady | SendReady | StreamEnded


# ---------------------------------------------------------------------------------------
# Protocol switch (HTTP/1.1 connection -> HTTP/2 connection)
# ---------------------------------------------------------------------------------------


class H2Switch(_Value):
    """An HTTP/1.1 connection's hand-over to HTTP/2, as a value (never an exception).

    - Prior knowledge: ``data`` is every byte read so far, starting with the client's
      ``PRI * HTTP/2.0`` preface; ``request`` and ``settings`` are None.
    - ``Upgrade: h2c``: the 101 response has already been queued by the HTTP/1.1
      connection; ``request`` is the upgrading request, which becomes HTTP/2 stream 1
      (its body, if any, was complete); ``settings`` is the ``HTTP2-Settings`` header value;
      ``data`` is whatever the client sent after the request (its HTTP/2 preface).
    """

    __slots__ = ("data", "request", "settings")
    _FIELDS = ("data", "request", "settings")

    def __init__(
        self, data: bytes, request: Request | None = None, settings: bytes | None = None
    ) -> None:
        self.data = data
        self.request = request
        self.settings = settings
