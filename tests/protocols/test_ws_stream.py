"""The ASGI WebSocket stream: handshake, messages, closing, denial responses and pings.

The test plays the connection (``handle``) and the application (``app_send``,
``app_receive``, ``app_finished``). The peer is wsproto: over HTTP/1.1 a ``WSConnection``
client writes the real upgrade request (parsed by h11 into our ``Request``) and reads our
101 (written by h11); over HTTP/2 a frame-level ``wsproto.connection.Connection`` client
talks to the stream after a hand-made extended CONNECT request.
"""

from __future__ import annotations

import base64
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.connection import ConnectionState as WSState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import Event as WSEvent
from wsproto.events import Request as WSRequest
from wsproto.extensions import PerMessageDeflate

from hypercorn.config import Config
from hypercorn.protocol.context import Stream
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    Event,
    ReceiveReady,
    Request,
    Response,
    SpawnApp,
    StreamClosed,
    StreamEnded,
    Trailers,
)
from hypercorn.protocol.ws_handshake import accept_token
from hypercorn.protocol.ws_stream import ASGIWebsocketState, Handshake, WSStream
from hypercorn.typing import ASGISendEvent, ConnectionState, WebsocketScope
from hypercorn.utils import UnexpectedMessageError
from tests.protocols import test_ws_frames as ws_frames
from tests.protocols.support import (
    CLIENT,
    SERVER,
    Headers,
    RecordingOwner,
    drain,
    make_context,
    wants_data,
)

SID = 1
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # The example key of RFC 6455 §1.3.
ACCEPT: ASGISendEvent = {"type": "websocket.accept"}


# ---------------------------------------------------------------------------------------
# The peers
# ---------------------------------------------------------------------------------------


class H11Peer:
    """A wsproto client over HTTP/1.1: h11 turns its upgrade request into our Request and
    our 101 into bytes for it."""

    def __init__(
        self,
        *,
        target: str = "/chat?room=1",
        subprotocols: list[str] | None = None,
        extensions: list[PerMessageDeflate] | None = None,
        extra_headers: Headers | None = None,
    ) -> None:
        self.client = WSConnection(ConnectionType.CLIENT)
        self.server = h11.Connection(h11.SERVER)
        self.server.receive_data(
            self.client.send(
                WSRequest(
                    host="example.com",
                    target=target,
                    subprotocols=subprotocols or [],
                    extensions=list(extensions or []),
                    extra_headers=extra_headers or [],
                )
            )
        )
        event = self.server.next_event()
        assert isinstance(event, h11.Request)
        self.request = Request(
            stream_id=SID,
            headers=list(event.headers),
            http_version=event.http_version.decode(),
            method=event.method.decode(),
            raw_path=event.target,
            state=ConnectionState({"db": "pool"}),
        )

    def accept(self, response: Response) -> AcceptConnection:
        """Feed our 101 to the client, which checks the accept token and extensions."""
        self.client.receive_data(
            self.server.send(
                h11.InformationalResponse(
                    status_code=response.status_code, headers=response.headers
                )
            )
        )
        events = list(self.client.events())
        assert len(events) == 1
        assert isinstance(events[0], AcceptConnection)
        return events[0]

    def send(self, event: WSEvent) -> Body:
        return Body(stream_id=SID, data=self.client.send(event))

    def receive(self, sent: list[Event]) -> list[WSEvent]:
        for event in sent:
            assert isinstance(event, Data | EndData)
            if isinstance(event, Data):
                self.client.receive_data(event.data)
        return list(self.client.events())


class H2Peer:
    """A wsproto frame-level client behind an RFC 8441 extended CONNECT."""

    def __init__(self, *, extensions: list[PerMessageDeflate] | None = None) -> None:
        self.extensions = extensions or []
        headers: Headers = [(b"host", b"example.com"), (b"sec-websocket-version", b"13")]
        if self.extensions:
            offer = f"{PerMessageDeflate.name}; {self.extensions[0].offer()}"
            headers.append((b"sec-websocket-extensions", offer.encode()))
        self.request = Request(
            stream_id=SID, headers=headers, http_version="2", method="CONNECT", raw_path=b"/ws"
        )
        self.client = Connection(ConnectionType.CLIENT)

    def accept(self, response: Response) -> None:
        assert response.status_code == 200
        for name, value in response.headers:
            if name == b"sec-websocket-extensions":
                for extension in self.extensions:
                    extension.finalize(value.decode())
        self.client = Connection(ConnectionType.CLIENT, extensions=list(self.extensions))

    def send(self, event: WSEvent) -> Body:
        return Body(stream_id=SID, data=self.client.send(event))

    def receive(self, sent: list[Event]) -> list[WSEvent]:
        for event in sent:
            assert isinstance(event, Data | EndData)
            if isinstance(event, Data):
                self.client.receive_data(event.data)
        return list(self.client.events())


def make_stream(
    config: Config | None = None, *, ssl: bool = False
) -> tuple[WSStream, RecordingOwner]:
    owner = RecordingOwner()
    stream = WSStream(make_context(config), owner, SID, ssl=ssl, client=CLIENT, server=SERVER)
    return stream, owner


def started(
    request: Request, config: Config | None = None, *, ssl: bool = False
) -> tuple[WSStream, RecordingOwner]:
    """A stream that has taken ``request`` and whose app has read websocket.connect."""
    stream, owner = make_stream(config, ssl=ssl)
    stream.handle(request)
    assert [type(event) for event in owner.take_driver()] == [SpawnApp, ReceiveReady]
    assert drain(stream) == [{"type": "websocket.connect"}]
    return stream, owner


def accepted_h11(
    config: Config | None = None, **peer_options: Any
) -> tuple[WSStream, RecordingOwner, H11Peer]:
    peer = H11Peer(**peer_options)
    stream, owner = started(peer.request, config)
    stream.app_send(ACCEPT)
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    peer.accept(response)
    return stream, owner, peer


def accepted_h2(
    config: Config | None = None, *, deflate: bool = False
) -> tuple[WSStream, RecordingOwner, H2Peer]:
    peer = H2Peer(extensions=[PerMessageDeflate()] if deflate else None)
    stream, owner = started(peer.request, config)
    stream.app_send(ACCEPT)
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    peer.accept(response)
    return stream, owner, peer


