"""The HTTP/1.1 connection: exchanges, keep-alive, errors, switches, timers.

The peer is h11 in the client role (or wsproto for WebSockets), in memory; the test plays
the application through ``app_send``/``app_receive``/``app_finished``. Every test runs once
per HTTP/1 codec (the ``codec`` fixture below, over :data:`CODECS`), with the same
expectations: the codecs must be interchangeable.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import h11
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as WSFrames
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WSRequest

from hypercorn.config import Config, ConfigError
from hypercorn.protocol.context import Connection, ProtocolContext, StreamOwner
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    H2Switch,
    InformationalResponse,
    Request,
    Response,
    SpawnApp,
    StreamEnded,
    Trailers,
)
from hypercorn.protocol.h11 import H2_PREFACE, STREAM_ID, H11Connection
from hypercorn.protocol.http1 import (
    NEED_DATA,
    PAUSED,
    CodecFactory,
    H11Codec,
    ParseError,
    select_codec,
)
from hypercorn.protocol.http1_httptools import HttptoolsCodec
from hypercorn.typing import ASGIReceiveEvent, ConnectionState, HTTPScope, WWWScope
from tests.protocols.support import CLIENT, DATE, SERVER, Headers, make_context

H2_FULL_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Every HTTP/1 codec the connection can use; every test below runs against each.
CODECS = [pytest.param(H11Codec, id="h11"), pytest.param(HttptoolsCodec, id="httptools")]

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

#: The codec make_connection() uses in the test that runs now (set by the fixture below).
_current_codec: CodecFactory = H11Codec


@pytest.fixture(autouse=True, params=CODECS)
def codec(request: pytest.FixtureRequest) -> Iterator[CodecFactory]:
    """Run the test once per codec; connections made with make_connection() use it."""
    global _current_codec
    factory: CodecFactory = request.param
    _current_codec = factory
    yield factory
    _current_codec = H11Codec


def make_connection(
    config: Config | None = None, *, codec: CodecFactory | None = None
) -> tuple[H11Connection, ProtocolContext]:
    context = make_context(config)
    connection = H11Connection(
        context, ssl=False, client=CLIENT, server=SERVER, codec_factory=codec or _current_codec
    )
    return connection, context


# ---------------------------------------------------------------------------------------
# The application, played synchronously
# ---------------------------------------------------------------------------------------

Handler = Callable[[HTTPScope, bytes], tuple[int, Headers, bytes]]


def echo(scope: HTTPScope, body: bytes) -> tuple[int, Headers, bytes]:
    """Answer with the request body, or the path when there is none."""
    return 200, [(b"content-type", b"text/plain")], body or scope["path"].encode()


@dataclass
class App:
    """Plays the ASGI application of each stream: reads the whole body, then answers."""

    connection: H11Connection
    handler: Handler = echo
    scopes: list[HTTPScope] = field(default_factory=list)
    ended: list[StreamEnded] = field(default_factory=list)
    running: bool = False
    body: bytearray = field(default_factory=bytearray)

    def run(self) -> None:
        """Take driver events and messages until nothing moves."""
        moved = True
        while moved:
            moved = False
            for event in self.connection.events():
                if isinstance(event, SpawnApp):
                    assert not self.running, "a second stream started while one runs"
                    self.scopes.append(cast(HTTPScope, event.scope))
                    self.running = True
                    self.body.clear()
                    moved = True
                elif isinstance(event, StreamEnded):
                    self.ended.append(event)
            if not self.running:
                continue
            message = self.connection.app_receive(STREAM_ID)
            if message is None:
                continue
            moved = True
            if message["type"] == "http.request":
                self.body += message["body"]
                if not message["more_body"]:
                    self.respond()
            else:
                self.finish()

    def respond(self) -> None:
        status, headers, body = self.handler(self.scopes[-1], bytes(self.body))
        send = self.connection.app_send
        send(STREAM_ID, {"type": "http.response.start", "status": status, "headers": headers})
        send(STREAM_ID, {"type": "http.response.body", "body": body})
        self.finish()

    def finish(self) -> None:
        self.running = False
        self.connection.app_finished(STREAM_ID)


def is_closed(connection: H11Connection) -> bool:
    """``connection.closed`` (a function, so mypy does not narrow it between asserts)."""
    return connection.closed


def is_paused(connection: H11Connection) -> bool:
    """``connection.reading_paused``, for the same reason."""
    return connection.reading_paused


def receive_all(connection: H11Connection) -> list[ASGIReceiveEvent]:
    messages = []
    while (message := connection.app_receive(STREAM_ID)) is not None:
        messages.append(message)
    return messages


def spawned(connection: H11Connection) -> list[WWWScope]:
    return [event.scope for event in connection.events() if isinstance(event, SpawnApp)]


# ---------------------------------------------------------------------------------------
# The client side: h11 parses what the server wrote
# ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One response as the client saw it."""

    status: int
    headers: Headers
    body: bytes
    informational: list[int]

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


