"""The HTTP/2 connection's defences: rapid reset, header blocks, floods, invalid frames.

A raw client (:class:`RawClient`) writes frames by hand (hyperframe, or bytes for frames
hyperframe refuses to build) so that it can misbehave; the server's output is parsed back
into frames. Thresholds come from :mod:`hypercorn.protocol.h2_limits`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import hpack
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from hypercorn.config import Config
from hypercorn.protocol.events import SpawnApp
from hypercorn.protocol.h2 import H2Connection
from hypercorn.protocol.h2_limits import (
    CONTROL_FRAME_BUDGET,
    CONTROL_FRAME_BYTES_PER_UNIT,
    MAX_CONTINUATION_FRAMES,
    PREFACE,
    RESET_BUDGET,
    FrameGuard,
    ResetBudget,
)
from tests.protocols.h2_support import split_frames
from tests.protocols.support import CLIENT, SERVER, make_context


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame from its parts, valid or not."""
    length = len(payload)
    return struct.pack(">HBBBL", length >> 8, length & 0xFF, frame_type, flags, stream_id) + (
        payload
    )


class RawClient:
    """A hand-driven client: preface and SETTINGS sent, frames written one by one."""

    def __init__(self, config: Config | None = None) -> None:
        self.server = H2Connection(make_context(config), ssl=False, client=CLIENT, server=SERVER)
        self.encoder = hpack.Encoder()
        self.frames: list[Frame] = []
        self.spawned: list[int] = []
        self.send(
            PREFACE + SettingsFrame(0).serialize() + SettingsFrame(0, flags=["ACK"]).serialize()
        )

    def send(self, data: bytes) -> list[Frame]:
        """Feed bytes; return (and record) the frames the server wrote in answer."""
        self.server.receive_data(data)
        frames = [frame for frame, _ in split_frames(self.server.data_to_send())]
        self.frames += frames
        self.spawned += [e.stream_id for e in self.server.events() if isinstance(e, SpawnApp)]
        return frames

    def headers(
        self, stream_id: int, *, end_stream: bool = True, end_headers: bool = True
    ) -> bytes:
        block = self.encoder.encode(
            [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/")]
        )
        flags = ["END_STREAM"] if end_stream else []
        if end_headers:
            flags.append("END_HEADERS")
        return HeadersFrame(stream_id, data=block, flags=flags).serialize()

    @property
    def goaway(self) -> GoAwayFrame | None:
        goaways = [frame for frame in self.frames if isinstance(frame, GoAwayFrame)]
        assert len(goaways) <= 1
        return goaways[0] if goaways else None

    def assert_goaway(self, error_code: ErrorCodes) -> None:
        goaway = self.goaway
        assert goaway is not None
        assert goaway.error_code == error_code
        assert self.server.closed

    def respond(self, stream_id: int) -> None:
        self.server.app_send(stream_id, {"type": "http.response.start", "status": 200})
        self.server.app_send(stream_id, {"type": "http.response.body", "body": b"ok"})
        self.server.app_finished(stream_id)
        self.frames += [frame for frame, _ in split_frames(self.server.data_to_send())]


# ---------------------------------------------------------------------------------------
# Rapid reset
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("apps_finish", [True, False])
def test_rapid_reset_is_enhance_your_calm(apps_finish: bool) -> None:
    client = RawClient(Config.from_mapping(h2_max_concurrent_streams=1000))
    for number in range(RESET_BUDGET + 1):
        stream_id = 2 * number + 1
        assert client.goaway is None
        client.send(
            client.headers(stream_id) + RstStreamFrame(stream_id, error_code=8).serialize()
        )
        if apps_finish and stream_id in client.spawned:
            client.server.app_finished(stream_id)
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)
    assert len(client.spawned) == RESET_BUDGET + 1


def test_completed_streams_earn_resets_back() -> None:
    client = RawClient(Config.from_mapping(keep_alive_max_requests=10_000))
    for number in range(3 * RESET_BUDGET):
        completed, reset = 4 * number + 1, 4 * number + 3
        client.send(client.headers(completed))
        client.respond(completed)
        client.send(client.headers(reset) + RstStreamFrame(reset, error_code=8).serialize())
        client.server.app_finished(reset)
    assert client.goaway is None
    assert not client.server.closed