def state_of(stream: WSStream) -> ASGIWebsocketState:
    """The stream's state, read through a call so that mypy does not narrow it."""
    return stream.state


def ended(owner: RecordingOwner) -> list[StreamEnded]:
    return [event for event in owner.take_driver() if isinstance(event, StreamEnded)]


@st.composite
def frame_streams(draw: st.DrawFn) -> tuple[bool, list[bytes]]:
    """Real client frames (some compressed), mutated, cut at random places."""
    deflate = draw(st.booleans())
    client = Connection(
        ConnectionType.CLIENT, extensions=[_finalized_deflate()] if deflate else None
    )
    data = bytearray()
    for text in draw(st.lists(st.text(max_size=40), max_size=4)):
        data += client.send(TextMessage(data=text, message_finished=draw(st.booleans())))
        data += client.send(Ping(payload=b"p"))
    for _ in range(draw(st.integers(0, 6))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    data += draw(st.binary(max_size=64))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    pieces = [
        bytes(data[start:end]) for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)
    ]
    return deflate, pieces


def _finalized_deflate() -> PerMessageDeflate:
    extension = PerMessageDeflate()
    extension.finalize("permessage-deflate")
    return extension


@settings(max_examples=300, deadline=None)
@given(frame_streams())
def test_any_bytes_after_accept_end_in_a_clean_state(case: tuple[bool, list[bytes]]) -> None:
    deflate, pieces = case
    config = Config()
    config.websocket_max_message_size = 100
    stream, owner, _ = accepted_h2(config, deflate=deflate)
    for piece in pieces:
        stream.handle(Body(stream_id=SID, data=piece))  # Never raises.
    sent = owner.take_sent()
    assert all(isinstance(event, Data | EndData) for event in sent)
    messages = drain(stream)
    assert all(m["type"] in ("websocket.receive", "websocket.disconnect") for m in messages)
    if EndData(stream_id=SID) in sent:
        assert sent[-1] == EndData(stream_id=SID)
        assert messages[-1]["type"] == "websocket.disconnect"
        assert stream.state is ASGIWebsocketState.CLOSED
    else:
        assert stream.state is ASGIWebsocketState.CONNECTED
        stream.app_finished()
        assert owner.take_sent()[-1] == EndData(stream_id=SID)
    assert len(ended(owner)) == 1


CLOSE_PAYLOADS = st.one_of(
    st.just(b""),
    st.tuples(st.sampled_from([1000, 1001, 1005, 1016, 2999, 3000, 4999, 5000]), st.text()).map(
        lambda case: case[0].to_bytes(2, "big") + case[1].encode()[:100]
    ),
    st.binary(max_size=6),  # One byte, or a code followed by bytes that are not UTF-8.
)


def _fragmented(parts: tuple[int, list[bytes]]) -> bytes:
    """A message of several frames (opcode, then continuations), a ping after each."""
    opcode, payloads = parts
    frames = b""
    for index, payload in enumerate(payloads):
        fin = 0x80 if index == len(payloads) - 1 else 0
        frames += ws_frames.client_frame(fin | (opcode if index == 0 else 0), payload)
        frames += ws_frames.client_frame(0x89, b"p")
    return frames


#: Frames a client may send, in any order.
VALID_FRAMES = st.one_of(
    st.one_of(st.text(max_size=300), st.sampled_from(["é" * 2048, "é" * 2049, "x" * 70_000])).map(
        ws_frames.text
    ),
    st.binary(max_size=300).map(ws_frames.binary),
    st.tuples(st.sampled_from([0x89, 0x8A]), st.binary(max_size=125)).map(
        lambda case: ws_frames.client_frame(case[0], case[1])
    ),
    st.tuples(st.just(0x02), st.lists(st.binary(max_size=20), min_size=1, max_size=4)).map(
        _fragmented
    ),
    st.tuples(
        st.just(0x01), st.lists(st.text(max_size=20).map(str.encode), min_size=1, max_size=4)
    ).map(_fragmented),
)
#: Frames that end the WebSocket (a close) or may be refused (wrong order, bad UTF-8,
#: reserved opcode or bits, unmasked, a length not in its shortest form).
OTHER_FRAMES = st.one_of(
    CLOSE_PAYLOADS.map(lambda payload: ws_frames.client_frame(0x88, payload)),
    st.binary(max_size=20).map(lambda raw: ws_frames.client_frame(0x81, raw)),
    st.tuples(
        st.sampled_from([0x00, 0x01, 0x02, 0x80, 0x09, 0x83, 0xC1]), st.binary(max_size=130)
    ).map(lambda case: ws_frames.client_frame(case[0], case[1])),
    st.binary(max_size=4).map(lambda raw: ws_frames.client_frame(0x82, raw, length_bytes=2)),
    st.binary(max_size=4).map(lambda raw: ws_frames.client_frame(0x81, raw, mask=False)),
)


