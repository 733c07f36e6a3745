"""The ASGI HTTP stream: scope, inbox, the send state machine and how a stream ends.

The stream is driven directly: the test plays the connection (``handle``) and the
application (``app_send``/``app_receive``/``app_finished``), and asserts on what the stream
hands to its owner (``RecordingOwner``).
"""

from __future__ import annotations

from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.protocol.context import Stream
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    ReceiveReady,
    Request,
    Response,
    SpawnApp,
    StreamClosed,
    StreamEnded,
    Trailers,
)
from hypercorn.protocol.http_stream import (
    EARLY_HINTS_VERSIONS,
    PUSH_VERSIONS,
    TRAILERS_VERSIONS,
    ASGIHTTPState,
    HTTPStream,
)
from hypercorn.typing import ASGISendEvent, ConnectionState, HTTPScope
from hypercorn.utils import UnexpectedMessageError
from tests.protocols.support import (
    CLIENT,
    COMPILED,
    SERVER,
    Headers,
    RecordingOwner,
    drain,
    make_context,
    wants_data,
)

SID = 3

START: ASGISendEvent = {"type": "http.response.start", "status": 200, "headers": []}
START_TRAILERS: ASGISendEvent = {
    "type": "http.response.start",
    "status": 200,
    "headers": [],
    "trailers": True,
}
BODY_MORE: ASGISendEvent = {"type": "http.response.body", "body": b"abc", "more_body": True}
BODY_END: ASGISendEvent = {"type": "http.response.body", "body": b"", "more_body": False}
TRAILERS_END: ASGISendEvent = {"type": "http.response.trailers", "headers": [(b"x-t", b"1")]}
PUSH: ASGISendEvent = {"type": "http.response.push", "path": "/style.css", "headers": []}
HINT: ASGISendEvent = {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]}


def make_stream(
    config: Config | None = None, *, ssl: bool = False, client: tuple[str, int] | None = CLIENT
) -> tuple[HTTPStream, RecordingOwner]:
    owner = RecordingOwner()
    stream = HTTPStream(make_context(config), owner, SID, ssl=ssl, client=client, server=SERVER)
    return stream, owner


def make_request(
    *,
    method: str = "GET",
    raw_path: bytes = b"/",
    version: str = "1.1",
    headers: Headers | None = None,
    state: dict[str, Any] | None = None,
) -> Request:
    return Request(
        stream_id=SID,
        headers=[(b"host", b"example.com")] if headers is None else headers,
        http_version=version,
        method=method,
        raw_path=raw_path,
        state=ConnectionState({} if state is None else state),
    )


def started(
    config: Config | None = None, *, ssl: bool = False, **request: Any
) -> tuple[HTTPStream, RecordingOwner, HTTPScope]:
    """A stream whose request arrived and whose application was spawned."""
    stream, owner = make_stream(config, ssl=ssl)
    stream.handle(make_request(**request))
    (spawn,) = owner.take_driver()
    assert isinstance(spawn, SpawnApp)
    assert spawn.stream_id == SID
    assert spawn.scope["type"] == "http"
    return stream, owner, spawn.scope


def state_of(stream: HTTPStream) -> ASGIHTTPState:
    """(Read through a call, so that the type checker does not narrow the attribute.)"""
    return stream.state


def is_closed(stream: HTTPStream) -> bool:
    return stream.closed


def ended(owner: RecordingOwner) -> list[StreamEnded]:
    return [event for event in owner.driver if isinstance(event, StreamEnded)]


def test_http_stream_is_a_stream() -> None:
    stream: Stream = make_stream()[0]
    assert stream.next_deadline() is None
    stream.handle_timer()
    assert TRAILERS_VERSIONS == PUSH_VERSIONS == EARLY_HINTS_VERSIONS == {"2", "3"}


# ---------------------------------------------------------------------------------------
# Scope
# ---------------------------------------------------------------------------------------

H2_EXTENSIONS: dict[str, dict[str, Any]] = {
    "http.response.trailers": {},
    "http.response.push": {},
    "http.response.early_hint": {},
}


