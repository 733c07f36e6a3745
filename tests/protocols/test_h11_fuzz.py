"""Random and mutated byte streams against the HTTP/1.1 connection.

Whatever arrives, in whatever pieces, the connection must not raise, must keep its buffers
and output bounded while the driver honours ``reading_paused``, and must end in a sane
state: closed (or handed over to HTTP/2) once the client is gone, with one ``StreamEnded``
for every application it asked to start (streams answered without an application, such
as a bad WebSocket handshake, end too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection as WSFrames
from wsproto.events import TextMessage

from hypercorn.config import Config
from hypercorn.protocol.events import SpawnApp, StreamEnded
from hypercorn.protocol.h11 import STREAM_ID, H11Connection
from tests.protocols.support import make_context

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


def make_connection() -> H11Connection:
    config = Config()
    config.h11_max_incomplete_size = MAX_INCOMPLETE
    config.max_app_queue_size = 4
    return H11Connection(
        make_context(config), ssl=False, client=("127.0.0.1", 5), server=("127.0.0.1", 80)
    )


def drive(chunks: list[bytes], behaviours: list[Behaviour], *, shutdown_at: int = -1) -> None:
    """Feed ``chunks`` as a driver would, then the end of input; check the invariants."""
    connection = make_connection()
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


@FUZZ
@given(data=mutated_streams(), cuts=cut_lists, behaviours=behaviour_lists)
def test_mutated_requests(data: bytes, cuts: list[int], behaviours: list[Behaviour]) -> None:
    drive(split(data, cuts), behaviours)


@FUZZ
@given(data=st.binary(max_size=3000), cuts=cut_lists, behaviours=behaviour_lists)
def test_random_bytes(data: bytes, cuts: list[int], behaviours: list[Behaviour]) -> None:
    drive(split(data, cuts), behaviours)


@FUZZ
@given(
    data=mutated_streams(),
    cuts=cut_lists,
    behaviours=behaviour_lists,
    shutdown_at=st.integers(0, 6),
)
def test_shutdown_at_any_point(
    data: bytes, cuts: list[int], behaviours: list[Behaviour], shutdown_at: int
) -> None:
    drive(split(data, cuts), behaviours, shutdown_at=shutdown_at)


@FUZZ
@given(
    requests=st.lists(st.sampled_from(SEEDS[:6]), min_size=1, max_size=6),
    cuts=cut_lists,
)
def test_valid_pipelines_are_served_in_full(requests: list[bytes], cuts: list[int]) -> None:
    """Unmutated requests, split anywhere: every one is answered, in order."""
    connection = make_connection()
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