@st.composite
def mixed_frames(draw: st.DrawFn) -> list[bytes]:
    """Client frames, valid or (half the time) not, mutated now and then, cut into reads."""
    kinds = st.one_of(VALID_FRAMES, OTHER_FRAMES) if draw(st.booleans()) else VALID_FRAMES
    data = bytearray(b"".join(draw(st.lists(kinds, max_size=12))))
    if data and draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return [bytes(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def wsproto_only(reads: list[bytes], max_size: int) -> tuple[list[Any], list[bytes]]:
    """What the stream does with everything read by wsproto (the rules of the module's
    docstring, played on a wsproto server connection): the app's messages and the frames
    written."""
    ws = Connection(ConnectionType.SERVER)
    received: list[Any] = []
    written: list[bytes] = []
    parts: list[Any] = []
    size = 0
    for read in reads:
        if not read:
            continue
        ws.receive_data(read)
        for event in ws.events():
            if isinstance(event, Message):
                size += len(event.data)
                if size > max_size:
                    written.append(ws.send(CloseConnection(code=1009, reason="message too big")))
                    received.append({"type": "websocket.disconnect", "code": 1009})
                    return received, written
                parts.append(event.data)
                if event.message_finished:
                    text: str | None = None
                    binary: bytes | None = None
                    if isinstance(event, TextMessage):
                        text = "".join(parts)
                    else:
                        binary = b"".join(bytes(part) for part in parts)
                    received.append({"type": "websocket.receive", "bytes": binary, "text": text})
                    parts = []
                    size = 0
            elif isinstance(event, Ping):
                written.append(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state is WSState.OPEN:  # A frame wsproto refused.
                    answer = CloseConnection(code=event.code, reason=event.reason)
                else:
                    answer = event.response()
                written.append(ws.send(answer))
                received.append({"type": "websocket.disconnect", "code": int(event.code)})
                return received, written
    return received, written


@settings(max_examples=500, deadline=None)
@given(mixed_frames(), st.sampled_from([10, 200, 16 * 1024 * 1024]))
def test_simple_frames_change_nothing_wsproto_does(reads: list[bytes], max_size: int) -> None:
    """The short cut for simple frames (hypercorn.protocol.ws_frames) gives the same
    messages, replies, close codes and close reasons as wsproto reading everything."""
    config = Config()
    config.websocket_max_message_size = max_size
    stream, owner, _ = accepted_h2(config)
    for data in reads:
        stream.handle(Body(stream_id=SID, data=data))
    written = [event.data for event in owner.take_sent() if isinstance(event, Data)]
    assert (drain(stream), written) == wsproto_only(reads, max_size)


def test_is_a_stream() -> None:
    stream: Stream = make_stream()[0]
    assert not stream.closed
    assert stream.next_deadline() is None


# ---------------------------------------------------------------------------------------
# Handshake and scope
# ---------------------------------------------------------------------------------------


def test_scope_over_http11() -> None:
    peer = H11Peer(target="/a%20b/%C3%A9?x=%20", subprotocols=["chat", "superchat"])
    config = Config()
    config.root_path = "/root"
    stream, owner = make_stream(config)
    stream.handle(peer.request)
    spawn, ready = owner.take_driver()
    assert isinstance(spawn, SpawnApp)
    assert ready == ReceiveReady(SID)
    scope = spawn.scope
    assert scope == stream.scope
    assert scope["type"] == "websocket"
    expected: WebsocketScope = {
        "type": "websocket",
        "asgi": {"spec_version": "2.3", "version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/a b/é",
        "raw_path": b"/a%20b/%C3%A9",
        "query_string": b"x=%20",
        "root_path": "/root",
        "headers": peer.request.headers,
        "client": CLIENT,
        "server": SERVER,
        "subprotocols": ["chat", "superchat"],
        "state": ConnectionState({"db": "pool"}),
        "extensions": {"websocket.http.response": {}},
    }
    assert scope == expected
    assert scope["state"] is not peer.request.state  # A copy per stream.
    assert stream.app_receive() == {"type": "websocket.connect"}
    assert stream.app_receive() is None
    assert owner.take_sent() == []
    assert stream.state is ASGIWebsocketState.HANDSHAKE


def test_scope_over_http2_with_tls() -> None:
    peer = H2Peer()
    stream, owner = make_stream(ssl=True)
    stream.handle(peer.request)
    spawn = owner.take_driver()[0]
    assert isinstance(spawn, SpawnApp)
    assert spawn.scope["http_version"] == "2"
    assert spawn.scope["scheme"] == "wss"
    assert spawn.scope["path"] == "/ws"


def _h1_headers(**changes: bytes | None) -> Headers:
    fields: dict[str, bytes | None] = {
        "host": b"example.com",
        "upgrade": b"websocket",
        "connection": b"Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": b"13",
    }
    fields.update(changes)
    return [(name.encode(), value) for name, value in fields.items() if value is not None]


INVALID_H1: list[tuple[str, str, str, Headers]] = [
    ("missing key", "GET", "1.1", _h1_headers(**{"sec-websocket-key": None})),
    ("key not base64", "GET", "1.1", _h1_headers(**{"sec-websocket-key": b"not base64!!"})),
    ("key of 15 bytes", "GET", "1.1", _h1_headers(**{"sec-websocket-key": b"A" * 20})),
    (
        "key of 17 bytes",
        "GET",
        "1.1",
        _h1_headers(**{"sec-websocket-key": base64.b64encode(b"k" * 17)}),
    ),
    ("two keys", "GET", "1.1", [*_h1_headers(), (b"sec-websocket-key", KEY)]),
    ("version 8", "GET", "1.1", _h1_headers(**{"sec-websocket-version": b"8"})),
    ("no version", "GET", "1.1", _h1_headers(**{"sec-websocket-version": None})),
    ("no upgrade header", "GET", "1.1", _h1_headers(upgrade=None)),
    ("upgrade to h2c", "GET", "1.1", _h1_headers(upgrade=b"h2c")),
    ("no connection upgrade", "GET", "1.1", _h1_headers(connection=b"keep-alive")),
    ("POST", "POST", "1.1", _h1_headers()),
    ("HTTP/1.0", "GET", "1.0", _h1_headers()),
]


@pytest.mark.parametrize(
    ("method", "version", "headers"),
    [case[1:] for case in INVALID_H1],
    ids=[case[0] for case in INVALID_H1],
)
def test_invalid_http11_handshake_is_400(method: str, version: str, headers: Headers) -> None:
    stream, owner = make_stream()
    stream.handle(
        Request(stream_id=SID, headers=headers, http_version=version, method=method, raw_path=b"/")
    )
    response, end = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 400
    assert response.headers[:2] == [(b"content-length", b"0"), (b"connection", b"close")]
    assert end == EndData(stream_id=SID)
    [stream_ended] = owner.take_driver()  # No SpawnApp.
    assert isinstance(stream_ended, StreamEnded)
    assert stream_ended.response is not None
    assert stream_ended.response["status"] == 400
    assert stream.closed
    assert stream.state is ASGIWebsocketState.HTTPCLOSED
    assert Handshake(headers, version, method).problem() is not None


def test_bad_version_400_names_the_supported_version() -> None:
    stream, owner = make_stream()
    headers = _h1_headers(**{"sec-websocket-version": b"8"})
    stream.handle(
        Request(stream_id=SID, headers=headers, http_version="1.1", method="GET", raw_path=b"/")
    )
    response = owner.take_sent()[0]
    assert isinstance(response, Response)
    assert (b"sec-websocket-version", b"13") in response.headers


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", [(b"host", b"h"), (b"sec-websocket-version", b"13")]),
        ("CONNECT", [(b"host", b"h"), (b"sec-websocket-version", b"12")]),
        ("CONNECT", [(b"host", b"h")]),
    ],
    ids=["GET", "version 12", "no version"],
)
def test_invalid_http2_handshake_is_400_without_connection_header(
    method: str, headers: Headers
) -> None:
    stream, owner = make_stream()
    stream.handle(
        Request(stream_id=SID, headers=headers, http_version="2", method=method, raw_path=b"/")
    )
    response, _ = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 400
    assert response.headers[0] == (b"content-length", b"0")
    assert (b"connection", b"close") not in response.headers


def test_valid_handshakes() -> None:
    # Token lists, mixed case and raw-case header names are all fine.
    headers = [
        (b"Host", b"h"),
        (b"Upgrade", b"WebSocket"),
        (b"Connection", b"keep-alive, Upgrade"),
        (b"Sec-WebSocket-Key", KEY),
        (b"Sec-WebSocket-Version", b" 13 "),
    ]
    assert Handshake(headers, "1.1", "GET").is_valid()
    assert Handshake([(b"sec-websocket-version", b"13")], "2", "CONNECT").is_valid()
    assert Handshake([(b"sec-websocket-version", b"13")], "3", "CONNECT").is_valid()
    assert not Handshake([(b"sec-websocket-version", b"13")], "0.9", "GET").is_valid()


def test_accept_token_matches_rfc6455_example() -> None:
    assert accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_parses_offers() -> None:
    handshake = Handshake(
        [
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-protocol", b" v2 ,,"),
            (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits, foo"),
        ],
        "2",
        "CONNECT",
    )
    assert handshake.subprotocols == ["chat", "superchat", "v2"]
    assert handshake.extensions == ["permessage-deflate; client_max_window_bits", "foo"]


def test_server_name_mismatch_is_404() -> None:
    config = Config()
    config.server_names = ["other.example"]
    stream, owner = make_stream(config)
    stream.handle(H11Peer().request)
    response, end = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 404
    assert (b"content-length", b"0") in response.headers
    assert isinstance(end, EndData)
    assert [type(event) for event in owner.take_driver()] == [StreamEnded]


def test_path_that_is_not_utf8_is_400() -> None:
    stream, owner = make_stream()
    stream.handle(H11Peer(target="/%FF").request)
    response = owner.take_sent()[0]
    assert isinstance(response, Response)
    assert response.status_code == 400
    assert stream.scope is not None
    assert stream.scope["raw_path"] == b"/%FF"


def test_second_request_is_a_bug() -> None:
    stream, _ = make_stream()
    request = H11Peer().request
    stream.handle(request)
    with pytest.raises(RuntimeError, match="second Request"):
        stream.handle(request)


# ---------------------------------------------------------------------------------------
# Accepting
# ---------------------------------------------------------------------------------------


def test_accept_over_http11() -> None:
    peer = H11Peer()
    stream, owner = started(peer.request)
    stream.app_send(ACCEPT)
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 101
    assert response.headers == [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_token(dict(peer.request.headers)[b"sec-websocket-key"])),
    ]
    assert peer.accept(response).subprotocol is None
    assert stream.state is ASGIWebsocketState.CONNECTED
    assert owner.take_driver() == []  # StreamEnded waits for the end of the WebSocket.


def test_accept_over_http2_is_200() -> None:
    peer = H2Peer()
    stream, owner = started(peer.request)
    stream.app_send({"type": "websocket.accept", "headers": [(b"x-a", b"1")]})
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=[(b"x-a", b"1")], status_code=200)
    ]


