"""The HTTP/2 connection: h2 framing, flow control, scheduling and defences, sans I/O.

:class:`H2Connection` is fed the peer's bytes and hands back bytes to write and driver
events; each HTTP/2 stream is an ASGI stream (:class:`~hypercorn.protocol.http_stream.
HTTPStream`, or :class:`~hypercorn.protocol.ws_stream.WSStream` for RFC 8441 WebSockets).

Rules this module enforces
==========================

**Start.** Construction queues the server's SETTINGS: ``MAX_CONCURRENT_STREAMS``
(``h2_max_concurrent_streams``), ``MAX_HEADER_LIST_SIZE`` (``h2_max_header_list_size``),
``MAX_FRAME_SIZE`` (``h2_max_inbound_frame_size``, clamped to the 16 KiB - 16 MiB range
HTTP/2 allows) and ``ENABLE_CONNECT_PROTOCOL`` = 1. The limits apply at once, before the
client acknowledges them. With an :class:`~hypercorn.protocol.events.H2Switch` the bytes
already read are fed first; an ``Upgrade: h2c`` request becomes stream 1 (its request is
complete; the hop-by-hop ``connection``, ``upgrade`` and ``http2-settings`` headers are
dropped and ``http_version`` is ``"2"``). A bad client preface ends the connection with
GOAWAY ``PROTOCOL_ERROR`` (never an HTTP/1.1 400).

**Requests.** A HEADERS block opening a stream becomes a ``Request`` (``:method``
upper-cased, ``raw_path`` = ``:path``, pseudo headers removed, ``host`` first from
``:authority``, ``http_version`` ``"2"``) for a new stream: a ``WSStream`` for an extended
CONNECT with ``:protocol: websocket``, else an ``HTTPStream``. DATA becomes ``Body``, the
end of the stream ``EndBody``, request trailers ``Trailers`` (the HTTP stream drops them),
a reset or the end of the connection ``StreamClosed``. (A plain CONNECT, without
``:protocol``, has no ``:path``: its ``raw_path`` is empty.) A new stream is refused
(RST_STREAM ``REFUSED_STREAM``) while ``h2_max_concurrent_streams`` streams are still
running (counting those the client reset but whose application has not finished) and after
GOAWAY; more streams *open on the wire* than advertised is h2's connection error
(``PROTOCOL_ERROR``).

**Responses.** Heads get ``:status`` and then ``context.default_headers("h2")`` appended
(final and 1xx heads, so 103 Early Hints too). Connection-specific headers
(``connection``, ``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``,
and ``te`` other than ``trailers``) are dropped; a header name that is not a lower-case
token, or a value holding NUL, CR or LF, is a ``ValueError`` from the application's
``send()``. Trailers end the stream; they are sent only when the stream sends them (it
checks ``te: trailers``). A ``Request`` from a stream is a server push: a PUSH_PROMISE
(only if the client allows push and has room for another stream, and the path is not
empty; otherwise dropped) and a new ``HTTPStream`` with the request and its end, so the
pushed response gets its own application. The promised request carries no default headers
(they are response headers).
``StreamClosed`` from a stream that has not finished its response resets it with
``INTERNAL_ERROR``; a finished response whose request body is still arriving is ended with
RST_STREAM ``NO_ERROR`` (RFC 9113 §8.1) once its application is done.

**Sending** happens in :meth:`H2Connection.data_to_send`: stream output waits in per-stream
queues (:mod:`hypercorn.protocol.h2_flow`) and is framed as the connection and stream
windows and the peer's maximum frame size allow, the next stream chosen by priority. So a
driver that cannot write simply does not call it, and the applications feel the
backpressure: :meth:`H2Connection.can_send` is false while a stream has more than
``BUFFER_HIGH_WATER`` bytes queued, and ``SendReady`` follows once it drains below
``BUFFER_LOW_WATER`` (so take :meth:`H2Connection.events` after ``data_to_send``, and call
``data_to_send`` after every call that may have produced output, not only after reads).
Data the client sends is acknowledged (WINDOW_UPDATE) only while its stream wants data,
otherwise when the application drains its inbox, so a slow application holds the client to
the flow-control window.

**Ending.** :meth:`H2Connection.shutdown`, and reaching ``keep_alive_max_requests``
requests, send GOAWAY ``NO_ERROR`` naming the last stream taken, refuse newer streams and
let the open ones finish; the connection is :attr:`~H2Connection.closed` once none remain.
While no stream is open, ``keep_alive_timeout`` is a deadline after which the connection
says GOAWAY and closes. The peer's GOAWAY, its end of the byte stream or any protocol error
closes at once (every stream gets ``StreamClosed``); protocol errors are answered with
GOAWAY and the error code h2 chose. The defences of :mod:`hypercorn.protocol.h2_limits`
(frame size, header blocks, control-frame floods, rapid reset) answer with GOAWAY too.
Nothing the peer sends makes :meth:`H2Connection.receive_data` raise.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final, final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hpack.exceptions import HPACKError
from hyperframe.frame import GoAwayFrame

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
from hypercorn.protocol.h2_flow import (
    BUFFER_HIGH_WATER,
    BUFFER_LOW_WATER,
    CONNECTION_SPECIFIC,
    END,
    HEAD,
    INFO,
    TRAILERS,
    LazyPriorityScheduler,
    Sender,
    StreamEntry,
    StreamScheduler,
    copy_headers,
)
from hypercorn.protocol.h2_limits import FrameGuard, ResetBudget
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import ConnectionState
from hypercorn.utils import filter_pseudo_headers

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hypercorn.protocol.context import ProtocolContext
    from hypercorn.protocol.events import DriverEvent, Event, H2Switch
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent

__all__ = ("BUFFER_HIGH_WATER", "BUFFER_LOW_WATER", "H2Connection")

Headers = list[tuple[bytes, bytes]]

#: Headers of an ``Upgrade: h2c`` request that were about the upgrade itself.
_UPGRADE_ONLY: Final = CONNECTION_SPECIFIC | {b"http2-settings"}
#: Output produced while reading (auto-replies) above which the driver should stop reading.
_OUTPUT_HIGH_WATER: Final = 65536
_MIN_FRAME_SIZE: Final = 2**14
_MAX_FRAME_SIZE: Final = 2**24 - 1


@final
class H2Connection:
    """One server-side HTTP/2 connection; implements ``Connection`` and ``StreamOwner``.

    See the module docstring for the rules. ``client``/``server`` are ``(host, port)`` or
    None; ``switch`` is the hand-over from HTTP/1.1 (prior knowledge or ``Upgrade: h2c``);
    ``scheduler`` picks the stream that sends next (by default round-robin until the client
    sends RFC 7540 priorities, which are followed from then on).
    """

    __slots__ = (
        "_client",
        "_conn",
        "_context",
        "_defaults",
        "_events",
        "_goaway_sent",
        "_guard",
        "_idle_since",
        "_inbound",
        "_last_stream_id",
        "_max_streams",
        "_out",
        "_pushed",
        "_requests",
        "_resets",
        "_scheduler",
        "_scheme",
        "_sender",
        "_server",
        "_ssl",
        "_state",
        "_streams",
        "_terminated",
        "_timed",
    )

    def __init__(
        self,
        context: ProtocolContext,
        *,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        switch: H2Switch | None = None,
        scheduler: StreamScheduler | None = None,
    ) -> None:
        config = context.config
        self._context = context
        self._ssl = ssl
        self._client = client
        self._server = server
        self._scheme = b"https" if ssl else b"http"
        self._state = ConnectionState(dict(context.lifespan_state))
        self._streams: dict[int, StreamEntry] = {}
        # The streams that may have timers (WebSockets); an HTTPStream never has one, so
        # the deadline is found without visiting every stream on every pump.
        self._timed: dict[int, StreamEntry] = {}
        # context.default_headers("h2") as last seen, and its values stripped (see _head).
        self._defaults: tuple[Headers | None, Headers] = (None, [])
        self._events: list[DriverEvent] = []
        self._out = bytearray()
        self._scheduler: StreamScheduler = scheduler or LazyPriorityScheduler()
        self._max_streams = config.h2_max_concurrent_streams
        self._inbound = 0  # client streams in _streams
        self._pushed = 0  # pushed streams in _streams
        self._requests = 0
        self._last_stream_id = 0  # the highest client stream taken
        self._goaway_sent = False
        self._terminated = False
        self._idle_since = context.now
        self._resets = ResetBudget()

        frame_size = min(max(config.h2_max_inbound_frame_size, _MIN_FRAME_SIZE), _MAX_FRAME_SIZE)
        # Outbound header normalisation and validation are off: every block we send is
        # built here from headers that copy_headers checked and normalised (lower-case
        # token names, no connection-specific headers, stripped values, credentials never
        # indexed) after our own pseudo headers, which is what h2 would have checked,
        # at a fraction of the cost. Inbound headers are still validated by h2.
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
                SettingCodes.MAX_FRAME_SIZE: frame_size,
                SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            },
        )
        conn.max_inbound_frame_size = frame_size
        conn.decoder.max_header_list_size = config.h2_max_header_list_size
        self._conn = conn
        self._sender = Sender(
            conn,
            self._scheduler,
            on_end=self._local_end,
            on_failure=self._abort,
            on_resume=self._resume,
        )
        self._guard = FrameGuard(
            max_frame_size=frame_size,
            max_header_block=max(2 * config.h2_max_header_list_size, frame_size),
        )

        if switch is None or switch.request is None:
            conn.initiate_connection()
        else:
            try:
                conn.initiate_upgrade_connection(switch.settings)
            except Exception:  # A bad HTTP2-Settings value (base64, frame or setting).
                self._fail(ErrorCodes.PROTOCOL_ERROR, "invalid HTTP2-Settings")
                return
            request = switch.request
            headers = [
                (name, value)
                for name, value in filter_pseudo_headers(request.headers)
                if name.lower() not in _UPGRADE_ONLY
            ]
            upgraded = Request(
                stream_id=1,
                headers=headers,
                http_version="2",
                method=request.method,
                raw_path=request.raw_path,
                state=self._state,
            )
            entry = self._open_stream(1, upgraded, websocket=False)
            entry.remote_done = True
            entry.stream.handle(EndBody(stream_id=1))
            self._count_request()
        self._take_output()
        if switch is not None and switch.data:
            self.receive_data(switch.data)

    # -----------------------------------------------------------------------------------
    # The Connection protocol
    # -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is over: after an error, the peer's end or GOAWAY, or
        after our GOAWAY once no stream remains. Write :meth:`data_to_send` first."""
        return self._terminated or (self._goaway_sent and not self._streams)

    @property
    def reading_paused(self) -> bool:
        """True while replies produced by reading wait to be taken (or after the end).

        The driver should also stop reading while its transport cannot write.
        """
        return self._terminated or len(self._out) > _OUTPUT_HIGH_WATER

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer (``b""``: the peer closed). Never raises for bad input."""
        if self._terminated:
            return
        if not data:
            self._terminate()
            return
        violation = self._guard.feed(data)
        if violation is not None:
            self._fail(violation.error_code, violation.reason)
            return
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            if type(exc) is h2.exceptions.ProtocolError and isinstance(
                exc.__cause__, HPACKError | IndexError | TypeError | UnicodeDecodeError
            ):
                # h2 calls an undecodable header block a PROTOCOL_ERROR; RFC 9113 §4.3
                # makes it a COMPRESSION_ERROR. Its GOAWAY is replaced (the connection is
                # over, so the auto-replies queued with it do not matter).
                self._conn.clear_outbound_data_buffer()
                self._conn.close_connection(
                    ErrorCodes.COMPRESSION_ERROR,
                    last_stream_id=self._conn.highest_inbound_stream_id,
                )
            self._fail(ErrorCodes.PROTOCOL_ERROR, "protocol error", exc.error_code)
            return
        except Exception:  # h2 failing on hostile input some other way is the peer's error.
            self._fail(ErrorCodes.PROTOCOL_ERROR, "protocol error")
            return
        for event in events:
            self._handle_h2_event(event)
        self._take_output()

    def data_to_send(self) -> bytes:
        """Frame what the streams queued, as flow control allows, and take all the bytes."""
        if not self._terminated and self._sender.flush(self._streams):
            self._guard.progress()  # response data went out: real work
        data = self._conn.data_to_send()
        out = self._out
        if not out:
            return data
        out += data
        self._out = bytearray()
        return bytes(out)

    def events(self) -> list[DriverEvent]:
        """Take the driver events that are waiting."""
        events, self._events = self._events, []
        return events

    def app_receive(self, stream_id: int) -> ASGIReceiveEvent | None:
        """The stream's next message for the application; acknowledges data it can take."""
        entry = self._streams.get(stream_id)
        if entry is None:
            return None
        message = entry.stream.app_receive()
        if entry.unacked and entry.stream.wants_data:
            self._ack(entry)
        return message

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
        """False while the stream has more than ``BUFFER_HIGH_WATER`` bytes queued."""
        entry = self._streams.get(stream_id)
        if entry is None or entry.local_done:
            return True
        return entry.queue.buffered <= BUFFER_HIGH_WATER

    def next_deadline(self) -> float | None:
        """The earliest stream deadline, or the idle deadline when no stream is open."""
        if self.closed:
            return None
        deadline: float | None = None
        if not self._streams:
            deadline = self._idle_since + self._context.config.keep_alive_timeout
        for entry in self._timed.values():
            due = entry.stream.next_deadline()
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        return deadline

    def handle_timer(self) -> None:
        """Run the streams' timers that are due; close an idle connection that timed out."""
        if self.closed:
            return
        now = self._context.now
        for entry in list(self._timed.values()):
            due = entry.stream.next_deadline()
            if due is not None and due <= now:
                entry.stream.handle_timer()
        if not self._streams and now >= (
            self._idle_since + self._context.config.keep_alive_timeout
        ):
            self._goaway()

    def shutdown(self) -> None:
        """GOAWAY: refuse new streams, finish the open ones, then close."""
        if not self._terminated:
            self._goaway()

    # -----------------------------------------------------------------------------------
    # The StreamOwner protocol
    # -----------------------------------------------------------------------------------

    def stream_send(self, event: Event) -> None:
        """Queue a stream's output (or push, or reset it)."""
        entry = self._streams.get(event.stream_id)
        if entry is None or entry.local_done or entry.finished:
            return
        if isinstance(event, Data):
            entry.queue.push_data(event.data)
        elif isinstance(event, Response):
            entry.queue.push_control(HEAD, self._head(event.status_code, event.headers))
        elif isinstance(event, InformationalResponse):
            entry.queue.push_control(INFO, self._head(event.status_code, event.headers))
        elif isinstance(event, EndData):
            entry.finished = True
            entry.queue.push_control(END, [])
        elif isinstance(event, Trailers):
            headers: Headers = []
            copy_headers(event.headers, headers)
            entry.finished = True
            entry.queue.push_control(TRAILERS, headers)
        elif isinstance(event, StreamClosed):
            self._reset(entry, ErrorCodes.INTERNAL_ERROR)
            return
        elif isinstance(event, Request):
            self._push(entry, event)
            return
        else:
            return
        self._sender.mark(entry.stream_id)

    def driver_event(self, event: DriverEvent) -> None:
        """Queue an event for the driver."""
        self._events.append(event)

    # -----------------------------------------------------------------------------------
    # Events from h2
    # -----------------------------------------------------------------------------------

    def _handle_h2_event(self, event: h2.events.Event) -> None:
        if self._terminated:
            return  # A defence closed the connection: the rest of the events are moot.
        if isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.StreamEnded):
            entry = self._streams.get(event.stream_id)
            if entry is not None and not entry.remote_done:
                entry.remote_done = True
                entry.stream.handle(EndBody(stream_id=event.stream_id))
                self._maybe_remove(entry)
        elif isinstance(event, h2.events.StreamReset):
            self._on_reset(event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            entry = self._streams.get(event.stream_id)
            if entry is not None:
                headers = [(name, value) for name, value in event.headers]
                entry.stream.handle(Trailers(stream_id=event.stream_id, headers=headers))
        elif isinstance(event, h2.events.PriorityUpdated):
            if event.stream_id:
                self._scheduler.prioritize(
                    event.stream_id,
                    event.depends_on or 0,
                    event.weight or 16,
                    bool(event.exclusive),
                )
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._terminate()
        # Window and settings changes are picked up when sending; pings are answered by h2.

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._goaway_sent or self._inbound >= self._max_streams:
            self._refuse(stream_id)
            return
        method = b""
        path = b""
        protocol: bytes | None = None
        for name, value in event.headers:
            if not name.startswith(b":"):
                break  # h2 checked that pseudo headers come first.
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":protocol":
                protocol = value
        method_name = method.decode("latin-1").upper()
        request = Request(
            stream_id=stream_id,
            headers=filter_pseudo_headers(event.headers),
            http_version="2",
            method=method_name,
            raw_path=path,
            state=self._state,
        )
        websocket = (
            method_name == "CONNECT" and protocol is not None and protocol.lower() == b"websocket"
        )
        self._open_stream(stream_id, request, websocket=websocket)
        self._count_request()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        entry = self._streams.get(stream_id)
        if entry is None or entry.remote_done:
            self._acknowledge(event.flow_controlled_length, stream_id)
            return
        if event.data:
            entry.stream.handle(Body(stream_id=stream_id, data=event.data))
        entry.unacked += event.flow_controlled_length
        if entry.stream.wants_data:
            self._ack(entry)

    def _on_reset(self, stream_id: int) -> None:
        entry = self._streams.get(stream_id)
        if entry is None:
            return
        incomplete = not entry.local_done
        self._guard.stream_closed(stream_id)
        entry.remote_done = True
        entry.local_done = True
        self._drop_queue(entry)
        if entry.unacked:
            self._ack(entry)
        entry.stream.handle(StreamClosed(stream_id=stream_id))
        self._maybe_remove(entry)
        if incomplete and not self._resets.waste():
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "too many streams reset")

    # -----------------------------------------------------------------------------------
    # Streams
    # -----------------------------------------------------------------------------------

    def _open_stream(self, stream_id: int, request: Request, *, websocket: bool) -> StreamEntry:
        stream_class = WSStream if websocket else HTTPStream
        stream = stream_class(
            self._context, self, stream_id, ssl=self._ssl, client=self._client, server=self._server
        )
        entry = StreamEntry(stream, stream_id)
        self._streams[stream_id] = entry
        if websocket:
            self._timed[stream_id] = entry
        self._inbound += 1
        if stream_id > self._last_stream_id:
            self._last_stream_id = stream_id
        self._scheduler.add(stream_id)
        stream.handle(request)
        return entry

    def _count_request(self) -> None:
        self._requests += 1
        if self._requests >= self._context.config.keep_alive_max_requests:
            self._goaway()

    def _refuse(self, stream_id: int) -> None:
        self._guard.stream_closed(stream_id)
        # (Cannot fail: h2 has just opened the stream.)
        with contextlib.suppress(h2.exceptions.H2Error):
            self._conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
        if not self._resets.waste():
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "too many streams refused")

    def _push(self, parent: StreamEntry, request: Request) -> None:
        conn = self._conn
        remote = conn.remote_settings
        if (
            self._goaway_sent
            or parent.pushed
            or not remote.enable_push
            or conn.open_outbound_streams >= remote.max_concurrent_streams
            or self._pushed >= self._max_streams
            or not request.raw_path  # an empty :path is malformed (RFC 9113 §8.3.1)
        ):
            return
        host = b""
        headers: Headers = []
        for name, value in request.headers:
            if name.lower() == b"host":
                host = host or value
            else:
                headers.append((name, value))
        pushed_headers: Headers = [(b"host", host)]
        copy_headers(headers, pushed_headers)
        request_block: Headers = [
            (b":method", request.method.encode("latin-1")),
            (b":scheme", self._scheme),
            (b":authority", host),
            (b":path", request.raw_path),
            *pushed_headers[1:],
        ]
        try:
            promised_id = conn.get_next_available_stream_id()
            conn.push_stream(parent.stream_id, promised_id, request_block)
        except h2.exceptions.H2Error:
            return
        stream = HTTPStream(
            self._context,
            self,
            promised_id,
            ssl=self._ssl,
            client=self._client,
            server=self._server,
        )
        entry = StreamEntry(stream, promised_id, pushed=True)
        self._streams[promised_id] = entry
        self._pushed += 1
        self._scheduler.add(promised_id, parent.stream_id)
        stream.handle(
            Request(
                stream_id=promised_id,
                headers=pushed_headers,
                http_version="2",
                method=request.method,
                raw_path=request.raw_path,
                state=self._state,
            )
        )
        stream.handle(EndBody(stream_id=promised_id))

    def _head(self, status_code: int, headers: Iterable[tuple[bytes, bytes]]) -> Headers:
        block: Headers = [(b":status", b"%d" % status_code)]
        copy_headers(headers, block)
        # The default headers have lower-case names of our own; only a configured alt-svc
        # value could carry whitespace, which h2's normalisation used to strip. The list
        # stays the same object until the date changes, so it is stripped once per change.
        defaults = self._context.default_headers("h2")
        source, stripped = self._defaults
        if defaults is not source:
            stripped = [(name, value.strip()) for name, value in defaults]
            self._defaults = (defaults, stripped)
        block.extend(stripped)
        return block

    def _ack(self, entry: StreamEntry) -> None:
        self._acknowledge(entry.unacked, entry.stream_id)
        entry.unacked = 0

    def _acknowledge(self, length: int, stream_id: int) -> None:
        if length and not self._terminated:
            # (Cannot fail: h2 acknowledges data of closed streams on the connection.)
            with contextlib.suppress(h2.exceptions.H2Error):
                self._conn.acknowledge_received_data(length, stream_id)

    def _drop_queue(self, entry: StreamEntry) -> None:
        queue = entry.queue
        queue.clear()
        if queue.waiting:
            queue.waiting = False
            self._events.append(SendReady(entry.stream_id))

    def _resume(self, stream_id: int) -> None:
        self._events.append(SendReady(stream_id))

    def _abort(self, entry: StreamEntry) -> None:
        """h2 refused to frame the stream's output: reset it."""
        self._reset(entry, ErrorCodes.INTERNAL_ERROR)

    def _reset(self, entry: StreamEntry, error_code: ErrorCodes) -> None:
        """Abort the stream's output (RST_STREAM) and tell the stream."""
        if entry.local_done:
            return
        entry.local_done = True
        self._drop_queue(entry)
        if not self._terminated:
            with contextlib.suppress(h2.exceptions.H2Error):
                self._conn.reset_stream(entry.stream_id, error_code)
        self._guard.stream_closed(entry.stream_id)
        entry.remote_done = True
        if entry.unacked:
            self._ack(entry)
        entry.stream.handle(StreamClosed(stream_id=entry.stream_id))
        self._maybe_remove(entry)

    def _local_end(self, entry: StreamEntry) -> None:
        """The stream's response was sent in full."""
        entry.local_done = True
        entry.queue.clear()
        self._resets.complete()
        self._maybe_remove(entry)

    def _maybe_remove(self, entry: StreamEntry) -> None:
        """Forget a stream once it has nothing to send and its application finished."""
        if not entry.local_done or not entry.stream.closed:
            return
        stream_id = entry.stream_id
        if self._streams.pop(stream_id, None) is None:
            return
        self._timed.pop(stream_id, None)
        if entry.pushed:
            self._pushed -= 1
        else:
            self._inbound -= 1
        self._sender.forget(stream_id)
        if not self._terminated:
            if entry.unacked:
                self._ack(entry)
            if not entry.remote_done:
                # A complete response: the rest of the request is not needed (RFC 9113 §8.1).
                entry.remote_done = True
                self._guard.stream_closed(stream_id)
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._conn.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        if not self._streams:
            self._idle_since = self._context.now

    # -----------------------------------------------------------------------------------
    # Sending
    # -----------------------------------------------------------------------------------

    def _take_output(self) -> None:
        data = self._conn.data_to_send()
        if data:
            self._out += data

    def _goaway(self) -> None:
        """Graceful GOAWAY, written by hand: h2 would stop all sending after its own."""
        if self._goaway_sent or self._terminated:
            return
        self._goaway_sent = True
        self._take_output()
        frame = GoAwayFrame(stream_id=0, last_stream_id=self._last_stream_id, error_code=0)
        self._out += frame.serialize()

    def _fail(
        self, error_code: ErrorCodes, reason: str, h2_code: ErrorCodes | int | None = None
    ) -> None:
        """A connection error: GOAWAY (unless h2 already sent one) and close at once."""
        conn = self._conn
        if conn.state_machine.state is not h2.connection.ConnectionState.CLOSED:
            # (Cannot fail: h2 allows GOAWAY in every state.)
            with contextlib.suppress(h2.exceptions.H2Error):
                conn.close_connection(
                    h2_code if h2_code is not None else error_code,
                    additional_data=reason.encode("ascii"),
                    last_stream_id=self._last_stream_id,
                )
        self._take_output()
        self._terminate()

    def _terminate(self) -> None:
        """The connection is over: every stream gets ``StreamClosed``."""
        if self._terminated:
            return
        self._terminated = True
        for entry in list(self._streams.values()):
            entry.local_done = True
            entry.remote_done = True
            self._drop_queue(entry)
            entry.stream.handle(StreamClosed(stream_id=entry.stream_id))
            self._maybe_remove(entry)