@pytest.mark.parametrize(
    ("version", "ssl", "scheme", "extensions"),
    [
        ("1.0", False, "http", {}),
        ("1.1", False, "http", {}),
        ("1.1", True, "https", {}),
        ("2", True, "https", H2_EXTENSIONS),
        ("2", False, "http", H2_EXTENSIONS),
        ("3", True, "https", H2_EXTENSIONS),
    ],
)
def test_scope_fields(version: str, ssl: bool, scheme: str, extensions: dict[str, Any]) -> None:
    headers = [(b"host", b"example.com"), (b"x-a", b"1")]
    stream, _, scope = started(
        ssl=ssl, version=version, method="POST", raw_path=b"/p?q=1", headers=headers
    )
    assert scope == {
        "type": "http",
        "asgi": {"spec_version": "2.1", "version": "3.0"},
        "http_version": version,
        "method": "POST",
        "scheme": scheme,
        "path": "/p",
        "raw_path": b"/p",
        "query_string": b"q=1",
        "root_path": "",
        "headers": headers,
        "client": CLIENT,
        "server": SERVER,
        "state": {},
        "extensions": extensions,
    }
    assert scope["headers"] is headers  # as given, not copied
    assert stream.scope is scope


def test_scope_without_addresses() -> None:
    owner = RecordingOwner()
    stream = HTTPStream(make_context(), owner, SID, ssl=False, client=None, server=None)
    stream.handle(make_request())
    (spawn,) = owner.take_driver()
    assert isinstance(spawn, SpawnApp)
    assert spawn.scope["client"] is None
    assert spawn.scope["server"] is None


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query_string"),
    [
        (b"/", "/", b"/", b""),
        (b"/?", "/", b"/", b""),
        (b"/a%20b?x=1&y=%20", "/a b", b"/a%20b", b"x=1&y=%20"),
        (b"/caf%C3%A9", "/caf\u00e9", b"/caf%C3%A9", b""),
        (b"/caf\xc3\xa9", "/caf\u00e9", b"/caf\xc3\xa9", b""),
        (b"/%E2%82%AC/x", "/\u20ac/x", b"/%E2%82%AC/x", b""),
        (b"/a%2Fb", "/a/b", b"/a%2Fb", b""),
        (b"/a?b?c", "/a", b"/a", b"b?c"),
        (b"/%", "/%", b"/%", b""),  # not an escape: kept as is
        (b"/a+b", "/a+b", b"/a+b", b""),  # '+' is not a space in a path
        (b"*", "*", b"*", b""),
    ],
)
def test_scope_path_decoding(
    target: bytes, path: str, raw_path: bytes, query_string: bytes
) -> None:
    _, _, scope = started(raw_path=target)
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (
        path,
        raw_path,
        query_string,
    )


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        ("1.1", [(b"content-length", b"0"), (b"connection", b"close")]),
        ("1.0", [(b"content-length", b"0"), (b"connection", b"close")]),
        ("2", [(b"content-length", b"0")]),
    ],
)
@pytest.mark.parametrize("target", [b"/%FF", b"/\xff", b"/%C3?x", b"/%ED%A0%80"])
def test_path_invalid_after_decoding_is_400_without_app(
    target: bytes, version: str, headers: Headers
) -> None:
    stream, owner = make_stream()
    stream.handle(make_request(raw_path=target, version=version))
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=headers, status_code=400),
        EndData(stream_id=SID),
    ]
    (end,) = owner.take_driver()  # no SpawnApp
    assert isinstance(end, StreamEnded)
    assert end.response == {"status": 400, "headers": headers}
    assert end.scope["raw_path"] == target.partition(b"?")[0]
    assert is_closed(stream)
    stream.handle(Body(stream_id=SID, data=b"ignored"))
    stream.handle(EndBody(stream_id=SID))
    stream.handle(StreamClosed(stream_id=SID))
    assert wants_data(stream)
    assert owner.take_sent() == []
    assert owner.take_driver() == []


@pytest.mark.parametrize(("setting", "root_path"), [("", ""), ("/api", "/api"), ("/v1/", "/v1")])
def test_scope_root_path_from_config(setting: str, root_path: str) -> None:
    config = Config()
    config.root_path = setting
    _, _, scope = started(config)
    assert scope["root_path"] == root_path


def test_scope_state_is_a_shallow_copy() -> None:
    shared: list[int] = []
    connection_state = {"db": shared, "n": 1}
    _, _, scope = started(state=connection_state)
    assert scope["state"] == {"db": shared, "n": 1}
    scope["state"]["n"] = 2
    scope["state"]["new"] = True
    assert connection_state == {"db": shared, "n": 1}  # the connection's copy is untouched
    assert scope["state"]["db"] is shared  # shallow: values are shared


