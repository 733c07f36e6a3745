"""Random and mutated HTTP/2 frame sequences against the connection.

Valid frames are built with hyperframe (header blocks with hpack), then the byte stream is
mutated and cut into random reads. Whatever arrives, ``receive_data`` never raises, the
application side keeps working, and every buffer stays bounded: h2's input buffer (one
frame at most, thanks to the frame guard), the output waiting to be taken, the stream table.
"""

from __future__ import annotations

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypercorn.config import Config
from hypercorn.protocol.events import SpawnApp
from hypercorn.protocol.h2 import H2Connection
from hypercorn.protocol.h2_limits import PREFACE
from tests.protocols.support import CLIENT, SERVER, make_context

MAX_STREAMS = 8
FRAME_SIZE = 16384

stream_ids = st.sampled_from([1, 2, 3, 5, 7, 9, 2**31 - 1])  # invalid ones come by mutation
small_bytes = st.binary(max_size=64)
header_names = st.sampled_from(
    [b":method", b":path", b":scheme", b":authority", b":protocol", b"te", b"host", b"x-a"]
)
header_values = st.sampled_from(
    [b"GET", b"POST", b"CONNECT", b"/", b"/a?b", b"http", b"h", b"trailers", b"websocket", b""]
)
headers = st.lists(st.tuples(header_names, header_values), max_size=8)
regular_headers = st.lists(
    st.sampled_from(
        [(b"te", b"trailers"), (b"x-a", b"1"), (b"cookie", b"a=b"), (b"accept", b"*")]
    ),
    max_size=3,
)
#: Settings a client may send (some values are out of range: a connection error).
SETTINGS = [
    (1, 4096),
    (1, 0),
    (2, 0),
    (2, 1),
    (3, 0),
    (3, 100),
    (4, 65535),
    (4, 0),
    (4, 2**31),
    (5, 16384),
    (5, 10),
    (6, 1000),
    (8, 1),
    (99, 5),
]
REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/")]