def test_reset_streams_with_running_apps_count_toward_the_stream_limit() -> None:
    client = RawClient(Config.from_mapping(h2_max_concurrent_streams=5))
    for stream_id in range(1, 11, 2):
        client.send(
            client.headers(stream_id) + RstStreamFrame(stream_id, error_code=8).serialize()
        )
    assert client.spawned == [1, 3, 5, 7, 9]
    # h2 considers those streams closed, but their applications still run: refused.
    frames = client.send(client.headers(11))
    assert [(f.stream_id, f.error_code) for f in frames if isinstance(f, RstStreamFrame)] == [
        (11, ErrorCodes.REFUSED_STREAM)
    ]
    assert 11 not in client.spawned
    client.server.app_finished(1)
    client.send(client.headers(13))
    assert client.spawned[-1] == 13


def test_reset_budget_counts() -> None:
    budget = ResetBudget(2)
    budget.complete()  # never above the start
    assert budget.credit == 2
    assert budget.waste()
    assert budget.waste()
    budget.complete()
    assert budget.waste()
    assert not budget.waste()


# ---------------------------------------------------------------------------------------
# Header blocks: CONTINUATION floods and oversized blocks
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"\x00"])
def test_continuation_flood_is_enhance_your_calm(payload: bytes) -> None:
    client = RawClient()
    data = client.headers(1, end_headers=False)
    for _ in range(MAX_CONTINUATION_FRAMES):
        data += ContinuationFrame(1, data=payload).serialize()
    client.send(data)
    assert client.goaway is None
    client.send(ContinuationFrame(1, data=payload).serialize())
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


@pytest.mark.parametrize(("list_size", "frames_allowed"), [(65536, 8), (8192, 1)])
def test_oversized_header_block_is_enhance_your_calm(list_size: int, frames_allowed: int) -> None:
    # The block may hold twice the header list size, at least one full frame.
    client = RawClient(Config.from_mapping(h2_max_header_list_size=list_size))
    chunk = b"\x00" * 16384
    client.send(HeadersFrame(1, data=chunk).serialize())
    for _ in range(frames_allowed - 1):
        client.send(ContinuationFrame(1, data=chunk).serialize())
    assert client.goaway is None
    client.send(ContinuationFrame(1, data=chunk).serialize())
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_header_list_larger_than_advertised_is_refused() -> None:
    client = RawClient(Config.from_mapping(h2_max_header_list_size=1000))
    block = client.encoder.encode(
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"h"),
            (b":path", b"/"),
            (b"x-big", b"v" * 2000),
        ]
    )
    client.send(HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)
    assert client.spawned == []


# ---------------------------------------------------------------------------------------
# Frame size
# ---------------------------------------------------------------------------------------


def test_announced_huge_frame_is_refused_before_its_payload() -> None:
    client = RawClient()
    header_only = struct.pack(">HBBBL", 0xFFFF, 0xFF, 0x0, 0, 1)  # DATA of 2**24 - 1 bytes
    assert len(header_only) == 9
    client.send(header_only)
    client.assert_goaway(ErrorCodes.FRAME_SIZE_ERROR)


def test_frame_just_over_the_limit_is_frame_size_error() -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))
    client.send(raw_frame(0x0, 0, 1, b"x" * 16385))
    client.assert_goaway(ErrorCodes.FRAME_SIZE_ERROR)


# ---------------------------------------------------------------------------------------
# Control-frame floods
# ---------------------------------------------------------------------------------------


def _ping() -> bytes:
    return PingFrame(0, opaque_data=b"12345678").serialize()


def _ping_ack() -> bytes:
    return PingFrame(0, opaque_data=b"12345678", flags=["ACK"]).serialize()


def _settings() -> bytes:
    return SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 16384}).serialize()


def _window_update() -> bytes:
    return WindowUpdateFrame(0, window_increment=1).serialize()


def _priority() -> bytes:
    return PriorityFrame(1, depends_on=0, stream_weight=15).serialize()


def _empty_data() -> bytes:
    return DataFrame(1, data=b"").serialize()


def _unknown() -> bytes:
    return raw_frame(0xEE, 0, 0, b"")


FLOODS: dict[str, Callable[[], bytes]] = {
    "PING": _ping,
    "PING ACK": _ping_ack,
    "SETTINGS": _settings,
    "WINDOW_UPDATE": _window_update,
    "PRIORITY": _priority,
    "empty DATA": _empty_data,
    "unknown": _unknown,
}