def test_scopes_do_not_share_mutable_parts() -> None:
    _, _, first = started(version="2")
    _, _, second = started(version="2")
    first["extensions"]["http.response.push"]["x"] = 1
    first["asgi"]["version"] = "2.0"
    assert second["extensions"] == H2_EXTENSIONS
    assert second["asgi"] == {"spec_version": "2.1", "version": "3.0"}


def test_second_request_is_a_bug_of_the_connection() -> None:
    stream, _, _ = started()
    with pytest.raises(RuntimeError, match="second Request"):
        stream.handle(make_request())


# ---------------------------------------------------------------------------------------
# server_names
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_names", "host", "allowed"),
    [
        ([], b"anything", True),
        (["example.com"], b"example.com", True),
        (["example.com"], b"other.com", False),
        (["example.com"], b"example.com:8000", False),
        (["example.com:8000"], b"example.com:8000", True),
        (["example.com"], b"", False),
    ],
)
@pytest.mark.parametrize("version", ["1.1", "2"])
def test_server_names(server_names: list[str], host: bytes, allowed: bool, version: str) -> None:
    config = Config()
    config.server_names = server_names
    stream, owner = make_stream(config)
    stream.handle(make_request(headers=[(b"host", host)], version=version))
    driver = owner.take_driver()
    if allowed:
        assert [type(event) for event in driver] == [SpawnApp]
        assert owner.take_sent() == []
        assert not is_closed(stream)
        return
    headers = [(b"content-length", b"0")]
    if version == "1.1":
        headers.append((b"connection", b"close"))
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=headers, status_code=404),
        EndData(stream_id=SID),
    ]
    assert [type(event) for event in driver] == [StreamEnded]
    assert isinstance(driver[0], StreamEnded)
    assert driver[0].response == {"status": 404, "headers": headers}
    assert is_closed(stream)
    assert stream.app_receive() is None


# ---------------------------------------------------------------------------------------
# The inbox: receive()
# ---------------------------------------------------------------------------------------