@st.composite
def frame_sequences(draw: st.DrawFn) -> bytes:
    """Preface, SETTINGS, then mostly well-formed frames: requests on new streams, data on
    them, control frames, now and then a broken header block (junk comes by mutation)."""
    encoder = hpack.Encoder()
    parts = [PREFACE, SettingsFrame(0).serialize()]
    next_stream = 1
    opened: list[int] = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from("HHHHHDDDDDDSSPPWWRRYYC" if draw(st.integers(0, 4)) else "HD"))
        if not opened and kind in "DCWR":
            kind = "H"
        frame: Frame
        if kind == "H":  # a request (sometimes on an old stream: trailers or an error)
            if draw(st.integers(0, 14)):
                stream_id = next_stream
                next_stream += 2
                opened.append(stream_id)
            else:
                stream_id = draw(stream_ids)
            if draw(st.integers(0, 9)):
                block = encoder.encode(REQUEST + draw(regular_headers))
            else:
                block = encoder.encode(draw(headers))
            split = len(block) // 2 if not draw(st.integers(0, 9)) else len(block)
            flags = draw(st.sets(st.sampled_from(["END_STREAM", "PRIORITY"])))
            if split == len(block):
                flags.add("END_HEADERS")
            parts.append(HeadersFrame(stream_id, data=block[:split], flags=flags).serialize())
            if split == len(block):
                continue
            frame = ContinuationFrame(stream_id, data=block[split:], flags=["END_HEADERS"])
        elif kind == "D":
            flags = draw(st.sets(st.sampled_from(["END_STREAM", "PADDED"])))
            pad = draw(st.integers(0, 20)) if "PADDED" in flags else 0
            frame = DataFrame(
                draw(st.sampled_from(opened)), data=draw(small_bytes), flags=flags, pad_length=pad
            )
        elif kind == "C":
            frame = ContinuationFrame(
                draw(st.sampled_from(opened)), data=draw(small_bytes), flags=["END_HEADERS"]
            )
        elif kind == "S":
            values = dict(draw(st.lists(st.sampled_from(SETTINGS), max_size=3)))
            frame = SettingsFrame(0, settings=values)
        elif kind == "P":
            frame = PingFrame(0, opaque_data=draw(st.binary(min_size=8, max_size=8)))
        elif kind == "W":
            frame = WindowUpdateFrame(
                draw(st.sampled_from([0, *opened])),
                window_increment=draw(st.sampled_from([1, 100, 65535, 2**31 - 1])),
            )
        elif kind == "R":
            frame = RstStreamFrame(
                draw(st.sampled_from(opened)), error_code=draw(st.integers(0, 13))
            )
        elif kind == "Y":
            frame = PriorityFrame(
                draw(stream_ids),
                depends_on=draw(st.sampled_from([0, 1, 3, 101])),
                stream_weight=draw(st.integers(0, 255)),
                exclusive=draw(st.booleans()),
            )
        parts.append(frame.serialize())
    ending = draw(st.integers(0, 9))
    if ending == 0:
        parts.append(
            GoAwayFrame(0, last_stream_id=draw(st.sampled_from([0, 1, 2**31 - 1]))).serialize()
        )
    elif ending == 1:
        parts.append(
            PushPromiseFrame(1, promised_stream_id=2, data=b"", flags=["END_HEADERS"]).serialize()
        )
    return b"".join(parts)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A frame sequence with a few random edits."""
    data = bytearray(draw(frame_sequences()))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        edit = draw(st.integers(0, 3))
        if edit == 0:
            data[position] ^= draw(st.integers(1, 255))
        elif edit == 1:
            del data[position : position + draw(st.integers(1, 16))]
        elif edit == 2:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[position:]
    return bytes(data)


def cut(data_object: st.DataObject, data: bytes) -> list[bytes]:
    """``data`` split into random reads."""
    points = sorted(data_object.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks = []
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            chunks.append(data[start:point])
            start = point
    return chunks


def respond(server: H2Connection, stream_id: int) -> None:
    """An application that uses what HTTP/2 offers, varying with the stream id."""
    fancy = stream_id % 4 == 3
    if fancy:
        server.app_send(stream_id, {"type": "http.response.early_hint", "links": [b"</a>"]})
        server.app_send(stream_id, {"type": "http.response.push", "path": "/a", "headers": []})
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "trailers": fancy})
    server.app_send(stream_id, {"type": "http.response.body", "body": b"ok" * (stream_id % 50)})
    if fancy:
        server.app_send(stream_id, {"type": "http.response.trailers", "headers": []})


def drive(data_chunks: list[bytes]) -> None:
    """Feed the reads, act as a simple application, check the bounds after each step."""
    config = Config.from_mapping(h2_max_concurrent_streams=MAX_STREAMS)
    server = H2Connection(make_context(config), ssl=False, client=CLIENT, server=SERVER)
    fed = 0
    written = len(server.data_to_send())
    for chunk in data_chunks:
        server.receive_data(chunk)
        fed += len(chunk)
        # The frame guard keeps h2 from buffering more than one frame.
        assert len(server._conn.incoming_buffer._data) <= 9 + FRAME_SIZE + len(chunk)
        for event in server.events():
            if isinstance(event, SpawnApp):
                stream_id = event.stream_id
                while server.app_receive(stream_id) is not None:
                    pass
                if event.scope["type"] == "http":
                    respond(server, stream_id)
                elif stream_id % 4 == 1:
                    server.app_send(stream_id, {"type": "websocket.accept"})
                    server.app_send(stream_id, {"type": "websocket.send", "text": "hi"})
                server.app_finished(stream_id)
        assert len(server._streams) <= 2 * MAX_STREAMS
        out = server.data_to_send()
        written += len(out)
        # Every answer is small and answers something the peer sent.
        assert written <= 1024 + 64 * fed
        if server.closed:
            break
    server.receive_data(b"")
    assert server.closed
    server.data_to_send()
    server.events()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_frame_sequences(data: st.DataObject) -> None:
    stream = data.draw(mutated())
    drive(cut(data, stream))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_random_bytes_after_the_preface(noise: bytes, data: st.DataObject) -> None:
    drive(cut(data, PREFACE + noise))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100))
def test_random_bytes_instead_of_the_preface(noise: bytes) -> None:
    drive([noise] if noise else [])
