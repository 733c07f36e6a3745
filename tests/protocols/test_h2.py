"""The HTTP/2 connection: settings, streams, flow control, priorities, push, shutdown.

The peer is a client-side ``h2.connection.H2Connection`` wired to our connection in memory
(:class:`Pair`); the test acts as the driver and the application by calling
``app_receive``/``app_send``/``app_finished``. GOAWAY frames from the server are recorded
and kept from the h2 client (h2 stops all traffic once it sees one, which would hide the
streams a graceful shutdown lets finish).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage

from hypercorn.config import Config
from hypercorn.protocol.context import Connection, StreamOwner
from hypercorn.protocol.events import (
    DriverEvent,
    H2Switch,
    ReceiveReady,
    Request,
    SendReady,
    SpawnApp,
    StreamEnded,
)
from hypercorn.protocol.h2 import BUFFER_HIGH_WATER, BUFFER_LOW_WATER, H2Connection
from hypercorn.protocol.h2_flow import (
    LazyPriorityScheduler,
    RFC7540Scheduler,
    RoundRobinScheduler,
    StreamScheduler,
    copy_headers,
)
from hypercorn.typing import ASGISendEvent
from tests.protocols.h2_support import split_frames
from tests.protocols.support import (
    CLIENT,
    DATE,
    SERVER,
    Headers,
    body_of,
    make_context,
    receive_all,
    respond,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_HEADERS: Headers = [(b"date", DATE), (b"server", b"hypercorn-h2")]


# ---------------------------------------------------------------------------------------
# The in-memory pair
# ---------------------------------------------------------------------------------------


def make_client(
    *,
    enable_push: bool = True,
    settings: dict[h2.settings.SettingCodes, int] | None = None,
) -> h2.connection.H2Connection:
    """An h2 client that has queued its preface and SETTINGS."""
    client = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    values: dict[h2.settings.SettingCodes, int] = {
        h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push)
    }
    values.update(settings or {})
    client.local_settings = h2.settings.Settings(client=True, initial_values=values)
    client.max_inbound_frame_size = client.local_settings.max_frame_size
    client.initiate_connection()
    return client


@dataclass
class Response:
    """What the client saw on one stream."""

    headers: Headers = field(default_factory=list)
    informational: list[Headers] = field(default_factory=list)
    data: bytes = b""
    trailers: Headers | None = None
    ended: bool = False
    reset: ErrorCodes | int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class Pair:
    """Our server connection and an h2 client, moving bytes both ways on demand."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        client: h2.connection.H2Connection | None = None,
        switch: H2Switch | None = None,
        scheduler: StreamScheduler | None = None,
        ssl: bool = False,
        auto_ack: bool = True,
    ) -> None:
        self.context = make_context(config)
        self.client = make_client() if client is None else client
        self.server = H2Connection(
            self.context,
            ssl=ssl,
            client=CLIENT,
            server=SERVER,
            switch=switch,
            scheduler=scheduler,
        )
        self.auto_ack = auto_ack
        self.frames: list[Frame] = []  # every frame the server wrote
        self.goaways: list[GoAwayFrame] = []
        self.events: list[h2.events.Event] = []  # every event of the client
        self.driver: list[DriverEvent] = []
        self.responses: dict[int, Response] = {}

    def exchange(self) -> list[h2.events.Event]:
        """Move bytes both ways until neither side has anything to say."""
        events: list[h2.events.Event] = []
        for _ in range(10_000):
            moved = False
            out = self.client.data_to_send()
            if out:
                moved = True
                self.server.receive_data(out)
            data = self.server.data_to_send()
            self.driver += self.server.events()
            if data:
                moved = True
                events += self.deliver(data)
            if not moved:
                break
        else:  # pragma: no cover
            raise AssertionError("the exchange never settles")
        return events

    def deliver(self, data: bytes) -> list[h2.events.Event]:
        """Give the client what the server wrote (minus GOAWAY frames, recorded instead)."""
        kept = bytearray()
        for frame, raw in split_frames(data):
            self.frames.append(frame)
            if isinstance(frame, GoAwayFrame):
                self.goaways.append(frame)
            else:
                kept += raw
        events = self.client.receive_data(bytes(kept)) if kept else []
        for event in events:
            self._record(event)
        self.events += events
        return events

    def _record(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        if not stream_id:
            return
        response = self.responses.setdefault(stream_id, Response())
        if isinstance(event, h2.events.ResponseReceived):
            response.headers = list(event.headers)
        elif isinstance(event, h2.events.InformationalResponseReceived):
            response.informational.append(list(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            response.data += event.data
            if self.auto_ack:
                self.client.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            response.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            response.ended = True
        elif isinstance(event, h2.events.StreamReset):
            response.reset = event.error_code

    def ended(self, stream_id: int) -> bool:
        """Whether the client saw the end of the stream (a call: mypy must not narrow it)."""
        return self.responses[stream_id].ended

    def closed(self) -> bool:
        return self.server.closed

    # -- acting as the client ------------------------------------------------------------

    def request(
        self,
        stream_id: int,
        *,
        method: bytes = b"GET",
        path: bytes = b"/",
        headers: Headers | None = None,
        body: bytes | None = None,
        end: bool = True,
        authority: bytes = b"example.com",
        **priority: Any,
    ) -> None:
        block: Headers = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", authority),
            (b":path", path),
        ]
        self.client.send_headers(
            stream_id, [*block, *(headers or [])], end_stream=end and body is None, **priority
        )
        if body is not None:
            self.client.send_data(stream_id, body, end_stream=end)

    # -- acting as the driver and the application ----------------------------------------

    def take_driver(self) -> list[DriverEvent]:
        self.driver += self.server.events()
        driver, self.driver = self.driver, []
        return driver

    def spawned(self) -> dict[int, dict[str, Any]]:
        return {
            event.stream_id: dict(event.scope)
            for event in self.take_driver()
            if isinstance(event, SpawnApp)
        }

    def receive_all(self, stream_id: int) -> list[dict[str, Any]]:
        return receive_all(self.server, stream_id)

    def respond(
        self,
        stream_id: int,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: Headers | None = None,
        finish: bool = True,
    ) -> None:
        respond(self.server, stream_id, body, status=status, headers=headers, finish=finish)


def data_frames(frames: list[Frame]) -> list[tuple[int, int]]:
    """(stream id, length) of every non-empty DATA frame, in wire order."""
    return [(f.stream_id, len(f.data)) for f in frames if isinstance(f, DataFrame) and f.data]


def started() -> Pair:
    pair = Pair()
    pair.exchange()
    return pair


# ---------------------------------------------------------------------------------------
# Contract and start
# ---------------------------------------------------------------------------------------


def test_implements_connection_and_stream_owner() -> None:
    server = H2Connection(make_context(), ssl=False, client=CLIENT, server=SERVER)
    connection: Connection = server
    owner: StreamOwner = server
    assert not connection.closed
    assert not connection.reading_paused
    owner.driver_event(SendReady(1))
    assert connection.events() == [SendReady(1)]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {},
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            },
        ),
        (
            {
                "h2_max_concurrent_streams": 7,
                "h2_max_header_list_size": 1000,
                "h2_max_inbound_frame_size": 65536,
            },
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1000,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: 65536,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            },
        ),
        # Frame sizes outside what HTTP/2 allows are clamped.
        ({"h2_max_inbound_frame_size": 100}, {h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384}),
        (
            {"h2_max_inbound_frame_size": 2**30},
            {h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1},
        ),
    ],
)
def test_settings_on_the_wire(options: dict[str, int], expected: dict[int, int]) -> None:
    server = H2Connection(
        make_context(Config.from_mapping(options)), ssl=True, client=CLIENT, server=SERVER
    )
    frames = split_frames(server.data_to_send())
    assert len(frames) == 1
    settings = frames[0][0]
    assert isinstance(settings, SettingsFrame)
    assert "ACK" not in settings.flags
    for code, value in expected.items():
        assert settings.settings[code] == value


