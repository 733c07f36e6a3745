"""The WebSocket frames read and written without wsproto (hypercorn.protocol.ws_frames).

wsproto is the reference: a frame we write must be the bytes it writes, and bytes we hand
to it must be exactly the frames (and frame pieces) that are not simple. The stream-level
comparison with wsproto (every event and close code) is in test_ws_stream.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage

from hypercorn.protocol.ws_frames import (
    SIMPLE_MAX_PAYLOAD,
    FrameSplitter,
    Piece,
    Unparsed,
    server_frame,
    unmask,
)

KEY = b"\x12\x34\x56\x78"


def masked(payload: bytes, key: bytes = KEY) -> bytes:
    """``payload`` XOR the repeated key, byte by byte (RFC 6455 §5.3)."""
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


def client_frame(
    first: int,
    payload: bytes,
    *,
    mask: bool = True,
    length_bytes: int | None = None,
    key: bytes = KEY,
) -> bytes:
    """A frame as a client writes it; ``length_bytes`` (0, 2 or 8) forces a length form."""
    length = len(payload)
    if length_bytes is None:
        length_bytes = 0 if length <= 125 else 2 if length <= 0xFFFF else 8
    mask_bit = 0x80 if mask else 0
    if length_bytes == 0:
        header = bytes((first, mask_bit | length))
    elif length_bytes == 2:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    return header + key + masked(payload, key) if mask else header + payload


def text(value: str) -> bytes:
    return client_frame(0x81, value.encode())


def binary(value: bytes) -> bytes:
    return client_frame(0x82, value)


def readable(pieces: list[Piece]) -> list[object]:
    """Pieces with the bytes for wsproto as ``("wsproto", bytes)``, for comparing."""
    return [("wsproto", piece.data) if isinstance(piece, Unparsed) else piece for piece in pieces]


# ---------------------------------------------------------------------------------------
# Unmasking and writing
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 32, 125, 126, 1000, SIMPLE_MAX_PAYLOAD])
@pytest.mark.parametrize("key", [KEY, b"\x00\x00\x00\x00", b"\xff\xfe\x01\x80"])
def test_unmask_is_the_xor_of_the_repeated_key(length: int, key: bytes) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    assert unmask(masked(payload, key), key) == payload


@pytest.mark.parametrize(
    "message",
    [
        "",
        "a",
        "x" * 125,
        "x" * 126,
        "é" * 70,  # 140 bytes: the 16-bit length although 70 characters.
        b"",
        b"\x00" * 125,
        b"\x00" * 126,
        b"\xff" * 0xFFFF,
        b"\xff" * 0x10000,  # The 64-bit length.
    ],
    ids=lambda message: f"{type(message).__name__}-{len(message)}",
)
def test_server_frame_is_what_wsproto_writes(message: str | bytes) -> None:
    reference = Connection(ConnectionType.SERVER)
    event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
    assert server_frame(message) == reference.send(event)


def test_server_frame_refuses_lone_surrogates_like_wsproto() -> None:
    with pytest.raises(UnicodeEncodeError):
        Connection(ConnectionType.SERVER).send(TextMessage(data="\ud800"))
    with pytest.raises(UnicodeEncodeError):
        server_frame("\ud800")


# ---------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------

PING = client_frame(0x89, b"p")
#: A frame whose header, less its first byte, looks like a simple frame: an empty text
#: frame (0x81 0x80) masked with the next four bytes.
LOOKALIKE = client_frame(0x82, b"\x00", key=b"\x80abc")
BIG = "y" * (SIMPLE_MAX_PAYLOAD + 1)


@pytest.mark.parametrize(
    ("reads", "expected"),
    [
        ([text("hi") + binary(b"\x00\x01")], [["hi", b"\x00\x01"]]),
        ([text("") + binary(b"")], [["", b""]]),
        ([text("é" * 63)], [["é" * 63]]),  # 126 bytes: the 16-bit length.
        ([text("z" * SIMPLE_MAX_PAYLOAD)], [["z" * SIMPLE_MAX_PAYLOAD]]),
        ([text(BIG) + text("a")], [[("wsproto", text(BIG)), "a"]]),
        ([PING + text("a") + PING], [[("wsproto", PING), "a", ("wsproto", PING)]]),
        # A fragmented message: its frames, and those between them, are wsproto's.
        (
            [client_frame(0x01, b"a") + PING + client_frame(0x80, b"b") + text("c")],
            [[("wsproto", client_frame(0x01, b"a") + PING + client_frame(0x80, b"b")), "c"]],
        ),
        (  # A protocol error (a new message inside one), for wsproto to see.
            [client_frame(0x02, b"a") + PING + text("b")],
            [[("wsproto", client_frame(0x02, b"a") + PING + text("b"))]],
        ),
        # A frame cut across reads: all of it goes to wsproto, then simple frames again.
        (
            [text("hello")[:4], text("hello")[4:] + text("a")],
            [[("wsproto", text("hello")[:4])], [("wsproto", text("hello")[4:]), "a"]],
        ),
        (
            [text("hello")[:1], text("hello")[1:9], text("hello")[9:] + text("a")],
            [
                [("wsproto", text("hello")[:1])],
                [("wsproto", text("hello")[1:9])],
                [("wsproto", text("hello")[9:]), "a"],
            ],
        ),
        (
            [LOOKALIKE[:1], LOOKALIKE[1:] + text("a")],
            [[("wsproto", LOOKALIKE[:1])], [("wsproto", LOOKALIKE[1:]), "a"]],
        ),
        (  # A 64-bit length header cut in the middle of its length.
            [text(BIG * 16)[:5], text(BIG * 16)[5:] + text("a")],
            [[("wsproto", text(BIG * 16)[:5])], [("wsproto", text(BIG * 16)[5:]), "a"]],
        ),
        # What is not simple goes to wsproto, which fails the WebSocket or not.
        ([client_frame(0x81, b"\xff")], [[("wsproto", client_frame(0x81, b"\xff"))]]),
        ([client_frame(0x81, b"hi", mask=False)], [[("wsproto", b"\x81\x02hi")]]),
        ([client_frame(0xC1, b"hi")], [[("wsproto", client_frame(0xC1, b"hi"))]]),  # RSV1
        (
            [client_frame(0x81, b"hi", length_bytes=2)],
            [[("wsproto", client_frame(0x81, b"hi", length_bytes=2))]],
        ),
        (
            [client_frame(0x81, b"hi", length_bytes=8)],
            [[("wsproto", client_frame(0x81, b"hi", length_bytes=8))]],
        ),
    ],
    ids=[
        "two simple",
        "empty payloads",
        "16-bit length",
        "longest simple",
        "too long",
        "control frames",
        "fragmented",
        "unfinished fragment",
        "cut payload",
        "cut header",
        "cut header looking like a frame",
        "cut 64-bit length",
        "bad utf-8",
        "unmasked",
        "rsv1",
        "16-bit length for 2 bytes",
        "64-bit length for 2 bytes",
    ],
)
def test_split(reads: list[bytes], expected: list[list[object]]) -> None:
    splitter = FrameSplitter()
    assert [readable(splitter.split(data)) for data in reads] == expected


@st.composite
def frame_reads(draw: st.DrawFn) -> list[bytes]:
    """Well-formed frames of every kind, in orders valid or not (bad UTF-8, reserved
    opcodes, RSV bits, stray continuations), cut into reads at random places."""
    frames = draw(
        st.lists(
            st.one_of(
                st.text(max_size=140).map(text),
                st.binary(max_size=140).map(binary),
                st.binary(max_size=8).map(lambda payload: client_frame(0x89, payload)),
                st.tuples(st.sampled_from([0x00, 0x01, 0x02, 0x80]), st.binary(max_size=8)).map(
                    lambda case: client_frame(case[0], case[1])
                ),
                st.tuples(st.integers(0, 255), st.binary(max_size=8)).map(
                    lambda case: client_frame(case[0], case[1])  # Any first byte.
                ),
                st.binary(max_size=8).map(lambda payload: client_frame(0x81, payload)),
            ),
            max_size=12,
        )
    )
    data = b"".join(frames)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@given(frame_reads())
def test_split_hands_back_every_byte_in_order(reads: list[bytes]) -> None:
    """The bytes for wsproto plus the simple frames (written again with their mask) are
    the bytes received, in order."""
    splitter = FrameSplitter()
    received = b"".join(reads)
    rebuilt = bytearray()
    for data in reads:
        for piece in splitter.split(data):
            if isinstance(piece, Unparsed):
                assert piece.data  # Never an empty run.
                rebuilt += piece.data
            else:
                payload = piece.encode() if isinstance(piece, str) else piece
                first = 0x81 if isinstance(piece, str) else 0x82
                rebuilt += client_frame(first, payload)
    assert bytes(rebuilt) == received
