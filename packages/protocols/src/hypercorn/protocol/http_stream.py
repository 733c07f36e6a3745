"""The ASGI ``http`` stream: one request and its response, shared by every wire protocol.

A connection (HTTP/1.1, HTTP/2, HTTP/3) makes one :class:`HTTPStream` per request and feeds
it stream events (``Request``, ``Body``, ``EndBody``, ``Trailers``, ``StreamClosed``); the
driver runs the application and passes its ``send()`` messages to :meth:`HTTPStream.app_send`
and its ``receive()`` calls to :meth:`HTTPStream.app_receive`. The stream answers with stream
events for the connection to frame and driver events (``SpawnApp``, ``ReceiveReady``,
``StreamEnded``) for the driver. It never adds ``date``/``server``/``alt-svc``: the
connection appends its default headers to every response head it frames.

Rules this module enforces
==========================

**Scope.** ``handle(Request)`` builds the ``http`` scope (ASGI spec 2.1): ``path`` is the
part of the request target before ``?``, percent-decoded and then decoded as UTF-8;
``raw_path`` is that same part undecoded; ``query_string`` the part after ``?``; ``state`` a
shallow copy of the connection's state; ``extensions`` advertise trailers, server push and
early hints on HTTP/2 and HTTP/3 only. A path that is not UTF-8 once decoded gets a 400 and
no application; a ``Host`` not in ``server_names`` gets a 404 and no application; otherwise
the stream asks the driver to start the application (``SpawnApp``).

**Inbox** (what ``receive()`` returns). ``Body`` becomes ``http.request`` with
``more_body=True`` and ``EndBody`` becomes ``http.request`` with ``body=b""`` and
``more_body=False``. Exactly one ``http.disconnect`` follows, queued when the stream closes:
when the peer goes away (``StreamClosed`` in) or when the response is complete. Nothing is
queued after it. ``ReceiveReady`` is emitted each time the inbox goes from empty to
non-empty. :attr:`HTTPStream.wants_data` is false while ``max_app_queue_size`` messages
wait; the connection then stops reading for this stream (the bound is advisory: a chunk
that still arrives is queued, never dropped).

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

``StreamEnded`` is emitted exactly once, when the response's fate is settled: it was
completed, a server error response was sent, it was aborted, or the peer went away. Its
``response`` is the status and headers (as the application sent them, validated) of the head
that was sent, or None when none was. :attr:`HTTPStream.closed` becomes true once that has
happened *and* the application has finished (or was never started).

Errors the server generates itself (400, 404, 500) carry ``content-length: 0``, and
``connection: close`` on HTTP/1.x only (it is a connection-specific header, forbidden on
HTTP/2 and HTTP/3).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any, final

from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    ReceiveReady,
    Request,
    Response,
    SpawnApp,
    StreamClosed,
    StreamEnded,
    Trailers,
)
from hypercorn.protocol.headers import header_tokens, split_target
from hypercorn.typing import ConnectionState
from hypercorn.utils import (
    UnexpectedMessageError,
    build_and_validate_headers,
    suppress_body,
    valid_server_name,
)

if TYPE_CHECKING:
    from hypercorn.protocol.context import ProtocolContext, StreamOwner
    from hypercorn.protocol.events import Event
    from hypercorn.typing import (
        ASGIReceiveEvent,
        ASGISendEvent,
        HTTPScope,
        ResponseSummary,
    )

__all__ = (
    "EARLY_HINTS_VERSIONS",
    "PUSH_VERSIONS",
    "TRAILERS_VERSIONS",
    "ASGIHTTPState",
    "HTTPStream",
)

Headers = list[tuple[bytes, bytes]]

#: HTTP versions on which response trailers are offered (``http.response.trailers``).
TRAILERS_VERSIONS = frozenset({"2", "3"})
#: HTTP versions on which server push is offered (``http.response.push``).
PUSH_VERSIONS = frozenset({"2", "3"})
#: HTTP versions on which 103 Early Hints are offered (``http.response.early_hint``).
EARLY_HINTS_VERSIONS = frozenset({"2", "3"})


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


_REQUEST = ASGIHTTPState.REQUEST
_RESPONSE = ASGIHTTPState.RESPONSE
_TRAILERS = ASGIHTTPState.TRAILERS
_CLOSED = ASGIHTTPState.CLOSED

#: The states in which each message type is allowed; every other pairing is an error.
_ALLOWED: dict[str, frozenset[ASGIHTTPState]] = {
    "http.response.start": frozenset({_REQUEST}),
    "http.response.body": frozenset({_RESPONSE}),
    "http.response.trailers": frozenset({_TRAILERS}),
    "http.response.push": frozenset({_REQUEST, _RESPONSE}),
    "http.response.early_hint": frozenset({_REQUEST}),
}
_NOWHERE: frozenset[ASGIHTTPState] = frozenset()

_HTTP1 = frozenset({"1.0", "1.1"})
_ERROR_HEADERS_H1: Headers = [(b"content-length", b"0"), (b"connection", b"close")]
_ERROR_HEADERS: Headers = [(b"content-length", b"0")]


@final
class HTTPStream:
    """One HTTP request/response exchange, between its connection and its ASGI application.

    Implements :class:`hypercorn.protocol.context.Stream`; the module docstring states the
    rules. ``client`` and ``server`` are ``(host, port)`` or None (e.g. unix sockets).
    """

    __slots__ = (
        "_app_done",
        "_body_complete",
        "_client",
        "_context",
        "_disconnect_queued",
        "_ended",
        "_expect_continue",
        "_head_sent",
        "_inbox",
        "_method",
        "_owner",
        "_peer_gone",
        "_response_headers",
        "_scheme",
        "_scope",
        "_send_trailers",
        "_server",
        "_spawned",
        "_status",
        "_te_trailers",
        "_trailer_headers",
        "_version",
        "state",
        "stream_id",
    )

    def __init__(
        self,
        context: ProtocolContext,
        owner: StreamOwner,
        stream_id: int,
        *,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
    ) -> None:
        self._context = context
        self._owner = owner
        #: The stream's id (1 for HTTP/1.1; the HTTP/2 or HTTP/3 stream id otherwise).
        self.stream_id = stream_id
        self._scheme = "https" if ssl else "http"
        self._client = client
        self._server = server
        #: Where the application is in sending its response.
        self.state = ASGIHTTPState.REQUEST
        self._scope: HTTPScope | None = None
        self._method = "GET"
        self._version = "1.1"
        self._inbox: deque[ASGIReceiveEvent] = deque()
        self._spawned = False  # SpawnApp was emitted
        self._app_done = False  # app_finished was called (or no app was started)
        self._body_complete = False  # EndBody arrived
        self._disconnect_queued = False
        self._peer_gone = False  # StreamClosed arrived before the response was complete
        self._ended = False  # StreamEnded was emitted
        self._expect_continue = False  # a 100 Continue may still be owed
        self._te_trailers = False  # the request said ``te: trailers``
        self._status = 0
        self._response_headers: Headers = []
        self._send_trailers = False  # the start said ``trailers=True``
        self._head_sent = False
        self._trailer_headers: Headers = []

    # -----------------------------------------------------------------------------------
    # The Stream protocol: properties
    # -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the response is settled and the application has finished."""
        return self._ended and self._app_done

    @property
    def wants_data(self) -> bool:
        """True while the inbox has room, or while request data would be discarded."""
        if not self._spawned or self._disconnect_queued:
            return True
        return len(self._inbox) < self._context.config.max_app_queue_size

    @property
    def scope(self) -> HTTPScope | None:
        """The scope built from the request (None before the ``Request`` event)."""
        return self._scope

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
            self._body_complete = True
            self._expect_continue = False
            self._put({"type": "http.request", "body": b"", "more_body": False})
        elif isinstance(event, StreamClosed):
            self._peer_closed()
        elif isinstance(event, Request):
            self._handle_request(event)

    def _handle_request(self, request: Request) -> None:
        if self._scope is not None:
            raise RuntimeError(f"Stream {self.stream_id} was given a second Request")
        version = request.http_version
        self._version = version
        self._method = request.method
        path, raw_path, query_string = split_target(request.raw_path)
        extensions: dict[str, dict[Any, Any]] = (
            {}
            if version in _HTTP1
            else {
                "http.response.trailers": {},
                "http.response.push": {},
                "http.response.early_hint": {},
            }
        )
        self._scope = {
            "type": "http",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "http_version": version,
            "method": request.method,
            "scheme": self._scheme,
            "path": raw_path.decode("latin-1") if path is None else path,
            "raw_path": raw_path,
            "query_string": query_string,
            "root_path": self._context.config.root_path,
            "headers": request.headers,
            "client": self._client,
            "server": self._server,
            "state": ConnectionState(request.state.copy()),
            "extensions": extensions,
        }
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
        self._spawned = True
        self._owner.driver_event(SpawnApp(self.stream_id, self._scope))

    def _put(self, message: ASGIReceiveEvent) -> None:
        if not self._spawned or self._disconnect_queued:
            return  # No application, or it has been told the stream is over.
        inbox = self._inbox
        inbox.append(message)
        if len(inbox) == 1:
            self._owner.driver_event(ReceiveReady(self.stream_id))

    def _queue_disconnect(self) -> None:
        self._put({"type": "http.disconnect"})
        self._disconnect_queued = True

    def _peer_closed(self) -> None:
        self._expect_continue = False
        if self._ended:
            # Already settled: the disconnect was queued then, or nobody will receive it.
            return
        if self._scope is None:
            # Closed before its request arrived: there is nothing to run or to log.
            self._ended = self._app_done = True
            return
        self._peer_gone = True
        self.state = _CLOSED
        self._queue_disconnect()
        self._end(self._summary() if self._head_sent else None)

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

    def app_send(self, message: ASGISendEvent) -> None:
        """Take a message from the application's ``send()`` (see the module's table)."""
        if self._peer_gone:
            return
        message_type = message.get("type")
        if not isinstance(message_type, str):
            raise TypeError(f"An ASGI message needs a str 'type', not {message_type!r}")
        if self.state not in _ALLOWED.get(message_type, _NOWHERE):
            raise UnexpectedMessageError(self.state, message_type)
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
            if not isinstance(body, bytearray | memoryview):
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
            if not isinstance(link, bytes | bytearray | memoryview):
                raise TypeError(
                    f"http.response.early_hint links must be bytes, not {type(link).__name__}"
                )
            headers.append((b"link", bytes(link)))
        if self._version not in EARLY_HINTS_VERSIONS or not headers:
            return  # No 103 on HTTP/1.x (B7), and none without links.
        self._owner.stream_send(
            InformationalResponse(stream_id=self.stream_id, headers=headers, status_code=103)
        )

    def app_finished(self) -> None:
        """The application returned or raised: answer 500, abort, or do nothing."""
        if self._app_done:
            return
        self._app_done = True
        # Nobody will receive any more: free the inbox and discard further request data.
        self._inbox.clear()
        self._disconnect_queued = True
        if self._ended:
            return
        if not self._head_sent:
            # Nothing sent yet (or only 1xx heads): a clean 500 is still possible.
            self._send_error_response(500)
        else:
            # The head is out but the response is incomplete: the connection must abort it.
            self.state = _CLOSED
            self._owner.stream_send(StreamClosed(stream_id=self.stream_id))
            self._end(self._summary())

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
        self._queue_disconnect()
        self._end(self._summary())

    def _send_error_response(self, status: int) -> None:
        headers = _ERROR_HEADERS_H1 if self._version in _HTTP1 else _ERROR_HEADERS
        headers = list(headers)
        self.state = _CLOSED
        self._head_sent = True
        self._status = status
        self._response_headers = headers
        owner = self._owner
        owner.stream_send(Response(stream_id=self.stream_id, headers=headers, status_code=status))
        owner.stream_send(EndData(stream_id=self.stream_id))
        # No disconnect to queue: there is no application, or it has already finished.
        self._end(self._summary())

    def _summary(self) -> ResponseSummary:
        return {"status": self._status, "headers": self._response_headers}

    def _end(self, response: ResponseSummary | None) -> None:
        # Called once: every caller runs only while ``_ended`` is false.
        self._ended = True
        assert self._scope is not None
        self._owner.driver_event(StreamEnded(self.stream_id, self._scope, response))