def test_frame_size_setting_applies_at_once() -> None:
    pair = Pair(Config.from_mapping(h2_max_inbound_frame_size=65536))
    pair.exchange()
    assert pair.client.max_outbound_frame_size == 65536
    pair.request(1, method=b"POST", body=b"x" * 40000)
    pair.exchange()
    assert body_of(pair.receive_all(1)) == b"x" * 40000


# ---------------------------------------------------------------------------------------
# Requests and responses
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ssl", [False, True])
def test_get_scope_and_response(ssl: bool) -> None:
    pair = Pair(ssl=ssl)
    pair.exchange()
    pair.request(
        1,
        method=b"get",
        path=b"/a%20b?x=1",
        authority=b"example.com:8000",
        headers=[(b"user-agent", b"test"), (b"cookie", b"a=1"), (b"cookie", b"b=2")],
    )
    pair.exchange()
    scope = pair.spawned()[1]
    assert scope["http_version"] == "2"
    assert scope["method"] == "GET"
    assert scope["scheme"] == ("https" if ssl else "http")
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["headers"][0] == (b"host", b"example.com:8000")
    assert (b"user-agent", b"test") in scope["headers"]
    assert scope["client"] == CLIENT
    assert scope["server"] == SERVER
    assert {"http.response.trailers", "http.response.push", "http.response.early_hint"} <= set(
        scope["extensions"]
    )
    pair.respond(1, b"hello", headers=[(b"content-type", b"text/plain")])
    pair.exchange()
    response = pair.responses[1]
    assert response.headers == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        *DEFAULT_HEADERS,
    ]
    assert response.data == b"hello"
    assert response.ended
    assert pair.server.next_deadline() is not None  # idle again


