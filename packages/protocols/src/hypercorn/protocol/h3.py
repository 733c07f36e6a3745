"""One HTTP/3 connection over QUIC, on aioquic's sans-IO classes.

:class:`H3Connection` drives an aioquic ``QuicConnection`` (packets, TLS, loss recovery,
flow control) and aioquic's HTTP/3 layer (framing, QPACK) with datagrams and the time in
``context.now``, and maps them onto the ASGI streams shared with HTTP/1.1 and HTTP/2
(``HTTPStream``, and ``WSStream`` for RFC 9220 WebSockets).
:class:`~hypercorn.protocol.quic.QuicEndpoint` makes one per client connection.

Rules this module enforces
==========================

**Start.** HTTP/3 (control and QPACK streams, SETTINGS with ``ENABLE_CONNECT_PROTOCOL`` = 1)
starts once TLS negotiated the ``h3`` ALPN. With ``verify_mode`` ``CERT_OPTIONAL`` or
``CERT_REQUIRED`` the client is asked for a certificate; when the handshake completes, a
missing one (``CERT_REQUIRED``) or one that does not verify against ``ca_certs`` closes the
connection with a TLS alert (``certificate_required``/``bad_certificate``) before any request
is read.

**Requests.** A request HEADERS frame on a client bidirectional stream becomes a ``Request``
(``:method`` upper-cased, ``raw_path`` = ``:path``, pseudo headers removed, ``host`` first
from ``:authority``, ``http_version`` ``"3"``) for a new stream: a ``WSStream`` for an
extended CONNECT with ``:protocol: websocket``, else an ``HTTPStream``; the scheme is always
``https``/``wss`` and ``client`` the peer's address at that moment. DATA becomes ``Body``,
the end of the stream ``EndBody``, request trailers ``Trailers``, the client resetting the
request (or sending STOP_SENDING for the response) ``StreamClosed``. A request is refused
with ``H3_REQUEST_REJECTED`` (reset and STOP_SENDING, no application) after
:meth:`H3Connection.shutdown`, and while ``h2_max_concurrent_streams`` applications still run
on the connection (counting those whose stream the client reset), as on HTTP/2. aioquic
lets a client open at most 128 request streams at a time.

**Responses.** Heads get ``:status`` and then ``context.default_headers("h3")`` (1xx heads
too, so 103 Early Hints). Connection-specific headers (``connection``, ``keep-alive``,
``proxy-connection``, ``transfer-encoding``, ``upgrade``, and ``te``: RFC 9114 §4.2) are
dropped; a name that is not a lower-case token, or a value holding NUL, CR or LF, is a
``ValueError`` from the application's ``send()``. A stream's last head or data chunk is held
until the driver takes datagrams, so that the end of the response rides on it (a bodyless
response is one HEADERS frame with FIN). Trailers are a last HEADERS frame. A ``Request``
from a stream is a server push: PUSH_PROMISE on the parent stream and a push stream with
its own ``HTTPStream``, while the client's MAX_PUSH_ID allows (otherwise dropped).
``StreamClosed`` from a stream whose response is unfinished resets it (``H3_INTERNAL_ERROR``,
with STOP_SENDING if the request is still arriving); once a response is complete, the rest
of its request is declined with STOP_SENDING ``H3_NO_ERROR`` (RFC 9114 §4.1.1).

**Backpressure.** aioquic takes output at once and sends it as the congestion and flow
control windows allow. :meth:`H3Connection.can_send` is false while more than
``BUFFER_HIGH_WATER`` bytes of the stream wait to be sent for the first time; ``SendReady``
follows (from :meth:`H3Connection.datagrams_to_send`) once fewer than ``BUFFER_LOW_WATER``
do. aioquic grants receive window as data arrives, so the reading side has no backpressure
(``reading_paused`` is always false).

**Ending.** :meth:`H3Connection.shutdown` and reaching ``keep_alive_max_requests`` send
GOAWAY, refuse newer requests and let the open ones finish; once the client acknowledged
every response, the connection closes (CONNECTION_CLOSE ``H3_NO_ERROR``). Without open
streams, ``keep_alive_timeout`` leads to the same close. With open streams and a client
silent for a third of the QUIC idle timeout (at most 10 s), a PING keeps a slow application
or a quiet WebSocket from idling out. :attr:`H3Connection.closed` turns true after aioquic's
closing period (keep calling :meth:`H3Connection.handle_timer`); streams still open then get
``StreamClosed``. Nothing the peer sends makes a method raise: errors close the connection.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, final

import aioquic
from aioquic.h3.connection import H3_ALPN, ErrorCode
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    StopSendingReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicErrorCode, QuicFrameType

from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    Request,
    Response,
    SendReady,
    StreamClosed,
    Trailers,
)
from hypercorn.protocol.h2_flow import BUFFER_HIGH_WATER, BUFFER_LOW_WATER, copy_headers
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import ConnectionState
from hypercorn.utils import filter_pseudo_headers

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from aioquic.h3.events import H3Event
    from aioquic.quic.events import QuicEvent

    from hypercorn.protocol.context import ProtocolContext, Stream
    from hypercorn.protocol.events import DriverEvent, Event
    from hypercorn.protocol.quic import ServerH3Connection, ServerQuicConnection
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent

__all__ = (
    "BUFFER_HIGH_WATER",
    "BUFFER_LOW_WATER",
    "H3_ALPN",
    "Address",
    "H3Connection",
)

Headers = list[tuple[bytes, bytes]]
#: A UDP peer address as the socket gives it (``(host, port)``, or 4 items for IPv6).
Address = tuple[Any, ...]

#: Longest silence from the client, while streams are open, before the server pings.
_MAX_PING_INTERVAL = 10.0
#: aioquic 1.4 and later send 1xx heads before the final one; 1.3 (the last release for
#: Python 3.10) counts a second HEADERS frame as trailers, so early hints are dropped there.
_INFORMATIONAL_HEADS = tuple(int(part) for part in aioquic.__version__.split(".")[:2]) >= (1, 4)
_HEADERS = 0  # a held item: a response head
_DATA = 1  # a held item: a data chunk


# ---------------------------------------------------------------------------------------
# The connection
# ---------------------------------------------------------------------------------------


@final
class _Entry:
    """What the connection keeps per stream."""

    __slots__ = (
        "finished",
        "held",
        "local_done",
        "pushed",
        "remote_done",
        "stream",
        "stream_id",
        "waiting",
    )

    def __init__(self, stream: Stream, stream_id: int, *, pushed: bool = False) -> None:
        self.stream = stream
        self.stream_id = stream_id
        #: The last head or data chunk, not yet handed to aioquic.
        self.held: tuple[int, Any] | None = None
        #: The stream queued the end of its response.
        self.finished = False
        #: FIN was written or the stream was reset: nothing more can be sent.
        self.local_done = False
        #: The client ended or reset its side (a pushed stream starts that way).
        self.remote_done = pushed
        self.pushed = pushed
        #: ``can_send`` said no: ``SendReady`` is owed.
        self.waiting = False


@final
class H3Connection:
    """One server-side HTTP/3 connection; the ``Connection`` API without byte streams.

    Implements ``StreamOwner`` for its streams. See the module docstring for the rules.
    ``quic`` is a fresh server-side connection that has not received anything yet;
    ``server`` is the local ``(host, port)`` for the scopes; ``on_connection_id`` is told
    about every connection id aioquic issues or retires, so that the endpoint routes them.
    """

    __slots__ = (
        "_close_reason",
        "_closing",
        "_context",
        "_draining",
        "_events",
        "_h3",
        "_idle_since",
        "_inbound",
        "_last_heard",
        "_last_stream_id",
        "_on_connection_id",
        "_ping_interval",
        "_pinged_at",
        "_pushed",
        "_quic",
        "_requests",
        "_server",
        "_shutting_down",
        "_state",
        "_streams",
        "_terminated",
    )

    def __init__(
        self,
        context: ProtocolContext,
        quic: ServerQuicConnection,
        *,
        server: tuple[str, int] | None,
        on_connection_id: Callable[[H3Connection, bytes, bool], None] | None = None,
    ) -> None:
        self._context = context
        self._quic = quic
        self._server = server
        self._on_connection_id = on_connection_id
        self._h3: ServerH3Connection | None = None
        self._state = ConnectionState(dict(context.lifespan_state))
        self._streams: dict[int, _Entry] = {}
        self._events: list[DriverEvent] = []
        self._inbound = 0  # client streams in _streams
        self._pushed = 0  # pushed streams in _streams
        self._requests = 0
        self._last_stream_id = -4  # the highest client stream taken
        self._shutting_down = False  # no new requests; close once the streams finish
        self._closing = False  # CONNECTION_CLOSE asked for
        self._close_reason: str | None = None  # close once every response is delivered
        self._draining: set[int] = set()  # finished streams whose output may be in flight
        self._terminated = False
        self._idle_since = context.now
        self._last_heard = context.now
        self._pinged_at = context.now
        self._ping_interval = min(_MAX_PING_INTERVAL, quic.configuration.idle_timeout / 3)

    # -----------------------------------------------------------------------------------
    # What the endpoint needs
    # -----------------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        """True once a packet of the client was decrypted (not a forged Initial)."""
        return self._quic.established

    # -----------------------------------------------------------------------------------
    # The driver's API
    # -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the QUIC connection is over (after its closing period)."""
        return self._terminated

    @property
    def reading_paused(self) -> bool:
        """Always False: aioquic grants receive window by itself."""
        return False

    def receive_datagram(self, data: bytes, address: Address) -> None:
        """Feed a datagram from ``address`` (at ``context.now``). Never raises."""
        if self._terminated:
            return
        now = self._context.now
        self._last_heard = now
        try:
            self._quic.receive_datagram(data, address, now)
        except Exception:  # aioquic failing on hostile input is the peer's error.
            self._close(QuicErrorCode.INTERNAL_ERROR, "internal error", transport=True)
        self._pump()

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """The datagrams to write now (``context.now``), each with its address."""
        if self._terminated:
            return []
        self._release_held()
        quic = self._quic
        if self._draining:
            self._draining = {sid for sid in self._draining if not quic.delivered(sid)}
        if self._close_reason is not None and not self._draining:
            self._close(ErrorCode.H3_NO_ERROR, self._close_reason)
        try:
            datagrams = quic.datagrams_to_send(self._context.now)
        except Exception:  # (Defensive: aioquic failing to build packets.)
            datagrams = []
            self._close(QuicErrorCode.INTERNAL_ERROR, "internal error", transport=True)
        self._pump()
        self._wake_senders()
        return datagrams

    def events(self) -> list[DriverEvent]:
        """Take the driver events that are waiting."""
        events, self._events = self._events, []
        return events

    def app_receive(self, stream_id: int) -> ASGIReceiveEvent | None:
        """The stream's next message for the application."""
        entry = self._streams.get(stream_id)
        return None if entry is None else entry.stream.app_receive()

    def app_send(self, stream_id: int, message: ASGISendEvent) -> None:
        """Pass an application message to its stream (ignored for a finished stream)."""
        entry = self._streams.get(stream_id)
        if entry is not None:
            entry.stream.app_send(message)
            self._maybe_remove(entry)

    def app_finished(self, stream_id: int) -> None:
        """The stream's application returned or raised."""
        entry = self._streams.get(stream_id)
        if entry is not None:
            entry.stream.app_finished()
            self._maybe_remove(entry)

    def can_send(self, stream_id: int) -> bool:
        """False while more than ``BUFFER_HIGH_WATER`` bytes of the stream wait to be sent;
        then ``SendReady`` follows once fewer than ``BUFFER_LOW_WATER`` do."""
        entry = self._streams.get(stream_id)
        if entry is None or entry.local_done:
            return True
        held = entry.held
        pending = self._quic.unsent_bytes(stream_id)
        if held is not None and held[0] == _DATA:
            pending += len(held[1])
        if pending <= BUFFER_HIGH_WATER:
            return True
        entry.waiting = True
        return False

    def next_deadline(self) -> float | None:
        """The earliest of aioquic's timer, the streams' deadlines and the keep-alive or
        ping deadline."""
        if self._terminated:
            return None
        deadline = self._quic.get_timer()
        candidates: list[float | None] = []
        if self._streams:
            if not self._closing:
                candidates.append(self._ping_due())
            candidates.extend(entry.stream.next_deadline() for entry in self._streams.values())
        elif not self._closing and self._close_reason is None:
            candidates.append(self._idle_since + self._context.config.keep_alive_timeout)
        for due in candidates:
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        return deadline

    def handle_timer(self) -> None:
        """Act on every deadline that has passed (``context.now`` is current)."""
        if self._terminated:
            return
        now = self._context.now
        if self._quic_timer(now):
            return
        for entry in list(self._streams.values()):
            due = entry.stream.next_deadline()
            if due is not None and due <= now:
                entry.stream.handle_timer()
        if self._streams:
            if not self._closing and now >= self._ping_due():
                self._pinged_at = now
                self._quic.send_ping(0)
        elif (
            not self._closing
            and self._close_reason is None
            and now >= self._idle_since + self._context.config.keep_alive_timeout
        ):
            self._shutting_down = True
            self._close_when_delivered("idle")

    def _quic_timer(self, now: float) -> bool:
        """Run aioquic's timer if it is due; True if that ended the connection."""
        timer = self._quic.get_timer()
        if timer is not None and now >= timer:
            try:
                self._quic.handle_timer(now)
            except Exception:  # (Defensive, as in receive_datagram.)
                self._close(QuicErrorCode.INTERNAL_ERROR, "internal error", transport=True)
            self._pump()
        return self._terminated

    def shutdown(self) -> None:
        """GOAWAY: refuse new requests, let the open ones finish, then close."""
        if self._shutting_down or self._terminated:
            return
        self._shutting_down = True
        h3 = self._h3
        if h3 is not None and not self._closing:
            with contextlib.suppress(Exception):
                h3.send_goaway(self._last_stream_id + 4)
        if not self._streams:
            self._close_when_delivered("shutdown")

    # -----------------------------------------------------------------------------------
    # The StreamOwner protocol
    # -----------------------------------------------------------------------------------

    def stream_send(self, event: Event) -> None:
        """Hand a stream's output to aioquic (or push, or reset the stream)."""
        entry = self._streams.get(event.stream_id)
        if entry is None or entry.local_done or self._h3 is None:
            return
        if isinstance(event, Data):
            if event.data:
                self._hold(entry, _DATA, bytes(event.data))
        elif isinstance(event, Response):
            self._hold(entry, _HEADERS, self._head(event.status_code, event.headers))
        elif isinstance(event, InformationalResponse):
            if not _INFORMATIONAL_HEADS:
                return  # a hint only; aioquic 1.3 would take the final head for trailers
            block = self._head(event.status_code, event.headers)
            self._release(entry)
            self._send(entry, _HEADERS, block, end=False)
        elif isinstance(event, EndData):
            self._end(entry)
        elif isinstance(event, Trailers):
            trailers: Headers = []
            copy_headers(event.headers, trailers, http3=True)
            if trailers:
                self._release(entry)
                entry.finished = True
                self._send(entry, _HEADERS, trailers, end=True)
            else:
                self._end(entry)
        elif isinstance(event, StreamClosed):
            self._reset(entry, ErrorCode.H3_INTERNAL_ERROR)
        elif isinstance(event, Request):
            self._push(entry, event)

    def driver_event(self, event: DriverEvent) -> None:
        """Queue an event for the driver."""
        self._events.append(event)

    # -----------------------------------------------------------------------------------
    # Events from aioquic
    # -----------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Act on every event aioquic has queued."""
        quic = self._quic
        while (event := quic.next_event()) is not None:
            if isinstance(event, (ConnectionIdIssued, ConnectionIdRetired)):
                if self._on_connection_id is not None:
                    issued = isinstance(event, ConnectionIdIssued)
                    self._on_connection_id(self, event.connection_id, issued)
                continue
            if isinstance(event, ConnectionTerminated):
                self._terminate()
                continue
            if self._closing or self._terminated:
                continue
            if isinstance(event, ProtocolNegotiated):
                if self._h3 is None and event.alpn_protocol in H3_ALPN:
                    self._h3 = quic.start_http3()
                continue
            if isinstance(event, HandshakeCompleted):
                self._check_client_certificate()
                continue
            self._quic_event(event)

    def _quic_event(self, event: QuicEvent) -> None:
        h3 = self._h3
        if h3 is None:
            return
        try:
            h3_events = h3.handle_event(event)
        except Exception:  # aioquic failing on hostile input some other way.
            self._close(ErrorCode.H3_GENERAL_PROTOCOL_ERROR, "protocol error")
            return
        for h3_event in h3_events:
            self._h3_event(h3_event)
        if isinstance(event, StreamReset):
            self._on_reset(event.stream_id)
        elif isinstance(event, StopSendingReceived):
            self._on_stop_sending(event.stream_id)

    def _check_client_certificate(self) -> None:
        problem = self._quic.client_certificate_problem()
        if problem is not None:
            alert, reason = problem
            self._close(QuicErrorCode.CRYPTO_ERROR + alert, reason, transport=True)

    def _h3_event(self, event: H3Event) -> None:
        if self._closing:
            return
        if isinstance(event, DataReceived):
            entry = self._streams.get(event.stream_id)
            if entry is None or entry.remote_done:
                return
            if event.data:
                entry.stream.handle(Body(stream_id=event.stream_id, data=event.data))
            if event.stream_ended:
                self._remote_end(entry)
        elif isinstance(event, HeadersReceived):
            if event.push_id is not None:
                return
            entry = self._streams.get(event.stream_id)
            if entry is None:
                self._on_request(event)
            elif not entry.remote_done:
                headers = list(event.headers)
                entry.stream.handle(Trailers(stream_id=event.stream_id, headers=headers))
                if event.stream_ended:
                    self._remote_end(entry)
        # Datagrams and WebTransport are not offered; aioquic drops what it cannot use.

    def _on_request(self, event: HeadersReceived) -> None:
        stream_id = event.stream_id
        method = path = b""
        protocol: bytes | None = None
        for name, value in event.headers:
            if not name.startswith(b":"):
                break  # aioquic checked that pseudo headers come first.
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":protocol":
                protocol = value
        if not method or stream_id % 4:
            # Trailers of a stream that is gone (a request always has :method).
            return
        if self._shutting_down or self._inbound >= self._context.config.h2_max_concurrent_streams:
            self._reject(stream_id)
            return
        method_name = method.decode("latin-1").upper()
        request = Request(
            stream_id=stream_id,
            headers=filter_pseudo_headers(event.headers),
            http_version="3",
            method=method_name,
            raw_path=path,
            state=self._state,
        )
        websocket = (
            method_name == "CONNECT" and protocol is not None and protocol.lower() == b"websocket"
        )
        stream = self._new_stream(WSStream if websocket else HTTPStream, stream_id)
        entry = _Entry(stream, stream_id)
        self._streams[stream_id] = entry
        self._inbound += 1
        self._last_stream_id = max(self._last_stream_id, stream_id)
        stream.handle(request)
        if event.stream_ended:
            self._remote_end(entry)
        self._maybe_remove(entry)
        self._requests += 1
        if self._requests >= self._context.config.keep_alive_max_requests:
            self.shutdown()

    def _remote_end(self, entry: _Entry) -> None:
        entry.remote_done = True
        entry.stream.handle(EndBody(stream_id=entry.stream_id))
        self._maybe_remove(entry)

    def _on_reset(self, stream_id: int) -> None:
        """The client reset its side of a request: the request is cancelled."""
        entry = self._streams.get(stream_id)
        if entry is not None and not entry.remote_done:
            entry.remote_done = True
            self._reset(entry, ErrorCode.H3_REQUEST_CANCELLED, tell_stream=False)
            entry.stream.handle(StreamClosed(stream_id=stream_id))
            self._maybe_remove(entry)

    def _on_stop_sending(self, stream_id: int) -> None:
        """The client does not want the response (aioquic has reset our side)."""
        entry = self._streams.get(stream_id)
        if entry is None or entry.local_done:
            return
        self._drop_output(entry)
        entry.local_done = True
        if not entry.remote_done:
            entry.remote_done = True
            self._stop(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        entry.stream.handle(StreamClosed(stream_id=stream_id))
        self._maybe_remove(entry)

    # -----------------------------------------------------------------------------------
    # Sending
    # -----------------------------------------------------------------------------------

    def _head(self, status_code: int, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
        block: Headers = [(b":status", b"%d" % status_code)]
        copy_headers(headers, block, http3=True)
        block.extend(self._context.default_headers("h3"))
        return block

    def _hold(self, entry: _Entry, kind: int, payload: Any) -> None:
        """Keep ``payload`` back until the next output (or the end) of the stream."""
        self._release(entry)
        entry.held = (kind, payload)

    def _release(self, entry: _Entry) -> None:
        held = entry.held
        if held is not None:
            entry.held = None
            self._send(entry, held[0], held[1], end=False)

    def _release_held(self) -> None:
        for entry in list(self._streams.values()):
            self._release(entry)

    def _end(self, entry: _Entry) -> None:
        """FIN, on the held item if there is one."""
        entry.finished = True
        held = entry.held
        if held is not None:
            entry.held = None
            self._send(entry, held[0], held[1], end=True)
        else:
            self._send(entry, _DATA, b"", end=True)

    def _send(self, entry: _Entry, kind: int, payload: Any, *, end: bool) -> None:
        h3 = self._h3
        if h3 is None or entry.local_done:
            return
        try:
            if kind == _HEADERS:
                h3.send_headers(entry.stream_id, payload, end_stream=end)
            else:
                h3.send_data(entry.stream_id, payload, end_stream=end)
        except Exception:  # aioquic refusing the stream's output: fail the stream.
            self._reset(entry, ErrorCode.H3_INTERNAL_ERROR)
            return
        if end:
            entry.local_done = True
            self._wake(entry)
            self._maybe_remove(entry)

    def _push(self, parent: _Entry, request: Request) -> None:
        h3 = self._h3
        if (
            h3 is None
            or self._shutting_down
            or parent.pushed
            or parent.finished
            or self._pushed >= self._context.config.h2_max_concurrent_streams
        ):
            return
        host = b""
        headers: Headers = []
        for name, value in request.headers:
            if name == b"host":
                host = host or value
            else:
                headers.append((name, value))
        pushed_headers: Headers = [(b"host", host)]
        copy_headers(headers, pushed_headers, http3=True)
        block: Headers = [
            (b":method", request.method.encode("latin-1")),
            (b":scheme", b"https"),
            (b":authority", host),
            (b":path", request.raw_path),
            *pushed_headers[1:],
        ]
        self._release(parent)
        try:
            push_stream_id = h3.send_push_promise(parent.stream_id, block)
        except Exception:  # No push id left (or none allowed): the push is dropped.
            return
        stream = self._new_stream(HTTPStream, push_stream_id)
        entry = _Entry(stream, push_stream_id, pushed=True)
        self._streams[push_stream_id] = entry
        self._pushed += 1
        stream.handle(
            Request(
                stream_id=push_stream_id,
                headers=pushed_headers,
                http_version="3",
                method=request.method,
                raw_path=request.raw_path,
                state=self._state,
            )
        )
        stream.handle(EndBody(stream_id=push_stream_id))
        self._maybe_remove(entry)

    def _reject(self, stream_id: int) -> None:
        """Refuse a request before any application saw it (RFC 9114 §4.1.1)."""
        with contextlib.suppress(Exception):
            self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
        self._stop(stream_id, ErrorCode.H3_REQUEST_REJECTED)
        if self._h3 is not None:
            self._h3.sending_done(stream_id)

    def _reset(self, entry: _Entry, error_code: int, *, tell_stream: bool = True) -> None:
        """Abort the stream's output (RESET_STREAM) and tell the stream."""
        if entry.local_done:
            return
        entry.local_done = True
        self._drop_output(entry)
        stream_id = entry.stream_id
        if not self._closing:
            with contextlib.suppress(Exception):
                self._quic.reset_stream(stream_id, error_code)
            if not entry.remote_done:
                entry.remote_done = True
                self._stop(stream_id, error_code)
            if self._h3 is not None:
                self._h3.sending_done(stream_id)
        entry.remote_done = True
        if tell_stream:
            entry.stream.handle(StreamClosed(stream_id=stream_id))
            self._maybe_remove(entry)

    def _stop(self, stream_id: int, error_code: int) -> None:
        """Ask the client to stop sending on a request stream (STOP_SENDING)."""
        with contextlib.suppress(Exception):  # A stream aioquic has forgotten.
            self._quic.stop_stream(stream_id, error_code)

    def _drop_output(self, entry: _Entry) -> None:
        entry.held = None
        self._wake(entry)

    def _wake(self, entry: _Entry) -> None:
        if entry.waiting:
            entry.waiting = False
            self._events.append(SendReady(entry.stream_id))

    def _wake_senders(self) -> None:
        """``SendReady`` for the streams whose unsent bytes fell below the low-water mark."""
        quic = self._quic
        for entry in self._streams.values():
            if entry.waiting and quic.unsent_bytes(entry.stream_id) < BUFFER_LOW_WATER:
                self._wake(entry)

    def _maybe_remove(self, entry: _Entry) -> None:
        """Forget a stream once its output is written and its application finished."""
        if not entry.local_done or not entry.stream.closed:
            return
        stream_id = entry.stream_id
        if self._streams.pop(stream_id, None) is None:
            return
        if entry.pushed:
            self._pushed -= 1
        else:
            self._inbound -= 1
        if not entry.remote_done and not self._closing:
            # A complete response: the rest of the request is not needed (RFC 9114 §4.1.1).
            entry.remote_done = True
            self._stop(stream_id, ErrorCode.H3_NO_ERROR)
        self._draining.add(stream_id)
        if not self._streams:
            self._idle_since = self._context.now
            if self._shutting_down:
                self._close_when_delivered("shutdown")

    # -----------------------------------------------------------------------------------
    # Helpers
    # -----------------------------------------------------------------------------------

    def _new_stream(self, kind: type[HTTPStream | WSStream], stream_id: int) -> Stream:
        """A stream whose ``client`` is the peer's address now (it may migrate later)."""
        address = self._quic.peer_address()
        client = None if address is None else (str(address[0]), int(address[1]))
        return kind(self._context, self, stream_id, ssl=True, client=client, server=self._server)

    def _ping_due(self) -> float:
        return max(self._last_heard, self._pinged_at) + self._ping_interval

    def _close_when_delivered(self, reason: str) -> None:
        """Close gracefully once every response was acknowledged (checked after each
        :meth:`datagrams_to_send`): CONNECTION_CLOSE would discard what is in flight."""
        if self._close_reason is None:
            self._close_reason = reason

    def _close(self, error_code: int, reason: str, *, transport: bool = False) -> None:
        """Ask aioquic to close (CONNECTION_CLOSE); the streams end when it is over."""
        if self._closing:
            return
        self._closing = True
        self._quic.close(
            error_code=error_code,
            frame_type=QuicFrameType.PADDING if transport else None,
            reason_phrase=reason,
        )

    def _terminate(self) -> None:
        """The QUIC connection is over: every stream gets ``StreamClosed``."""
        if self._terminated:
            return
        self._terminated = True
        self._closing = True
        for entry in list(self._streams.values()):
            entry.local_done = True
            entry.remote_done = True
            self._drop_output(entry)
            entry.stream.handle(StreamClosed(stream_id=entry.stream_id))
            self._maybe_remove(entry)
