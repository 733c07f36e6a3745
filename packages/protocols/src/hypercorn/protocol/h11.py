"""The HTTP/1.1 connection: requests in order, one stream at a time, and its upgrades.

:class:`H11Connection` implements :class:`hypercorn.protocol.context.Connection` for
HTTP/1.0 and HTTP/1.1 clients and is the :class:`~hypercorn.protocol.context.StreamOwner`
of its streams. Parsing and serialising are delegated to an
:class:`~hypercorn.protocol.http1.HTTP1Codec` (by default the one
``Config.http1_parser`` selects); this module owns every decision.

Rules this module enforces
==========================

**One exchange at a time.** A request gets a stream (an
:class:`~hypercorn.protocol.http_stream.HTTPStream`, or a
:class:`~hypercorn.protocol.ws_stream.WSStream` for a WebSocket upgrade). The next request
is parsed only when the current one is finished both ways: the request body was read to
its end, the stream is closed (response settled *and* application returned) and the
response was framed in full. Pipelined bytes wait in the codec meanwhile, so responses go
out in order. Every stream has id :data:`STREAM_ID`; a call for another id is ignored.

**Keep-alive.** After an exchange the connection is reused unless the codec says it must
close (either side said ``connection: close``; HTTP/1.0 clients, as h11 handles them), the
server is shutting down, or this was request number ``keep_alive_max_requests``: that
response carries ``connection: close``. Once a response that ends the connection is
framed, the connection closes at once (the stream is told with ``StreamClosed``).

**Idle deadline.** While no request is in progress (before the first, between requests,
and while the unread rest of a body is drained after its stream closed) the connection
closes at ``keep_alive_timeout`` after it became idle; bytes of an incomplete request head
do not extend it. Never during a request or on an upgraded WebSocket.

**Shutdown.** :meth:`H11Connection.shutdown` closes a connection idle between requests at
once; a request in progress finishes, its response gets ``connection: close`` if it had not
started, and the connection closes after it. A connection that has not sent its first
request yet, or holds part of a request head, is not idle in that sense: the client sent
(or is sending) a request that the server accepted the connection for, so that request is
still served, with ``connection: close`` (the idle deadline bounds the wait). Closing it
instead would reset the connection under the request.

**Reading.** :attr:`H11Connection.reading_paused` is true while the current stream does not
want data, and once more than ``h11_max_incomplete_size`` bytes arrived after a complete
request that is still being answered (pipelined requests, or early frames of an upgrade).
End of input (``receive_data(b"")``) means the client went away: a stream in progress gets
``StreamClosed`` and the connection closes.

**Malformed requests.** A codec ``ParseError`` is answered with its status hint,
``content-length: 0`` and ``connection: close`` if no response has started; a response
already under way is never corrupted: the connection just closes after what was sent.
Either way the stream in progress (if any) gets ``StreamClosed``.

**Responses.** ``Response`` and ``InformationalResponse`` heads get the default headers
(``context.default_headers("h11")``). A header the codec refuses (CR/LF and other bytes not
allowed on the wire) raises ``ValueError`` to the caller of ``app_send`` and nothing is
written; a body that contradicts its head (``content-length``) raises ``ValueError`` and
closes the connection after what was written. A stream that aborts its response
(``StreamClosed`` before ``EndData``) closes the connection. Trailers and server push do not
exist on HTTP/1.1 and are dropped.

**Switches** (values, never exceptions):

- HTTP/2 prior knowledge: when the first bytes of the connection start with ``PRI *
  HTTP/2.0\\r\\n`` (decided on a prefix: a prefix of it is held until it can be told apart),
  :attr:`H11Connection.switch` becomes ``H2Switch(data=<every byte read>)``.
- ``Upgrade: h2c`` with an ``HTTP2-Settings`` header on an HTTP/1.1 request without a body:
  ``101 Switching Protocols`` (``connection: Upgrade``, ``upgrade: h2c``) is queued in
  :meth:`H11Connection.data_to_send` and :attr:`H11Connection.switch` becomes
  ``H2Switch(data=<bytes after the request>, request=<the Request>, settings=<header>)``.
  With a body the upgrade is ignored and the request is served over HTTP/1.1.
- WebSocket: a ``GET`` without a body whose ``Upgrade`` has the token ``websocket`` and whose
  ``Connection`` has ``upgrade`` goes to a ``WSStream``. Once it sends ``Response(101)`` the
  connection carries raw bytes: input becomes ``Body`` for the stream (starting with what
  the client sent after the request), the stream's ``Data`` is written as is, and its
  ``EndData``/``StreamClosed`` closes the connection. A denial is an ordinary response.

After a switch to HTTP/2 the connection ignores further input; the driver writes
:meth:`H11Connection.data_to_send` (the 101, for h2c) and hands ``switch`` to an HTTP/2
connection.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Final, final

from hypercorn.protocol.asgi_stream import ASGIStream
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    H2Switch,
    InformationalResponse,
    Request,
    Response,
    StreamClosed,
    Trailers,
)
from hypercorn.protocol.headers import header_tokens
from hypercorn.protocol.http1 import NEED_DATA, PAUSED, STREAM_ID, ParseError, select_codec
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import ConnectionState

if TYPE_CHECKING:
    from hypercorn.protocol.context import ProtocolContext
    from hypercorn.protocol.events import DriverEvent, Event
    from hypercorn.protocol.http1 import CodecFactory, H11Codec, HTTP1Codec
    from hypercorn.protocol.http1_httptools import HttptoolsCodec
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent

__all__ = ("H2_PREFACE", "STREAM_ID", "H11Connection")

Headers = list[tuple[bytes, bytes]]

#: The start of the HTTP/2 connection preface (RFC 9113 §3.4) that marks prior knowledge.
H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n"

_CLOSE_HEADER: Final = (b"connection", b"close")
_H2C_HEADERS: Final[Headers] = [(b"connection", b"Upgrade"), (b"upgrade", b"h2c")]


class _Mode(Enum):
    """What the connection is doing with the bytes it carries."""

    #: Parsing requests and framing responses.
    HTTP = "HTTP"
    #: A WebSocket took the connection over after its 101: bytes pass through unparsed.
    RAW = "RAW"
    #: Handed over to HTTP/2 (see ``switch``); input is ignored.
    SWITCHED = "SWITCHED"
    #: Finished: the driver writes what is left and closes the transport.
    CLOSED = "CLOSED"


class _Upgrade(Enum):
    """What a request asks the connection to become."""

    NONE = "NONE"
    H2C = "H2C"
    WEBSOCKET = "WEBSOCKET"


_HTTP: Final = _Mode.HTTP
_RAW: Final = _Mode.RAW
_SWITCHED: Final = _Mode.SWITCHED
_CLOSED: Final = _Mode.CLOSED


@final
class H11Connection:
    """One HTTP/1.x connection between a client and its ASGI streams (see the module).

    ``codec_factory`` makes the codec that parses and serialises (see
    :mod:`hypercorn.protocol.http1`; by default
    :func:`~hypercorn.protocol.http1.select_codec` picks it from ``Config.http1_parser``).
    ``client`` and ``server`` are ``(host, port)`` or None.
    """

    __slots__ = (
        "_client",
        "_codec",
        "_context",
        "_events",
        "_h2c_request",
        "_h2c_settings",
        "_idle_since",
        "_keep_alive_timeout",
        "_max_incomplete",
        "_max_requests",
        "_mode",
        "_notify_stream",
        "_out",
        "_progressing",
        "_raw_pending",
        "_request_done",
        "_requests",
        "_response_done",
        "_response_started",
        "_server",
        "_shutting_down",
        "_sniff",
        "_ssl",
        "_stream",
        "_waiting_bytes",
        "switch",
    )

    def __init__(
        self,
        context: ProtocolContext,
        *,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        codec_factory: CodecFactory | None = None,
    ) -> None:
        self._context = context
        config = context.config
        # Read per request: kept here rather than looked up on the Config each time.
        self._keep_alive_timeout = config.keep_alive_timeout
        self._max_requests = config.keep_alive_max_requests
        self._max_incomplete = config.h11_max_incomplete_size
        self._ssl = ssl
        self._client = client
        self._server = server
        #: Set (and the connection stops) when the client asks for HTTP/2; see the module.
        self.switch: H2Switch | None = None
        state = ConnectionState(context.lifespan_state.copy())
        if codec_factory is None:
            codec_factory = select_codec(context.config)
        # (Typed with our two codecs first: compiled, the calls to them are then direct;
        # any other HTTP1Codec is called as usual.)
        self._codec: HttptoolsCodec | H11Codec | HTTP1Codec = codec_factory(context.config, state)
        self._mode = _HTTP
        self._sniff: bytes | None = b""  # first bytes that may still be the HTTP/2 preface
        self._out: list[bytes] = []
        self._events: list[DriverEvent] = []
        # (Typed as the streams' base class, not the Stream protocol: compiled, its methods
        # are then called directly.)
        self._stream: ASGIStream[Any, Any] | None = None
        self._requests = 0
        self._request_done = False  # EndBody was handed on
        self._response_started = False  # a final response head was framed
        self._response_done = False  # EndData was framed
        self._h2c_request: Request | None = None
        self._h2c_settings: bytes | None = None
        self._raw_pending = False  # a 101 went out: the codec's leftover bytes are owed
        self._notify_stream = False  # the stream is owed a StreamClosed
        self._idle_since: float | None = context.now
        self._waiting_bytes = 0  # bytes received after the request was complete
        self._shutting_down = False
        self._progressing = False

    # -----------------------------------------------------------------------------------
    # Connection: state for the driver
    # -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True when the driver should close the transport (after writing what is left)."""
        return self._mode is _CLOSED

    @property
    def reading_paused(self) -> bool:
        """True while the driver should not read (see the module's rules)."""
        mode = self._mode
        stream = self._stream
        if mode is _HTTP:
            if self._request_done:
                return self._waiting_bytes >= self._max_incomplete
            return stream is not None and not stream.closed and not stream.wants_data
        if mode is _RAW:
            return stream is not None and not stream.wants_data
        return True

    @property
    def buffered(self) -> int:
        """How many received bytes wait unprocessed (for tests and monitoring; the codec
        may have to copy its buffer to tell)."""
        if self._mode is not _HTTP:
            return 0
        return len(self._sniff or b"") + self._codec.buffered

    def data_to_send(self) -> bytes:
        """Take the bytes waiting to be written to the client (``b""`` if none)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def events(self) -> list[DriverEvent]:
        """Take the driver events that are waiting."""
        events = self._events
        if not events:
            return []
        self._events = []
        return events

    def can_send(self, stream_id: int) -> bool:
        """Always True: HTTP/1.1 buffers nothing beyond :meth:`data_to_send` (the driver's
        transport applies the backpressure)."""
        return True

    # -----------------------------------------------------------------------------------
    # Connection: input from the driver
    # -----------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` means it went away."""
        mode = self._mode
        if mode is _CLOSED or mode is _SWITCHED:
            return
        if not data:
            self._close()
        elif self._sniff is not None:
            self._sniff_preface(data)
        elif mode is _RAW:
            self._progress()  # hand on the bytes that came with the request first
            stream = self._stream
            if self._mode is _RAW and stream is not None:
                stream.handle(Body(stream_id=STREAM_ID, data=data))
        else:
            if self._request_done:
                self._waiting_bytes += len(data)
            self._codec.receive_data(data)
        self._progress()

    def _sniff_preface(self, data: bytes) -> None:
        """Tell the HTTP/2 preface from HTTP/1 on the first bytes of the connection."""
        assert self._sniff is not None
        data = self._sniff + data if self._sniff else data
        if len(data) < len(H2_PREFACE):
            if H2_PREFACE.startswith(data):
                self._sniff = data  # Not decided yet.
                return
        elif data.startswith(H2_PREFACE):
            self._sniff = None
            self.switch = H2Switch(data=data)
            self._mode = _SWITCHED
            self._idle_since = None
            return
        self._sniff = None
        self._codec.receive_data(data)

    def app_receive(self, stream_id: int) -> ASGIReceiveEvent | None:
        """See :meth:`hypercorn.protocol.context.Stream.app_receive`."""
        stream = self._stream
        if stream_id != STREAM_ID or stream is None:
            return None
        try:
            return stream.app_receive()
        finally:
            self._progress()

    def app_send(self, stream_id: int, message: ASGISendEvent) -> None:
        """See :meth:`hypercorn.protocol.context.Stream.app_send`."""
        stream = self._stream
        if stream_id != STREAM_ID or stream is None:
            return
        try:
            stream.app_send(message)
        finally:
            self._progress()

    def app_finished(self, stream_id: int) -> None:
        """See :meth:`hypercorn.protocol.context.Stream.app_finished`."""
        stream = self._stream
        if stream_id != STREAM_ID or stream is None:
            return
        try:
            stream.app_finished()
        finally:
            self._progress()

    def next_deadline(self) -> float | None:
        """The idle deadline (while idle) or the stream's, whichever is first."""
        mode = self._mode
        deadline: float | None = None
        if mode is _HTTP and self._idle_since is not None:
            deadline = self._idle_since + self._keep_alive_timeout
        stream = self._stream
        if stream is not None and (mode is _HTTP or mode is _RAW):
            stream_deadline = stream.next_deadline()
            if stream_deadline is not None and (deadline is None or stream_deadline < deadline):
                deadline = stream_deadline
        return deadline

    def handle_timer(self) -> None:
        """Close an idle connection whose deadline passed; run the stream's timers."""
        mode = self._mode
        stream = self._stream
        if stream is not None and (mode is _HTTP or mode is _RAW):
            stream.handle_timer()
        if (
            self._mode is _HTTP
            and self._idle_since is not None
            and self._context.now >= self._idle_since + self._keep_alive_timeout
        ):
            self._close()
        self._progress()

    def shutdown(self) -> None:
        """Take no new request: close now if idle between requests, else after the current
        response (see the module docstring)."""
        self._shutting_down = True
        if (
            self._mode is _HTTP
            and self._idle_since is not None
            and self._requests
            and not self._codec.buffered
        ):
            self._close()
        self._progress()

    # -----------------------------------------------------------------------------------
    # StreamOwner: output from the stream
    # -----------------------------------------------------------------------------------

    def stream_send(self, event: Event) -> None:
        """Frame ``event`` for the client (see the module's rules)."""
        mode = self._mode
        if mode is _RAW:
            if isinstance(event, Data):
                if event.data:
                    self._out.append(event.data)
            elif isinstance(event, (EndData, StreamClosed)):
                self._close()
            return
        if mode is not _HTTP:
            return  # Closed or handed over: nothing more is written.
        if isinstance(event, Data):
            if event.data:
                self._frame(event)
        elif isinstance(event, Response):
            if event.status_code == 101:
                self._accept_upgrade(event)
                return
            headers = event.headers + self._context.default_headers("h11")
            if (
                self._shutting_down or self._requests >= self._max_requests
            ) and _CLOSE_HEADER not in headers:
                headers.append(_CLOSE_HEADER)
            self._frame(Response(STREAM_ID, headers, event.status_code))
            self._response_started = True
        elif isinstance(event, EndData):
            self._frame(event)
            self._response_done = True
            if self._shutting_down or self._codec.must_close:
                self._close()
        elif isinstance(event, InformationalResponse):
            headers = event.headers + self._context.default_headers("h11")
            self._frame(InformationalResponse(STREAM_ID, headers, event.status_code))
        elif isinstance(event, StreamClosed) and not self._response_done:
            self._close()  # The response was aborted: it cannot be completed.
        # Trailers and pushed Requests do not exist on HTTP/1.1: dropped.

    def driver_event(self, event: DriverEvent) -> None:
        """Queue ``event`` for the driver."""
        self._events.append(event)

    def _frame(self, event: Response | InformationalResponse | Data | EndData) -> None:
        codec = self._codec
        try:
            data = codec.send(event)
        except ValueError:
            if not codec.can_send:
                self._close()  # The framing is broken: end after what was written.
            raise
        self._out.append(data)

    def _accept_upgrade(self, event: Response) -> None:
        """The stream accepted a WebSocket: send the 101 and carry raw bytes from now."""
        headers = event.headers + self._context.default_headers("h11")
        self._frame(InformationalResponse(STREAM_ID, headers, 101))
        self._response_started = True
        self._mode = _RAW
        self._raw_pending = True
        self._idle_since = None

    # -----------------------------------------------------------------------------------
    # The state machine
    # -----------------------------------------------------------------------------------

    def _close(self) -> None:
        """End the connection; the stream in progress is told on the next step."""
        if self._mode is _CLOSED:
            return
        self._mode = _CLOSED
        self._idle_since = None
        stream = self._stream
        if stream is not None and not stream.closed:
            self._notify_stream = True

    def _progress(self) -> None:
        """Advance as far as the input and the stream allow (never re-entered)."""
        if self._progressing:
            return
        self._progressing = True
        try:
            while self._step():
                pass
        finally:
            self._progressing = False

    def _step(self) -> bool:
        """Do one thing; False when nothing more can be done now."""
        mode = self._mode
        stream = self._stream
        if mode is _CLOSED:
            if self._notify_stream and stream is not None:
                self._notify_stream = False
                stream.handle(StreamClosed(stream_id=STREAM_ID))
            return False
        if mode is _RAW:
            if self._raw_pending and stream is not None:
                self._raw_pending = False
                data = self._codec.take_trailing_data()
                if data:
                    stream.handle(Body(stream_id=STREAM_ID, data=data))
                return True
            return False
        if mode is _SWITCHED:
            return False
        if stream is not None:
            if stream.closed:
                if self._request_done:
                    self._next_cycle()
                    return True
                if self._idle_since is None:
                    self._idle_since = self._context.now  # draining the unread body
            elif self._request_done:
                return False  # the codec is PAUSED until the exchange is over
            elif not stream.wants_data:
                return False
        event = self._codec.next_event()
        if event is NEED_DATA or event is PAUSED:
            return False
        # (isinstance with a tuple: compiled, ``Body | Trailers`` would build a union object
        # on every call.)
        if isinstance(event, (Body, Trailers)):
            if stream is not None:
                stream.handle(event)
        elif isinstance(event, EndBody):
            self._request_done = True
            if self._h2c_request is not None:
                self._switch_to_h2c(self._h2c_request)
            elif stream is not None:
                stream.handle(event)
        elif isinstance(event, Request):
            self._start_request(event)
        elif isinstance(event, ParseError):
            self._parse_error(event)
        return True

    def _start_request(self, request: Request) -> None:
        self._requests += 1
        self._idle_since = None
        upgrade, settings = _upgrade_of(request)
        if upgrade is _Upgrade.H2C:
            self._h2c_request = request
            self._h2c_settings = settings
            return
        # (Each class named in its own call: compiled, a call through a variable holding
        # the class is a generic call, several times slower.)
        stream: ASGIStream[Any, Any]
        if upgrade is _Upgrade.WEBSOCKET:
            stream = WSStream(
                self._context,
                self,
                STREAM_ID,
                ssl=self._ssl,
                client=self._client,
                server=self._server,
            )
        else:
            stream = HTTPStream(
                self._context,
                self,
                STREAM_ID,
                ssl=self._ssl,
                client=self._client,
                server=self._server,
            )
        self._stream = stream
        stream.handle(request)

    def _next_cycle(self) -> None:
        """The exchange is over both ways: get ready for the next request, or close."""
        if self._shutting_down or not self._response_done or not self._codec.start_next_cycle():
            self._close()
            return
        self._stream = None
        self._request_done = False
        self._response_started = False
        self._response_done = False
        self._waiting_bytes = 0
        self._idle_since = self._context.now

    def _switch_to_h2c(self, request: Request) -> None:
        headers = _H2C_HEADERS + self._context.default_headers("h11")
        try:
            self._out.append(self._codec.send(InformationalResponse(STREAM_ID, headers, 101)))
        except ValueError:
            self._close()
            return
        self.switch = H2Switch(
            data=self._codec.take_trailing_data(), request=request, settings=self._h2c_settings
        )
        self._mode = _SWITCHED

    def _parse_error(self, error: ParseError) -> None:
        codec = self._codec
        if not self._response_started and codec.can_send:
            headers = [
                (b"content-length", b"0"),
                _CLOSE_HEADER,
                *self._context.default_headers("h11"),
            ]
            try:
                head = codec.send(Response(STREAM_ID, headers, error.status_hint))
                self._out.append(head + codec.send(EndData(stream_id=STREAM_ID)))
            except ValueError:
                pass  # The codec cannot answer: just close.
        self._close()


def _upgrade_of(request: Request) -> tuple[_Upgrade, bytes | None]:
    """Which upgrade ``request`` asks for (only requests without a body may upgrade), and
    its ``HTTP2-Settings`` value."""
    upgrade: bytes | None = None
    connection = b""
    settings: bytes | None = None
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == b"upgrade":
            upgrade = value if upgrade is None else upgrade + b"," + value
        elif lowered == b"connection":
            connection += b"," + value
        elif lowered == b"http2-settings":
            settings = value
        elif lowered == b"transfer-encoding" or (
            lowered == b"content-length" and value.strip().lstrip(b"0")
        ):
            return _Upgrade.NONE, None
    if upgrade is None:
        return _Upgrade.NONE, None
    tokens = header_tokens(upgrade)
    if b"h2c" in tokens and settings is not None and request.http_version == "1.1":
        return _Upgrade.H2C, settings
    if (
        request.method == "GET"
        and b"websocket" in tokens
        and b"upgrade" in header_tokens(connection)
    ):
        return _Upgrade.WEBSOCKET, None
    return _Upgrade.NONE, None