def test_connection_specific_headers_are_dropped() -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.respond(
        1,
        headers=[
            (b"connection", b"close"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-connection", b"x"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
            (b"te", b"gzip"),
            (b"te", b"trailers"),
            (b"x-kept", b"1"),
        ],
    )
    pair.exchange()
    assert pair.responses[1].headers == [
        (b":status", b"200"),
        (b"te", b"trailers"),
        (b"x-kept", b"1"),
        *DEFAULT_HEADERS,
    ]


@pytest.mark.parametrize(
    "header",
    [(b"x-bad", b"a\r\nb"), (b"x-bad", b"a\x00b"), (b"bad name", b"1"), (b"x:y", b"1")],
)
def test_invalid_response_header_is_a_value_error(header: tuple[bytes, bytes]) -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.server.app_send(1, {"type": "http.response.start", "status": 200, "headers": [header]})
    with pytest.raises(ValueError, match="Invalid HTTP/2 header"):
        pair.server.app_send(1, {"type": "http.response.body", "body": b"x"})
    # The application fails: nothing of its response went out, so it is a clean 500.
    pair.server.app_finished(1)
    pair.exchange()
    assert pair.responses[1].status == 500
    assert pair.ended(1)


@pytest.mark.parametrize(
    ("headers", "http3", "expected"),
    [
        # Names are lower-cased; HTTP/2 strips values (h2's own normalisation is off).
        ([(b"X-A", b" 1 ")], False, [(b"x-a", b"1", False)]),
        ([(b"X-A", b" 1 ")], True, [(b"x-a", b" 1 ", False)]),
        # Credentials are never indexed by HPACK; so is a short (guessable) cookie.
        (
            [
                (b"authorization", b"Basic eDp5"),
                (b"Proxy-Authorization", b"Basic eDp5"),
                (b"cookie", b"a=1"),
                (b"cookie", b"session=0123456789abcdef"),
                (b"set-cookie", b"a=1"),
            ],
            False,
            [
                (b"authorization", b"Basic eDp5", True),
                (b"proxy-authorization", b"Basic eDp5", True),
                (b"cookie", b"a=1", True),
                (b"cookie", b"session=0123456789abcdef", False),
                (b"set-cookie", b"a=1", False),
            ],
        ),
        ([(b"authorization", b"Basic eDp5")], True, [(b"authorization", b"Basic eDp5", False)]),
        # te survives only as "trailers", and only on HTTP/2.
        ([(b"te", b"trailers"), (b"te", b"gzip")], False, [(b"te", b"trailers", False)]),
        ([(b"te", b"trailers")], True, []),
    ],
)
def test_copy_headers(
    headers: Headers, http3: bool, expected: list[tuple[bytes, bytes, bool]]
) -> None:
    copied: Headers = []
    copy_headers(headers, copied, http3=http3)
    seen = [(h[0], h[1], isinstance(h, NeverIndexedHeaderTuple)) for h in copied]
    assert seen == expected


def test_credentials_are_never_indexed_on_the_wire() -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.respond(1, b"x", headers=[(b"authorization", b"secret"), (b"x-plain", b"1")])
    pair.exchange()
    headers = pair.responses[1].headers
    [auth] = [header for header in headers if header[0] == b"authorization"]
    [plain] = [header for header in headers if header[0] == b"x-plain"]
    assert auth == (b"authorization", b"secret")
    assert isinstance(auth, NeverIndexedHeaderTuple)
    assert not isinstance(plain, NeverIndexedHeaderTuple)


def test_configured_default_header_values_are_stripped() -> None:
    pair = Pair(Config.from_mapping(alt_svc_headers=[' h3=":443"; ma=3600 ']))
    pair.exchange()
    for stream_id in (1, 3):  # the second response reuses the stripped list
        pair.request(stream_id)
        pair.exchange()
        pair.respond(stream_id, b"x")
        pair.exchange()
        assert (b"alt-svc", b'h3=":443"; ma=3600') in pair.responses[stream_id].headers


@pytest.mark.parametrize(
    ("body", "frames"),
    [
        # A bodyless response: one HEADERS frame that ends the stream.
        (b"", [("HEADERS", 0, True)]),
        # The end of the stream rides on the last DATA frame, not an empty one of its own.
        (b"hello", [("HEADERS", 0, False), ("DATA", 5, True)]),
        (
            b"x" * 40000,
            [
                ("HEADERS", 0, False),
                ("DATA", 16384, False),
                ("DATA", 16384, False),
                ("DATA", 40000 - 2 * 16384, True),
            ],
        ),
        # More than the window: the end waits for the client's WINDOW_UPDATE, then still
        # rides on the last data.
        (
            b"y" * 70000,
            [
                ("HEADERS", 0, False),
                *[("DATA", 16384, False)] * 3,
                ("DATA", 65535 - 3 * 16384, False),
                ("DATA", 70000 - 65535, True),
            ],
        ),
    ],
)
def test_response_frames(body: bytes, frames: list[tuple[str, int, bool]]) -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.respond(1, body)
    pair.exchange()
    seen = [
        ("DATA", len(frame.data), "END_STREAM" in frame.flags)
        if isinstance(frame, DataFrame)
        else (type(frame).__name__.removesuffix("Frame").upper(), 0, "END_STREAM" in frame.flags)
        for frame in pair.frames
        if frame.stream_id == 1
    ]
    assert seen == frames
    assert pair.responses[1].data == body
    assert pair.ended(1)


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
def test_bodyless_response_is_one_headers_frame(method: bytes, status: int) -> None:
    pair = started()
    pair.request(1, method=method)
    pair.exchange()
    pair.respond(1, b"ignored", status=status)
    pair.exchange()
    [headers] = [f for f in pair.frames if isinstance(f, HeadersFrame)]
    assert {"END_STREAM", "END_HEADERS"} <= headers.flags
    assert not [f for f in pair.frames if isinstance(f, DataFrame)]
    assert pair.responses[1].status == status


def test_app_without_response_gets_500() -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.server.app_finished(1)
    pair.exchange()
    response = pair.responses[1]
    assert response.status == 500
    assert (b"content-length", b"0") in response.headers
    assert not any(name == b"connection" for name, _ in response.headers)
    assert response.ended


def test_app_failing_mid_response_resets_the_stream() -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.server.app_send(1, {"type": "http.response.start", "status": 200, "headers": []})
    pair.server.app_send(1, {"type": "http.response.body", "body": b"part", "more_body": True})
    pair.exchange()
    pair.server.app_finished(1)
    pair.exchange()
    assert pair.responses[1].data == b"part"
    assert pair.responses[1].reset == ErrorCodes.INTERNAL_ERROR
    assert pair.server.app_receive(1) is None  # forgotten


def test_many_concurrent_streams() -> None:
    pair = started()
    stream_ids = list(range(1, 2 * 60, 2))
    for stream_id in stream_ids:
        pair.request(stream_id, method=b"POST", body=b"req-%d" % stream_id)
    pair.exchange()
    assert sorted(pair.spawned()) == stream_ids
    for stream_id in reversed(stream_ids):
        assert body_of(pair.receive_all(stream_id)) == b"req-%d" % stream_id
        pair.respond(stream_id, b"resp-%d" % stream_id * 100)
    pair.exchange()
    for stream_id in stream_ids:
        assert pair.responses[stream_id].data == b"resp-%d" % stream_id * 100
        assert pair.ended(stream_id)
    ended = [e for e in pair.take_driver() if isinstance(e, StreamEnded)]
    assert len(ended) == len(stream_ids)


def test_request_trailers_are_accepted() -> None:
    pair = started()
    pair.request(1, method=b"POST", body=b"abc", end=False)
    pair.client.send_headers(1, [(b"x-checksum", b"1")], end_stream=True)
    pair.exchange()
    messages = pair.receive_all(1)
    assert body_of(messages) == b"abc"
    assert messages[-1]["more_body"] is False


def test_finished_response_resets_a_request_still_sending() -> None:
    pair = started()
    pair.request(1, method=b"POST", body=b"x" * 100, end=False)
    pair.exchange()
    pair.respond(1, b"too late", status=413)
    pair.exchange()
    response = pair.responses[1]
    assert response.status == 413
    assert response.ended
    assert response.reset == ErrorCodes.NO_ERROR


# ---------------------------------------------------------------------------------------
# Flow control and backpressure
# ---------------------------------------------------------------------------------------


def test_unread_request_data_holds_the_client_to_the_window() -> None:
    pair = Pair(Config.from_mapping(max_app_queue_size=2))
    pair.exchange()
    pair.request(1, method=b"POST", end=False)
    for _ in range(4):
        pair.client.send_data(1, b"x" * 16383)
    pair.exchange()
    # Two messages fill the inbox: nothing more was acknowledged.
    assert pair.client.local_flow_control_window(1) == 65535 - 4 * 16383
    # Draining the inbox hands the window back.
    total = 0
    while (message := pair.server.app_receive(1)) is not None:
        total += len(message.get("body", b""))  # type: ignore[arg-type]
    pair.exchange()
    assert total == 4 * 16383
    assert pair.client.local_flow_control_window(1) == 65535


def test_whole_request_body_larger_than_the_window() -> None:
    pair = Pair(Config.from_mapping(max_app_queue_size=2))
    pair.exchange()
    body = bytes(range(256)) * 1024
    pair.request(1, method=b"POST", end=False)
    sent = 0
    received = bytearray()
    done = False
    for _ in range(1000):
        window = pair.client.local_flow_control_window(1)
        while sent < len(body) and window:
            chunk = body[sent : sent + min(window, 16384)]
            sent += len(chunk)
            window -= len(chunk)
            pair.client.send_data(1, chunk, end_stream=sent == len(body))
        pair.exchange()
        for message in pair.receive_all(1):
            received += message["body"]
            done = not message["more_body"]
        pair.exchange()
        if done:
            break
    assert bytes(received) == body


def test_response_larger_than_the_window_with_backpressure() -> None:
    pair = Pair(auto_ack=False)
    pair.exchange()
    pair.request(1)
    pair.exchange()
    pair.take_driver()
    pair.server.app_send(1, {"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"z" * 8192
    sends = 0
    while pair.server.can_send(1):
        pair.server.app_send(1, {"type": "http.response.body", "body": chunk, "more_body": True})
        sends += 1
    assert sends * len(chunk) > BUFFER_HIGH_WATER >= (sends - 1) * len(chunk)
    pair.exchange()
    # The connection window (65535) let most of it out already: below the low-water mark.
    assert SendReady(1) in pair.take_driver()
    assert pair.server.can_send(1)
    for _ in range(10):
        pair.server.app_send(1, {"type": "http.response.body", "body": chunk, "more_body": True})
    pair.exchange()
    assert not pair.server.can_send(1)  # the window is exhausted, nothing drains
    assert len(pair.responses[1].data) == 65535
    assert SendReady(1) not in pair.take_driver()
    # The client reads: the window reopens, the buffer drains, the app may continue.
    pair.client.acknowledge_received_data(65535, 1)
    pair.exchange()
    assert SendReady(1) in pair.take_driver()
    assert pair.server.can_send(1)
    pair.server.app_send(1, {"type": "http.response.body", "body": b"", "more_body": False})
    pair.server.app_finished(1)
    for _ in range(20):
        pair.client.acknowledge_received_data(65535, 1)
        pair.exchange()
    assert pair.responses[1].data == chunk * (sends + 10)
    assert pair.ended(1)


def test_end_of_stream_waits_for_buffered_data() -> None:
    pair = Pair(auto_ack=False)
    pair.exchange()
    pair.request(1)
    pair.exchange()
    pair.respond(1, b"q" * 100_000)
    pair.exchange()
    assert len(pair.responses[1].data) == 65535
    assert not pair.ended(1)
    pair.client.acknowledge_received_data(65535, 1)
    pair.exchange()
    assert pair.responses[1].data == b"q" * 100_000
    assert pair.ended(1)
    assert BUFFER_LOW_WATER < BUFFER_HIGH_WATER


def test_data_respects_the_peer_frame_size() -> None:
    client = make_client(settings={h2.settings.SettingCodes.MAX_FRAME_SIZE: 20000})
    pair = Pair(client=client)
    pair.exchange()
    pair.client.increment_flow_control_window(10**6)
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10**6})
    pair.exchange()
    pair.request(1)
    pair.exchange()
    pair.respond(1, b"f" * 100_000)
    pair.exchange()
    sizes = [length for _, length in data_frames(pair.frames)]
    assert max(sizes) == 20000
    assert sum(sizes) == 100_000


# ---------------------------------------------------------------------------------------
# Priorities
# ---------------------------------------------------------------------------------------


def _two_streams(pair: Pair, size: int = 40_000) -> list[tuple[int, int]]:
    pair.exchange()
    pair.take_driver()
    for stream_id in (1, 3):
        pair.respond(stream_id, b"d" * size)
    pair.exchange()
    return data_frames(pair.frames)


def test_dependent_stream_waits_for_its_parent() -> None:
    pair = started()
    pair.request(1)
    pair.request(3, priority_depends_on=1, priority_weight=256)
    order = _two_streams(pair)
    ids = [stream_id for stream_id, _ in order]
    assert ids == sorted(ids)  # every frame of stream 1 before any of stream 3
    assert ids[0] == 1
    assert ids[-1] == 3


def test_priority_frame_reorders_streams() -> None:
    pair = started()
    pair.request(1)
    pair.request(3)
    pair.client.prioritize(1, depends_on=3, exclusive=True)
    order = _two_streams(pair)
    ids = [stream_id for stream_id, _ in order]
    assert ids == sorted(ids, reverse=True)  # stream 3 first: stream 1 depends on it


def test_heavier_stream_gets_more_frames() -> None:
    pair = started()
    pair.request(1, priority_weight=1)
    pair.request(3, priority_weight=256)
    order = _two_streams(pair, size=100_000)
    first = [stream_id for stream_id, _ in order[:4]]  # the connection window: four frames
    assert first.count(3) >= 3


def test_round_robin_scheduler_alternates() -> None:
    pair = Pair(scheduler=RoundRobinScheduler())
    pair.exchange()
    pair.request(1, priority_weight=1)
    pair.request(3, priority_weight=256)
    order = _two_streams(pair, size=100_000)
    assert [stream_id for stream_id, _ in order[:4]] == [1, 3, 1, 3]


def test_placeholder_priorities_group_streams() -> None:
    pair = started()
    # Idle streams 101 (heavy) and 103 (light) group the requests (as Firefox used to).
    pair.client.prioritize(101, weight=256)
    pair.client.prioritize(103, weight=1)
    pair.request(1, priority_depends_on=103)
    pair.request(3, priority_depends_on=101)
    order = _two_streams(pair, size=100_000)
    first = [stream_id for stream_id, _ in order[:4]]
    assert first.count(3) >= 3  # without the groups both would weigh 16 and alternate


def test_streams_without_priorities_take_turns_by_default() -> None:
    pair = started()
    pair.request(1)
    pair.request(3)
    order = _two_streams(pair, size=100_000)
    assert [stream_id for stream_id, _ in order[:4]] == [1, 3, 1, 3]


def test_the_lazy_scheduler_keeps_readiness_when_priorities_arrive() -> None:
    scheduler = LazyPriorityScheduler()
    scheduler.add(1)
    scheduler.add(3)
    scheduler.add(5)
    scheduler.ready(1)
    scheduler.ready(3)
    assert [scheduler.next() for _ in range(3)] == [1, 3, 1]  # round-robin
    scheduler.prioritize(1, depends_on=3, weight=16, exclusive=True)  # switches to a tree
    assert {scheduler.next() for _ in range(3)} == {3}  # 1 waits for 3; 5 is not ready
    scheduler.idle(3)
    assert scheduler.next() == 1
    scheduler.remove(1)
    scheduler.ready(5)
    assert scheduler.next() == 5


@pytest.mark.parametrize("make", [RFC7540Scheduler, RoundRobinScheduler, LazyPriorityScheduler])
def test_scheduler_contract(
    make: type[RFC7540Scheduler | RoundRobinScheduler | LazyPriorityScheduler],
) -> None:
    scheduler: StreamScheduler = make()
    assert scheduler.next() is None
    scheduler.add(1)
    scheduler.add(3)
    assert scheduler.next() is None  # added streams are not ready
    scheduler.ready(3)
    assert scheduler.next() == 3
    assert scheduler.next() == 3
    scheduler.idle(3)
    scheduler.ready(1)
    assert scheduler.next() == 1
    scheduler.remove(1)
    assert scheduler.next() is None
    scheduler.remove(1)  # forgetting twice is harmless
    scheduler.prioritize(99, 3, 300, False)  # a bad weight is ignored


def test_placeholders_are_bounded() -> None:
    scheduler = RFC7540Scheduler(max_placeholders=10)
    for stream_id in range(101, 10_001, 2):  # a PRIORITY flood for idle streams
        scheduler.prioritize(stream_id, stream_id - 2, 32, False)
    assert len(scheduler._nodes) == 10  # only the newest are remembered
    scheduler.add(1, 9_999, 256)  # a known group
    scheduler.add(3, 101, 256)  # a forgotten one: default priority
    scheduler.ready(1)
    scheduler.ready(3)
    assert {scheduler.next() for _ in range(4)} == {1, 3}


# ---------------------------------------------------------------------------------------
# Trailers, early hints, server push
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("te_trailers", [True, False])
def test_trailers_only_with_te_trailers(te_trailers: bool) -> None:
    pair = started()
    pair.request(1, headers=[(b"te", b"trailers")] if te_trailers else [])
    pair.exchange()
    pair.server.app_send(
        1, {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
    )
    pair.server.app_send(1, {"type": "http.response.body", "body": b"body"})
    pair.server.app_send(
        1, {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]}
    )
    pair.server.app_finished(1)
    pair.exchange()
    response = pair.responses[1]
    assert response.data == b"body"
    assert response.ended
    if te_trailers:
        assert response.trailers == [(b"x-checksum", b"abc")]
        last = [f for f in pair.frames if f.stream_id == 1][-1]
        assert isinstance(last, HeadersFrame)
        assert "END_STREAM" in last.flags
    else:
        assert response.trailers is None


def test_empty_trailers_just_end_the_stream() -> None:
    pair = started()
    pair.request(1, headers=[(b"te", b"trailers")])
    pair.exchange()
    pair.server.app_send(
        1, {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
    )
    pair.server.app_send(1, {"type": "http.response.body", "body": b"body"})
    pair.server.app_send(1, {"type": "http.response.trailers", "headers": []})
    pair.server.app_finished(1)
    pair.exchange()
    assert pair.responses[1].data == b"body"
    assert pair.ended(1)
    assert pair.responses[1].trailers is None


def test_100_continue_when_the_app_first_reads() -> None:
    pair = started()
    pair.request(1, method=b"POST", headers=[(b"expect", b"100-continue")], end=False)
    pair.exchange()
    assert 1 not in pair.responses
    assert pair.server.app_receive(1) is None
    pair.exchange()
    assert pair.responses[1].informational == [[(b":status", b"100"), *DEFAULT_HEADERS]]
    pair.client.send_data(1, b"body", end_stream=True)
    pair.exchange()
    assert body_of(pair.receive_all(1)) == b"body"


def test_early_hints_are_informational_heads() -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.server.app_send(
        1, {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]}
    )
    pair.exchange()
    response = pair.responses[1]
    assert response.informational == [
        [(b":status", b"103"), (b"link", b"</style.css>; rel=preload"), *DEFAULT_HEADERS]
    ]
    pair.respond(1, b"page")
    pair.exchange()
    assert pair.responses[1].status == 200
    assert pair.responses[1].data == b"page"


def test_server_push() -> None:
    pair = started()
    pair.request(1, path=b"/index.html")
    pair.exchange()
    pair.take_driver()
    push: ASGISendEvent = {
        "type": "http.response.push",
        "path": "/style.css",
        "headers": [(b"accept", b"text/css")],
    }
    pair.server.app_send(1, push)
    pair.respond(1, b"<html>")
    pair.exchange()
    [promise] = [e for e in pair.events if isinstance(e, h2.events.PushedStreamReceived)]
    assert promise.parent_stream_id == 1
    assert promise.pushed_stream_id == 2
    assert promise.headers == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"example.com"),
        (b":path", b"/style.css"),
        (b"accept", b"text/css"),
    ]
    scope = pair.spawned()[2]
    assert scope["path"] == "/style.css"
    assert scope["headers"][0] == (b"host", b"example.com")
    assert pair.receive_all(2) == [{"type": "http.request", "body": b"", "more_body": False}]
    pair.respond(2, b"body{}", headers=[(b"content-type", b"text/css")])
    pair.exchange()
    assert pair.responses[1].data == b"<html>"
    assert pair.responses[2].data == b"body{}"
    assert pair.ended(2)
    promise_frame = next(f for f in pair.frames if isinstance(f, PushPromiseFrame))
    assert pair.frames.index(promise_frame) < next(
        i for i, f in enumerate(pair.frames) if isinstance(f, DataFrame) and f.stream_id == 1
    )


