"""The ASGI ``http`` stream: one request and its response, shared by every wire protocol.

A connection (HTTP/1.1, HTTP/2, HTTP/3) makes one :class:`HTTPStream` per request and feeds
it stream events (``Request``, ``Body``, ``EndBody``, ``Trailers``, ``StreamClosed``); the
driver runs the application and passes its ``send()`` messages to :meth:`HTTPStream.app_send`
and its ``receive()`` calls to :meth:`HTTPStream.app_receive`. The stream answers with stream
events for the connection to frame and driver events (``SpawnApp``, ``ReceiveReady``,
``StreamEnded``) for the driver. It never adds ``date``/``server``/``alt-svc``: the
connection appends its default headers to every response head it frames.

The rules every ASGI stream shares (the scope fields common to both scope types, the
inbox, ``wants_data``, how ``app_send`` screens messages, ``StreamEnded``/``closed``, and the
headers of server-generated errors) are stated in :mod:`hypercorn.protocol.asgi_stream`.

Rules this module enforces
==========================

**Scope.** ``handle(Request)`` builds the ``http`` scope (ASGI spec 2.1) from the shared
fields plus ``method``, ``http_version``, ``state`` (a shallow copy of the connection's
state) and ``extensions``, which advertise trailers, server push and early hints on HTTP/2
and HTTP/3 only. A path that is not UTF-8 once decoded gets a 400 and no application; a
``Host`` not in ``server_names`` gets a 404 and no application; otherwise the stream asks the
driver to start the application (``SpawnApp``).

**Inbox** (what ``receive()`` returns). ``Body`` becomes ``http.request`` with
``more_body=True`` and ``EndBody`` becomes ``http.request`` with ``body=b""`` and
``more_body=False``. The one ``http.disconnect`` is queued when the stream closes: when the
peer goes away (``StreamClosed`` in) or when the response is complete.

**100 Continue.** The first time the application calls ``receive()`` while the request said
``Expect: 100-continue``, its body is not complete and no final response was started, the
stream sends ``InformationalResponse(100)``. Never on HTTP/1.0 (RFC 9110 §10.1.1: a server
ignores that expectation from an HTTP/1.0 client), and never twice.

**Sending** (:meth:`HTTPStream.app_send`) is a state machine over :class:`ASGIHTTPState`.
Which states accept which message is data (``_ALLOWED``); anything else raises
:class:`~hypercorn.utils.UnexpectedMessageError` naming the message type and the state.
Malformed messages raise ``TypeError``/``ValueError`` and change nothing.

=========  ====================================  ========  =================================
state      message (condition)                   next      stream events
=========  ====================================  ========  =================================
REQUEST    ``http.response.start``, 1xx status   REQUEST   InformationalResponse (none on
                                                           HTTP/1.0; 101 is a ValueError)
REQUEST    ``http.response.start``, >= 200       RESPONSE  none yet (the head waits for the
                                                           first body message)
REQUEST    ``http.response.early_hint``          REQUEST   InformationalResponse 103, one
                                                           ``link`` per link (2/3 only)
REQUEST,   ``http.response.push``                same      Request (GET, path, headers +
RESPONSE                                                   ``host``) (2/3 only)
RESPONSE   ``http.response.body``, more_body     RESPONSE  Response (first time), Data
RESPONSE   ``http.response.body``, last,         TRAILERS  Response (first time), Data
           start said ``trailers=True``
RESPONSE   ``http.response.body``, last          CLOSED    Response (first time), Data,
                                                           EndData
TRAILERS   ``http.response.trailers``, more      TRAILERS  none (headers are collected)
TRAILERS   ``http.response.trailers``, last      CLOSED    Trailers (if honoured), EndData
=========  ====================================  ========  =================================

Notes on the table:

- ``Data`` is emitted only for non-empty chunks, and never for a response without a body
  (``HEAD`` requests, 204, 304; :func:`hypercorn.utils.suppress_body`).
- Push and early hints are accepted in the states above on every version but only acted on
  for HTTP/2 and HTTP/3; on HTTP/1.x they are checked and dropped (no 103 on HTTP/1).
- Trailers are honoured (sent) only when the start said ``trailers=True``, the request had
  ``te: trailers`` and the version is 2 or 3; otherwise the trailers message is accepted and
  dropped and the response simply ends. A response with trailers ends with ``Trailers``
  followed by ``EndData``: every complete response ends with exactly one ``EndData``
  (HTTP/2 frames the pair as one HEADERS frame with END_STREAM).
- The ``Response`` head is held back until the first body message, so an application that
  fails between ``http.response.start`` and its body still gets a clean 500.
- Once the peer has gone (``StreamClosed`` in before the response was complete), every
  message is ignored silently: the application may not know yet.

**Ending** (:meth:`HTTPStream.app_finished`, the application returned or raised):

=====================================  ================================================
when the application finishes ...      the stream ...
=====================================  ================================================
before ``http.response.start``, or     sends a 500 (``content-length: 0``, plus
after it but before any body           ``connection: close`` on HTTP/1.x)
after the head, before the end         sends ``StreamClosed`` (the connection resets the
(incl. missing trailers)               HTTP/2 stream or closes the HTTP/1.1 connection)
after the response completed, or       does nothing more
after the peer went away
=====================================  ================================================

``StreamEnded`` is emitted when the response's fate is settled: it was completed, a server
error response (400, 404, 500) was sent, it was aborted, or the peer went away. Its
``response`` holds the headers as the application sent them (validated).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Final, cast, final

from hypercorn.protocol.asgi_stream import HTTP1_VERSIONS, ASGIStream
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    Request,
    Response,
    StreamClosed,
    Trailers,
)
from hypercorn.protocol.headers import header_tokens
from hypercorn.typing import ConnectionState, HTTPScope
from hypercorn.utils import build_and_validate_headers, suppress_body, valid_server_name

if TYPE_CHECKING:
    from hypercorn.protocol.events import Event
    from hypercorn.typing import ASGIReceiveEvent

__all__ = (
    "EARLY_HINTS_VERSIONS",
    "PUSH_VERSIONS",
    "TRAILERS_VERSIONS",
    "ASGIHTTPState",
    "HTTPStream",
)

Headers = list[tuple[bytes, bytes]]

#: HTTP versions on which response trailers are offered (``http.response.trailers``).
TRAILERS_VERSIONS: Final = frozenset({"2", "3"})
#: HTTP versions on which server push is offered (``http.response.push``).
PUSH_VERSIONS: Final = frozenset({"2", "3"})
#: HTTP versions on which 103 Early Hints are offered (``http.response.early_hint``).
EARLY_HINTS_VERSIONS: Final = frozenset({"2", "3"})


class ASGIHTTPState(Enum):
    """Where the application is in sending its response (see the module's table)."""

    #: No ``http.response.start`` yet (1xx starts, early hints and pushes keep it here).
    REQUEST = "REQUEST"
    #: The final status is known; body messages are expected.
    RESPONSE = "RESPONSE"
    #: The body is complete and the start promised trailers; trailers are expected.
    TRAILERS = "TRAILERS"
    #: The response is complete (or was answered by the server itself).
    CLOSED = "CLOSED"

    def __str__(self) -> str:
        return self.value


_REQUEST: Final = ASGIHTTPState.REQUEST
_RESPONSE: Final = ASGIHTTPState.RESPONSE
_TRAILERS: Final = ASGIHTTPState.TRAILERS
_CLOSED: Final = ASGIHTTPState.CLOSED

#: The states in which each message type is allowed; every other pairing is an error.
#: (Tuples: ``in`` compares by identity, where a set would call the Enum's Python-level
#: ``__hash__``.)
_ALLOWED: Final[dict[str, tuple[ASGIHTTPState, ...]]] = {
    "http.response.start": (_REQUEST,),
    "http.response.body": (_RESPONSE,),
    "http.response.trailers": (_TRAILERS,),
    "http.response.push": (_REQUEST, _RESPONSE),
    "http.response.early_hint": (_REQUEST,),
}


@final
class HTTPStream(ASGIStream[ASGIHTTPState, HTTPScope]):
    """One HTTP request/response exchange, between its connection and its ASGI application.

    The ``http`` scope's :class:`~hypercorn.protocol.asgi_stream.ASGIStream` (a
    :class:`hypercorn.protocol.context.Stream`); the module docstring states its rules.
    """

    __slots__ = (
        "_expect_continue",
        "_method",
        "_send_trailers",
        "_te_trailers",
        "_trailer_headers",
    )

    _SCHEME = "http"
    _SECURE_SCHEME = "https"
    _ALLOWED = _ALLOWED  # The module's table, read by ASGIStream.app_send.

    def _init_fields(self) -> None:
        #: Where the application is in sending its response.
        self.state = ASGIHTTPState.REQUEST
        self._method = "GET"
        self._expect_continue = False  # a 100 Continue may still be owed
        self._te_trailers = False  # the request said ``te: trailers``
        self._send_trailers = False  # the start said ``trailers=True``
        self._trailer_headers: Headers = []

    # -----------------------------------------------------------------------------------
    # Events from the wire
    # -----------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Take an event from the connection: Request, Body, EndBody, Trailers,
        StreamClosed. Request trailers have no ASGI message and are dropped."""
        if isinstance(event, Body):
            if event.data:
                self._put({"type": "http.request", "body": bytes(event.data), "more_body": True})
        elif isinstance(event, EndBody):
            self._expect_continue = False
            self._put({"type": "http.request", "body": b"", "more_body": False})
        elif isinstance(event, StreamClosed):
            self._peer_closed()
        elif isinstance(event, Request):
            self._handle_request(event)

    def _handle_request(self, request: Request) -> None:
        version = request.http_version
        self._method = request.method
        extensions: dict[str, dict[Any, Any]] = (
            {}
            if version in HTTP1_VERSIONS
            else {
                "http.response.trailers": {},
                "http.response.push": {},
                "http.response.early_hint": {},
            }
        )
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "http_version": version,
            "method": request.method,
            "state": ConnectionState(request.state.copy()),
            "extensions": extensions,
        }
        path = self._read_request(request, scope)
        self._scope = cast("HTTPScope", scope)
        if path is None:
            self._send_error_response(400)
            self._app_done = True
            return
        if not valid_server_name(self._context.config, request):
            self._send_error_response(404)
            self._app_done = True
            return
        for name, value in request.headers:
            lowered = name.lower()
            if (
                lowered == b"expect"
                and version != "1.0"
                and b"100-continue" in header_tokens(value)
            ):
                self._expect_continue = True
            elif lowered == b"te" and b"trailers" in header_tokens(value):
                self._te_trailers = True
        self._spawn_app()

    def _peer_closed(self) -> None:
        self._expect_continue = False
        if self._ended:
            # Already settled: the disconnect was queued then, or nobody will receive it.
            return
        if self._scope is None:
            # Closed before its request arrived: there is nothing to run or to log.
            self._ended = self._app_done = True
            return
        self._drop_app_messages = True
        self.state = _CLOSED
        self._queue_disconnect({"type": "http.disconnect"})
        self._end()

    # -----------------------------------------------------------------------------------
    # The application's side
    # -----------------------------------------------------------------------------------

    def app_receive(self) -> ASGIReceiveEvent | None:
        """The next message for the application's ``receive()``, or None if none waits.

        The first call may also send ``100 Continue`` (see the module docstring).
        """
        if self._expect_continue:
            self._expect_continue = False
            if self.state is _REQUEST:
                self._owner.stream_send(
                    InformationalResponse(stream_id=self.stream_id, headers=[], status_code=100)
                )
        inbox = self._inbox
        return inbox.popleft() if inbox else None

    def _dispatch(self, message_type: str, message: Any) -> None:
        if message_type == "http.response.body":
            self._send_body(message)
        elif message_type == "http.response.start":
            self._send_start(message)
        elif message_type == "http.response.trailers":
            self._send_trailers_message(message)
        elif message_type == "http.response.push":
            self._send_push(message)
        else:
            self._send_early_hint(message)

    def _send_start(self, message: Any) -> None:
        status = message.get("status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"http.response.start 'status' must be an int, not {status!r}")
        status = int(status)
        if not 100 <= status <= 999:
            raise ValueError(f"http.response.start 'status' must be 3 digits, not {status}")
        if status == 101:
            raise ValueError(
                "101 Switching Protocols cannot be sent on an http scope "
                "(use the websocket scope to upgrade)"
            )
        headers = build_and_validate_headers(message.get("headers", ()))
        if status < 200:
            if status == 100:
                self._expect_continue = False
            if self._version != "1.0":  # RFC 9110 §15.2: no 1xx to HTTP/1.0 clients.
                self._owner.stream_send(
                    InformationalResponse(
                        stream_id=self.stream_id, headers=headers, status_code=status
                    )
                )
            return
        self._status = status
        self._response_headers = headers
        self._send_trailers = bool(message.get("trailers", False))
        self.state = _RESPONSE

    def _send_body(self, message: Any) -> None:
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, (bytearray, memoryview)):
                raise TypeError(
                    f"http.response.body 'body' must be bytes, not {type(body).__name__}"
                )
            body = bytes(body)
        owner = self._owner
        if not self._head_sent:
            # The connection may refuse the head (a header it cannot frame); only once it
            # took it is the head sent, so a later app_finished can still answer 500.
            owner.stream_send(
                Response(
                    stream_id=self.stream_id,
                    headers=self._response_headers,
                    status_code=self._status,
                )
            )
            self._head_sent = True
        if body and not suppress_body(self._method, self._status):
            owner.stream_send(Data(stream_id=self.stream_id, data=body))
        if not message.get("more_body", False):
            if self._send_trailers:
                self.state = _TRAILERS
            else:
                self._complete()

    def _send_trailers_message(self, message: Any) -> None:
        headers = build_and_validate_headers(message.get("headers", ()))
        self._trailer_headers.extend(headers)
        if message.get("more_trailers", False):
            return
        if self._te_trailers and self._version in TRAILERS_VERSIONS:
            self._owner.stream_send(
                Trailers(stream_id=self.stream_id, headers=self._trailer_headers)
            )
        self._complete()

    def _send_push(self, message: Any) -> None:
        path = message.get("path")
        if not isinstance(path, str):
            raise TypeError(f"http.response.push 'path' must be a str, not {path!r}")
        try:
            raw_path = path.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(
                f"http.response.push 'path' must be ASCII (percent-encode it): {path!r}"
            ) from None
        headers = build_and_validate_headers(message.get("headers", ()))
        if self._version not in PUSH_VERSIONS:
            return  # Not offered on HTTP/1.x: dropped.
        host = b""
        assert self._scope is not None
        for name, value in self._scope["headers"]:
            if name.lower() == b"host":
                host = value
                break
        headers.insert(0, (b"host", host))
        self._owner.stream_send(
            Request(
                stream_id=self.stream_id,
                headers=headers,
                http_version=self._version,
                method="GET",
                raw_path=raw_path,
            )
        )

    def _send_early_hint(self, message: Any) -> None:
        headers: Headers = []
        for link in message.get("links", ()):
            if not isinstance(link, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"http.response.early_hint links must be bytes, not {type(link).__name__}"
                )
            headers.append((b"link", bytes(link)))
        if self._version not in EARLY_HINTS_VERSIONS or not headers:
            return  # No 103 on HTTP/1.x (B7), and none without links.
        self._owner.stream_send(
            InformationalResponse(stream_id=self.stream_id, headers=headers, status_code=103)
        )

    def _app_left_early(self) -> None:
        if not self._head_sent:
            # Nothing sent yet (or only 1xx heads): a clean 500 is still possible.
            self._send_error_response(500)
        else:
            # The head is out but the response is incomplete: the connection must abort it.
            self.state = _CLOSED
            self._owner.stream_send(StreamClosed(stream_id=self.stream_id))
            self._end()

    # -----------------------------------------------------------------------------------
    # Timers (an HTTP stream has none)
    # -----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Always None: an HTTP stream has no timers."""
        return None

    def handle_timer(self) -> None:
        """Nothing to do: an HTTP stream has no timers."""

    # -----------------------------------------------------------------------------------
    # Helpers
    # -----------------------------------------------------------------------------------

    def _complete(self) -> None:
        """The response was sent in full."""
        self.state = _CLOSED
        self._owner.stream_send(EndData(stream_id=self.stream_id))
        self._queue_disconnect({"type": "http.disconnect"})
        self._end()

    def _send_error_response(self, status: int) -> None:
        self.state = _CLOSED
        self._send_error_head(status)
        # No disconnect to queue: there is no application, or it has already finished.
        self._end()