def test_subprotocol_negotiation() -> None:
    peer = H11Peer(subprotocols=["chat", "superchat"])
    stream, owner = started(peer.request)
    with pytest.raises(ValueError, match="'graphql'"):
        stream.app_send({"type": "websocket.accept", "subprotocol": "graphql"})
    assert owner.take_sent() == []
    assert stream.state is ASGIWebsocketState.HANDSHAKE
    stream.app_send({"type": "websocket.accept", "subprotocol": "superchat"})
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    assert (b"sec-websocket-protocol", b"superchat") in response.headers
    assert peer.accept(response).subprotocol == "superchat"


def test_extra_headers_on_accept() -> None:
    peer = H11Peer()
    stream, owner = started(peer.request)
    stream.app_send(
        {"type": "websocket.accept", "headers": [(b"Set-Cookie", b"a=1"), (b"x-b", b" 2 ")]}
    )
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    assert response.headers[-2:] == [(b"set-cookie", b"a=1"), (b"x-b", b"2")]
    assert peer.accept(response).extra_headers[-2:] == [(b"set-cookie", b"a=1"), (b"x-b", b"2")]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "websocket.accept", "headers": [(b"sec-websocket-protocol", b"x")]}, ValueError),
        ({"type": "websocket.accept", "headers": [(b":status", b"200")]}, ValueError),
        ({"type": "websocket.accept", "headers": [("x-str", b"1")]}, TypeError),
        ({"type": "websocket.accept", "subprotocol": 5}, TypeError),
    ],
    ids=["sec-websocket-protocol", "pseudo header", "str header name", "int subprotocol"],
)
def test_malformed_accept(message: Any, error: type[Exception]) -> None:
    stream, owner = started(H11Peer(subprotocols=["x"]).request)
    with pytest.raises(error):
        stream.app_send(message)
    assert owner.take_sent() == []
    assert stream.state is ASGIWebsocketState.HANDSHAKE


# ---------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_echo_text_and_bytes(version: str) -> None:
    peer: H11Peer | H2Peer
    if version == "1.1":
        stream, owner, peer = accepted_h11()
    else:
        stream, owner, peer = accepted_h2()
    stream.handle(peer.send(TextMessage(data="héllo")))
    stream.handle(peer.send(BytesMessage(data=b"\x00\x01")))
    assert owner.take_driver() == [ReceiveReady(SID)]
    received = drain(stream)
    assert received == [
        {"type": "websocket.receive", "bytes": None, "text": "héllo"},
        {"type": "websocket.receive", "bytes": b"\x00\x01", "text": None},
    ]
    for message in received:
        reply: Any = {"type": "websocket.send", "bytes": message["bytes"], "text": message["text"]}
        stream.app_send(reply)
    echoed = peer.receive(owner.take_sent())
    assert [(type(e), e.data) for e in echoed if isinstance(e, Message)] == [
        (TextMessage, "héllo"),
        (BytesMessage, b"\x00\x01"),
    ]