def test_push_with_an_empty_path_is_dropped() -> None:
    pair = started()
    pair.request(1)
    pair.exchange()
    pair.take_driver()
    pair.server.app_send(1, {"type": "http.response.push", "path": "", "headers": []})
    pair.respond(1, b"ok")
    pair.exchange()
    assert not [e for e in pair.events if isinstance(e, h2.events.PushedStreamReceived)]
    assert not pair.spawned()
    assert pair.responses[1].data == b"ok"
    assert pair.ended(1)


def test_push_is_dropped_when_the_client_disables_it() -> None:
    pair = Pair(client=make_client(enable_push=False))
    pair.exchange()
    pair.request(1)
    pair.exchange()
    pair.take_driver()
    pair.server.app_send(1, {"type": "http.response.push", "path": "/a.css", "headers": []})
    pair.respond(1, b"ok")
    pair.exchange()
    assert not [e for e in pair.events if isinstance(e, h2.events.PushedStreamReceived)]
    assert not pair.spawned()


# ---------------------------------------------------------------------------------------
# WebSockets over HTTP/2 (RFC 8441)
# ---------------------------------------------------------------------------------------


#: An extended CONNECT that opens a WebSocket (RFC 8441).
WEBSOCKET_CONNECT = [
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"http"),
    (b":authority", b"example.com"),
    (b":path", b"/chat"),
    (b"sec-websocket-version", b"13"),
]