def test_body_messages_and_receive_ready() -> None:
    stream, owner, _ = started(method="POST")
    assert stream.app_receive() is None
    stream.handle(Body(stream_id=SID, data=b"ab"))
    stream.handle(Body(stream_id=SID, data=b""))  # an empty chunk is no message
    stream.handle(Body(stream_id=SID, data=b"cd"))
    # ReceiveReady only when the inbox went from empty to non-empty.
    assert owner.take_driver() == [ReceiveReady(SID)]
    assert stream.app_receive() == {"type": "http.request", "body": b"ab", "more_body": True}
    stream.handle(EndBody(stream_id=SID))
    assert owner.take_driver() == []
    assert drain(stream) == [
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    stream.handle(StreamClosed(stream_id=SID))
    assert owner.take_driver()[0] == ReceiveReady(SID)
    assert drain(stream) == [{"type": "http.disconnect"}]


def test_body_data_is_bytes() -> None:
    stream, _, _ = started(method="POST")
    if COMPILED:
        # The compiled build checks the event's declared types when it is made.
        with pytest.raises(TypeError):
            Body(stream_id=SID, data=bytearray(b"xy"))  # type: ignore[arg-type]
        return
    stream.handle(Body(stream_id=SID, data=bytearray(b"xy")))  # type: ignore[arg-type]
    message = stream.app_receive()
    assert message is not None
    assert message["type"] == "http.request"
    assert type(message["body"]) is bytes


DISCONNECT_CASES: list[tuple[str, list[str]]] = [
    ("peer closes", ["closed"]),
    ("peer closes twice", ["closed", "closed"]),
    ("response completes", ["respond"]),
    ("response completes, then peer closes", ["respond", "closed"]),
    ("peer closes, then app responds anyway", ["closed", "respond"]),
    ("peer closes, then more body arrives", ["closed", "body", "end"]),
    ("response completes, then body arrives", ["respond", "body", "end", "closed"]),
]


@pytest.mark.parametrize(
    "steps", [steps for _, steps in DISCONNECT_CASES], ids=[name for name, _ in DISCONNECT_CASES]
)
def test_disconnect_is_delivered_exactly_once(steps: list[str]) -> None:
    stream, _, _ = started(method="POST")
    for step in steps:
        if step == "closed":
            stream.handle(StreamClosed(stream_id=SID))
        elif step == "respond":
            stream.app_send(START)
            stream.app_send(BODY_END)
        elif step == "body":
            stream.handle(Body(stream_id=SID, data=b"late"))
        else:
            stream.handle(EndBody(stream_id=SID))
    messages = drain(stream)
    assert messages == [{"type": "http.disconnect"}]
    assert stream.app_receive() is None


def test_pending_body_is_received_before_disconnect() -> None:
    stream, _, _ = started(method="POST")
    stream.handle(Body(stream_id=SID, data=b"a"))
    stream.handle(StreamClosed(stream_id=SID))
    assert [message["type"] for message in drain(stream)] == ["http.request", "http.disconnect"]


def test_inbox_bound_sets_wants_data() -> None:
    config = Config()
    config.max_app_queue_size = 2
    stream, _, _ = started(config, method="POST")
    assert wants_data(stream)
    stream.handle(Body(stream_id=SID, data=b"1"))
    assert wants_data(stream)
    stream.handle(Body(stream_id=SID, data=b"2"))
    assert not wants_data(stream)
    stream.handle(Body(stream_id=SID, data=b"3"))  # advisory bound: nothing is dropped
    assert not wants_data(stream)
    assert stream.app_receive() is not None
    assert not wants_data(stream)
    assert stream.app_receive() is not None
    assert wants_data(stream)
    assert [m["body"] for m in drain(stream)] == [b"3"]


def test_wants_data_after_the_app_finished() -> None:
    config = Config()
    config.max_app_queue_size = 1
    stream, _, _ = started(config, method="POST")
    stream.handle(Body(stream_id=SID, data=b"1"))
    assert not wants_data(stream)
    stream.app_finished()
    # Nobody reads any more: the connection may read (and discard) the rest of the body.
    assert wants_data(stream)
    stream.handle(Body(stream_id=SID, data=b"2"))
    assert stream.app_receive() is None


# ---------------------------------------------------------------------------------------
# 100 Continue
# ---------------------------------------------------------------------------------------

CONTINUE = InformationalResponse(stream_id=SID, headers=[], status_code=100)
EXPECT = [(b"host", b"example.com"), (b"expect", b"100-continue")]


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_100_continue_once_on_first_receive(version: str) -> None:
    stream, owner, _ = started(method="POST", version=version, headers=EXPECT)
    assert owner.take_sent() == []  # not before the application asks for the body
    assert stream.app_receive() is None
    assert owner.take_sent() == [CONTINUE]
    assert stream.app_receive() is None
    stream.handle(Body(stream_id=SID, data=b"x"))
    assert stream.app_receive() is not None
    assert owner.take_sent() == []


@pytest.mark.parametrize(
    ("case", "version", "headers"),
    [
        ("no expectation", "1.1", [(b"host", b"h")]),
        ("HTTP/1.0 ignores the expectation", "1.0", EXPECT),
        ("body already complete", "1.1", EXPECT),
        ("response already started", "1.1", EXPECT),
        ("app sent its own 100", "1.1", EXPECT),
        ("peer gone", "1.1", EXPECT),
        ("other expectation", "1.1", [(b"host", b"h"), (b"expect", b"something")]),
    ],
)
def test_no_100_continue(case: str, version: str, headers: Headers) -> None:
    stream, owner, _ = started(method="POST", version=version, headers=headers)
    if case == "body already complete":
        stream.handle(EndBody(stream_id=SID))
    elif case == "response already started":
        stream.app_send(START)
    elif case == "app sent its own 100":
        stream.app_send({"type": "http.response.start", "status": 100, "headers": []})
        assert owner.take_sent() == [CONTINUE]
    elif case == "peer gone":
        stream.handle(StreamClosed(stream_id=SID))
    drain(stream)
    assert not [event for event in owner.take_sent() if isinstance(event, InformationalResponse)]


def test_expect_header_name_case_is_ignored() -> None:
    stream, owner, _ = started(
        method="POST", headers=[(b"Host", b"h"), (b"Expect", b"100-Continue")]
    )
    stream.app_receive()
    assert owner.take_sent() == [CONTINUE]


# ---------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------


def test_response_head_waits_for_the_first_body_message() -> None:
    stream, owner, _ = started()
    stream.app_send({"type": "http.response.start", "status": 201, "headers": [(b"X-Ab", b" 1 ")]})
    assert owner.take_sent() == []
    assert state_of(stream) is ASGIHTTPState.RESPONSE
    stream.app_send({"type": "http.response.body", "body": b"ab", "more_body": True})
    stream.app_send({"type": "http.response.body", "body": b"", "more_body": True})
    bytearray_body: Any = {"type": "http.response.body", "body": bytearray(b"cd")}
    stream.app_send(bytearray_body)
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=[(b"x-ab", b"1")], status_code=201),
        Data(stream_id=SID, data=b"ab"),
        Data(stream_id=SID, data=b"cd"),
        EndData(stream_id=SID),
    ]
    assert state_of(stream) is ASGIHTTPState.CLOSED
    assert ended(owner) == [
        StreamEnded(SID, stream.scope, {"status": 201, "headers": [(b"x-ab", b"1")]})  # type: ignore[arg-type]
    ]
    assert not is_closed(stream)  # the application is still running
    stream.app_finished()
    assert is_closed(stream)
    assert owner.take_sent() == []
    assert len(ended(owner)) == 1