def read_replies(
    data: bytes, methods: Sequence[str] = ("GET",), *, eof: bool = False
) -> list[Reply]:
    """Parse ``data`` as the responses to requests with ``methods``, in order."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    if eof:
        client.receive_data(b"")
    replies = []
    for index, method in enumerate(methods):
        if index:
            client.start_next_cycle()
        client.send(h11.Request(method=method, target="/", headers=[("host", "example.com")]))
        client.send(h11.EndOfMessage())
        informational: list[int] = []
        body = bytearray()
        head: h11.Response | None = None
        while True:
            event = client.next_event()
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"incomplete response: {event!r} after {bytes(body)!r}")
        assert head is not None
        replies.append(Reply(head.status_code, list(head.headers), bytes(body), informational))
    return replies


def exchange(
    request: bytes, *, config: Config | None = None, handler: Handler = echo, method: str = "GET"
) -> tuple[H11Connection, App, Reply]:
    connection, _ = make_connection(config)
    app = App(connection, handler)
    connection.receive_data(request)
    app.run()
    data = connection.data_to_send()
    [reply] = read_replies(data, [method], eof=connection.closed)
    return connection, app, reply


# ---------------------------------------------------------------------------------------
# The contracts
# ---------------------------------------------------------------------------------------


def test_implements_the_connection_and_owner_contracts() -> None:
    connection, _ = make_connection()
    as_connection: Connection = connection
    as_owner: StreamOwner = connection
    assert as_connection.data_to_send() == b""
    assert as_owner is connection
    assert not is_closed(connection)
    assert not is_paused(connection)


def test_codec_reads_one_request_at_a_time(codec: CodecFactory) -> None:
    state = ConnectionState({"k": "v"})
    parser = codec(Config(), state)
    assert parser.next_event() is NEED_DATA
    parser.receive_data(
        b"POST /x?y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
    )
    request = parser.next_event()
    assert isinstance(request, Request)
    assert (request.method, request.raw_path, request.http_version) == ("POST", b"/x?y", "1.1")
    assert request.stream_id == STREAM_ID
    assert request.state is state
    assert parser.next_event() == Body(stream_id=STREAM_ID, data=b"ab")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"0\r\nX-T: 1\r\n\r\n" + GET)
    assert parser.next_event() == Trailers(stream_id=STREAM_ID, headers=[(b"x-t", b"1")])
    assert parser.next_event() == EndBody(stream_id=STREAM_ID)
    assert parser.next_event() is PAUSED
    assert parser.buffered == len(GET)
    assert not parser.start_next_cycle()  # the response has not been sent
    head = parser.send(Response(stream_id=STREAM_ID, headers=[], status_code=200))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert parser.send(Data(stream_id=STREAM_ID, data=b"hi")) == b"2\r\nhi\r\n"
    assert parser.send(EndData(stream_id=STREAM_ID)) == b"0\r\n\r\n"
    assert not parser.must_close
    assert parser.start_next_cycle()
    assert isinstance(parser.next_event(), Request)


def test_codec_send_errors(codec: CodecFactory) -> None:
    parser = codec(Config(), ConnectionState({}))
    parser.receive_data(GET)
    assert isinstance(parser.next_event(), Request)
    bad = Response(stream_id=STREAM_ID, headers=[(b"x", b"a\r\nb: c")], status_code=200)
    with pytest.raises(ValueError, match="Cannot send this response"):
        parser.send(bad)
    assert parser.can_send  # refused before anything changed
    fixed = [(b"content-length", b"1")]
    parser.send(Response(stream_id=STREAM_ID, headers=fixed, status_code=200))
    with pytest.raises(ValueError, match="Too much data"):
        parser.send(Data(stream_id=STREAM_ID, data=b"12"))
    assert not parser.can_send


def test_codec_error_response_before_any_request(codec: CodecFactory) -> None:
    parser = codec(Config(), ConnectionState({}))
    parser.receive_data(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"
    )  # TLS on a plain port
    error = parser.next_event()
    assert isinstance(error, ParseError)
    assert error.status_hint == 400
    head = parser.send(Response(STREAM_ID, [(b"content-length", b"0")], error.status_hint))
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert parser.send(EndData(stream_id=STREAM_ID)) == b""
    assert parser.must_close


# ---------------------------------------------------------------------------------------
# Ordinary exchanges
# ---------------------------------------------------------------------------------------

EXCHANGES: list[Any] = [
    # id, request bytes, method, expected body, expected framing header, closes
    pytest.param(GET, "GET", b"/", (b"transfer-encoding", b"chunked"), False, id="get"),
    pytest.param(
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST",
        b"hello",
        (b"transfer-encoding", b"chunked"),
        False,
        id="post-content-length",
    ),
    pytest.param(
        b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        "POST",
        b"hello",
        (b"transfer-encoding", b"chunked"),
        False,
        id="post-chunked",
    ),
    pytest.param(
        b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n",
        "POST",
        b"hello",
        (b"transfer-encoding", b"chunked"),
        False,
        id="post-chunked-trailers",
    ),
    pytest.param(
        b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD",
        b"",
        (b"transfer-encoding", b"chunked"),
        False,
        id="head",
    ),
    pytest.param(
        b"GET /old HTTP/1.0\r\n\r\n", "GET", b"/old", (b"connection", b"close"), True, id="http10"
    ),
    pytest.param(
        b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET",
        b"/old",
        (b"connection", b"close"),
        True,
        id="http10-keep-alive-asked",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET",
        b"/",
        (b"connection", b"close"),
        True,
        id="client-close",
    ),
]


@pytest.mark.parametrize(("request_bytes", "method", "body", "framing", "closes"), EXCHANGES)
def test_exchange(
    request_bytes: bytes, method: str, body: bytes, framing: tuple[bytes, bytes], closes: bool
) -> None:
    connection, app, reply = exchange(request_bytes, method=method)
    assert reply.status == 200
    assert reply.body == body
    assert framing in [(name.lower(), value) for name, value in reply.headers]
    assert reply.header(b"date") == [DATE]
    assert reply.header(b"server") == [b"hypercorn-h11"]
    assert is_closed(connection) is closes
    assert app.scopes[0]["method"] == method
    assert len(app.ended) == 1
    assert app.ended[0].response is not None
    assert app.ended[0].response["status"] == 200


def test_scope_from_request() -> None:
    _, app, _ = exchange(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing: 1\r\n\r\n")
    scope = app.scopes[0]
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["client"] == CLIENT
    assert scope["server"] == SERVER
    assert list(scope["headers"]) == [(b"host", b"example.com"), (b"x-thing", b"1")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (False, [(b"host", b"a"), (b"x-mixed-case", b"1")]),
        (True, [(b"Host", b"a"), (b"X-Mixed-Case", b"1")]),
    ],
)
def test_pass_raw_headers(raw: bool, expected: Headers) -> None:
    config = Config()
    config.h11_pass_raw_headers = raw
    _, app, _ = exchange(b"GET / HTTP/1.1\r\nHost: a\r\nX-Mixed-Case: 1\r\n\r\n", config=config)
    assert list(app.scopes[0]["headers"]) == expected


def test_lower_case_method_is_upper_cased() -> None:
    _, app, _ = exchange(b"get / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert app.scopes[0]["method"] == "GET"


def test_response_with_content_length_is_kept() -> None:
    def fixed(scope: HTTPScope, body: bytes) -> tuple[int, Headers, bytes]:
        return 201, [(b"content-length", b"2")], b"ok"

    connection, _, reply = exchange(GET, handler=fixed)
    assert (reply.status, reply.body, reply.header(b"content-length")) == (201, b"ok", [b"2"])
    assert reply.header(b"transfer-encoding") == []
    assert not is_closed(connection)


def test_head_keeps_content_length_without_body() -> None:
    def fixed(scope: HTTPScope, body: bytes) -> tuple[int, Headers, bytes]:
        return 200, [(b"content-length", b"5")], b"hello"

    connection, _, reply = exchange(
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", handler=fixed, method="HEAD"
    )
    assert (reply.header(b"content-length"), reply.body) == ([b"5"], b"")
    connection.receive_data(GET)  # still usable
    assert spawned(connection)


@pytest.mark.parametrize(
    ("status", "status_line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (418, b"HTTP/1.1 418 I'm a Teapot\r\n"),
        (599, b"HTTP/1.1 599 \r\n"),
    ],
)
def test_status_line_has_the_reason_phrase(status: int, status_line: bytes) -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": status})
    connection.app_send(STREAM_ID, {"type": "http.response.body"})
    assert connection.data_to_send().startswith(status_line)


# ---------------------------------------------------------------------------------------
# Keep-alive and pipelining
# ---------------------------------------------------------------------------------------


def test_keep_alive_serves_requests_one_after_another() -> None:
    connection, _ = make_connection()
    app = App(connection)
    for path in (b"/1", b"/2", b"/3"):
        connection.receive_data(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        app.run()
        [reply] = read_replies(connection.data_to_send())
        assert reply.body == path
    assert not is_closed(connection)
    assert len(app.ended) == 3


def test_pipelined_requests_are_answered_in_order() -> None:
    connection, _ = make_connection()
    pipeline = b"".join(
        b"GET /" + str(n).encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n" for n in range(4)
    )
    pipeline += b"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    connection.receive_data(pipeline)
    # Only the first request has a stream until its exchange is over.
    assert connection.data_to_send() == b""
    app = App(connection)
    app.run()
    replies = read_replies(connection.data_to_send(), ["GET"] * 4 + ["POST"])
    assert [reply.body for reply in replies] == [b"/0", b"/1", b"/2", b"/3", b"abc"]
    assert [scope["path"] for scope in app.scopes] == ["/0", "/1", "/2", "/3", "/body"]


def test_next_request_waits_for_the_application_to_return() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET + GET)
    assert len(spawned(connection)) == 1
    receive_all(connection)
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 204})
    connection.app_send(STREAM_ID, {"type": "http.response.body"})
    # The response is complete, but the application has not returned yet.
    assert spawned(connection) == []
    assert receive_all(connection) == [{"type": "http.disconnect"}]
    connection.app_finished(STREAM_ID)
    assert len(spawned(connection)) == 1


def test_keep_alive_max_requests() -> None:
    config = Config()
    config.keep_alive_max_requests = 2
    connection, _ = make_connection(config)
    app = App(connection)
    connection.receive_data(GET + GET + GET)
    app.run()
    first, second = read_replies(connection.data_to_send(), ["GET", "GET"])
    assert first.header(b"connection") == []
    assert second.header(b"connection") == [b"close"]
    assert is_closed(connection)
    assert len(app.scopes) == 2


def test_body_not_read_by_the_application_is_drained() -> None:
    def early(scope: HTTPScope, body: bytes) -> tuple[int, Headers, bytes]:
        return 413, [(b"content-length", b"0")], b""

    connection, context = make_connection()
    connection.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    assert len(spawned(connection)) == 1
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 413})
    connection.app_send(STREAM_ID, {"type": "http.response.body"})
    connection.app_finished(STREAM_ID)
    [reply] = read_replies(connection.data_to_send())
    assert reply.status == 413
    # Draining the rest counts as idle: the keep-alive deadline runs.
    assert connection.next_deadline() == context.now + context.config.keep_alive_timeout
    assert not is_paused(connection)
    connection.receive_data(b"defghij" + GET)
    assert len(spawned(connection)) == 1
    assert connection.next_deadline() is None


# ---------------------------------------------------------------------------------------
# 100-continue and informational responses
# ---------------------------------------------------------------------------------------


def test_expect_100_continue() -> None:
    connection, _ = make_connection()
    client = h11.Connection(h11.CLIENT)
    head = client.send(
        h11.Request(
            method="POST",
            target="/",
            headers=[("host", "a"), ("content-length", "3"), ("expect", "100-continue")],
        )
    )
    connection.receive_data(head)
    assert len(spawned(connection)) == 1
    assert connection.data_to_send() == b""
    assert connection.app_receive(STREAM_ID) is None  # the application waits for the body
    client.receive_data(connection.data_to_send())
    interim = client.next_event()
    assert isinstance(interim, h11.InformationalResponse)
    assert interim.status_code == 100
    assert (b"server", b"hypercorn-h11") in list(interim.headers)
    connection.receive_data(client.send(h11.Data(data=b"abc")) + client.send(h11.EndOfMessage()))
    assert receive_all(connection) == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]


def test_informational_responses_from_the_application() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    spawned(connection)
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 102})
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"x"})
    [reply] = read_replies(connection.data_to_send())
    assert (reply.informational, reply.status, reply.body) == ([102], 200, b"x")


# ---------------------------------------------------------------------------------------
# Malformed requests (the same table runs against every codec)
# ---------------------------------------------------------------------------------------

MALFORMED: list[Any] = [
    # request bytes -> the status the client gets (None: a normal request, served)
    pytest.param(b"GET\r\n\r\n", 400, id="bad-request-line"),
    pytest.param(b"\x00\x01\x02\x03\r\n\r\n", 400, id="binary-garbage"),
    pytest.param(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="space-in-target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", 400, id="bad-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n", 400, id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, id="bare-cr-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX\x7f: 1\r\n\r\n", 400, id="bad-name-char"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="http11-without-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 20_000, 431, id="oversized-head"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
        id="conflicting-content-length",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, id="negative-length"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400, id="signed-length"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        id="content-length-and-transfer-encoding",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        id="unknown-transfer-coding",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        id="bad-chunk-size",
    ),
    pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, id="http-2.0-request-line"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, id="http-1.2"),
    pytest.param(b"GET /\r\n\r\n", 400, id="http-0.9"),
    pytest.param(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="leading-empty-line"),
    # Accepted by h11, as RFC 9112 allows:
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        None,
        id="repeated-equal-content-length",
    ),
    pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", None, id="bare-lf"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", None, id="obs-fold"),
    # Where llhttp and h11 part ways (the httptools codec must answer as h11 does).
    pytest.param(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="two-spaces-after-method"),
    pytest.param(b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="two-spaces-after-target"),
    pytest.param(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, id="space-after-version"),
    pytest.param(b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, id="lower-case-protocol"),
    pytest.param(b"GET / RTSP/1.0\r\nHost: a\r\n\r\n", 400, id="rtsp"),
    pytest.param(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="leading-space"),
    pytest.param(b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, id="http-0.9-request-line"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="http-2.0-two-hosts"),
    pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="http10-two-hosts"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", 400, id="cr-before-crlf"),
    pytest.param(b"GET / HTTP/1.1\r\n X: 1\r\nHost: a\r\n\r\n", 400, id="fold-without-field"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000000000000000000001\r\n\r\nx",
        400,
        id="content-length-of-21-digits",
    ),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, id="empty-length"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\nx",
        400,
        id="content-length-list",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
        id="transfer-coding-list",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
        id="two-transfer-encodings",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: x\r\n\r\n",
        501,
        id="first-framing-error-wins-501",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        id="first-framing-error-wins-400",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY",
        400,
        id="bad-chunk-footer",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n0\r\n\r\n",
        400,
        id="bare-lf-after-chunk",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n",
        400,
        id="bare-lf-chunk-size",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"0" * 21
        + b"1\r\na\r\n",
        400,
        id="chunk-size-of-22-digits",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 20_000,
        431,
        id="oversized-chunk-extension",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
        400,
        id="bad-trailer",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        id="transfer-encoding-trailer",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
        + b"t" * 20_000,
        431,
        id="oversized-trailers",
    ),
    pytest.param(b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", None, id="unknown-method"),
    pytest.param(b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", None, id="absolute-form"),
    pytest.param(b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", None, id="target-without-slash"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\x7fb\r\n\r\n", None, id="ctl-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX:\ta\tb \t\r\n\r\n", None, id="tabs-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: \xc3\xa9\r\n\r\n", None, id="obs-text"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n\n", None, id="crlf-then-bare-lf"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nab",
        None,
        id="content-length-list-of-equals",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"0" * 19 + b"2\r\n\r\nab",
        None,
        id="content-length-of-20-digits",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChunKed\r\n\r\n"
        b"2;a=b \r\nab\r\n0\r\nX: a\r\n b\r\n\r\n",
        None,
        id="chunked-any-case-extension-folded-trailer",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status"), MALFORMED)
def test_malformed_request(request_bytes: bytes, status: int | None) -> None:
    connection, _ = make_connection()
    app = App(connection)
    connection.receive_data(request_bytes)
    app.run()
    [reply] = read_replies(connection.data_to_send())
    if status is None:
        assert reply.status == 200
        assert not is_closed(connection)
        return
    assert reply.status == status
    assert reply.header(b"content-length") == [b"0"]
    assert reply.header(b"connection") == [b"close"]
    assert reply.header(b"server") == [b"hypercorn-h11"]
    assert reply.body == b""
    assert is_closed(connection)
    connection.receive_data(GET)  # ignored once closed
    assert connection.data_to_send() == b""
    assert connection.events() == []


def test_obs_fold_value_is_unfolded() -> None:
    connection, _ = make_connection()
    connection.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")
    [scope] = spawned(connection)
    assert (b"x", b"a b") in list(scope["headers"])


def test_request_headers_are_normalised_as_h11_does() -> None:
    connection, _ = make_connection()
    connection.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nX:  a b \t\r\nContent-Length: 1, 1\r\n"
        b"Content-Length: 1\r\nConnection: Keep-Alive\r\n\r\nz"
    )
    [scope] = spawned(connection)
    assert list(scope["headers"]) == [
        (b"host", b"a"),
        (b"x", b"a b"),
        (b"content-length", b"1"),
        (b"connection", b"Keep-Alive"),
    ]
    connection.receive_data(b"")
    connection, _ = make_connection()
    connection.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
        b"1\r\nz\r\n0\r\nX-Sum: 1 \r\nx-sum:2\r\n\r\n"
    )
    [scope] = spawned(connection)
    assert (b"transfer-encoding", b"chunked") in list(scope["headers"])


def test_malformed_body_while_the_application_waits() -> None:
    connection, _ = make_connection()
    connection.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert len(spawned(connection)) == 1
    connection.receive_data(b"nonsense\r\n")
    [reply] = read_replies(connection.data_to_send())
    assert (reply.status, reply.header(b"connection")) == (400, [b"close"])
    assert is_closed(connection)
    assert receive_all(connection) == [{"type": "http.disconnect"}]
    # The application's late messages are ignored.
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"late"})
    connection.app_finished(STREAM_ID)
    assert connection.data_to_send() == b""


def test_malformed_body_after_the_response_started() -> None:
    connection, _ = make_connection()
    connection.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    spawned(connection)
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_send(
        STREAM_ID, {"type": "http.response.body", "body": b"part", "more_body": True}
    )
    written = connection.data_to_send()
    connection.receive_data(b"nonsense\r\n")
    assert is_closed(connection)
    assert connection.data_to_send() == b""  # nothing appended to the response under way
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b"4\r\npart\r\n")


@pytest.mark.parametrize(
    "first",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n" + b"b" * 16,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_request_after_a_body_is_read_from_its_first_byte(first: bytes) -> None:
    # The second head starts with a line as long as the first body; then it repeats its
    # request line, which is not a valid field line.
    second = b"GET / HTTP/1.1\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
    connection, _ = make_connection()
    app = App(connection)
    connection.receive_data(first + second)
    app.run()
    replies = read_replies(connection.data_to_send(), ["POST", "GET"])
    assert [reply.status for reply in replies] == [200, 400]


def test_malformed_second_request_after_a_good_one() -> None:
    connection, _ = make_connection()
    app = App(connection)
    connection.receive_data(GET + b"BAD\r\n\r\n")
    app.run()
    first, second = read_replies(connection.data_to_send(), ["GET", "GET"])
    assert (first.status, second.status) == (200, 400)
    assert is_closed(connection)


# ---------------------------------------------------------------------------------------
# Response safety
# ---------------------------------------------------------------------------------------

BAD_HEADERS: list[Any] = [
    pytest.param([(b"x-ok", b"a\r\nInjected: yes")], id="crlf-in-value"),
    pytest.param([(b"x-ok", b"a\nInjected: yes")], id="lf-in-value"),
    pytest.param([(b"x-ok", b"a\rb")], id="cr-in-value"),
    pytest.param([(b"x\r\ninjected", b"yes")], id="crlf-in-name"),
    pytest.param([(b"x y", b"1")], id="space-in-name"),
    pytest.param([(b"x-ok", b"a\x00b")], id="nul-in-value"),
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_header_injection_is_refused(headers: Headers) -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    spawned(connection)
    connection.app_send(
        STREAM_ID, {"type": "http.response.start", "status": 200, "headers": headers}
    )
    with pytest.raises(ValueError, match="Cannot send this response"):
        connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"x"})
    assert connection.data_to_send() == b""
    # Nothing reached the wire, so the client still gets a clean 500.
    connection.app_finished(STREAM_ID)
    [reply] = read_replies(connection.data_to_send())
    assert reply.status == 500


UNSAFE_HEADERS: list[Any] = [
    pytest.param([(b"x", b"a\r\nInjected: yes")], id="crlf-in-value"),
    pytest.param([(b"x", b"a\nb")], id="lf-in-value"),
    pytest.param([(b"x", b"a\rb")], id="cr-in-value"),
    pytest.param([(b"x", b"a\x00b")], id="nul-in-value"),
    pytest.param([(b"x", b"a\x0bb")], id="vt-in-value"),
    pytest.param([(b"x", b"a\x0cb")], id="ff-in-value"),
    pytest.param([(b"x", b" a")], id="leading-space"),
    pytest.param([(b"x", b"a\t")], id="trailing-tab"),
    pytest.param([(b"", b"a")], id="empty-name"),
    pytest.param([(b"x y", b"a")], id="space-in-name"),
    pytest.param([(b"x:y", b"a")], id="colon-in-name"),
    pytest.param([(b"x\r\ny", b"a")], id="crlf-in-name"),
    pytest.param([(b"\xc3\xa9", b"a")], id="non-ascii-name"),
    pytest.param([(b"content-length", b"1, 2")], id="conflicting-length-list"),
    pytest.param([(b"content-length", b"1"), (b"content-length", b"2")], id="two-lengths"),
    pytest.param([(b"content-length", b"-1")], id="negative-length"),
    pytest.param([(b"content-length", b"1" * 21)], id="length-of-21-digits"),
    pytest.param([(b"transfer-encoding", b"gzip")], id="gzip"),
    pytest.param([(b"transfer-encoding", b"chunked")] * 2, id="two-transfer-encodings"),
]


@pytest.mark.parametrize("headers", UNSAFE_HEADERS)
@pytest.mark.parametrize("status", [103, 200])
def test_codec_refuses_unsafe_headers_before_anything_changes(
    codec: CodecFactory, headers: Headers, status: int
) -> None:
    parser = codec(Config(), ConnectionState({}))
    parser.receive_data(GET)
    assert isinstance(parser.next_event(), Request)
    event = (
        InformationalResponse(STREAM_ID, headers, status)
        if status < 200
        else Response(STREAM_ID, headers, status)
    )
    with pytest.raises(ValueError, match="Cannot send this response"):
        parser.send(event)
    assert parser.can_send
    head = parser.send(Response(STREAM_ID, [(b"content-length", b"0")], 200))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")


# Request bytes (None: nothing received) and the events the server then sends.
FRAMING: list[Any] = [
    pytest.param(
        GET, [Response(1, [], 200), Data(1, b"ab"), Data(1, b""), EndData(1)], id="chunked"
    ),
    pytest.param(
        GET,
        [
            Response(1, [(b"Content-Length", b"2, 2"), (b"content-length", b"2")], 200),
            Data(1, b"a"),
            Data(1, b"b"),
            EndData(1),
        ],
        id="content-length",
    ),
    pytest.param(
        GET, [Response(1, [(b"content-length", b"2")], 200), EndData(1)], id="too-little"
    ),
    pytest.param(
        b"GET / HTTP/1.0\r\n\r\n", [Response(1, [], 200), Data(1, b"x"), EndData(1)], id="http10"
    ),
    pytest.param(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        [Response(1, [(b"connection", b"Keep-Alive, Foo")], 200), EndData(1)],
        id="http10-keep-alive",
    ),
    pytest.param(
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        [Response(1, [], 200), Data(1, b""), EndData(1)],
        id="head",
    ),
    pytest.param(
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        [Response(1, [(b"content-length", b"5")], 200), Data(1, b"body")],
        id="head-body",
    ),
    pytest.param(b"HEAD / HTTP/1.0\r\n\r\n", [Response(1, [], 200), EndData(1)], id="head-http10"),
    pytest.param(
        GET, [Response(1, [(b"content-length", b"5")], 204), Data(1, b"x")], id="204-body"
    ),
    pytest.param(GET, [Response(1, [], 304), EndData(1)], id="304"),
    pytest.param(
        GET,
        [
            Response(1, [(b"Transfer-Encoding", b"Chunked"), (b"content-length", b"9")], 200),
            Data(1, b"x"),
            EndData(1),
        ],
        id="transfer-encoding-wins",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        [Response(1, [(b"connection", b"Upgrade, keep-alive")], 200), EndData(1)],
        id="client-close",
    ),
    pytest.param(
        GET, [Response(1, [(b"Connection", b"Close")], 200), EndData(1)], id="server-close"
    ),
    pytest.param(
        GET,
        [Response(1, [(b"x", b"1"), (b"Host", b"h"), (b"y", b"2"), (b"host", b"i")], 200)],
        id="host-first",
    ),
    pytest.param(
        GET,
        [
            InformationalResponse(1, [(b"link", b"</a>")], 103),
            Response(1, [], 200),
            InformationalResponse(1, [], 100),
        ],
        id="informational",
    ),
    pytest.param(None, [InformationalResponse(1, [], 100)], id="informational-first"),
    pytest.param(GET, [InformationalResponse(1, [], 101)], id="101-without-upgrade"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nextra",
        [InformationalResponse(1, [(b"upgrade", b"websocket")], 101), Data(1, b"x")],
        id="101",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        [Response(1, [], 400), EndData(1)],
        id="upgrade-declined",
    ),
    pytest.param(
        b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
        [Response(1, [], 200), Data(1, b"x")],
        id="connect",
    ),
    pytest.param(
        b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
        [Response(1, [], 404), Data(1, b"x"), EndData(1)],
        id="connect-refused",
    ),
    pytest.param(
        b"\x00", [Response(1, [(b"connection", b"close")], 400), EndData(1)], id="after-error"
    ),
    pytest.param(
        b"GET / HTTP/2.0\r\nHost: a\r\nConnection: close\r\n\r\n",
        [Response(1, [(b"content-length", b"0")], 505), EndData(1)],
        id="after-505",
    ),
    pytest.param(None, [Response(1, [], 200), Data(1, b"x"), EndData(1)], id="no-request"),
    pytest.param(GET, [Data(1, b"x"), Response(1, [], 200)], id="data-first"),
    pytest.param(GET, [Response(1, [], 200), Response(1, [], 200)], id="two-responses"),
    pytest.param(GET, [Response(1, [], 1000), Response(1, [], 599), EndData(1)], id="status"),
    pytest.param(
        GET,
        [Response(1, [], 200), EndData(1), EndData(1), Response(1, [], 200)],
        id="after-the-end",
    ),
]


def _framed(factory: CodecFactory, request: bytes | None, events: list[Any]) -> list[object]:
    """What a codec makes of ``events`` after ``request``: bytes, or how a send failed."""
    parser = factory(Config(), ConnectionState({}))
    seen: list[object] = []
    if request is not None:
        parser.receive_data(request)
        while (event := parser.next_event()) is not NEED_DATA and event is not PAUSED:
            seen.append(event if not isinstance(event, ParseError) else event.status_hint)
            if isinstance(event, ParseError):
                break
    for event in events:
        try:
            seen.append(parser.send(event))
        except ValueError as error:
            seen.append(("ValueError", "this response" in str(error)))
        seen.append((parser.can_send, parser.must_close))
    seen.append((parser.take_trailing_data(), parser.start_next_cycle()))
    return seen


@pytest.mark.parametrize(("request_bytes", "events"), FRAMING)
def test_codec_frames_responses_as_h11_does(
    codec: CodecFactory, request_bytes: bytes | None, events: list[Any]
) -> None:
    assert _framed(codec, request_bytes, events) == _framed(H11Codec, request_bytes, events)


def test_bad_informational_header_is_refused_and_the_response_goes_on() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    spawned(connection)
    bad: Headers = [(b"link", b"a\r\nb")]
    with pytest.raises(ValueError, match="Cannot send this response"):
        connection.app_send(
            STREAM_ID, {"type": "http.response.start", "status": 103, "headers": bad}
        )
    assert connection.data_to_send() == b""
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"fine"})
    [reply] = read_replies(connection.data_to_send())
    assert reply.body == b"fine"


def test_body_longer_than_content_length_closes() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    spawned(connection)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    connection.app_send(STREAM_ID, start)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Content-Length"):
        connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"too long"})
    assert is_closed(connection)
    head = connection.data_to_send()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")  # the head only: the body was never written


def test_application_abort_mid_response_closes() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET + GET)
    spawned(connection)
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"a", "more_body": True})
    connection.app_finished(STREAM_ID)
    assert is_closed(connection)
    assert spawned(connection) == []
    assert not connection.data_to_send().endswith(b"0\r\n\r\n")


def test_application_without_response_gets_500_and_keep_alive_ends() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    spawned(connection)
    connection.app_finished(STREAM_ID)
    [reply] = read_replies(connection.data_to_send())
    assert (reply.status, reply.header(b"connection")) == (500, [b"close"])
    assert is_closed(connection)


def test_unknown_stream_ids_are_ignored() -> None:
    connection, _ = make_connection()
    assert connection.app_receive(STREAM_ID) is None  # no stream yet
    connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_finished(STREAM_ID)
    connection.receive_data(GET)
    spawned(connection)
    assert connection.app_receive(7) is None
    connection.app_send(7, {"type": "http.response.start", "status": 200})
    connection.app_finished(7)
    assert connection.data_to_send() == b""
    assert connection.can_send(STREAM_ID)
    assert receive_all(connection) == [{"type": "http.request", "body": b"", "more_body": False}]


# ---------------------------------------------------------------------------------------
# Reading backpressure
# ---------------------------------------------------------------------------------------


def test_reading_pauses_while_the_stream_wants_no_data() -> None:
    config = Config()
    config.max_app_queue_size = 2
    connection, _ = make_connection(config)
    connection.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    spawned(connection)
    assert not is_paused(connection)
    connection.receive_data(b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")
    assert is_paused(connection)
    first = connection.app_receive(STREAM_ID)
    assert first == {"type": "http.request", "body": b"a", "more_body": True}
    messages = receive_all(connection)
    assert [message.get("body") for message in messages] == [b"b", b"c", b""]
    assert not is_paused(connection)


def test_reading_pauses_when_pipelined_bytes_pile_up() -> None:
    config = Config()
    config.h11_max_incomplete_size = 100
    connection, _ = make_connection(config)
    connection.receive_data(GET)
    assert not is_paused(connection)
    connection.receive_data(GET + GET)  # 76 bytes wait: still below the bound
    assert not is_paused(connection)
    connection.receive_data(GET)
    assert is_paused(connection)
    app = App(connection)
    app.run()
    assert len(app.scopes) == 4
    assert not is_paused(connection)
    assert len(read_replies(connection.data_to_send(), ["GET"] * 4)) == 4


# ---------------------------------------------------------------------------------------
# End of input, deadlines and shutdown
# ---------------------------------------------------------------------------------------


def test_client_going_away_mid_request() -> None:
    connection, _ = make_connection()
    connection.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    spawned(connection)
    connection.receive_data(b"")
    assert is_closed(connection)
    messages = receive_all(connection)
    assert messages[-1] == {"type": "http.disconnect"}
    ended = [event for event in connection.events() if isinstance(event, StreamEnded)]
    assert len(ended) == 1
    assert ended[0].response is None


def test_client_going_away_while_idle() -> None:
    connection, _ = make_connection()
    connection.receive_data(b"GET / HT")
    connection.receive_data(b"")
    assert is_closed(connection)
    assert connection.data_to_send() == b""
    assert connection.events() == []


def test_keep_alive_deadline_only_while_idle() -> None:
    connection, context = make_connection()
    timeout = context.config.keep_alive_timeout
    assert connection.next_deadline() == context.now + timeout
    context.now += 1
    connection.receive_data(b"GET / HTTP/1.1\r\n")  # a partial head does not extend it
    assert connection.next_deadline() == context.now - 1 + timeout
    connection.receive_data(b"Host: a\r\n\r\n")
    assert connection.next_deadline() is None  # a request is in progress
    context.now += 100
    connection.handle_timer()
    assert not is_closed(connection)
    App(connection).run()
    assert connection.next_deadline() == context.now + timeout
    context.now += timeout - 0.5
    connection.handle_timer()
    assert not is_closed(connection)
    context.now += 0.5
    connection.handle_timer()
    assert is_closed(connection)
    assert connection.next_deadline() is None


def test_shutdown_before_the_first_request_still_serves_it() -> None:
    # The server accepted the connection: its request may be on the way, and closing now
    # would reset the connection under it.
    connection, _ = make_connection()
    connection.shutdown()
    assert not is_closed(connection)
    connection.receive_data(GET + GET)
    App(connection).run()
    assert is_closed(connection)
    [reply] = read_replies(connection.data_to_send())
    assert reply.header(b"connection") == [b"close"]


def test_shutdown_before_the_first_request_waits_until_the_idle_deadline() -> None:
    connection, context = make_connection()
    connection.shutdown()
    deadline = connection.next_deadline()
    assert deadline == context.now + context.config.keep_alive_timeout
    context.now = deadline
    connection.handle_timer()
    assert is_closed(connection)
    assert connection.data_to_send() == b""


def test_shutdown_with_part_of_the_next_request_head_serves_it() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    App(connection).run()
    connection.data_to_send()
    connection.receive_data(GET[:12])
    connection.shutdown()
    assert not is_closed(connection)
    connection.receive_data(GET[12:])
    App(connection).run()
    assert is_closed(connection)
    [reply] = read_replies(connection.data_to_send())
    assert reply.header(b"connection") == [b"close"]


@pytest.mark.parametrize("started", [False, True])
def test_shutdown_during_a_request(started: bool) -> None:
    connection, _ = make_connection()
    connection.receive_data(GET + GET)
    spawned(connection)
    if started:
        connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
        connection.app_send(
            STREAM_ID, {"type": "http.response.body", "body": b"a", "more_body": True}
        )
    connection.shutdown()
    assert not is_closed(connection)
    if not started:
        connection.app_send(STREAM_ID, {"type": "http.response.start", "status": 200})
    connection.app_send(STREAM_ID, {"type": "http.response.body", "body": b"b"})
    assert is_closed(connection)
    [reply] = read_replies(connection.data_to_send())
    assert reply.body == (b"ab" if started else b"b")
    assert reply.header(b"connection") == ([] if started else [b"close"])


def test_idle_connection_after_an_exchange_shuts_down_at_once() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    App(connection).run()
    assert not is_closed(connection)
    connection.shutdown()
    assert is_closed(connection)


# ---------------------------------------------------------------------------------------
# HTTP/2 switches
# ---------------------------------------------------------------------------------------

SETTINGS = b"AAMAAABkAARAAAAAAAIAAAAA"
H2C_REQUEST = (
    b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: " + SETTINGS + b"\r\n\r\n"
)


@pytest.mark.parametrize("split", [1, 3, 8, 15, 16, 17, 24, 30])
def test_prior_knowledge_preface(split: int) -> None:
    connection, _ = make_connection()
    data = H2_FULL_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    connection.receive_data(data[:split])
    if split < len(H2_PREFACE):
        assert connection.switch is None
        assert not is_closed(connection)
        connection.receive_data(data[split:])
    assert connection.switch == H2Switch(data=data if split < len(H2_PREFACE) else data[:split])
    assert connection.data_to_send() == b""
    assert connection.events() == []
    assert not is_closed(connection)
    connection.receive_data(b"more")  # the HTTP/2 connection's business now
    connection.receive_data(b"")
    assert connection.data_to_send() == b""
    assert not is_closed(connection)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"PRI / HTTP/1.1\r\nHost: a\r\n\r\n", id="pri-method"),
        pytest.param(b"P", id="one-byte-then-get"),
    ],
)
def test_almost_a_preface_is_http1(request_bytes: bytes) -> None:
    connection, _ = make_connection()
    connection.receive_data(request_bytes)
    if request_bytes == b"P":
        connection.receive_data(b"UT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert connection.switch is None
    [scope] = spawned(connection)
    assert scope["type"] == "http"


def test_preface_later_in_the_connection_is_not_a_switch() -> None:
    connection, _ = make_connection()
    connection.receive_data(GET)
    App(connection).run()
    connection.data_to_send()
    connection.receive_data(H2_FULL_PREFACE)
    assert connection.switch is None
    [reply] = read_replies(connection.data_to_send())
    assert reply.status == 505
    assert is_closed(connection)


@pytest.mark.parametrize("split", [None, 10, len(H2C_REQUEST) - 1, len(H2C_REQUEST)])
def test_h2c_upgrade(split: int | None) -> None:
    connection, _ = make_connection()
    after = H2_FULL_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    if split is None:
        connection.receive_data(H2C_REQUEST + after)
    elif split == len(H2C_REQUEST):
        # The switch happens as soon as the request is complete; what follows is the
        # HTTP/2 connection's to read.
        connection.receive_data(H2C_REQUEST)
        after = b""
    else:
        connection.receive_data(H2C_REQUEST[:split])
        assert connection.switch is None
        connection.receive_data(H2C_REQUEST[split:] + after)
    switch = connection.switch
    assert switch is not None
    assert switch.data == after
    assert switch.settings == SETTINGS
    assert switch.request is not None
    assert (switch.request.method, switch.request.raw_path) == ("GET", b"/up")
    assert (b"upgrade", b"h2c") in switch.request.headers
    written = connection.data_to_send()
    assert written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "a"), ("upgrade", "h2c")]))
    client.send(h11.EndOfMessage())
    client.receive_data(written)
    response = client.next_event()
    assert isinstance(response, h11.InformationalResponse)
    headers = list(response.headers)
    assert (b"connection", b"Upgrade") in headers
    assert (b"upgrade", b"h2c") in headers
    assert (b"server", b"hypercorn-h11") in headers
    assert client.trailing_data == (b"", False)
    assert connection.events() == []
    assert not is_closed(connection)
    connection.receive_data(b"ignored")
    assert connection.data_to_send() == b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: "
            + SETTINGS
            + b"\r\nContent-Length: 3\r\n\r\nabc",
            id="content-length-body",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: "
            + SETTINGS
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            id="chunked-body",
        ),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", id="no-http2-settings"),
        pytest.param(
            b"GET / HTTP/1.0\r\nUpgrade: h2c\r\nHTTP2-Settings: " + SETTINGS + b"\r\n\r\n",
            id="http10",
        ),
    ],
)
def test_h2c_upgrade_ignored(request_bytes: bytes) -> None:
    connection, app, reply = exchange(request_bytes, method="POST")
    assert connection.switch is None
    assert reply.status == 200
    assert reply.informational == []
    assert app.scopes[0]["type"] == "http"


def test_h2c_with_empty_content_length_switches() -> None:
    connection, _ = make_connection()
    connection.receive_data(
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: "
        + SETTINGS
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    assert connection.switch is not None
    assert connection.switch.data == b""


# ---------------------------------------------------------------------------------------
# WebSocket upgrade
# ---------------------------------------------------------------------------------------


def ws_connect() -> tuple[H11Connection, WSConnection, bytes]:
    connection, _ = make_connection()
    client = WSConnection(ConnectionType.CLIENT)
    handshake = client.send(WSRequest(host="example.com", target="/ws"))
    return connection, client, handshake


def test_websocket_upgrade_to_raw_mode() -> None:
    connection, client, handshake = ws_connect()
    early = WSFrames(ConnectionType.CLIENT).send(TextMessage(data="early"))
    connection.receive_data(handshake + early)
    [scope] = spawned(connection)
    assert scope["type"] == "websocket"
    assert receive_all(connection) == [{"type": "websocket.connect"}]
    connection.app_send(STREAM_ID, {"type": "websocket.accept"})
    client.receive_data(connection.data_to_send())
    assert [type(event) for event in client.events()] == [AcceptConnection]
    # The frame that came with the handshake reaches the application.
    assert receive_all(connection) == [
        {"type": "websocket.receive", "bytes": None, "text": "early"}
    ]
    assert connection.next_deadline() is None  # no keep-alive timeout on a WebSocket
    connection.receive_data(client.send(TextMessage(data="hello")))
    assert receive_all(connection) == [
        {"type": "websocket.receive", "bytes": None, "text": "hello"}
    ]
    connection.app_send(STREAM_ID, {"type": "websocket.send", "text": "back"})
    client.receive_data(connection.data_to_send())
    [message] = client.events()
    assert isinstance(message, TextMessage)
    assert message.data == "back"
    connection.receive_data(client.send(CloseConnection(code=1000)))
    assert receive_all(connection) == [{"type": "websocket.disconnect", "code": 1000}]
    client.receive_data(connection.data_to_send())
    assert [type(event) for event in client.events()] == [CloseConnection]
    assert is_closed(connection)


def test_websocket_application_close_ends_the_connection() -> None:
    connection, client, handshake = ws_connect()
    connection.receive_data(handshake)
    spawned(connection)
    receive_all(connection)
    connection.app_send(STREAM_ID, {"type": "websocket.accept"})
    assert not is_closed(connection)
    connection.app_send(STREAM_ID, {"type": "websocket.close", "code": 1000})
    assert is_closed(connection)
    client.receive_data(connection.data_to_send())
    events = client.events()
    assert [type(event) for event in events] == [AcceptConnection, CloseConnection]


def test_websocket_client_vanishing() -> None:
    connection, _, handshake = ws_connect()
    connection.receive_data(handshake)
    spawned(connection)
    receive_all(connection)
    connection.app_send(STREAM_ID, {"type": "websocket.accept"})
    connection.receive_data(b"")
    assert is_closed(connection)
    assert receive_all(connection) == [{"type": "websocket.disconnect", "code": 1006}]


def test_websocket_denial_is_an_ordinary_response() -> None:
    connection, client, handshake = ws_connect()
    connection.receive_data(handshake)
    spawned(connection)
    receive_all(connection)
    connection.app_send(
        STREAM_ID,
        {"type": "websocket.http.response.start", "status": 403, "headers": []},
    )
    connection.app_send(STREAM_ID, {"type": "websocket.http.response.body", "body": b"no"})
    client.receive_data(connection.data_to_send())
    events = list(client.events())
    assert isinstance(events[0], RejectConnection)
    assert events[0].status_code == 403
    assert b"".join(event.data for event in events if isinstance(event, RejectData)) == b"no"
    connection.app_finished(STREAM_ID)
    # The connection is still HTTP/1.1 and can carry the next request.
    assert not is_closed(connection)
    connection.receive_data(GET)
    assert len(spawned(connection)) == 1


def test_invalid_websocket_handshake_is_a_400() -> None:
    connection, app, reply = exchange(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    assert reply.status == 400
    assert app.scopes == []
    assert is_closed(connection)


def test_websocket_request_with_a_body_is_plain_http() -> None:
    _, app, reply = exchange(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )
    assert app.scopes[0]["type"] == "http"
    assert reply.body == b"hi"


def test_websocket_reading_backpressure() -> None:
    config = Config()
    config.max_app_queue_size = 1
    connection, _ = make_connection(config)
    client = WSConnection(ConnectionType.CLIENT)
    connection.receive_data(client.send(WSRequest(host="example.com", target="/ws")))
    spawned(connection)
    receive_all(connection)
    connection.app_send(STREAM_ID, {"type": "websocket.accept"})
    client.receive_data(connection.data_to_send())
    client.events()
    connection.receive_data(client.send(TextMessage(data="one")))
    assert is_paused(connection)
    assert receive_all(connection) == [{"type": "websocket.receive", "bytes": None, "text": "one"}]
    assert not is_paused(connection)


def test_websocket_ping_deadline_passes_through() -> None:
    config = Config()
    config.websocket_ping_interval = 10.0
    connection, context = make_connection(config)
    client = WSConnection(ConnectionType.CLIENT)
    connection.receive_data(client.send(WSRequest(host="example.com", target="/ws")))
    spawned(connection)
    receive_all(connection)
    connection.app_send(STREAM_ID, {"type": "websocket.accept"})
    client.receive_data(connection.data_to_send())
    list(client.events())
    assert connection.next_deadline() == context.now + 10.0
    context.now += 10.0
    connection.handle_timer()
    client.receive_data(connection.data_to_send())
    assert [type(event).__name__ for event in client.events()] == ["Ping"]
    assert not is_closed(connection)


def test_last_request_error_response_has_one_connection_close() -> None:
    config = Config()
    config.keep_alive_max_requests = 1
    connection, _ = make_connection(config)
    connection.receive_data(GET)
    connection.app_finished(STREAM_ID)  # no response: the stream answers 500
    [reply] = read_replies(connection.data_to_send())
    assert (reply.status, reply.header(b"connection")) == (500, [b"close"])
    assert is_closed(connection)


# ---------------------------------------------------------------------------------------
# Choosing the codec (Config.http1_parser)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("h11", H11Codec), ("httptools", HttptoolsCodec), ("auto", HttptoolsCodec)],
)
def test_select_codec(choice: str, expected: CodecFactory) -> None:
    config = Config()
    config.http1_parser = choice
    assert select_codec(config) is expected


def test_select_codec_refuses_an_unknown_parser() -> None:
    config = Config()
    config.http1_parser = "llhttp"
    with pytest.raises(ConfigError, match=r"http1_parser must be one of .* not 'llhttp'"):
        select_codec(config)


def test_connection_without_a_codec_uses_the_configured_one() -> None:
    config = Config()
    config.http1_parser = "nonsense"
    with pytest.raises(ConfigError, match="http1_parser"):
        H11Connection(make_context(config), ssl=False, client=CLIENT, server=SERVER)


def test_select_codec_without_httptools() -> None:
    # A fresh interpreter where httptools cannot be imported.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["httptools"] = None
        from hypercorn.config import Config, ConfigError
        from hypercorn.protocol.http1 import H11Codec, select_codec
        config = Config()
        assert select_codec(config) is H11Codec
        config.http1_parser = "httptools"
        try:
            select_codec(config)
        except ConfigError as error:
            print(error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert "pip install 'hypercorn-protocols[accel]'" in result.stdout