def test_extended_connect_websocket() -> None:
    pair = Pair(Config.from_mapping(websocket_ping_interval=5.0))
    pair.exchange()
    pair.client.send_headers(1, WEBSOCKET_CONNECT)
    pair.exchange()
    scope = pair.spawned()[1]
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert pair.receive_all(1) == [{"type": "websocket.connect"}]
    pair.server.app_send(1, {"type": "websocket.accept"})
    pair.exchange()
    assert pair.responses[1].status == 200
    assert not pair.ended(1)

    ws = WSConnection(ConnectionType.CLIENT)
    pair.client.send_data(1, ws.send(TextMessage(data="hello")))
    pair.exchange()
    [message] = pair.receive_all(1)
    assert message["type"] == "websocket.receive"
    assert message["text"] == "hello"
    pair.server.app_send(1, {"type": "websocket.send", "bytes": b"back"})
    pair.exchange()
    ws.receive_data(pair.responses[1].data)
    assert [e.data for e in ws.events() if isinstance(e, BytesMessage)] == [b"back"]

    # The stream's ping interval is the connection's deadline.
    deadline = pair.server.next_deadline()
    assert deadline == pair.context.now + 5.0
    pair.context.now = deadline
    pair.server.handle_timer()
    before = len(pair.responses[1].data)
    pair.exchange()
    assert len(pair.responses[1].data) > before

    pair.server.app_send(1, {"type": "websocket.close", "code": 1000})
    pair.server.app_finished(1)
    pair.exchange()
    assert pair.ended(1)
    ws.receive_data(pair.responses[1].data)
    assert any(isinstance(e, CloseConnection) for e in ws.events())