def test_fragmented_messages_are_reassembled() -> None:
    stream, _, peer = accepted_h11()
    stream.handle(peer.send(TextMessage(data="hel", message_finished=False)))
    stream.handle(peer.send(Ping(payload=b"between")))  # Control frames may interleave.
    stream.handle(peer.send(TextMessage(data="lo", message_finished=True)))
    stream.handle(peer.send(BytesMessage(data=b"ab", message_finished=False)))
    stream.handle(peer.send(BytesMessage(data=b"", message_finished=False)))
    stream.handle(peer.send(BytesMessage(data=b"cd", message_finished=True)))
    assert drain(stream) == [
        {"type": "websocket.receive", "bytes": None, "text": "hello"},
        {"type": "websocket.receive", "bytes": b"abcd", "text": None},
    ]


def test_frames_split_across_body_events() -> None:
    stream, _, peer = accepted_h11()
    data = peer.send(TextMessage(data="x" * 300)).data + peer.send(TextMessage(data="y")).data
    for index in range(len(data)):
        stream.handle(Body(stream_id=SID, data=data[index : index + 1]))
    assert drain(stream) == [
        {"type": "websocket.receive", "bytes": None, "text": "x" * 300},
        {"type": "websocket.receive", "bytes": None, "text": "y"},
    ]


def test_ping_is_answered_with_pong() -> None:
    stream, owner, peer = accepted_h11()
    stream.handle(peer.send(Ping(payload=b"are you there")))
    assert peer.receive(owner.take_sent()) == [Pong(payload=b"are you there")]
    stream.handle(peer.send(Pong(payload=b"unsolicited")))
    assert owner.take_sent() == []
    assert drain(stream) == []


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.send"},
        {"type": "websocket.send", "bytes": None, "text": None},
        {"type": "websocket.send", "bytes": b"a", "text": "a"},
    ],
    ids=["neither", "both None", "both"],
)
def test_send_needs_exactly_one_of_bytes_and_text(message: Any) -> None:
    stream, owner, _ = accepted_h11()
    with pytest.raises(ValueError, match="exactly one"):
        stream.app_send(message)
    assert owner.take_sent() == []


@pytest.mark.parametrize(
    "message",
    [{"type": "websocket.send", "text": b"bytes"}, {"type": "websocket.send", "bytes": "text"}],
    ids=["text is bytes", "bytes is str"],
)
def test_send_types_are_checked(message: Any) -> None:
    stream, _, _ = accepted_h11()
    with pytest.raises(TypeError):
        stream.app_send(message)


# ---------------------------------------------------------------------------------------
# permessage-deflate
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_permessage_deflate_round_trip(version: str) -> None:
    peer: H11Peer | H2Peer
    if version == "1.1":
        stream, owner, peer = accepted_h11(extensions=[PerMessageDeflate()])
    else:
        stream, owner, peer = accepted_h2(deflate=True)
    text = "compress me " * 500
    body = peer.send(TextMessage(data=text))
    assert body.data[0] & 0x40  # RSV1: the client compressed the message.
    assert len(body.data) < len(text) // 10
    stream.handle(body)
    assert drain(stream) == [{"type": "websocket.receive", "bytes": None, "text": text}]
    stream.app_send({"type": "websocket.send", "bytes": b"\x07" * 10_000})
    sent = owner.take_sent()
    [data] = sent
    assert isinstance(data, Data)
    assert data.data[0] & 0x40  # We compressed ours.
    assert len(data.data) < 1000
    assert peer.receive(sent) == [BytesMessage(data=bytearray(b"\x07" * 10_000))]


def test_permessage_deflate_response_header() -> None:
    peer = H11Peer(extensions=[PerMessageDeflate(client_max_window_bits=12)])
    stream, owner = started(peer.request)
    stream.app_send(ACCEPT)
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    value = dict(response.headers)[b"sec-websocket-extensions"]
    assert value.startswith(b"permessage-deflate")
    assert b"client_max_window_bits=12" in value
    peer.accept(response)


@pytest.mark.parametrize(
    ("offer", "accepted"),
    [
        (b"permessage-deflate", b"permessage-deflate"),
        (b'permessage-deflate; client_max_window_bits="10"', b"client_max_window_bits=10"),
        (b"permessage-deflate; server_max_window_bits=8", None),
        (b"permessage-deflate; server_max_window_bits=abc", None),
        (b"x-webkit-deflate-frame", None),
        (
            b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
            b"permessage-deflate",
        ),
    ],
    ids=["plain", "quoted value", "window 8", "not a number", "unknown", "second offer"],
)
def test_permessage_deflate_offers(offer: bytes, accepted: bytes | None) -> None:
    handshake = Handshake(
        [(b"sec-websocket-version", b"13"), (b"sec-websocket-extensions", offer)], "2", "CONNECT"
    )
    status, headers, extensions = handshake.accept(None, [])
    assert status == 200
    value = dict(headers).get(b"sec-websocket-extensions")
    if accepted is None:
        assert value is None
        assert extensions == []
    else:
        assert value is not None
        assert accepted in value
        assert [type(extension) for extension in extensions] == [PerMessageDeflate]


def test_compressed_bomb_is_stopped_by_the_size_limit() -> None:
    config = Config()
    config.websocket_max_message_size = 64 * 1024
    stream, owner, peer = accepted_h11(config, extensions=[PerMessageDeflate()])
    body = peer.send(BytesMessage(data=bytes(8 * 1024 * 1024)))
    assert len(body.data) < 16 * 1024
    stream.handle(body)
    events = peer.receive(owner.take_sent())
    assert events == [CloseConnection(code=1009, reason="message too big")]
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1009}]