@pytest.mark.parametrize("kind", list(FLOODS))
def test_control_frame_flood_is_enhance_your_calm(kind: str) -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))  # an open stream (for empty DATA)
    frame = FLOODS[kind]()
    answers = client.send(frame * CONTROL_FRAME_BUDGET)
    assert client.goaway is None
    # Each flood frame gets at most one small answer: output is bounded by the budget.
    assert len(answers) <= CONTROL_FRAME_BUDGET
    client.send(frame)
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_flood_split_across_reads_is_counted_the_same() -> None:
    client = RawClient()
    data = _ping() * (CONTROL_FRAME_BUDGET + 1)
    for start in range(0, len(data), 7):
        client.send(data[start : start + 7])
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_rst_stream_flood_on_closed_streams() -> None:
    client = RawClient()
    client.send(client.headers(1))
    client.respond(1)
    client.send(RstStreamFrame(1, error_code=8).serialize() * CONTROL_FRAME_BUDGET)
    assert client.goaway is None
    client.send(RstStreamFrame(1, error_code=8).serialize())
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_data_on_a_reset_stream_is_not_work() -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False) + RstStreamFrame(1, error_code=8).serialize())
    # The RST_STREAM cost one unit; each DATA frame for the dead stream costs another.
    frames = client.send(DataFrame(1, data=b"x").serialize() * (CONTROL_FRAME_BUDGET - 1))
    assert client.goaway is None
    assert len([f for f in frames if isinstance(f, RstStreamFrame)]) <= CONTROL_FRAME_BUDGET
    client.send(DataFrame(1, data=b"x").serialize())
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_large_control_frames_cost_more() -> None:
    client = RawClient()
    # A SETTINGS frame of 16380 bytes (2730 unknown settings) costs 1 + 16380 // 64 units.
    payload = b"".join(struct.pack(">HL", 0x100 + n, 0) for n in range(2730))
    frame = raw_frame(0x4, 0, 0, payload)
    cost = 1 + len(payload) // CONTROL_FRAME_BYTES_PER_UNIT
    allowed = CONTROL_FRAME_BUDGET // cost
    client.send(frame * allowed)
    assert client.goaway is None
    client.send(frame)
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_padding_only_data_costs_by_size() -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))
    padded = DataFrame(1, data=b"", pad_length=255, flags=["PADDED"]).serialize()
    cost = 1 + (len(padded) - 9) // CONTROL_FRAME_BYTES_PER_UNIT
    client.send(padded * (CONTROL_FRAME_BUDGET // cost))
    assert client.goaway is None
    client.send(padded * 2)
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_real_work_refills_the_budget() -> None:
    client = RawClient()
    stream_id = 1
    for _ in range(5):
        client.send(_ping() * (CONTROL_FRAME_BUDGET - 5))  # the SETTINGS spent a little too
        client.send(client.headers(stream_id))  # a request is work
        stream_id += 2
    client.send(client.headers(stream_id, end_stream=False))
    for _ in range(5):
        client.send(_ping() * (CONTROL_FRAME_BUDGET - 1))
        client.send(DataFrame(stream_id, data=b"body").serialize())  # so is request data
    assert client.goaway is None


def test_window_updates_during_a_download_are_not_a_flood() -> None:
    client = RawClient()
    client.send(
        client.headers(1)
        + SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 100}).serialize()
    )
    client.server.app_send(1, {"type": "http.response.start", "status": 200})
    client.server.app_send(
        1, {"type": "http.response.body", "body": b"d" * 150_000, "more_body": False}
    )
    client.server.app_finished(1)
    received = 0
    for _ in range(3 * CONTROL_FRAME_BUDGET):
        frames = client.send(
            WindowUpdateFrame(0, window_increment=100).serialize()
            + WindowUpdateFrame(1, window_increment=100).serialize()
        )
        received += sum(len(f.data) for f in frames if isinstance(f, DataFrame))
        if received >= 150_000:
            break
    assert received == 150_000
    assert client.goaway is None
    # Nothing left to send: the same frames are now a flood.
    client.send(WindowUpdateFrame(0, window_increment=1).serialize() * (CONTROL_FRAME_BUDGET + 1))
    client.assert_goaway(ErrorCodes.ENHANCE_YOUR_CALM)


def test_unread_answers_pause_reading() -> None:
    client = RawClient(Config.from_mapping(keep_alive_max_requests=10_000))
    server = client.server
    stream_id = 1
    while not server.reading_paused:
        # A request refills the budget; the pings' answers pile up untaken.
        server.receive_data(client.headers(stream_id) + _ping() * (CONTROL_FRAME_BUDGET - 1))
        stream_id += 2
        assert stream_id < 20
    assert not server.closed
    split_frames(server.data_to_send())
    assert not server.reading_paused


# ---------------------------------------------------------------------------------------
# Invalid frames: GOAWAY with the right code, never an exception
# ---------------------------------------------------------------------------------------