def test_only_websocket_streams_have_deadlines() -> None:
    pair = Pair(Config.from_mapping(websocket_ping_interval=5.0))
    pair.exchange()
    for stream_id in (1, 3):
        pair.request(stream_id, method=b"POST", end=False)
    pair.exchange()
    assert pair.server.next_deadline() is None  # HTTP streams never have timers
    pair.client.send_headers(5, WEBSOCKET_CONNECT)
    pair.exchange()
    pair.server.app_send(5, {"type": "websocket.accept"})
    pair.exchange()
    assert pair.server.next_deadline() == pair.context.now + 5.0
    pair.server.app_send(5, {"type": "websocket.close", "code": 1000})
    pair.server.app_finished(5)
    pair.exchange()
    assert pair.ended(5)
    assert pair.server.next_deadline() is None  # the HTTP streams are still open
    for stream_id in (1, 3):
        pair.client.end_stream(stream_id)
        pair.exchange()
        pair.respond(stream_id)
    pair.exchange()
    assert pair.server.next_deadline() == pair.context.now + 5.0  # idle: keep-alive


# ---------------------------------------------------------------------------------------
# Ending: shutdown, request limit, idle timeout, the peer going away
# ---------------------------------------------------------------------------------------


def test_shutdown_lets_open_streams_finish() -> None:
    pair = started()
    pair.request(1)
    pair.request(3, method=b"POST", end=False)
    pair.exchange()
    pair.take_driver()
    pair.server.shutdown()
    # The client opened stream 5 before it saw the GOAWAY.
    pair.request(5)
    pair.exchange()
    [goaway] = pair.goaways
    assert goaway.error_code == ErrorCodes.NO_ERROR
    assert goaway.last_stream_id == 3
    assert pair.responses[5].reset == ErrorCodes.REFUSED_STREAM
    assert 5 not in pair.spawned()
    assert not pair.closed()
    pair.respond(1, b"one")
    pair.exchange()
    assert not pair.closed()
    pair.client.send_data(3, b"body", end_stream=True)
    pair.exchange()
    assert body_of(pair.receive_all(3)) == b"body"
    pair.respond(3, b"three")
    pair.exchange()
    assert pair.responses[1].data == b"one"
    assert pair.responses[3].data == b"three"
    assert pair.closed()
    assert pair.server.next_deadline() is None