def test_minimal_messages_use_defaults() -> None:
    stream, owner, _ = started()
    stream.app_send({"type": "http.response.start", "status": 204})
    stream.app_send({"type": "http.response.body"})
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=[], status_code=204),
        EndData(stream_id=SID),
    ]


@pytest.mark.parametrize(
    ("method", "status", "body_sent"),
    [
        ("GET", 200, True),
        ("POST", 500, True),
        ("HEAD", 200, False),
        ("HEAD", 404, False),
        ("GET", 204, False),
        ("GET", 304, False),
    ],
)
def test_body_suppression(method: str, status: int, body_sent: bool) -> None:
    stream, owner, _ = started(method=method)
    stream.app_send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"4")]}
    )
    stream.app_send({"type": "http.response.body", "body": b"ab", "more_body": True})
    stream.app_send({"type": "http.response.body", "body": b"cd"})
    sent = owner.take_sent()
    assert sent[0] == Response(
        stream_id=SID, headers=[(b"content-length", b"4")], status_code=status
    )
    assert sent[-1] == EndData(stream_id=SID)
    data = [event for event in sent if isinstance(event, Data)]
    assert data == (
        [Data(stream_id=SID, data=b"ab"), Data(stream_id=SID, data=b"cd")] if body_sent else []
    )


@pytest.mark.parametrize(
    ("version", "sent"),
    [("1.1", True), ("2", True), ("1.0", False)],  # RFC 9110 §15.2: no 1xx to HTTP/1.0
)
@pytest.mark.parametrize("status", [100, 102, 103, 199])
def test_informational_start_keeps_the_state(version: str, sent: bool, status: int) -> None:
    stream, owner, _ = started(version=version)
    stream.app_send(
        {"type": "http.response.start", "status": status, "headers": [(b"Link", b"</a>")]}
    )
    expected = InformationalResponse(
        stream_id=SID, headers=[(b"link", b"</a>")], status_code=status
    )
    assert owner.take_sent() == ([expected] if sent else [])
    assert state_of(stream) is ASGIHTTPState.REQUEST
    stream.app_send(START)
    stream.app_send(BODY_END)
    assert [type(event) for event in owner.take_sent()] == [Response, EndData]
    (end,) = ended(owner)
    assert end.response == {"status": 200, "headers": []}


# ---------------------------------------------------------------------------------------
# ASGI ordering errors and malformed messages
# ---------------------------------------------------------------------------------------

