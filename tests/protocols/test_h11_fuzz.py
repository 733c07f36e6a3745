"""Random and mutated byte streams against the HTTP/1.1 connection.

Whatever arrives, in whatever pieces, the connection must not raise, must keep its buffers
and output bounded while the driver honours ``reading_paused``, and must end in a sane
state: closed (or handed over to HTTP/2) once the client is gone, with one ``StreamEnded``
for every application it asked to start (streams answered without an application, such
as a bad WebSocket handshake, end too). Each of these runs with every HTTP/1 codec.

The differential tests at the end feed the same bytes, in the same pieces, to the h11 and
the httptools codec and require the same events (or the same error status), the same
response bytes and the same keep-alive decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection as WSFrames
from wsproto.events import TextMessage

from hypercorn.config import Config
from hypercorn.protocol.events import (
    Data,
    EndData,
    InformationalResponse,
    Response,
    SpawnApp,
    StreamEnded,
)
from hypercorn.protocol.h11 import STREAM_ID, H11Connection
from hypercorn.protocol.http1 import (
    NEED_DATA,
    PAUSED,
    CodecEvent,
    CodecFactory,
    H11Codec,
    Outgoing,
    ParseError,
)
from hypercorn.protocol.http1_httptools import HttptoolsCodec
from hypercorn.typing import ConnectionState
from tests.protocols.support import make_context

CODECS = [pytest.param(H11Codec, id="h11"), pytest.param(HttptoolsCodec, id="httptools")]

Behaviour = Literal["echo", "early", "crash", "partial", "hang"]
BEHAVIOURS: tuple[Behaviour, ...] = ("echo", "early", "crash", "partial", "hang")

MAX_INCOMPLETE = 1024
MAX_CHUNK = 512
#: The most bytes one response of the test application can take on the wire.
MAX_RESPONSE = 1024

WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
SEEDS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    (
        b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nX-T: 1\r\n\r\n"
    ),
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: "
    + WS_KEY
    + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    + WSFrames(ConnectionType.CLIENT).send(TextMessage(data="hi")),
    (
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"
        b"Connection: Upgrade, HTTP2-Settings\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    ),
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
]


@dataclass
class FuzzApp:
    """Plays the applications: each one behaves as hypothesis chose."""

    connection: H11Connection
    behaviours: list[Behaviour]
    spawned: int = 0
    ended: int = 0
    awaiting_end: bool = False  # an application was started and its stream has not ended
    running: bool = False
    websocket: bool = False
    behaviour: Behaviour = "echo"
    body: bytearray = field(default_factory=bytearray)

    def run(self) -> None:
        connection = self.connection
        moved = True
        while moved:
            moved = False
            for event in connection.events():
                if isinstance(event, SpawnApp):
                    assert not self.running, "two applications at once on HTTP/1.1"
                    assert not self.awaiting_end, "the previous stream never ended"
                    self.awaiting_end = True
                    self.spawned += 1
                    self.running = True
                    self.websocket = event.scope["type"] == "websocket"
                    self.behaviour = self.behaviours[self.spawned % len(self.behaviours)]
                    self.body.clear()
                    moved = True
                    self.start()
                elif isinstance(event, StreamEnded):
                    self.ended += 1
                    self.awaiting_end = False
            if self.running and self.behaviour != "hang":
                message = connection.app_receive(STREAM_ID)
                if message is not None:
                    moved = True
                    self.handle(message["type"], message)

    def start(self) -> None:
        send = self.connection.app_send
        if self.behaviour == "crash":
            self.finish()
        elif self.behaviour == "early" and not self.websocket:
            send(STREAM_ID, {"type": "http.response.start", "status": 200})
            send(STREAM_ID, {"type": "http.response.body", "body": b"early"})
            self.finish()
        elif self.behaviour == "partial" and not self.websocket:
            send(STREAM_ID, {"type": "http.response.start", "status": 200})
            send(STREAM_ID, {"type": "http.response.body", "body": b"p", "more_body": True})
            self.finish()

    def handle(self, kind: str, message: object) -> None:
        send = self.connection.app_send
        assert isinstance(message, dict)
        if kind == "websocket.connect":
            send(STREAM_ID, {"type": "websocket.accept"})
        elif kind == "websocket.receive":
            send(STREAM_ID, {"type": "websocket.send", "text": "echo"})
            send(STREAM_ID, {"type": "websocket.close", "code": 1000})
        elif kind == "http.request":
            self.body += message["body"]
            if not message["more_body"]:
                send(STREAM_ID, {"type": "http.response.start", "status": 200})
                send(STREAM_ID, {"type": "http.response.body", "body": bytes(self.body[:100])})
                self.finish()
        else:  # a disconnect of either kind
            self.finish()

    def finish(self) -> None:
        if self.running:
            self.running = False
            self.connection.app_finished(STREAM_ID)


def make_connection(codec: CodecFactory) -> H11Connection:
    config = Config()
    config.h11_max_incomplete_size = MAX_INCOMPLETE
    config.max_app_queue_size = 4
    return H11Connection(
        make_context(config),
        ssl=False,
        client=("127.0.0.1", 5),
        server=("127.0.0.1", 80),
        codec_factory=codec,
    )


def drive(
    codec: CodecFactory,
    chunks: list[bytes],
    behaviours: list[Behaviour],
    *,
    shutdown_at: int = -1,
) -> None:
    """Feed ``chunks`` as a driver would, then the end of input; check the invariants."""
    connection = make_connection(codec)
    app = FuzzApp(connection, behaviours)
    written = 0
    for index, chunk in enumerate(chunks):
        if connection.reading_paused or connection.switch is not None:
            break
        connection.receive_data(chunk)
        if index == shutdown_at:
            connection.shutdown()
        app.run()
        out = connection.data_to_send()
        written += len(out)
        assert len(out) <= MAX_RESPONSE * (app.spawned + 1) + MAX_CHUNK
        assert connection.buffered <= MAX_INCOMPLETE + 2 * MAX_CHUNK
        if connection.closed:
            break
    connection.receive_data(b"")
    app.run()
    app.finish()
    app.run()
    connection.handle_timer()
    connection.data_to_send()
    assert connection.closed or connection.switch is not None
    if connection.switch is None:
        assert not app.awaiting_end
        assert app.ended >= app.spawned
    assert connection.events() == []


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces = []
    start = 0
    for point in [*points, len(data)]:
        piece = data[start:point]
        while piece:
            pieces.append(piece[:MAX_CHUNK])
            piece = piece[MAX_CHUNK:]
        start = point
    return pieces


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """A few seed requests in a row, with random bytes flipped, inserted or removed."""
    seeds = draw(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4))
    data = bytearray(b"".join(seeds))
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "repeat"]))
        if operation == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[position:position] = draw(
                st.sampled_from([b"\r\n", b"\n", b":", b" ", b"\x00", b"0", b"ffff", b"\r"])
            )
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 64))] * (
                draw(st.integers(1, 40))
            )
    return bytes(data)


behaviour_lists = st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=5)
cut_lists = st.lists(st.integers(0, 10_000), max_size=12)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(data=mutated_streams(), cuts=cut_lists, behaviours=behaviour_lists)
def test_mutated_requests(
    codec: CodecFactory, data: bytes, cuts: list[int], behaviours: list[Behaviour]
) -> None:
    drive(codec, split(data, cuts), behaviours)


@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(data=st.binary(max_size=3000), cuts=cut_lists, behaviours=behaviour_lists)
def test_random_bytes(
    codec: CodecFactory, data: bytes, cuts: list[int], behaviours: list[Behaviour]
) -> None:
    drive(codec, split(data, cuts), behaviours)


@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(
    data=mutated_streams(),
    cuts=cut_lists,
    behaviours=behaviour_lists,
    shutdown_at=st.integers(0, 6),
)
def test_shutdown_at_any_point(
    codec: CodecFactory,
    data: bytes,
    cuts: list[int],
    behaviours: list[Behaviour],
    shutdown_at: int,
) -> None:
    drive(codec, split(data, cuts), behaviours, shutdown_at=shutdown_at)


@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(
    requests=st.lists(st.sampled_from(SEEDS[:6]), min_size=1, max_size=6),
    cuts=cut_lists,
)
def test_valid_pipelines_are_served_in_full(
    codec: CodecFactory, requests: list[bytes], cuts: list[int]
) -> None:
    """Unmutated requests, split anywhere: every one is answered, in order."""
    connection = make_connection(codec)
    app = FuzzApp(connection, ["echo"])
    out = bytearray()
    for chunk in split(b"".join(requests), cuts):
        if connection.closed:
            break
        assert not connection.reading_paused
        connection.receive_data(chunk)
        app.run()
        out += connection.data_to_send()
    # HTTP/1.0 requests end the connection after their response.
    served = 0
    for request in requests:
        served += 1
        if b"HTTP/1.0" in request:
            break
    assert app.spawned == served
    assert out.count(b"HTTP/1.1 200 OK\r\n") == served


# ---------------------------------------------------------------------------------------
# Differential: the httptools codec against the h11 codec
# ---------------------------------------------------------------------------------------

#: More requests than SEEDS, around the places where llhttp and h11 differ.
DIFF_SEEDS = [
    *SEEDS,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nhello world!",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\nContent-Length: 02\r\n\r\nab",
    (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b'a;x="y" \r\n0123456789\r\n0\r\nA: 1\r\n\tfolded\r\nB:2\r\n\r\n'
    ),
    b"GET / HTTP/1.1\nHost: a\nX: a\n b\n\n",
    b"get  /x  HTTP/1.1\r\nhost:a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nX:\t v \t\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    b"GET http://a/?q HTTP/1.0\r\nConnection: close, Upgrade\r\nUpgrade: h2c\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"PRI * HTTP/1.1\r\nHost: a\r\nX: a\x01b\xff\r\n\r\n",
    # A body as long as the next head's first line, then a head that repeats that line.
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n" + b"b" * 16,
    b"GET / HTTP/1.1\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
]

RESPONSES: list[list[Outgoing]] = [
    [
        Response(STREAM_ID, [(b"content-type", b"text/plain")], 200),
        Data(STREAM_ID, b"hi"),
        EndData(STREAM_ID),
    ],
    [
        Response(STREAM_ID, [(b"content-length", b"3")], 200),
        Data(STREAM_ID, b"abc"),
        EndData(STREAM_ID),
    ],
    [Response(STREAM_ID, [(b"content-length", b"3")], 200), Data(STREAM_ID, b"abcd")],
    [Response(STREAM_ID, [(b"content-length", b"3")], 200), EndData(STREAM_ID)],
    [
        InformationalResponse(STREAM_ID, [], 100),
        Response(STREAM_ID, [(b"connection", b"close, Upgrade")], 404),
        EndData(STREAM_ID),
    ],
    [InformationalResponse(STREAM_ID, [(b"upgrade", b"websocket")], 101), Data(STREAM_ID, b"x")],
    [
        Response(STREAM_ID, [(b"transfer-encoding", b"Chunked"), (b"content-length", b"5")], 200),
        Data(STREAM_ID, b""),
        Data(STREAM_ID, b"xy"),
        EndData(STREAM_ID),
    ],
    [Response(STREAM_ID, [], 204), Data(STREAM_ID, b"x")],
    [
        Response(STREAM_ID, [(b"Host", b"h"), (b"x", b"1"), (b"host", b"g")], 304),
        EndData(STREAM_ID),
    ],
    [
        Response(STREAM_ID, [(b"x", b"a\r\nb")], 200),
        Response(STREAM_ID, [], 200),
        EndData(STREAM_ID),
    ],
    [Data(STREAM_ID, b"early"), EndData(STREAM_ID)],
]


def _codec_log(
    factory: CodecFactory, chunks: list[bytes], responses: list[list[Outgoing]], limit: int
) -> list[Any]:
    """Everything a codec does with ``chunks``, answering each request in turn."""
    config = Config()
    config.h11_max_incomplete_size = limit
    codec = factory(config, ConnectionState({}))
    log: list[Any] = []
    answered = 0

    def send(events: list[Outgoing]) -> None:
        for event in events:
            try:
                log.append(codec.send(event))
            except ValueError as error:
                log.append(("ValueError", "this response" in str(error)))
            log.append((codec.can_send, codec.must_close))

    for chunk in chunks:
        codec.receive_data(chunk)
        while True:
            event: CodecEvent = codec.next_event()
            if isinstance(event, ParseError):
                log.append(("ParseError", event.status_hint))
                send([Response(STREAM_ID, [(b"content-length", b"0")], 400), EndData(STREAM_ID)])
                return log
            log.append(event)
            log.append(codec.buffered)
            if event is NEED_DATA:
                break
            if event is PAUSED:
                send(responses[answered % len(responses)])
                answered += 1
                if not codec.start_next_cycle():
                    log.append(codec.take_trailing_data())
                    return log
    return log


def _agree(chunks: list[bytes], responses: list[list[Outgoing]], limit: int) -> None:
    assert _codec_log(HttptoolsCodec, chunks, responses, limit) == _codec_log(
        H11Codec, chunks, responses, limit
    )


@st.composite
def diff_streams(draw: st.DrawFn) -> bytes:
    """Seed requests in a row with random edits, or random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=600))
    seeds = draw(st.lists(st.sampled_from(DIFF_SEEDS), min_size=1, max_size=4))
    data = bytearray(b"".join(seeds))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(
                st.sampled_from(
                    [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b",", b";", b"0", b"\x00"]
                )
            )
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=diff_streams(),
    cuts=cut_lists,
    responses=st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=4),
    limit=st.sampled_from([16, 64, 200, 16384]),
)
def test_codecs_agree(
    data: bytes, cuts: list[int], responses: list[list[Outgoing]], limit: int
) -> None:
    _agree(split(data, cuts), responses, limit)


@pytest.mark.parametrize(
    "seed",
    [
        b"GET /a?b HTTP/1.1\r\nHost: a\r\nX-Y: v w\r\nContent-Length: 2\r\n\r\nab",
        (
            b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n"
        ),
    ],
    ids=["content-length", "chunked"],
)
def test_codecs_agree_on_every_byte_anywhere(seed: bytes) -> None:
    """Each of the 256 byte values put in (and in place of) each byte of a request."""
    for position in range(len(seed) + 1):
        for value in range(256):
            byte = bytes((value,))
            _agree([seed[:position] + byte + seed[position:]], RESPONSES[:1], 16384)
            if position < len(seed):
                _agree([seed[:position] + byte + seed[position + 1 :]], RESPONSES[:1], 16384)