def test_shutdown_of_an_idle_connection_closes_at_once() -> None:
    pair = started()
    pair.server.shutdown()
    pair.exchange()
    assert pair.closed()
    assert pair.goaways[0].last_stream_id == 0
    pair.server.shutdown()  # idempotent
    assert len(pair.goaways) == 1


def test_keep_alive_max_requests() -> None:
    pair = Pair(Config.from_mapping(keep_alive_max_requests=2))
    pair.exchange()
    pair.request(1)
    pair.exchange()
    assert not pair.goaways
    pair.request(3)
    pair.request(5)
    pair.exchange()
    [goaway] = pair.goaways
    assert goaway.last_stream_id == 3
    assert goaway.error_code == ErrorCodes.NO_ERROR
    assert sorted(pair.spawned()) == [1, 3]
    assert pair.responses[5].reset == ErrorCodes.REFUSED_STREAM
    pair.respond(1, b"a")
    pair.respond(3, b"b")
    pair.exchange()
    assert pair.responses[3].data == b"b"
    assert pair.closed()


def test_idle_timeout_is_a_deadline() -> None:
    pair = started()
    start = pair.context.now
    assert pair.server.next_deadline() == start + 5.0
    pair.request(1)
    pair.exchange()
    assert pair.server.next_deadline() is None  # busy
    pair.context.now += 10
    pair.server.handle_timer()
    assert not pair.closed()
    pair.respond(1)
    pair.exchange()
    assert pair.server.next_deadline() == pair.context.now + 5.0
    pair.context.now += 4.9
    pair.server.handle_timer()
    assert not pair.closed()
    pair.context.now += 0.1
    pair.server.handle_timer()
    assert pair.closed()
    pair.exchange()
    assert pair.goaways[0].error_code == ErrorCodes.NO_ERROR