ORDER_ERRORS: list[tuple[str, list[ASGISendEvent], ASGISendEvent, ASGIHTTPState]] = [
    ("body before start", [], BODY_END, ASGIHTTPState.REQUEST),
    ("trailers before start", [], TRAILERS_END, ASGIHTTPState.REQUEST),
    ("start twice", [START], START, ASGIHTTPState.RESPONSE),
    ("start after body", [START, BODY_MORE], START, ASGIHTTPState.RESPONSE),
    ("early hint after start", [START], HINT, ASGIHTTPState.RESPONSE),
    ("trailers not promised", [START, BODY_MORE], TRAILERS_END, ASGIHTTPState.RESPONSE),
    ("trailers before body end", [START_TRAILERS], TRAILERS_END, ASGIHTTPState.RESPONSE),
    (
        "body after trailers promised",
        [START_TRAILERS, BODY_END],
        BODY_MORE,
        ASGIHTTPState.TRAILERS,
    ),
    ("start while trailers due", [START_TRAILERS, BODY_END], START, ASGIHTTPState.TRAILERS),
    ("push while trailers due", [START_TRAILERS, BODY_END], PUSH, ASGIHTTPState.TRAILERS),
    ("body after the end", [START, BODY_END], BODY_END, ASGIHTTPState.CLOSED),
    ("start after the end", [START, BODY_END], START, ASGIHTTPState.CLOSED),
    ("push after the end", [START, BODY_END], PUSH, ASGIHTTPState.CLOSED),
    ("hint after the end", [START, BODY_END], HINT, ASGIHTTPState.CLOSED),
    (
        "trailers after the trailers",
        [START_TRAILERS, BODY_END, TRAILERS_END],
        TRAILERS_END,
        ASGIHTTPState.CLOSED,
    ),
    ("a websocket message", [], {"type": "websocket.accept"}, ASGIHTTPState.REQUEST),
    ("a receive message", [START], {"type": "http.disconnect"}, ASGIHTTPState.RESPONSE),
]


@pytest.mark.parametrize("version", ["1.1", "2"])
@pytest.mark.parametrize(
    ("before", "message", "state"),
    [case[1:] for case in ORDER_ERRORS],
    ids=[case[0] for case in ORDER_ERRORS],
)
def test_messages_out_of_order(
    before: list[ASGISendEvent], message: ASGISendEvent, state: ASGIHTTPState, version: str
) -> None:
    stream, owner, _ = started(version=version, headers=[(b"host", b"h"), (b"te", b"trailers")])
    for earlier in before:
        stream.app_send(earlier)
    owner.take_sent()
    with pytest.raises(UnexpectedMessageError) as info:
        stream.app_send(message)
    assert info.value.state is state
    assert info.value.message_type == message["type"]
    assert message["type"] in str(info.value)
    assert state.name in str(info.value)
    assert state_of(stream) is state  # nothing changed
    assert owner.take_sent() == []


MALFORMED: list[tuple[str, list[ASGISendEvent], dict[str, Any], type[Exception], str]] = [
    ("no type", [], {"status": 200}, TypeError, "'type'"),
    ("status as str", [], {"type": "http.response.start", "status": "200"}, TypeError, "status"),
    ("status as bool", [], {"type": "http.response.start", "status": True}, TypeError, "status"),
    ("status too small", [], {"type": "http.response.start", "status": 99}, ValueError, "99"),
    ("status too big", [], {"type": "http.response.start", "status": 1000}, ValueError, "1000"),
    ("101 on http", [], {"type": "http.response.start", "status": 101}, ValueError, "101"),
    (
        "str header name",
        [],
        {"type": "http.response.start", "status": 200, "headers": [("a", b"b")]},
        TypeError,
        "bytes",
    ),
    (
        "pseudo header",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b":status", b"200")]},
        ValueError,
        "Pseudo",
    ),
    ("str body", [START], {"type": "http.response.body", "body": "text"}, TypeError, "bytes"),
    (
        "str trailer value",
        [START_TRAILERS, BODY_END],
        {"type": "http.response.trailers", "headers": [(b"a", "b")]},
        TypeError,
        "bytes",
    ),
    (
        "bytes push path",
        [],
        {"type": "http.response.push", "path": b"/", "headers": []},
        TypeError,
        "path",
    ),
    (
        "non-ASCII push path",
        [],
        {"type": "http.response.push", "path": "/caf\u00e9", "headers": []},
        ValueError,
        "ASCII",
    ),
    (
        "str early hint",
        [],
        {"type": "http.response.early_hint", "links": ["</a>; rel=preload"]},
        TypeError,
        "bytes",
    ),
]