INVALID: dict[str, tuple[bytes, ErrorCodes]] = {
    "DATA on stream 0": (raw_frame(0x0, 0, 0, b"x"), ErrorCodes.PROTOCOL_ERROR),
    "DATA on an idle stream": (raw_frame(0x0, 0, 9, b"x"), ErrorCodes.PROTOCOL_ERROR),
    "HEADERS on stream 0": (raw_frame(0x1, 0x4, 0, b""), ErrorCodes.PROTOCOL_ERROR),
    "HEADERS on an even stream": (raw_frame(0x1, 0x5, 2, b"\x82"), ErrorCodes.PROTOCOL_ERROR),
    "undecodable header block": (
        raw_frame(0x1, 0x5, 1, b"\xff\xff\xff"),
        ErrorCodes.COMPRESSION_ERROR,
    ),
    "SETTINGS of 5 bytes": (raw_frame(0x4, 0, 0, b"\x00" * 5), ErrorCodes.FRAME_SIZE_ERROR),
    "SETTINGS on a stream": (raw_frame(0x4, 0, 1, b""), ErrorCodes.PROTOCOL_ERROR),
    "SETTINGS ACK with a payload": (
        raw_frame(0x4, 0x1, 0, b"\x00" * 6),
        ErrorCodes.FRAME_SIZE_ERROR,
    ),
    "window too large": (
        raw_frame(0x4, 0, 0, struct.pack(">HL", 0x4, 2**31)),
        ErrorCodes.FLOW_CONTROL_ERROR,
    ),
    "ENABLE_PUSH 2": (raw_frame(0x4, 0, 0, struct.pack(">HL", 0x2, 2)), ErrorCodes.PROTOCOL_ERROR),
    "PING of 7 bytes": (raw_frame(0x6, 0, 0, b"\x00" * 7), ErrorCodes.FRAME_SIZE_ERROR),
    "PING on a stream": (raw_frame(0x6, 0, 1, b"\x00" * 8), ErrorCodes.PROTOCOL_ERROR),
    "WINDOW_UPDATE of 0": (raw_frame(0x8, 0, 0, b"\x00" * 4), ErrorCodes.PROTOCOL_ERROR),
    "WINDOW_UPDATE overflow": (
        raw_frame(0x8, 0, 0, struct.pack(">L", 2**31 - 1)),
        ErrorCodes.FLOW_CONTROL_ERROR,
    ),
    "naked CONTINUATION": (raw_frame(0x9, 0x4, 1, b""), ErrorCodes.PROTOCOL_ERROR),
    "PRIORITY on itself": (
        raw_frame(0x2, 0, 1, struct.pack(">LB", 1, 15)),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "RST_STREAM on stream 0": (raw_frame(0x3, 0, 0, b"\x00" * 4), ErrorCodes.PROTOCOL_ERROR),
    "PUSH_PROMISE from a client": (
        raw_frame(0x5, 0x4, 1, b"\x00\x00\x00\x02"),
        ErrorCodes.PROTOCOL_ERROR,
    ),
    "bad padding": (raw_frame(0x0, 0x8, 1, b"\x09abc"), ErrorCodes.PROTOCOL_ERROR),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_frame_is_a_connection_error(name: str) -> None:
    data, error_code = INVALID[name]
    client = RawClient()
    client.send(data)
    client.assert_goaway(error_code)
    assert client.server.reading_paused
    assert client.server.next_deadline() is None
    # Nothing more is read or answered.
    assert client.send(_ping()) == []


def test_frame_inside_a_header_block_is_a_protocol_error() -> None:
    client = RawClient()
    client.send(client.headers(1, end_headers=False) + _ping())
    client.assert_goaway(ErrorCodes.PROTOCOL_ERROR)


def test_too_many_streams_for_h2_is_a_connection_error() -> None:
    client = RawClient(Config.from_mapping(h2_max_concurrent_streams=2))
    data = b"".join(client.headers(stream_id, end_stream=False) for stream_id in (1, 3, 5))
    client.send(data)
    assert client.server.closed
    assert client.goaway is not None


# ---------------------------------------------------------------------------------------
# The guard on its own
# ---------------------------------------------------------------------------------------


def test_guard_keeps_its_first_violation() -> None:
    guard = FrameGuard(max_frame_size=16384, max_header_block=16384)
    assert guard.feed(b"XRI") is not None
    violation = guard.feed(PREFACE)
    assert violation is not None
    assert violation.error_code == ErrorCodes.PROTOCOL_ERROR
    assert "preface" in violation.reason


def test_guard_progress_refills() -> None:
    guard = FrameGuard(max_frame_size=16384, max_header_block=16384, control_budget=3)
    assert guard.feed(PREFACE + _ping() * 3) is None
    assert guard.spent == 3
    guard.progress()
    assert guard.feed(_ping() * 3) is None
    assert guard.feed(_ping()) is not None
