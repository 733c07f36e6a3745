"""The ASGI ``websocket`` stream: one WebSocket over HTTP/1.1, HTTP/2 or HTTP/3.

A connection makes a :class:`WSStream` for a request that asks for a WebSocket (HTTP/1.1:
``GET`` with ``Upgrade: websocket``; HTTP/2 and HTTP/3: extended ``CONNECT`` with
``:protocol: websocket``, RFC 8441/9220). After the accept, frames travel as raw bytes on
every version: ``Body`` in, ``Data`` out. They are parsed and written by wsproto through its
public API only (``wsproto.connection.Connection``, ``wsproto.events``,
``wsproto.extensions.PerMessageDeflate``), except the common case, when permessage-deflate
is off: small whole messages received, and every message sent, are read and written by
:mod:`hypercorn.protocol.ws_frames` with the same result. The opening handshake is ours
(:class:`Handshake`).

The rules every ASGI stream shares (the scope fields common to both scope types, the
inbox, ``wants_data``, how ``app_send`` screens messages, ``StreamEnded``/``closed``, and the
headers of server-generated errors) are stated in :mod:`hypercorn.protocol.asgi_stream`.

Rules this module enforces
==========================

**Handshake.** The scope (ASGI spec 2.3) is built from the shared fields (``scheme``
``ws``/``wss``) plus ``http_version``, a shallow copy of ``state``, the offered
``subprotocols`` and the ``websocket.http.response`` extension.
Then: a ``Host`` not in ``server_names`` gets a 404; an invalid handshake a 400 (see
:meth:`Handshake.problem`; a bad ``sec-websocket-version`` adds ``sec-websocket-version: 13``,
RFC 6455 §4.4; HTTP/1.0 is refused, RFC 6455 §4.1); a path that is not UTF-8 a 400;
otherwise ``SpawnApp``, and the inbox gets ``websocket.connect``.

**Sending** is a state machine over :class:`ASGIWebsocketState` (``_ALLOWED`` is the data);
a message out of order raises :class:`~hypercorn.utils.UnexpectedMessageError`, a malformed
one ``TypeError``/``ValueError`` and changes nothing.

=========  =================================  ==========  ===============================
state      message                            next        stream events
=========  =================================  ==========  ===============================
HANDSHAKE  ``websocket.accept``               CONNECTED   Response 101 (HTTP/1.x) or 200
HANDSHAKE  ``websocket.close``                HTTPCLOSED  Response 403, EndData
HANDSHAKE  ``websocket.http.response.start``  RESPONSE    none (the head waits for body)
RESPONSE   ``websocket.http.response.body``   RESPONSE,   Response (first time), Data,
                                              HTTPCLOSED  EndData (last chunk)
CONNECTED  ``websocket.send``                 CONNECTED   Data (one message)
CONNECTED  ``websocket.close``                CLOSED      Data (close frame), EndData
=========  =================================  ==========  ===============================

The accepted ``subprotocol`` must be one the client offered, and the extra ``headers`` may
not hold ``sec-websocket-protocol`` or pseudo headers (ValueError); permessage-deflate is
accepted when offered in a form wsproto supports. ``websocket.send`` needs exactly one of
``bytes``/``text``. A close ``code`` (default 1000) must be one a peer accepts: 1000-1003,
1007-1013, 3000-4999; its ``reason`` is cut to the 123 bytes a close frame holds. A denial
needs a final status (200-999).

**Receiving.** Messages are reassembled from their fragments into one
``websocket.receive``; one longer than ``websocket_max_message_size`` (characters for text,
bytes for binary) closes with 1009. Pings are answered at once. A peer's close frame is
answered; a frame wsproto refuses closes with the code it names (1002, or 1007 for bad
UTF-8). With permessage-deflate, bytes are fed in 4 KiB slices so a compression bomb meets
the size limit after a few MiB (wsproto inflates without a bound). ``Body`` (or an HTTP/2
end of stream) before the accept is a 400 (spec B10); during a denial it is dropped.

**Disconnect.** The application gets one ``websocket.disconnect``: the peer's close code
(1005 if it gave none), its own close code, 1009 or the protocol-error code, or 1006 when
the peer vanished without a close frame and after a refused or denied handshake. When the
stream ended for a reason the application may not know yet, its later messages are dropped
silently; after its own close they are out of order.

**Ending.** An open WebSocket ends with ``EndData`` after the close frames (the HTTP/1.1
connection then closes, HTTP/2 ends the stream); the server does not wait for the answer to
a close it sent. :meth:`WSStream.app_finished` closes an open WebSocket with 1011, answers
500 if nothing was sent, aborts (``StreamClosed``) a denial whose head is out. ``StreamEnded``
comes once, at the end, with the 101/200 or the denial/error status (None if the peer
vanished first). With ``websocket_ping_interval`` set, :meth:`WSStream.next_deadline` is the
accept or last ping plus the interval, and :meth:`WSStream.handle_timer` sends the ping.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Final, cast, final

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from hypercorn.protocol.asgi_stream import HTTP1_VERSIONS, ASGIStream
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    Request,
    Response,
    StreamClosed,
)
from hypercorn.protocol.ws_frames import FrameSplitter, Unparsed, server_frame
from hypercorn.protocol.ws_handshake import Handshake
from hypercorn.typing import ConnectionState as ASGIConnectionState
from hypercorn.typing import WebsocketScope
from hypercorn.utils import build_and_validate_headers, valid_server_name

if TYPE_CHECKING:
    from wsproto.events import Event as WSEvent

    from hypercorn.protocol.events import Event
    from hypercorn.typing import ASGIReceiveEvent

__all__ = ("ASGIWebsocketState", "Handshake", "WSStream")

Headers = list[tuple[bytes, bytes]]

_EXTENDED_CONNECT: Final = frozenset({"2", "3"})
#: Close codes an application may send: the ones a peer accepts on the wire (RFC 6455
#: §7.4; 1004-1006 and 1015 are reserved or local-only, 1014 is unknown to many peers).
_SENDABLE_CLOSE_CODES: Final = frozenset(
    {*range(1000, 1004), *range(1007, 1014), *range(3000, 5000)}
)
#: Slice size for feeding compressed frames to wsproto (bounds the inflated data per step).
_DEFLATE_STEP: Final = 4096

_NORMAL_CLOSURE: Final = 1000
_ABNORMAL_CLOSURE: Final = 1006
_MESSAGE_TOO_BIG: Final = 1009
_INTERNAL_ERROR: Final = 1011


class ASGIWebsocketState(Enum):
    """Where the application is in answering the WebSocket (see the module's table)."""

    #: Neither accepted nor refused yet.
    HANDSHAKE = "HANDSHAKE"
    #: Accepted: messages flow both ways.
    CONNECTED = "CONNECTED"
    #: A denial response was started; its body is expected.
    RESPONSE = "RESPONSE"
    #: The WebSocket was open and is closed.
    CLOSED = "CLOSED"
    #: The handshake was answered with an HTTP response (refusal, denial or error).
    HTTPCLOSED = "HTTPCLOSED"

    def __str__(self) -> str:
        return self.value


_HANDSHAKE: Final = ASGIWebsocketState.HANDSHAKE
_CONNECTED: Final = ASGIWebsocketState.CONNECTED
_RESPONSE: Final = ASGIWebsocketState.RESPONSE
_CLOSED: Final = ASGIWebsocketState.CLOSED
_HTTPCLOSED: Final = ASGIWebsocketState.HTTPCLOSED

#: The states in which each message type is allowed; every other pairing is an error.
#: (Tuples: ``in`` compares by identity, where a set would call the Enum's Python-level
#: ``__hash__``.)
_ALLOWED: Final[dict[str, tuple[ASGIWebsocketState, ...]]] = {
    "websocket.accept": (_HANDSHAKE,),
    "websocket.send": (_CONNECTED,),
    "websocket.close": (_HANDSHAKE, _CONNECTED),
    "websocket.http.response.start": (_HANDSHAKE,),
    "websocket.http.response.body": (_RESPONSE,),
}


@final
class WSStream(ASGIStream[ASGIWebsocketState, WebsocketScope]):
    """One WebSocket, between its connection and its ASGI application.

    The ``websocket`` scope's :class:`~hypercorn.protocol.asgi_stream.ASGIStream` (a
    :class:`hypercorn.protocol.context.Stream`), wrapping a wsproto connection once accepted;
    the module docstring states its rules.
    """

    __slots__ = (
        "_byte_parts",
        "_deflate",
        "_frames",
        "_handshake",
        "_message_size",
        "_next_ping",
        "_text_parts",
        "_ws",
    )

    _SCHEME = "ws"
    _SECURE_SCHEME = "wss"
    _ALLOWED = _ALLOWED  # The module's table, read by ASGIStream.app_send.

    def _init_fields(self) -> None:
        #: Where the application is in answering the WebSocket.
        self.state = ASGIWebsocketState.HANDSHAKE
        self._handshake: Handshake | None = None
        self._ws: Connection | None = None
        self._deflate = False
        self._frames = FrameSplitter()
        self._text_parts: list[str] = []
        self._byte_parts: list[bytes] = []
        self._message_size = 0
        self._next_ping: float | None = None

    # -----------------------------------------------------------------------------------
    # Events from the wire
    # -----------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Take an event from the connection: Request, Body, EndBody, StreamClosed.
        Trailers have no meaning for a WebSocket and are dropped."""
        if isinstance(event, Body):
            if event.data:
                self._receive_bytes(event.data)
        elif isinstance(event, StreamClosed):
            self._peer_vanished()
        elif isinstance(event, EndBody):
            # HTTP/1.x: the end of the (empty) GET request, before the frames begin.
            if self._version not in HTTP1_VERSIONS:
                self._peer_ended()
        elif isinstance(event, Request):
            self._handle_request(event)

    def _handle_request(self, request: Request) -> None:
        handshake = Handshake(request.headers, request.http_version, request.method)
        self._handshake = handshake
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"spec_version": "2.3", "version": "3.0"},
            "http_version": request.http_version,
            "subprotocols": handshake.subprotocols,
            "state": ASGIConnectionState(request.state.copy()),
            "extensions": {"websocket.http.response": {}},
        }
        path = self._read_request(request, scope)
        self._scope = cast("WebsocketScope", scope)
        self._app_done = True  # Until an application is started.
        if not valid_server_name(self._context.config, request):
            self._send_error_response(404)
        elif not handshake.is_valid():
            extra = [] if handshake.version_ok() else [(b"sec-websocket-version", b"13")]
            self._send_error_response(400, extra)
        elif path is None:
            self._send_error_response(400)
        else:
            self._app_done = False
            self._spawn_app()
            self._put({"type": "websocket.connect"})

    def _receive_bytes(self, data: bytes) -> None:
        if self._ended:
            return
        ws = self._ws
        if ws is None:
            if self.state is _HANDSHAKE:
                self._too_early()
            return  # A denial response is under way: the bytes mean nothing.
        if not self._deflate:
            self._split_frames(ws, data)
            return
        for start in range(0, len(data), _DEFLATE_STEP):
            ws.receive_data(data[start : start + _DEFLATE_STEP])
            if not self._drain_frames(ws):
                return

    def _split_frames(self, ws: Connection, data: bytes) -> None:
        """Without permessage-deflate: simple frames are read here, the rest by wsproto
        (:mod:`hypercorn.protocol.ws_frames` says why that changes nothing)."""
        max_size = self._context.config.websocket_max_message_size
        for piece in self._frames.split(data):
            if isinstance(piece, Unparsed):
                ws.receive_data(piece.data)
                self._drain_frames(ws)
            elif len(piece) > max_size:  # A simple frame is a whole message on its own.
                self._too_big()
            elif isinstance(piece, str):
                self._put({"type": "websocket.receive", "bytes": None, "text": piece})
            else:
                self._put({"type": "websocket.receive", "bytes": piece, "text": None})
            if self._ended:
                return

    def _drain_frames(self, ws: Connection) -> bool:
        """Act on the frames wsproto parsed; False once the WebSocket ended."""
        for event in ws.events():
            if isinstance(event, Message):
                self._message_part(event)
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:
                    self._send_frame(event.response())
            elif isinstance(event, CloseConnection):
                self._peer_close(ws, event)
            # Pongs need no answer.
            if self._ended:
                return False
        return True

    def _too_big(self) -> None:
        close = CloseConnection(code=_MESSAGE_TOO_BIG, reason="message too big")
        self._finish(_MESSAGE_TOO_BIG, close)

    def _message_part(self, event: Message[Any]) -> None:
        self._message_size += len(event.data)
        if self._message_size > self._context.config.websocket_max_message_size:
            self._too_big()
            return
        message: ASGIReceiveEvent
        if isinstance(event, TextMessage):
            if not event.message_finished:
                self._text_parts.append(event.data)
                return
            parts = self._text_parts
            text = "".join((*parts, event.data)) if parts else event.data
            parts.clear()
            message = {"type": "websocket.receive", "bytes": None, "text": text}
        else:
            assert isinstance(event, BytesMessage)
            if not event.message_finished:
                self._byte_parts.append(bytes(event.data))
                return
            chunks = self._byte_parts
            data = b"".join((*chunks, event.data)) if chunks else bytes(event.data)
            chunks.clear()
            message = {"type": "websocket.receive", "bytes": data, "text": None}
        self._message_size = 0
        self._put(message)

    def _peer_close(self, ws: Connection, event: CloseConnection) -> None:
        code = int(event.code)
        if ws.state is ConnectionState.OPEN:
            # wsproto could not accept a frame: it reports the failure as a close event
            # without changing state. Fail the WebSocket with the code it names.
            self._finish(code, CloseConnection(code=code, reason=event.reason))
        else:  # REMOTE_CLOSING (we never read after sending our own close): answer it.
            self._finish(code, event.response())

    def _peer_vanished(self) -> None:
        if self._ended:
            return
        self._drop_app_messages = True
        if self.state is _CONNECTED:
            self.state = _CLOSED
        self._disconnect(_ABNORMAL_CLOSURE)
        self._end()

    def _peer_ended(self) -> None:
        """The HTTP/2 or HTTP/3 peer ended its side of the stream."""
        if self._ended:
            return
        if self._ws is not None:
            self._finish(_ABNORMAL_CLOSURE)  # No close frame came first. Our side ends too.
        elif self.state is _HANDSHAKE:
            self._too_early()

    def _too_early(self) -> None:
        """B10: the client must wait for the handshake's answer before sending (or ending)."""
        self._drop_app_messages = True
        self._send_error_response(400)

    def _disconnect(self, code: int) -> None:
        self._queue_disconnect({"type": "websocket.disconnect", "code": code})

    # -----------------------------------------------------------------------------------
    # The application's side
    # -----------------------------------------------------------------------------------

    def _dispatch(self, message_type: str, message: Any) -> None:
        if message_type == "websocket.send":
            self._app_message(message)
        elif message_type == "websocket.accept":
            self._accept(message)
        elif message_type == "websocket.close":
            self._app_close(message)
        elif message_type == "websocket.http.response.start":
            self._response_start(message)
        else:
            self._response_body(message)

    def _accept(self, message: Any) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise TypeError(f"websocket.accept 'subprotocol' must be a str, not {subprotocol!r}")
        headers = build_and_validate_headers(message.get("headers") or ())
        assert self._handshake is not None
        status, response_headers, extensions = self._handshake.accept(subprotocol, headers)
        # Everything is ready before the head goes out: the connection may hand us the
        # first frames while we are still in stream_send.
        self._ws = Connection(ConnectionType.SERVER, extensions=extensions)
        self._deflate = bool(extensions)
        self.state = _CONNECTED
        self._head_sent = True
        self._status = status
        self._response_headers = response_headers
        interval = self._context.config.websocket_ping_interval
        if interval is not None:
            self._next_ping = self._context.now + interval
        self._owner.stream_send(
            Response(stream_id=self.stream_id, headers=response_headers, status_code=status)
        )

    def _app_message(self, message: Any) -> None:
        data = message.get("bytes")
        text = message.get("text")
        if (data is None) == (text is None):
            raise ValueError("websocket.send needs exactly one of 'bytes' and 'text'")
        payload: str | bytes
        if text is not None:
            if not isinstance(text, str):
                raise TypeError(f"websocket.send 'text' must be a str, not {type(text).__name__}")
            payload = text
        else:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"websocket.send 'bytes' must be bytes, not {type(data).__name__}")
            payload = bytes(data)
        if self._deflate:
            event: WSEvent
            if isinstance(payload, str):
                event = TextMessage(data=payload)
            else:
                event = BytesMessage(data=payload)
            self._send_frame(event)
        else:
            # wsproto keeps no state for a whole message sent without an extension (it
            # opens no fragmented message), so writing the frame here is the same.
            self._owner.stream_send(Data(stream_id=self.stream_id, data=server_frame(payload)))

    def _app_close(self, message: Any) -> None:
        code = message.get("code")
        if code is None:
            code = _NORMAL_CLOSURE
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"websocket.close 'code' must be an int, not {code!r}")
        if code not in _SENDABLE_CLOSE_CODES:
            raise ValueError(f"websocket.close 'code' {code} is not one a peer may receive")
        reason = message.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"websocket.close 'reason' must be a str or None, not {reason!r}")
        if self.state is _HANDSHAKE:
            self._send_error_response(403)
            return
        self._finish(code, CloseConnection(code=code, reason=reason or None), by_app=True)

    def _response_start(self, message: Any) -> None:
        status = message.get("status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(f"websocket.http.response.start 'status' is not an int: {status!r}")
        if not 200 <= status <= 999:
            raise ValueError(f"websocket.http.response.start 'status' is not 200-999: {status}")
        headers = build_and_validate_headers(message.get("headers") or ())
        self.state = _RESPONSE
        self._status = int(status)
        self._response_headers = headers

    def _response_body(self, message: Any) -> None:
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, (bytearray, memoryview)):
                raise TypeError(f"websocket.http.response.body 'body' is a {type(body).__name__}")
            body = bytes(body)
        more_body = bool(message.get("more_body", False))
        if not more_body:
            self.state = _HTTPCLOSED
        owner = self._owner
        if not self._head_sent:
            self._head_sent = True
            head = Response(self.stream_id, self._response_headers, self._status)
            owner.stream_send(head)
        if body:
            owner.stream_send(Data(stream_id=self.stream_id, data=body))
        if not more_body:
            owner.stream_send(EndData(stream_id=self.stream_id))
            self._disconnect(_ABNORMAL_CLOSURE)
            self._end()

    def _app_left_early(self) -> None:
        if self.state is _CONNECTED:
            self._finish(_INTERNAL_ERROR, CloseConnection(code=_INTERNAL_ERROR), by_app=True)
        elif not self._head_sent:
            self._send_error_response(500)
        else:
            # A denial response's head is out but its body is not complete.
            self.state = _HTTPCLOSED
            self._owner.stream_send(StreamClosed(stream_id=self.stream_id))
            self._end()

    def next_deadline(self) -> float | None:
        """When the next ping is due (``websocket_ping_interval``), or None."""
        return self._next_ping

    def handle_timer(self) -> None:
        """Send a ping if one is due, and set the next deadline."""
        due = self._next_ping  # Only set while the WebSocket is open.
        now = self._context.now
        interval = self._context.config.websocket_ping_interval
        if due is not None and now >= due and interval:
            self._send_frame(Ping())
            self._next_ping = now + interval

    def _send_frame(self, event: WSEvent) -> None:
        assert self._ws is not None
        self._owner.stream_send(Data(stream_id=self.stream_id, data=self._ws.send(event)))

    def _finish(self, code: int, frame: WSEvent | None = None, *, by_app: bool = False) -> None:
        """End the open WebSocket: send ``frame`` (a close), tell the application ``code``
        and end our side. Unless the application asked for it, its later messages are
        dropped (it may not know yet)."""
        self._drop_app_messages = not by_app
        self.state = _CLOSED
        self._text_parts.clear()
        self._byte_parts.clear()
        if frame is not None:
            self._send_frame(frame)
        self._disconnect(code)
        self._owner.stream_send(EndData(stream_id=self.stream_id))
        self._end()

    def _send_error_response(self, status: int, extra: Headers | None = None) -> None:
        self.state = _HTTPCLOSED
        self._send_error_head(status, extra)
        self._disconnect(_ABNORMAL_CLOSURE)
        self._end()

    def _end(self) -> None:
        self._next_ping = None  # No pings once the stream is over.
        super()._end()