# ---------------------------------------------------------------------------------------
# Limits and protocol errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fragmented", [False, True])
def test_message_over_the_limit_closes_1009(fragmented: bool) -> None:
    config = Config()
    config.websocket_max_message_size = 10
    stream, owner, peer = accepted_h11(config)
    stream.handle(peer.send(BytesMessage(data=b"0123456789")))  # Exactly the limit is fine.
    assert drain(stream) == [{"type": "websocket.receive", "bytes": b"0123456789", "text": None}]
    owner.take_driver()
    if fragmented:
        stream.handle(peer.send(TextMessage(data="012345", message_finished=False)))
        assert owner.take_sent() == []
        stream.handle(peer.send(TextMessage(data="67890", message_finished=True)))
    else:
        stream.handle(peer.send(BytesMessage(data=b"01234567890")))
    sent = owner.take_sent()
    assert sent[-1] == EndData(stream_id=SID)
    events = peer.receive(sent)
    assert len(events) == 1
    assert isinstance(events[0], CloseConnection)
    assert events[0].code == 1009
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1009}]
    [stream_ended] = ended(owner)
    assert stream_ended.response is not None
    assert stream_ended.response["status"] == 101
    # The app does not know yet: what it sends now is dropped, not an error.
    stream.app_send({"type": "websocket.send", "text": "late"})
    stream.app_send({"type": "websocket.close"})
    stream.handle(Body(stream_id=SID, data=b"\x81\x80\x00\x00\x00\x00"))
    assert owner.take_sent() == []
    stream.app_finished()
    assert owner.take_sent() == []
    assert stream.closed


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x81\x02hi", 1002),  # A client frame must be masked.
        (b"\x83\x80\x00\x00\x00\x00", 1002),  # Reserved opcode.
        (b"\x81\x82\x00\x00\x00\x00\xff\xfe", 1007),  # Text that is not UTF-8.
    ],
    ids=["unmasked", "reserved opcode", "bad utf-8"],
)
def test_protocol_error_closes_with_wsproto_code(raw: bytes, code: int) -> None:
    stream, owner, peer = accepted_h11()
    stream.handle(Body(stream_id=SID, data=raw))
    sent = owner.take_sent()
    assert sent[-1] == EndData(stream_id=SID)
    [close] = peer.receive(sent)
    assert isinstance(close, CloseConnection)
    assert close.code == code
    assert drain(stream) == [{"type": "websocket.disconnect", "code": code}]
    assert len(ended(owner)) == 1
    stream.handle(Body(stream_id=SID, data=raw))  # Ignored: the WebSocket is over.
    assert owner.take_sent() == []


# ---------------------------------------------------------------------------------------
# Closing
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "bye"), (4000, "custom")])
def test_client_close_is_answered_and_passed_to_app(code: int, reason: str) -> None:
    stream, owner, peer = accepted_h11()
    stream.handle(peer.send(CloseConnection(code=code, reason=reason)))
    sent = owner.take_sent()
    assert sent[-1] == EndData(stream_id=SID)
    assert peer.receive(sent) == [CloseConnection(code=code, reason=reason)]
    assert drain(stream) == [{"type": "websocket.disconnect", "code": code}]
    [stream_ended] = ended(owner)
    assert stream_ended.response is not None
    assert stream_ended.response["status"] == 101
    assert stream.state is ASGIWebsocketState.CLOSED
    assert not stream.closed  # The app has not finished.
    # The app answers the disconnect with a close of its own: dropped silently.
    stream.app_send({"type": "websocket.close", "code": 1000})
    stream.app_finished()
    assert owner.take_sent() == []
    assert owner.take_driver() == []
    assert stream.closed


def test_client_close_without_code_is_1005() -> None:
    stream, owner, peer = accepted_h2()
    stream.handle(Body(stream_id=SID, data=b"\x88\x80\x00\x00\x00\x00"))  # Empty close.
    assert peer.receive(owner.take_sent()) == [CloseConnection(code=1005, reason="")]
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1005}]


@pytest.mark.parametrize("when", ["handshake", "accepted", "app closed"])
def test_peer_vanishing_is_1006_once(when: str) -> None:
    if when == "handshake":
        stream, owner = started(H11Peer().request)
    else:
        stream, owner, _ = accepted_h11()
    if when == "app closed":
        stream.app_send({"type": "websocket.close", "code": 1000})
        owner.take_sent()
        assert drain(stream) == [{"type": "websocket.disconnect", "code": 1000}]
        owner.take_driver()
    stream.handle(StreamClosed(stream_id=SID))
    stream.handle(StreamClosed(stream_id=SID))
    expected = [] if when == "app closed" else [{"type": "websocket.disconnect", "code": 1006}]
    assert drain(stream) == expected
    assert len(ended(owner)) == (0 if when == "app closed" else 1)
    assert owner.take_sent() == []  # Nobody to tell.
    # The app's later messages are dropped (it may not know yet).
    if when == "handshake":
        stream.app_send(ACCEPT)
    elif when == "accepted":
        stream.app_send({"type": "websocket.send", "text": "x"})
    assert owner.take_sent() == []
    stream.app_finished()
    assert owner.take_sent() == []
    assert stream.closed


def test_http2_end_of_stream_without_close_is_1006() -> None:
    stream, owner, _ = accepted_h2()
    stream.handle(EndBody(stream_id=SID))
    assert owner.take_sent() == [EndData(stream_id=SID)]
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1006}]
    assert len(ended(owner)) == 1
    stream.handle(EndBody(stream_id=SID))
    assert owner.take_sent() == []


def test_http2_end_of_stream_after_close_is_nothing() -> None:
    stream, owner, peer = accepted_h2()
    stream.handle(peer.send(CloseConnection(code=1000)))
    owner.take_sent()
    stream.handle(EndBody(stream_id=SID))
    assert owner.take_sent() == []
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1000}]


def test_http11_end_of_request_is_not_the_end() -> None:
    stream, owner = started(H11Peer().request)
    stream.handle(EndBody(stream_id=SID))  # The GET's (empty) body ended.
    stream.handle(Trailers(stream_id=SID, headers=[]))
    assert owner.take_sent() == []
    assert drain(stream) == []
    stream.app_send(ACCEPT)
    assert stream.state is ASGIWebsocketState.CONNECTED


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (None, None, CloseConnection(1000, "")),
        (1000, None, CloseConnection(1000, "")),
        (4001, "done", CloseConnection(4001, "done")),
    ],
)
def test_app_close(code: int | None, reason: str | None, expected: CloseConnection) -> None:
    stream, owner, peer = accepted_h11()
    message: Any = {"type": "websocket.close"}
    if code is not None:
        message.update(code=code, reason=reason)
    elif reason is None:
        message.update(code=None)  # Tolerated: the default.
    stream.app_send(message)
    sent = owner.take_sent()
    assert sent[-1] == EndData(stream_id=SID)
    assert peer.receive(sent) == [expected]
    assert drain(stream) == [{"type": "websocket.disconnect", "code": expected.code}]
    assert stream.state is ASGIWebsocketState.CLOSED
    assert len(ended(owner)) == 1
    with pytest.raises(UnexpectedMessageError):
        stream.app_send({"type": "websocket.send", "text": "after close"})
    stream.handle(peer.send(CloseConnection(code=1000)))  # The peer's answer: ignored.
    assert owner.take_sent() == []
    stream.app_finished()
    assert owner.take_sent() == []
    assert stream.closed