@pytest.mark.parametrize("how", ["eof", "goaway"])
def test_peer_going_away_disconnects_the_streams(how: str) -> None:
    pair = started()
    pair.request(1, method=b"POST", end=False)
    pair.exchange()
    pair.take_driver()
    if how == "eof":
        pair.server.receive_data(b"")
    else:
        pair.client.close_connection()
        pair.server.receive_data(pair.client.data_to_send())
    assert pair.closed()
    assert pair.server.reading_paused
    assert ReceiveReady(1) in pair.take_driver()
    assert pair.receive_all(1) == [{"type": "http.disconnect"}]
    pair.server.app_send(1, {"type": "http.response.start", "status": 200, "headers": []})
    assert pair.server.can_send(1)
    pair.server.app_finished(1)
    pair.server.receive_data(b"more")  # ignored
    assert pair.server.app_receive(1) is None


def test_client_reset_disconnects_and_wakes_a_blocked_sender() -> None:
    pair = Pair(auto_ack=False)
    pair.exchange()
    pair.request(1)
    pair.exchange()
    pair.take_driver()
    pair.server.app_send(1, {"type": "http.response.start", "status": 200, "headers": []})
    more: ASGISendEvent = {"type": "http.response.body", "body": b"x" * 50_000, "more_body": True}
    for _ in range(3):  # more than the connection window
        pair.server.app_send(1, more)
    pair.exchange()
    assert not pair.server.can_send(1)
    pair.client.reset_stream(1, ErrorCodes.CANCEL)
    pair.exchange()
    driver = pair.take_driver()
    assert SendReady(1) in driver
    assert pair.server.can_send(1)
    assert pair.receive_all(1)[-1] == {"type": "http.disconnect"}
    pair.server.app_send(1, {"type": "http.response.body", "body": b"late"})  # ignored
    pair.server.app_finished(1)
    pair.exchange()
    assert pair.server.next_deadline() is not None  # idle: the stream is gone


# ---------------------------------------------------------------------------------------
# Switching from HTTP/1.1
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [0, 5, 24, 30])
def test_prior_knowledge_switch(split: int) -> None:
    client = make_client()
    client.send_headers(
        1,
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/")],
        end_stream=True,
    )
    data = client.data_to_send()
    assert data.startswith(PREFACE)
    pair = Pair(client=client, switch=H2Switch(data=data[:split] if split else data))
    if split:
        pair.server.receive_data(data[split:])
    pair.exchange()
    assert list(pair.spawned()) == [1]
    pair.respond(1, b"pk")
    pair.exchange()
    assert pair.responses[1].data == b"pk"


def test_h2c_upgrade_switch() -> None:
    client = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = client.initiate_upgrade_connection()
    assert settings is not None
    upgrade = Request(
        stream_id=1,
        headers=[
            (b"host", b"example.com"),
            (b"connection", b"Upgrade, HTTP2-Settings"),
            (b"upgrade", b"h2c"),
            (b"http2-settings", settings),
            (b"accept", b"*/*"),
        ],
        http_version="1.1",
        method="GET",
        raw_path=b"/up?x=1",
    )
    switch = H2Switch(data=client.data_to_send(), request=upgrade, settings=settings)
    pair = Pair(client=client, switch=switch)
    pair.exchange()
    scope = pair.spawned()[1]
    assert scope["http_version"] == "2"
    assert scope["path"] == "/up"
    assert scope["headers"] == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert pair.receive_all(1) == [{"type": "http.request", "body": b"", "more_body": False}]
    pair.respond(1, b"upgraded")
    pair.exchange()
    assert pair.responses[1].data == b"upgraded"
    assert pair.ended(1)


def test_h2c_upgrade_with_bad_settings_fails_cleanly() -> None:
    upgrade = Request(
        stream_id=1, headers=[(b"host", b"h")], http_version="1.1", method="GET", raw_path=b"/"
    )
    server = H2Connection(
        make_context(),
        ssl=False,
        client=CLIENT,
        server=SERVER,
        switch=H2Switch(data=PREFACE, request=upgrade, settings=b"!!not base64!!"),
    )
    assert server.closed
    frames = [frame for frame, _ in split_frames(server.data_to_send())]
    assert isinstance(frames[-1], GoAwayFrame)
    assert frames[-1].error_code == ErrorCodes.PROTOCOL_ERROR
    assert server.events() == []


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        b"\x00" * 30,
        PREFACE[:10] + b"x",
    ],
)
@pytest.mark.parametrize("via_switch", [False, True])
def test_invalid_preface_is_goaway_protocol_error(data: bytes, via_switch: bool) -> None:
    switch = H2Switch(data=data) if via_switch else None
    server = H2Connection(make_context(), ssl=False, client=CLIENT, server=SERVER, switch=switch)
    if not via_switch:
        server.receive_data(data)
    assert server.closed
    frames = [frame for frame, _ in split_frames(server.data_to_send())]
    assert isinstance(frames[0], SettingsFrame)
    assert isinstance(frames[-1], GoAwayFrame)
    assert frames[-1].error_code == ErrorCodes.PROTOCOL_ERROR
    assert not any(b"HTTP/1.1" in frame.serialize() for frame in frames)


def test_rst_frames_from_server_are_well_formed() -> None:
    pair = Pair(Config.from_mapping(keep_alive_max_requests=1))
    pair.exchange()
    pair.request(1)
    pair.request(3)
    pair.exchange()
    resets = [f for f in pair.frames if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(3, ErrorCodes.REFUSED_STREAM)]
