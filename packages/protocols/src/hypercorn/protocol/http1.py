"""The HTTP/1.x wire codec: the seam between the HTTP/1.1 connection and its parser.

:class:`~hypercorn.protocol.h11.H11Connection` decides *what* happens on an HTTP/1.1
connection (which stream gets a request, keep-alive, pipelining, upgrades, timers, error
responses). Everything that depends on *how* the bytes are parsed and serialised lives
behind the small :class:`HTTP1Codec` interface defined here, so that a different parser
(llhttp through httptools, say) can be plugged in without copying any connection logic.
:class:`H11Codec` implements it with h11;
:class:`~hypercorn.protocol.http1_httptools.HttptoolsCodec` with llhttp (the ``accel``
extra). Both read with their parser and write with the one
:class:`~hypercorn.protocol.http1_writer.ResponseWriter`. :func:`select_codec` picks one
from ``Config.http1_parser``.

The codec contract
==================

**Reading.** The connection feeds bytes with :meth:`HTTP1Codec.receive_data` (never
``b""``: the connection handles the end of input itself) and pulls results with
:meth:`HTTP1Codec.next_event`, which returns our own stream events, all for stream
:data:`STREAM_ID`:

- ``Request`` (method upper-case; header names lower-cased, or as sent when the codec was
  made with ``pass_raw_headers``; ``http_version`` ``"1.0"`` or ``"1.1"``), then
- ``Body`` for each non-empty chunk of the request body, then
- ``Trailers`` if the chunked body carried trailer fields, then
- ``EndBody``; after which
- :data:`PAUSED` until :meth:`HTTP1Codec.start_next_cycle` (bytes of a pipelined request
  simply wait in the codec's buffer).

:data:`NEED_DATA` means more bytes are needed. A :class:`ParseError` means the bytes are
not acceptable HTTP/1.x; it carries the status the client should be told (400, 431 for a
request head larger than ``h11_max_incomplete_size``, 501 for a transfer coding other than
chunked, 505 for an HTTP version other than 1.0 and 1.1, ...). A request with both
``Content-Length`` and ``Transfer-Encoding`` is refused with 400 (RFC 9112 §6.1 allows
reading it as chunked only if the connection is closed afterwards; refusing is simpler and
closes the door on request smuggling). After a ``ParseError`` the connection only sends an
error response (when no response has started) and closes; ``next_event`` is not called
again. ``next_event`` raises nothing for any input.

**Writing.** :meth:`HTTP1Codec.send` turns ``Response``, ``InformationalResponse``,
``Data`` and ``EndData`` into bytes, choosing the body framing (``content-length`` as given,
else chunked for HTTP/1.1 peers or close-delimited for HTTP/1.0 peers), suppressing body
framing for ``HEAD`` requests, and adding ``connection: close`` whenever the connection
will not be reused. A ``Response`` may be sent before any request was parsed (an error
response). Sending an ``InformationalResponse`` with status 101 performs a protocol switch
(only allowed when the request asked for an upgrade); afterwards
:meth:`HTTP1Codec.take_trailing_data` hands back the bytes received after the request.

``send`` raises ``ValueError`` for an event it cannot frame safely. A header name or value
that is not allowed on the wire (for example one containing CR or LF) is refused *before*
anything changes: nothing is written and the codec can still send. An event that breaks the
message framing (more or less body than the declared ``content-length``, an event out of
order) leaves the codec unable to send (:attr:`HTTP1Codec.can_send` false): the connection
must close after what was already written.

**Cycles.** When the request and the response are both complete the connection calls
:meth:`HTTP1Codec.start_next_cycle`, which returns False if the connection must not carry
another request (either side said ``connection: close``, an HTTP/1.0 client, a
close-delimited response). :attr:`HTTP1Codec.must_close` tells the same as soon as the
response has ended, so the connection can close without waiting for anything else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol, cast, final

import h11

from hypercorn.config import ConfigError
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    Request,
    Response,
    Trailers,
)
from hypercorn.protocol.http1_writer import ResponseWriter, tokens

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import ConnectionState

__all__ = (
    "NEED_DATA",
    "PAUSED",
    "STREAM_ID",
    "CodecEvent",
    "CodecFactory",
    "H11Codec",
    "HTTP1Codec",
    "ParseError",
    "Wait",
    "select_codec",
)

#: HTTP/1.x carries one exchange at a time; every stream event uses this id.
STREAM_ID: Final = 1


class Wait(Enum):
    """Why :meth:`HTTP1Codec.next_event` has no event to return."""

    #: More bytes are needed to complete the next event.
    NEED_DATA = "NEED_DATA"
    #: The request is complete; nothing more is parsed until the next cycle starts.
    PAUSED = "PAUSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Wait.NEED_DATA
PAUSED: Final = Wait.PAUSED


@dataclass(frozen=True, slots=True)
class ParseError:
    """The peer sent bytes that are not acceptable HTTP/1.x.

    ``status_hint`` is the status to answer with (400, 431, 505, ...); ``reason`` says
    what was wrong, for logs and tests.
    """

    status_hint: int
    reason: str


#: What :meth:`HTTP1Codec.next_event` returns.
CodecEvent = Request | Body | Trailers | EndBody | ParseError | Wait

#: Anything a codec can frame.
Outgoing = Response | InformationalResponse | Data | EndData


class HTTP1Codec(Protocol):
    """HTTP/1.x parsing and serialising for one server-side connection (see the module)."""

    @property
    def can_send(self) -> bool:
        """False once a :meth:`send` failed in a way that broke the outgoing framing."""

    @property
    def must_close(self) -> bool:
        """True once the exchange in progress is known to be the connection's last."""

    @property
    def buffered(self) -> int:
        """How many received bytes wait unparsed (for bounds checks; may cost a copy)."""

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer (never ``b""``)."""

    def next_event(self) -> CodecEvent:
        """The next request event, :data:`NEED_DATA`, :data:`PAUSED` or a ParseError."""

    def send(self, event: Outgoing) -> bytes:
        """Serialise ``event``; ValueError if it cannot be framed safely."""

    def start_next_cycle(self) -> bool:
        """Both sides finished the exchange: get ready for the next request.

        Returns False (and changes nothing) if the connection must close instead.
        """

    def take_trailing_data(self) -> bytes:
        """After a protocol switch, the received bytes that followed the request."""


#: Makes the codec of a new connection: ``factory(config, state)`` (e.g. :class:`H11Codec`).
CodecFactory = Callable[["Config", "ConnectionState"], HTTP1Codec]

#: The values of ``Config.http1_parser``.
_PARSERS: Final = ("auto", "h11", "httptools")


def select_codec(config: Config) -> CodecFactory:
    """The codec factory ``config.http1_parser`` asks for.

    ``"h11"`` is :class:`H11Codec`; ``"httptools"`` is
    :class:`~hypercorn.protocol.http1_httptools.HttptoolsCodec` and raises
    :class:`~hypercorn.config.ConfigError` when httptools (0.6.3 or newer, the ``accel``
    extra) is not installed; ``"auto"`` is the httptools codec when it can be imported,
    else :class:`H11Codec`. Any other value is a ``ConfigError``.
    """
    choice = config.http1_parser
    if choice == "h11":
        return H11Codec
    if choice == "auto" or choice == "httptools":
        accelerated = _httptools_codec()
        if accelerated is not None:
            return accelerated
        if choice == "auto":
            return H11Codec
        raise ConfigError(
            "http1_parser 'httptools' needs httptools 0.6.3 or newer, which is not "
            "installed: pip install 'hypercorn-protocols[accel]'"
        )
    raise ConfigError(
        f"http1_parser must be one of {', '.join(map(repr, _PARSERS))}, not {choice!r}"
    )


@functools.cache
def _httptools_codec() -> CodecFactory | None:
    """HttptoolsCodec, or None when httptools is missing or too old (imported once)."""
    try:
        from hypercorn.protocol.http1_httptools import HttptoolsCodec
    except ImportError as exc:
        if exc.name != "httptools" and not (exc.name or "").startswith("httptools."):
            raise
        return None
    return HttptoolsCodec


_SUPPORTED_VERSIONS: Final = {b"1.1": "1.1", b"1.0": "1.0"}


@final
class H11Codec:
    """:class:`HTTP1Codec` reading with h11 (``h11.Connection`` in the server role) and
    writing with the shared :class:`~hypercorn.protocol.http1_writer.ResponseWriter`.

    ``config`` supplies ``h11_max_incomplete_size`` (a request head that does not fit is a
    431 ``ParseError``) and ``h11_pass_raw_headers``; ``state`` is put on every
    ``Request`` it makes. Each request is read by an ``h11.Connection`` of its own (made
    for the next cycle with the bytes that followed): h11 is used for what it reads, and
    its writer, which frames responses the same way at several times the cost, is not.
    """

    __slots__ = (
        "_conn",
        "_max_incomplete",
        "_pending_end",
        "_raw_headers",
        "_request_complete",
        "_state",
        "_their_error",
        "_writer",
    )

    def __init__(self, config: Config, state: ConnectionState) -> None:
        self._max_incomplete = config.h11_max_incomplete_size
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_incomplete)
        self._raw_headers = config.h11_pass_raw_headers
        self._state = state
        self._writer = ResponseWriter()
        self._request_complete = False
        self._pending_end = False  # Trailers were returned; EndBody comes next
        self._their_error = False  # h11 refused the request (its client ERROR state)

    @property
    def can_send(self) -> bool:
        """False once a :meth:`send` broke the outgoing framing."""
        return self._writer.can_send

    @property
    def must_close(self) -> bool:
        """True once this exchange is known to be the connection's last."""
        return self._writer.must_close(self._request_complete, self._their_error)

    @property
    def buffered(self) -> int:
        """The number of bytes h11 holds unparsed."""
        return len(self._conn.trailing_data[0])

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer (never ``b""``)."""
        self._conn.receive_data(data)

    def next_event(self) -> CodecEvent:
        """The next request event (see the module docstring)."""
        if self._request_complete:
            return PAUSED
        if self._pending_end:
            self._pending_end = False
            self._request_complete = True
            return EndBody(stream_id=STREAM_ID)
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as error:
            self._their_error = True
            return ParseError(error.error_status_hint, str(error))
        if isinstance(event, h11.Data):
            # h11 hands out bytearrays where its types say bytes: read it untyped, so a
            # compiled build (mypyc checks declared types) takes it too.
            data: bytes | bytearray = cast("Any", event).data
            return Body(stream_id=STREAM_ID, data=bytes(data))
        if isinstance(event, h11.Request):
            return self._request(event)
        if isinstance(event, h11.EndOfMessage):
            if event.headers:
                self._pending_end = True
                return Trailers(stream_id=STREAM_ID, headers=self._headers(event))
            self._request_complete = True
            return EndBody(stream_id=STREAM_ID)
        if event is h11.NEED_DATA:
            return NEED_DATA
        if event is h11.PAUSED:
            return PAUSED
        # ConnectionClosed cannot happen (end of input is never fed to h11); anything
        # else would be an h11 bug. Either way the peer cannot be served.
        return ParseError(400, f"unexpected h11 event {event!r}")

    def _headers(self, event: h11.Request | h11.EndOfMessage) -> list[tuple[bytes, bytes]]:
        if self._raw_headers:
            return event.headers.raw_items()
        return list(event.headers)

    def _request(self, event: h11.Request) -> Request | ParseError:
        framing = 0
        close = upgrade = False
        for name, value in event.headers:
            if name == b"content-length":
                framing |= 1
            elif name == b"transfer-encoding":
                framing |= 2
            elif name == b"connection":
                close = close or b"close" in tokens(value)
            elif name == b"upgrade":
                upgrade = upgrade or bool(tokens(value))
        # h11 has accepted the request: what it says about the exchange counts from here.
        self._writer.request(event.method, event.http_version, close=close, upgrade=upgrade)
        version = _SUPPORTED_VERSIONS.get(event.http_version)
        if version is None:
            return ParseError(
                505, f"HTTP version {event.http_version.decode('ascii')} is not supported"
            )
        if framing == 3:
            # RFC 9112 §6.1: h11 would read such a request as chunked but keep the
            # connection open, which request smuggling feeds on; refuse it instead.
            return ParseError(400, "both Content-Length and Transfer-Encoding were sent")
        return Request(
            stream_id=STREAM_ID,
            headers=self._headers(event),
            http_version=version,
            method=event.method.decode("ascii").upper(),
            raw_path=event.target,
            state=self._state,
        )

    def send(self, event: Outgoing) -> bytes:
        """Serialise ``event`` (see the module docstring for the errors)."""
        return self._writer.send(event)

    def start_next_cycle(self) -> bool:
        """Get ready for the next request; False (nothing changes) if the connection must
        close instead."""
        if not self._writer.next_cycle(self._request_complete, self._their_error):
            return False
        # A new h11 connection for the next request, fed what followed this one.
        leftover = self._conn.trailing_data[0]
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_incomplete)
        if leftover:
            self._conn.receive_data(bytes(leftover))
        self._request_complete = False
        self._pending_end = False
        return True

    def take_trailing_data(self) -> bytes:
        """The bytes h11 received after the request (after a protocol switch)."""
        return bytes(self._conn.trailing_data[0])