def test_long_close_reason_is_truncated() -> None:
    stream, owner, peer = accepted_h11()
    stream.app_send({"type": "websocket.close", "code": 1000, "reason": "é" * 100})
    [close] = peer.receive(owner.take_sent())
    assert isinstance(close, CloseConnection)
    assert close.reason == "é" * 61


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (999, ValueError),
        (1004, ValueError),
        (1005, ValueError),
        (1006, ValueError),
        (1015, ValueError),
        (2999, ValueError),
        (5000, ValueError),
        ("1000", TypeError),
        (True, TypeError),
    ],
)
def test_close_code_is_checked(code: Any, error: type[Exception]) -> None:
    stream, owner, _ = accepted_h11()
    with pytest.raises(error):
        stream.app_send({"type": "websocket.close", "code": code})
    bytes_reason: Any = {"type": "websocket.close", "reason": b"bytes"}
    with pytest.raises(TypeError):
        stream.app_send(bytes_reason)
    assert owner.take_sent() == []
    assert stream.state is ASGIWebsocketState.CONNECTED


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_close_before_accept_is_403(version: str) -> None:
    request = H11Peer().request if version == "1.1" else H2Peer().request
    stream, owner = started(request)
    stream.app_send({"type": "websocket.close", "code": 1000})
    response, end = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 403
    assert (b"content-length", b"0") in response.headers
    assert ((b"connection", b"close") in response.headers) is (version == "1.1")
    assert end == EndData(stream_id=SID)
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1006}]
    [stream_ended] = ended(owner)
    assert stream_ended.response is not None
    assert stream_ended.response["status"] == 403
    assert stream.state is ASGIWebsocketState.HTTPCLOSED
    with pytest.raises(UnexpectedMessageError):
        stream.app_send(ACCEPT)
    stream.app_finished()
    assert stream.closed


# ---------------------------------------------------------------------------------------
# Denial responses
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_denial_response(version: str) -> None:
    request = H11Peer().request if version == "1.1" else H2Peer().request
    stream, owner = started(request)
    assert stream.scope is not None
    assert "websocket.http.response" in stream.scope["extensions"]
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"9")]
    stream.app_send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
    assert owner.take_sent() == []  # The head waits for the first body message.
    assert stream.state is ASGIWebsocketState.RESPONSE
    stream.handle(Body(stream_id=SID, data=b"ignored"))  # Not a 400 now: dropped.
    stream.app_send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
    last: Any = {"type": "websocket.http.response.body", "body": bytearray(b"away!")}
    stream.app_send(last)
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=headers, status_code=401),
        Data(stream_id=SID, data=b"go "),
        Data(stream_id=SID, data=b"away!"),
        EndData(stream_id=SID),
    ]
    assert state_of(stream) is ASGIWebsocketState.HTTPCLOSED
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1006}]
    [stream_ended] = ended(owner)
    assert stream_ended.response == {"status": 401, "headers": headers}
    stream.app_finished()
    assert owner.take_sent() == []
    assert stream.closed


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "websocket.http.response.start", "status": 101}, ValueError),
        ({"type": "websocket.http.response.start", "status": "403"}, TypeError),
        ({"type": "websocket.http.response.start", "status": 403.0}, TypeError),
        (
            {"type": "websocket.http.response.start", "status": 403, "headers": [(b":a", b"")]},
            ValueError,
        ),
    ],
    ids=["101", "str status", "float status", "pseudo header"],
)
def test_malformed_denial_start(message: Any, error: type[Exception]) -> None:
    stream, _ = started(H11Peer().request)
    with pytest.raises(error):
        stream.app_send(message)
    assert stream.state is ASGIWebsocketState.HANDSHAKE


def test_malformed_denial_body() -> None:
    stream, owner = started(H11Peer().request)
    stream.app_send({"type": "websocket.http.response.start", "status": 403})
    message: Any = {"type": "websocket.http.response.body", "body": "text"}
    with pytest.raises(TypeError):
        stream.app_send(message)
    assert owner.take_sent() == []


def test_app_exit_during_denial() -> None:
    stream, owner = started(H11Peer().request)
    stream.app_send({"type": "websocket.http.response.start", "status": 403})
    stream.app_finished()  # The head was not sent: a clean 500 instead.
    response, _ = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 500

    stream, owner = started(H11Peer().request)
    stream.app_send({"type": "websocket.http.response.start", "status": 403})
    stream.app_send({"type": "websocket.http.response.body", "body": b"a", "more_body": True})
    owner.take_sent()
    stream.app_finished()  # Head and part of the body are out: abort.
    assert owner.take_sent() == [StreamClosed(stream_id=SID)]
    [stream_ended] = ended(owner)
    assert stream_ended.response is not None
    assert stream_ended.response["status"] == 403
    assert stream.closed


# ---------------------------------------------------------------------------------------
# The application finishing
# ---------------------------------------------------------------------------------------


def test_app_exit_while_open_closes_1011() -> None:
    stream, owner, peer = accepted_h11()
    stream.handle(peer.send(TextMessage(data="unread")))
    stream.app_finished()
    sent = owner.take_sent()
    assert sent[-1] == EndData(stream_id=SID)
    assert peer.receive(sent) == [CloseConnection(code=1011, reason="")]
    assert drain(stream) == []  # Nobody is listening any more.
    [stream_ended] = ended(owner)
    assert stream_ended.response is not None
    assert stream_ended.response["status"] == 101
    assert stream.closed
    stream.app_finished()
    assert owner.take_sent() == []


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_app_exit_before_anything_is_500(version: str) -> None:
    request = H11Peer().request if version == "1.1" else H2Peer().request
    stream, owner = started(request)
    stream.app_finished()
    response, end = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 500
    assert ((b"connection", b"close") in response.headers) is (version == "1.1")
    assert isinstance(end, EndData)
    assert drain(stream) == []
    assert len(ended(owner)) == 1
    assert stream.closed