@pytest.mark.parametrize("version", ["1.1", "2"])
@pytest.mark.parametrize(
    ("before", "message", "error", "fragment"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_messages(
    before: list[ASGISendEvent],
    message: dict[str, Any],
    error: type[Exception],
    fragment: str,
    version: str,
) -> None:
    stream, owner, _ = started(version=version)
    for earlier in before:
        stream.app_send(earlier)
    state = stream.state
    owner.take_sent()
    with pytest.raises(error, match=fragment):
        stream.app_send(message)  # type: ignore[arg-type]
    assert state_of(stream) is state  # a malformed message changes nothing
    assert owner.take_sent() == []


# ---------------------------------------------------------------------------------------
# Trailers, push and early hints
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "te", "honoured"),
    [
        ("2", b"trailers", True),
        ("3", b"trailers", True),
        ("2", b"gzip, Trailers", True),
        ("2", None, False),
        ("2", b"gzip", False),
        ("1.1", b"trailers", False),
    ],
)
def test_trailers_only_with_te_trailers_on_2_and_3(
    version: str, te: bytes | None, honoured: bool
) -> None:
    headers = [(b"host", b"h")] + ([] if te is None else [(b"te", te)])
    stream, owner, _ = started(version=version, headers=headers)
    stream.app_send(START_TRAILERS)
    stream.app_send({"type": "http.response.body", "body": b"x"})
    assert state_of(stream) is ASGIHTTPState.TRAILERS
    assert [type(event) for event in owner.take_sent()] == [Response, Data]  # no end yet
    stream.app_send(
        {"type": "http.response.trailers", "headers": [(b"A", b"1")], "more_trailers": True}
    )
    assert owner.take_sent() == []
    stream.app_send({"type": "http.response.trailers", "headers": [(b"b", b"2")]})
    trailers = Trailers(stream_id=SID, headers=[(b"a", b"1"), (b"b", b"2")])
    assert owner.take_sent() == ([trailers] if honoured else []) + [EndData(stream_id=SID)]
    assert state_of(stream) is ASGIHTTPState.CLOSED
    assert len(ended(owner)) == 1
    assert drain(stream) == [{"type": "http.disconnect"}]


def test_app_finishing_while_trailers_are_due_aborts() -> None:
    stream, owner, _ = started(version="2", headers=[(b"host", b"h"), (b"te", b"trailers")])
    stream.app_send(START_TRAILERS)
    stream.app_send(BODY_END)
    owner.take_sent()
    stream.app_finished()
    assert owner.take_sent() == [StreamClosed(stream_id=SID)]
    assert is_closed(stream)


@pytest.mark.parametrize("version", ["2", "3"])
@pytest.mark.parametrize(
    "before", [[], [START], [START, BODY_MORE]], ids=["first", "started", "body"]
)
def test_push_on_2_and_3(version: str, before: list[ASGISendEvent]) -> None:
    stream, owner, _ = started(
        ssl=True, version=version, headers=[(b"host", b"example.com:443"), (b"x", b"y")]
    )
    for message in before:
        stream.app_send(message)
    owner.take_sent()
    stream.app_send(
        {"type": "http.response.push", "path": "/s.css?v=1", "headers": [(b"Accept", b"text/css")]}
    )
    assert owner.take_sent() == [
        Request(
            stream_id=SID,
            headers=[(b"host", b"example.com:443"), (b"accept", b"text/css")],
            http_version=version,
            method="GET",
            raw_path=b"/s.css?v=1",
        )
    ]
    assert state_of(stream) is (ASGIHTTPState.REQUEST if not before else ASGIHTTPState.RESPONSE)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_push_and_early_hints_ignored_on_http1(version: str) -> None:
    stream, owner, _ = started(version=version)
    stream.app_send(HINT)
    stream.app_send(PUSH)
    stream.app_send(START)
    stream.app_send(PUSH)
    stream.app_send(BODY_END)
    assert [type(event) for event in owner.take_sent()] == [Response, EndData]


@pytest.mark.parametrize("version", ["2", "3"])
def test_early_hints_on_2_and_3(version: str) -> None:
    stream, owner, _ = started(version=version)
    stream.app_send(
        {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload", b"</b.js>"]}
    )
    stream.app_send({"type": "http.response.early_hint", "links": []})  # nothing to hint
    assert owner.take_sent() == [
        InformationalResponse(
            stream_id=SID,
            headers=[(b"link", b"</a.css>; rel=preload"), (b"link", b"</b.js>")],
            status_code=103,
        )
    ]
    assert state_of(stream) is ASGIHTTPState.REQUEST
    stream.app_send(START)
    stream.app_send(BODY_END)
    assert [type(event) for event in owner.take_sent()] == [Response, EndData]


# ---------------------------------------------------------------------------------------
# How a stream ends
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        ("1.1", [(b"content-length", b"0"), (b"connection", b"close")]),
        ("2", [(b"content-length", b"0")]),
    ],
)
@pytest.mark.parametrize(
    "before",
    [[], [{"type": "http.response.start", "status": 103}], [START], [HINT, START]],
    ids=["nothing", "only 1xx", "start without body", "hint and start"],
)
def test_500_when_the_app_finishes_without_a_response(
    version: str, headers: Headers, before: list[ASGISendEvent]
) -> None:
    stream, owner, _ = started(version=version)
    for message in before:
        stream.app_send(message)
    sent = owner.take_sent()
    assert not [event for event in sent if isinstance(event, Response)]
    assert not is_closed(stream)
    stream.app_finished()
    assert owner.take_sent() == [
        Response(stream_id=SID, headers=headers, status_code=500),
        EndData(stream_id=SID),
    ]
    assert [event.response for event in ended(owner)] == [{"status": 500, "headers": headers}]
    assert is_closed(stream)
    assert state_of(stream) is ASGIHTTPState.CLOSED
    stream.app_finished()  # a second report changes nothing
    assert owner.take_sent() == []
    assert len(ended(owner)) == 1


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_app_crashing_mid_body_aborts_the_stream(version: str) -> None:
    stream, owner, _ = started(version=version)
    stream.app_send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
    stream.app_send(BODY_MORE)
    owner.take_sent()
    stream.app_finished()
    assert owner.take_sent() == [StreamClosed(stream_id=SID)]
    assert [event.response for event in ended(owner)] == [
        {"status": 200, "headers": [(b"a", b"b")]}
    ]
    assert is_closed(stream)


def test_app_finishing_after_the_response_does_nothing() -> None:
    stream, owner, _ = started()
    stream.app_send(START)
    stream.app_send(BODY_END)
    owner.take_sent()
    owner.take_driver()
    stream.app_finished()
    assert owner.take_sent() == []
    assert owner.take_driver() == []
    assert is_closed(stream)


@pytest.mark.parametrize(
    ("before", "response"),
    [
        ([], None),
        ([START], None),  # the head was never sent
        ([START, BODY_MORE], {"status": 200, "headers": []}),
    ],
    ids=["nothing", "start", "body"],
)
def test_peer_gone_ignores_later_messages(
    before: list[ASGISendEvent], response: dict[str, Any] | None
) -> None:
    stream, owner, _ = started()
    for message in before:
        stream.app_send(message)
    owner.take_sent()
    owner.take_driver()
    stream.handle(StreamClosed(stream_id=SID))
    assert [event.response for event in ended(owner)] == [response]
    assert not is_closed(stream)  # the application still runs
    # Whatever the application still sends, in order or not, is dropped silently.
    for message in [START, BODY_MORE, BODY_END, TRAILERS_END, PUSH, HINT, START]:
        stream.app_send(message)
    stream.app_finished()
    assert owner.take_sent() == []
    assert len(ended(owner)) == 1
    assert is_closed(stream)
    assert drain(stream) == []  # the app finished: its inbox was released


def test_stream_ended_exactly_once_over_a_whole_exchange() -> None:
    stream, owner, scope = started(method="POST", version="2")
    stream.handle(Body(stream_id=SID, data=b"x"))
    stream.handle(EndBody(stream_id=SID))
    drain(stream)
    stream.app_send(START)
    stream.app_send(BODY_END)
    stream.handle(StreamClosed(stream_id=SID))
    stream.app_finished()
    stream.handle(StreamClosed(stream_id=SID))
    stream.app_finished()
    assert ended(owner) == [StreamEnded(SID, scope, {"status": 200, "headers": []})]
    assert is_closed(stream)


def test_closed_needs_both_sides() -> None:
    stream, _, _ = started()
    assert not is_closed(stream)
    stream.app_finished()  # 500: the response side is settled at the same time
    assert is_closed(stream)
    stream, _, _ = started()
    stream.handle(StreamClosed(stream_id=SID))
    assert not is_closed(stream)
    stream.app_finished()
    assert is_closed(stream)


def test_closed_before_the_request() -> None:
    stream, owner = make_stream()
    stream.handle(StreamClosed(stream_id=SID))
    assert is_closed(stream)
    assert owner.take_sent() == []
    assert owner.take_driver() == []