def test_body_before_accept_is_400() -> None:
    peer = H11Peer()
    stream, owner = started(peer.request)
    stream.handle(Body(stream_id=SID, data=b"\x81\x80\x00\x00\x00\x00"))
    response, _ = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 400
    assert drain(stream) == [{"type": "websocket.disconnect", "code": 1006}]
    stream.app_send(ACCEPT)  # The app does not know yet: dropped.
    assert owner.take_sent() == []


def test_http2_end_of_stream_before_accept_is_400() -> None:
    stream, owner = started(H2Peer().request)
    stream.handle(EndBody(stream_id=SID))
    response, _ = owner.take_sent()
    assert isinstance(response, Response)
    assert response.status_code == 400


# ---------------------------------------------------------------------------------------
# The ASGI state rules
# ---------------------------------------------------------------------------------------

SEND_TEXT: ASGISendEvent = {"type": "websocket.send", "text": "x"}
DENY: ASGISendEvent = {"type": "websocket.http.response.start", "status": 403}
DENY_BODY: ASGISendEvent = {"type": "websocket.http.response.body", "body": b""}


@pytest.mark.parametrize(
    ("setup", "message", "state"),
    [
        ([], SEND_TEXT, "HANDSHAKE"),
        ([], DENY_BODY, "HANDSHAKE"),
        ([], {"type": "http.response.start", "status": 200}, "HANDSHAKE"),
        ([ACCEPT], ACCEPT, "CONNECTED"),
        ([ACCEPT], DENY, "CONNECTED"),
        ([DENY], ACCEPT, "RESPONSE"),
        ([DENY], SEND_TEXT, "RESPONSE"),
        ([DENY], {"type": "websocket.close"}, "RESPONSE"),
        ([ACCEPT, {"type": "websocket.close"}], {"type": "websocket.close"}, "CLOSED"),
        ([DENY, DENY_BODY], DENY_BODY, "HTTPCLOSED"),
    ],
)
def test_out_of_order_messages(setup: list[ASGISendEvent], message: Any, state: str) -> None:
    stream, _ = started(H11Peer().request)
    for earlier in setup:
        stream.app_send(earlier)
    with pytest.raises(UnexpectedMessageError) as caught:
        stream.app_send(message)
    assert caught.value.state is ASGIWebsocketState[state]
    assert caught.value.message_type == message["type"]
    assert message["type"] in str(caught.value)
    assert state in str(caught.value)


def test_message_without_type() -> None:
    stream, _ = started(H11Peer().request)
    message: Any = {"status": 200}
    with pytest.raises(TypeError):
        stream.app_send(message)


# ---------------------------------------------------------------------------------------
# Backpressure and pings
# ---------------------------------------------------------------------------------------


def test_wants_data_follows_the_inbox() -> None:
    config = Config()
    config.max_app_queue_size = 3
    stream, owner = make_stream(config)
    assert wants_data(stream)  # Before the request.
    peer = H11Peer()
    stream.handle(peer.request)
    stream.app_send(ACCEPT)
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    peer.accept(response)
    assert wants_data(stream)  # websocket.connect waits, below the bound.
    assert drain(stream) == [{"type": "websocket.connect"}]
    owner.take_driver()
    for index in range(3):
        stream.handle(peer.send(TextMessage(data=str(index))))
    assert not wants_data(stream)
    assert owner.take_driver() == [ReceiveReady(SID)]  # Only when it became non-empty.
    assert stream.app_receive() is not None
    assert wants_data(stream)
    stream.handle(peer.send(TextMessage(data="3")))
    assert not wants_data(stream)
    stream.handle(StreamClosed(stream_id=SID))  # The disconnect goes past the bound...
    assert wants_data(stream)  # ... and anything after it would be discarded.
    assert len(drain(stream)) == 4
    stream.app_finished()
    assert wants_data(stream)


def test_ping_interval_deadlines() -> None:
    config = Config()
    config.websocket_ping_interval = 5.0
    peer = H11Peer()
    context = make_context(config, now=1000.0)  # The driver sets the time before each call.
    owner = RecordingOwner()
    stream = WSStream(context, owner, SID, ssl=False, client=CLIENT, server=SERVER)
    stream.handle(peer.request)
    assert stream.next_deadline() is None  # Not before the accept.
    context.now = 1002.0
    stream.app_send(ACCEPT)
    [response] = owner.take_sent()
    assert isinstance(response, Response)
    peer.accept(response)
    assert stream.next_deadline() == 1007.0
    context.now = 1006.9
    stream.handle_timer()
    assert owner.take_sent() == []
    context.now = 1007.5  # Late wake-ups count from when the ping went out.
    stream.handle_timer()
    assert peer.receive(owner.take_sent()) == [Ping(payload=b"")]
    assert stream.next_deadline() == 1012.5
    stream.handle(peer.send(Pong(payload=b"")))
    stream.app_send({"type": "websocket.close"})
    assert owner.take_sent() == [
        Data(stream_id=SID, data=b"\x88\x02\x03\xe8"),  # Close 1000, no reason.
        EndData(stream_id=SID),
    ]
    assert stream.next_deadline() is None
    context.now = 2000.0
    stream.handle_timer()
    assert owner.take_sent() == []


def test_no_ping_interval_no_deadline() -> None:
    stream, _, _ = accepted_h11()
    assert stream.next_deadline() is None
    stream.handle_timer()


def test_accept_data_can_arrive_during_the_response() -> None:
    """The connection may hand over the first frames while the 101 is being framed."""
    peer = H11Peer()
    client = Connection(ConnectionType.CLIENT)
    early = client.send(TextMessage(data="early"))

    class EagerOwner(RecordingOwner):
        def stream_send(self, event: Event) -> None:
            super().stream_send(event)
            if isinstance(event, Response):
                stream.handle(Body(stream_id=SID, data=early))

    owner = EagerOwner()
    stream = WSStream(make_context(), owner, SID, ssl=False, client=None, server=None)
    stream.handle(peer.request)
    stream.app_send(ACCEPT)
    assert drain(stream)[-1] == {"type": "websocket.receive", "bytes": None, "text": "early"}
