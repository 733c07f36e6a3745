"""The ASGI and WSGI app wrappers, driven by real event loops and real worker threads.

Each WSGI test runs twice: under asyncio (``run_in_executor`` and
``run_coroutine_threadsafe``) and under trio (``trio.to_thread.run_sync`` and
``trio.from_thread.run``), the thread hooks the two drivers hand to the wrappers. The test
plays the server: ``receive`` pops request messages from a list and ``send`` records what
the application answered.
"""

from __future__ import annotations

import asyncio
import io
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import flask
import pytest
import trio

from hypercorn.app_wrappers import (
    ASGIWrapper,
    InvalidPathError,
    WSGIWrapper,
    load_application,
    wrap_app,
)
from hypercorn.typing import (
    AppWrapper,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    ConnectionState,
    HTTPRequestEvent,
    HTTPScope,
    LifespanScope,
    Scope,
    WebsocketScope,
)
from hypercorn.utils import NoAppError

T = TypeVar("T")
StartResponse = Callable[..., Any]
Environ = dict[str, Any]

# ---------------------------------------------------------------------------------------
# Harness: the two drivers' thread hooks, and a list-backed peer
# ---------------------------------------------------------------------------------------


class Hooks:
    """What a driver gives a wrapper (``sync_spawn``, ``call_soon``), plus test controls."""

    def __init__(self, sync_spawn: Callable[..., Any], call_soon: Callable[..., Any]) -> None:
        self.sync_spawn = sync_spawn
        self.call_soon = call_soon
        self.cancel: Callable[[], object] = lambda: None

    async def run_cancellable(self, func: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``func()``; :attr:`cancel` cancels it. True if it ended by cancellation."""
        raise NotImplementedError

    async def checkpoint(self) -> None:
        """Let the event loop deliver a pending cancellation."""
        raise NotImplementedError


class AsyncioHooks(Hooks):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        async def sync_spawn(func: Callable[..., T], *args: Any) -> T:
            return await loop.run_in_executor(None, func, *args)

        def call_soon(func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
            return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

        super().__init__(sync_spawn, call_soon)

    async def run_cancellable(self, func: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        task = asyncio.ensure_future(func())
        self.cancel = task.cancel
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)


class TrioHooks(Hooks):
    def __init__(self) -> None:
        async def sync_spawn(func: Callable[..., T], *args: Any) -> T:
            return await trio.to_thread.run_sync(func, *args)

        def call_soon(func: Callable[..., Awaitable[T]], *args: Any) -> T:
            return trio.from_thread.run(func, *args)

        super().__init__(sync_spawn, call_soon)

    async def run_cancellable(self, func: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        with trio.CancelScope() as scope:
            self.cancel = scope.cancel
            await func()
        return scope.cancelled_caught

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()


@dataclass(frozen=True)
class Backend:
    name: str

    def run(self, main: Callable[[Hooks], Coroutine[Any, Any, T]]) -> T:
        if self.name == "asyncio":

            async def asyncio_main() -> T:
                return await main(AsyncioHooks(asyncio.get_running_loop()))

            return asyncio.run(asyncio_main())

        async def trio_main() -> T:
            return await main(TrioHooks())

        return trio.run(trio_main)


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return Backend(request.param)


@dataclass
class Peer:
    """The server side of one request: request messages in, response messages recorded."""

    inbox: list[ASGIReceiveEvent] = field(default_factory=list)
    sent: list[ASGISendEvent] = field(default_factory=list)
    receives: int = 0
    fail_on_body: int | None = None  # raise from send() at this body message (0-based)

    async def receive(self) -> ASGIReceiveEvent:
        self.receives += 1
        if self.inbox:
            return self.inbox.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "http.response.body" and self.fail_on_body is not None:
            if self.fail_on_body == 0:
                raise ConnectionResetError("the client went away")
            self.fail_on_body -= 1
        self.sent.append(message)

    def response(self) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        """Status, headers and non-empty body chunks; checks the message sequence."""
        start, *bodies = self.sent
        assert start["type"] == "http.response.start"
        assert bodies, "no body message"
        chunks: list[bytes] = []
        for index, message in enumerate(bodies):
            assert message["type"] == "http.response.body"
            assert message.get("more_body", False) == (index < len(bodies) - 1)
            if message.get("body"):
                chunks.append(message["body"])
        return start["status"], list(start.get("headers", [])), chunks


def http_scope(
    *,
    path: str = "/",
    root_path: str = "",
    method: str = "GET",
    http_version: str = "1.1",
    scheme: str = "http",
    query_string: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = ((b"host", b"example.org"),),
    client: tuple[str, int] | None = ("127.0.0.1", 51000),
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
) -> HTTPScope:
    return {
        "type": "http",
        "asgi": {"spec_version": "2.1", "version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": quote(path).encode("ascii"),
        "query_string": query_string,
        "root_path": root_path,
        "headers": list(headers),
        "client": client,
        "server": server,
        "state": ConnectionState({}),
        "extensions": {},
    }


def request(*chunks: bytes) -> list[ASGIReceiveEvent]:
    """The ``http.request`` messages of a body sent in ``chunks`` (none: an empty body)."""
    parts = list(chunks) or [b""]
    messages: list[ASGIReceiveEvent] = []
    for index, chunk in enumerate(parts):
        message: HTTPRequestEvent = {
            "type": "http.request",
            "body": chunk,
            "more_body": index < len(parts) - 1,
        }
        messages.append(message)
    return messages


def serve(
    backend: Backend,
    wrapper: AppWrapper,
    scope: Scope,
    inbox: list[ASGIReceiveEvent] | None = None,
    peer: Peer | None = None,
) -> Peer:
    """Run one request through ``wrapper`` on ``backend``; the peer holds the answer."""
    if peer is None:
        peer = Peer(inbox=request() if inbox is None else inbox)

    async def main(hooks: Hooks) -> None:
        assert peer is not None
        await wrapper(scope, peer.receive, peer.send, hooks.sync_spawn, hooks.call_soon)

    backend.run(main)
    return peer


def wsgi(
    app: Callable[[Environ, StartResponse], Iterable[bytes]], limit: int = 1024
) -> WSGIWrapper:
    return WSGIWrapper(app, limit)


class Closing:
    """An iterable over ``chunks`` that records whether ``close()`` was called."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self.closed.set()


def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


# ---------------------------------------------------------------------------------------
# The environ
# ---------------------------------------------------------------------------------------


def capture_environ(backend: Backend, scope: HTTPScope, inbox: list[ASGIReceiveEvent]) -> Environ:
    captured: list[tuple[Environ, bytes]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        captured.append((environ, environ["wsgi.input"].read()))
        start_response("204 No Content", [])
        return []

    peer = serve(backend, wsgi(app), scope, inbox)
    assert peer.response()[0] == 204
    (environ, body), *_ = captured
    environ["body"] = body
    return environ


def test_environ_of_a_plain_request(backend: Backend) -> None:
    scope = http_scope(
        path="/items/7",
        query_string=b"a=1&b=%20",
        headers=[(b"host", b"example.org:8000"), (b"accept", b"*/*")],
    )
    environ = capture_environ(backend, scope, request())
    assert isinstance(environ.pop("wsgi.input"), io.BytesIO)
    assert environ.pop("wsgi.errors") is sys.stderr
    assert environ == {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/items/7",
        "QUERY_STRING": "a=1&b=%20",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "51000",
        "HTTP_HOST": "example.org:8000",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input_terminated": True,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "body": b"",
    }


@pytest.mark.parametrize(
    ("scope", "expected", "absent"),
    [
        pytest.param(
            http_scope(method="POST", http_version="2", scheme="https", server=None),
            {
                "REQUEST_METHOD": "POST",
                "SERVER_PROTOCOL": "HTTP/2",
                "SERVER_NAME": "localhost",
                "SERVER_PORT": "443",
                "wsgi.url_scheme": "https",
            },
            [],
            id="no-server-https",
        ),
        pytest.param(
            http_scope(server=None, client=None),
            {"SERVER_NAME": "localhost", "SERVER_PORT": "80"},
            ["REMOTE_ADDR", "REMOTE_PORT"],
            id="no-server-no-client",
        ),
        pytest.param(
            http_scope(server=("/run/app.sock", None)),
            {"SERVER_NAME": "/run/app.sock", "SERVER_PORT": "80"},
            [],
            id="server-without-port",
        ),
        pytest.param(
            http_scope(client=("::1", 40000), server=("::1", 443)),
            {"REMOTE_ADDR": "::1", "REMOTE_PORT": "40000", "SERVER_PORT": "443"},
            [],
            id="ipv6",
        ),
        pytest.param(
            http_scope(query_string=b"q=caf\xc3\xa9&x=\xff"),
            {"QUERY_STRING": "q=caf\xc3\xa9&x=\xff"},
            [],
            id="query-string-latin-1",
        ),
        pytest.param(
            http_scope(
                headers=[
                    (b"host", b"example.org"),
                    (b"content-type", b"application/json"),
                    (b"x-multi", b"a"),
                    (b"accept-language", b"en"),
                    (b"x-multi", b"b"),
                    (b"cookie", b"a=1"),
                    (b"cookie", b"b=2"),
                    (b"x_forwarded_for", b"6.6.6.6"),
                    (b"x-forwarded-for", b"10.0.0.1"),
                    (b"user-agent", b"caf\xe9"),
                ]
            ),
            {
                "CONTENT_TYPE": "application/json",
                "HTTP_X_MULTI": "a,b",
                "HTTP_ACCEPT_LANGUAGE": "en",
                "HTTP_COOKIE": "a=1; b=2",
                "HTTP_X_FORWARDED_FOR": "10.0.0.1",
                "HTTP_USER_AGENT": "caf\xe9",
            },
            ["HTTP_CONTENT_TYPE", "CONTENT_LENGTH"],
            id="headers",
        ),
    ],
)
def test_environ_keys(
    backend: Backend, scope: HTTPScope, expected: dict[str, object], absent: list[str]
) -> None:
    environ = capture_environ(backend, scope, request())
    assert {key: environ.get(key) for key in expected} == expected
    assert not [key for key in absent if key in environ]


@pytest.mark.parametrize(
    ("headers", "chunks", "content_length"),
    [
        pytest.param([(b"content-length", b"11")], [b"hello", b" world"], "11", id="declared"),
        pytest.param([], [b"hello", b" ", b"world"], "11", id="chunked-no-length"),
        pytest.param([(b"content-length", b"0")], [], "0", id="declared-empty"),
        pytest.param([], [], None, id="no-body"),
    ],
)
def test_body_and_content_length(
    backend: Backend,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    content_length: str | None,
) -> None:
    scope = http_scope(method="POST", headers=[(b"host", b"h"), *headers])
    environ = capture_environ(backend, scope, request(*chunks))
    assert environ["body"] == b"".join(chunks)
    assert environ.get("CONTENT_LENGTH") == content_length
    assert "HTTP_CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    ("root_path", "path", "script_name", "path_info"),
    [
        ("", "/", "", "/"),
        ("", "/a/b/", "", "/a/b/"),
        ("/app", "/app/x/y", "/app", "/x/y"),
        ("/app", "/app", "/app", "/"),
        ("/app", "/app/", "/app", "/"),
        ("/app/", "/app/x", "/app", "/x"),
        ("/a/b", "/a/b/c", "/a/b", "/c"),
        ("", "/caf\xe9/\u00fc", "", "/caf\xc3\xa9/\xc3\xbc"),
        ("/\u00fc", "/\u00fc/\u20ac", "/\xc3\xbc", "/\xe2\x82\xac"),
        ("", "/a%2Fb", "", "/a%2Fb"),
    ],
)
def test_script_name_and_path_info(
    backend: Backend, root_path: str, path: str, script_name: str, path_info: str
) -> None:
    environ = capture_environ(backend, http_scope(root_path=root_path, path=path), request())
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)
    # PEP 3333: the bytes of the decoded path, carried in latin-1 native strings.
    rebuilt = (script_name + path_info).encode("latin-1").decode("utf-8")
    assert rebuilt.rstrip("/") == path.rstrip("/") or path_info == "/"


@pytest.mark.parametrize(
    ("root_path", "path"),
    [("/app", "/"), ("/app", "/other"), ("/app", "/application"), ("/app/v1", "/app/v2/x")],
)
def test_path_outside_root_path_is_404(backend: Backend, root_path: str, path: str) -> None:
    ran: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ran.append(True)
        return hello(environ, start_response)

    peer = serve(backend, wsgi(app), http_scope(root_path=root_path, path=path))
    assert peer.response() == (404, [(b"content-length", b"0")], [])
    assert ran == []


# ---------------------------------------------------------------------------------------
# The body limit
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_version", "headers", "chunks", "receives", "left_unread"),
    [
        pytest.param("1.1", [(b"content-length", b"11")], [b"x" * 11], 0, 1, id="declared"),
        pytest.param("1.1", [], [b"x" * 6, b"x" * 6, b"x" * 6], 2, 1, id="streamed"),
        pytest.param("1.1", [], [b"x" * 11], 1, 0, id="one-chunk"),
        pytest.param("2", [], [b"x" * 4, b"x" * 7], 2, 0, id="http2"),
    ],
)
def test_body_over_limit_is_413_and_the_app_never_runs(
    backend: Backend,
    http_version: str,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    receives: int,
    left_unread: int,
) -> None:
    ran: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ran.append(True)
        return hello(environ, start_response)

    scope = http_scope(method="POST", http_version=http_version, headers=headers)
    peer = serve(backend, wsgi(app, limit=10), scope, request(*chunks))
    expected_headers = [(b"content-length", b"0")]
    if http_version == "1.1":
        expected_headers.append((b"connection", b"close"))
    assert peer.response() == (413, expected_headers, [])
    assert ran == []
    assert (peer.receives, len(peer.inbox)) == (receives, left_unread)


def test_body_at_the_limit_is_passed(backend: Backend) -> None:
    scope = http_scope(method="POST", headers=[(b"content-length", b"10")])
    environ = capture_environ_with_limit(backend, scope, request(b"x" * 4, b"x" * 6), 10)
    assert environ["body"] == b"x" * 10


def capture_environ_with_limit(
    backend: Backend, scope: HTTPScope, inbox: list[ASGIReceiveEvent], limit: int
) -> Environ:
    captured: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        captured.append({**environ, "body": environ["wsgi.input"].read()})
        start_response("200 OK", [])
        return [b"ok"]

    assert serve(backend, wsgi(app, limit), scope, inbox).response()[0] == 200
    return captured[0]


def test_client_gone_before_the_body_ends_runs_nothing(backend: Backend) -> None:
    ran: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ran.append(True)
        return hello(environ, start_response)

    inbox: list[ASGIReceiveEvent] = [request(b"part", b"")[0], {"type": "http.disconnect"}]
    peer = serve(backend, wsgi(app), http_scope(method="POST"), inbox)
    assert (peer.sent, ran) == ([], [])


# ---------------------------------------------------------------------------------------
# The response
# ---------------------------------------------------------------------------------------


def test_list_response(backend: Backend) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Two", "caf\xe9")])
        return [b"a", b"", b"bc"]

    peer = serve(backend, wsgi(app), http_scope())
    assert peer.sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"x-two", b"caf\xe9")],
        },
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"bc", "more_body": False},
    ]


def test_streaming_chunks_are_sent_one_by_one(backend: Backend) -> None:
    peer = Peer(inbox=request())
    seen: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        for index in range(3):
            seen.append(len(peer.sent))  # what the client had before this chunk was made
            yield f"chunk{index}".encode()

    serve(backend, wsgi(app), http_scope(), peer=peer)
    assert seen == [0, 2, 3]
    assert peer.sent[1:] == [
        {"type": "http.response.body", "body": b"chunk0", "more_body": True},
        {"type": "http.response.body", "body": b"chunk1", "more_body": True},
        {"type": "http.response.body", "body": b"chunk2", "more_body": True},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


def test_head_waits_for_the_first_non_empty_chunk(backend: Backend) -> None:
    peer = Peer(inbox=request())
    seen: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b""
        seen.append(len(peer.sent))
        yield b"x"

    serve(backend, wsgi(app), http_scope(), peer=peer)
    assert seen == [0]
    assert peer.response() == (200, [], [b"x"])


def test_write_callable(backend: Backend) -> None:
    peer = Peer(inbox=request())
    seen: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("X-A", "1")])
        write(b"one")
        seen.append(len(peer.sent))
        write(b"")
        write(bytearray(b"two"))
        seen.append(len(peer.sent))
        return [b"three"]

    serve(backend, wsgi(app), http_scope(), peer=peer)
    assert seen == [2, 3]
    assert peer.response() == (200, [(b"x-a", b"1")], [b"one", b"two", b"three"])


@pytest.mark.parametrize(
    "body",
    [[], (), iter([]), iter([b"", b""]), Closing([])],
    ids=["list", "tuple", "iterator", "empty-chunks", "closing"],
)
def test_empty_body_still_sends_the_response(backend: Backend, body: Iterable[bytes]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("204 No Content", [("X-Empty", "yes")])
        return body

    peer = serve(backend, wsgi(app), http_scope())
    assert peer.sent == [
        {"type": "http.response.start", "status": 204, "headers": [(b"x-empty", b"yes")]},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [("200", None), ("404 Not Found", None), ("20 OK", ValueError), ("OK", ValueError)],
)
def test_status_line(backend: Backend, status: str, error: type[Exception] | None) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, [])
        return [b"x"]

    if error is None:
        assert serve(backend, wsgi(app), http_scope()).response()[0] == int(status[:3])
    else:
        with pytest.raises(error, match="200 OK"):
            serve(backend, wsgi(app), http_scope())


def test_close_is_called_after_success(backend: Backend) -> None:
    body = Closing([b"a", b"b"])

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return body

    peer = serve(backend, wsgi(app), http_scope())
    assert peer.response() == (200, [], [b"a", b"b"])
    assert body.closed.is_set()


def test_close_is_called_when_iteration_fails(backend: Backend) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise LookupError("broken generator")

    body = Closing(chunks())

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return body

    peer = Peer(inbox=request())
    with pytest.raises(LookupError, match="broken generator"):
        serve(backend, wsgi(app), http_scope(), peer=peer)
    assert body.closed.is_set()
    assert [message["type"] for message in peer.sent] == [
        "http.response.start",
        "http.response.body",
    ]


def test_close_is_called_when_send_fails(backend: Backend) -> None:
    body = Closing(iter([b"a", b"b", b"c"]))

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return body

    peer = Peer(inbox=request(), fail_on_body=1)
    with pytest.raises(ConnectionResetError):
        serve(backend, wsgi(app), http_scope(), peer=peer)
    assert body.closed.is_set()
    assert len(peer.sent) == 2


def test_close_is_called_when_the_request_is_cancelled(backend: Backend) -> None:
    proceed = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"first"
        proceed.wait(10)
        yield b"second"
        yield b"never"

    body = Closing(chunks())

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [])
        return body

    async def main(hooks: Hooks) -> tuple[bool, bool]:
        peer = Peer(inbox=request())

        async def send(message: ASGISendEvent) -> None:
            await peer.send(message)
            if message["type"] == "http.response.body":
                hooks.cancel()  # the driver cancels the request: the client went away
                await hooks.checkpoint()

        async def call() -> None:
            await wsgi(app)(http_scope(), peer.receive, send, hooks.sync_spawn, hooks.call_soon)

        cancelled = await hooks.run_cancellable(call)
        proceed.set()
        closed = await hooks.sync_spawn(body.closed.wait, 10)
        assert len(peer.sent) == 2
        return cancelled, closed

    assert backend.run(main) == (True, True)


# ---------------------------------------------------------------------------------------
# Errors and exc_info (PEP 3333)
# ---------------------------------------------------------------------------------------


def test_exception_before_the_response_is_raised(backend: Backend) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise KeyError("boom")

    peer = Peer(inbox=request())
    with pytest.raises(KeyError, match="boom"):
        serve(backend, wsgi(app), http_scope(), peer=peer)
    assert peer.sent == []


def test_exc_info_replaces_a_head_not_yet_sent(backend: Backend) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("X-Ok", "1")])
        try:
            raise ValueError("failed after start_response")
        except ValueError:
            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        return [b"error page"]

    peer = serve(backend, wsgi(app), http_scope())
    assert peer.response() == (500, [(b"x-error", b"1")], [b"error page"])


def test_exc_info_after_the_head_was_sent_is_reraised(backend: Backend) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        try:
            raise ValueError("failed mid-stream")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"

    peer = Peer(inbox=request())
    with pytest.raises(ValueError, match="failed mid-stream"):
        serve(backend, wsgi(app), http_scope(), peer=peer)
    assert [message["type"] for message in peer.sent] == [
        "http.response.start",
        "http.response.body",
    ]


def test_second_start_response_without_exc_info_is_an_error(backend: Backend) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return []

    with pytest.raises(RuntimeError, match="exc_info"):
        serve(backend, wsgi(app), http_scope())


@pytest.mark.parametrize(
    ("app_result", "error", "match"),
    [
        ([b"x"], RuntimeError, "start_response"),
        ([], RuntimeError, "start_response"),
        (iter([b"x"]), RuntimeError, "start_response"),
    ],
)
def test_body_without_start_response_is_an_error(
    backend: Backend, app_result: Iterable[bytes], error: type[Exception], match: str
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return app_result

    peer = Peer(inbox=request())
    with pytest.raises(error, match=match):
        serve(backend, wsgi(app), http_scope(), peer=peer)
    assert peer.sent == []


@pytest.mark.parametrize(
    ("chunk", "headers", "match"),
    [
        ("text", [], "not str"),
        (b"x", [(b"name", "value")], r"\(str, str\)"),
        (b"x", [("name", "\u20ac")], "latin-1"),
    ],
)
def test_bad_body_or_headers(
    backend: Backend, chunk: object, headers: list[tuple[Any, Any]], match: str
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[Any]:
        start_response("200 OK", headers)
        yield chunk

    with pytest.raises((TypeError, ValueError), match=match):
        serve(backend, wsgi(app), http_scope())


# ---------------------------------------------------------------------------------------
# Other scope types
# ---------------------------------------------------------------------------------------


def test_websocket_is_closed(backend: Backend) -> None:
    scope: WebsocketScope = {
        "type": "websocket",
        "asgi": {"spec_version": "2.3", "version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": None,
        "server": None,
        "subprotocols": [],
        "state": ConnectionState({}),
        "extensions": {},
    }
    peer = serve(backend, wsgi(hello), scope, [{"type": "websocket.connect"}])
    assert peer.sent == [{"type": "websocket.close"}]


def test_lifespan_returns_at_once(backend: Backend) -> None:
    scope: LifespanScope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    peer = serve(backend, wsgi(hello), scope, [{"type": "lifespan.startup"}])
    assert (peer.sent, peer.receives) == ([], 0)


def test_unknown_scope_type_is_an_error(backend: Backend) -> None:
    scope: Any = {"type": "telepathy"}
    with pytest.raises(ValueError, match="telepathy"):
        serve(backend, wsgi(hello), scope)


# ---------------------------------------------------------------------------------------
# A real framework
# ---------------------------------------------------------------------------------------


def test_flask_app(backend: Backend) -> None:
    app = flask.Flask("wrapped")

    @app.post("/echo/<name>")
    def echo(name: str) -> dict[str, object]:
        payload = flask.request.get_json()
        return {
            "name": name,
            "payload": payload,
            "url": flask.url_for("echo", name=name),
            "cookie": flask.request.cookies.get("b"),
        }

    @app.get("/stream")
    def stream() -> flask.Response:
        return flask.Response(iter([b"a", b"b"]), mimetype="text/plain")

    body = b'{"k": [1, 2]}'
    scope = http_scope(
        method="POST",
        root_path="/api",
        path="/api/echo/caf\xe9",
        headers=[
            (b"host", b"example.org"),
            (b"content-type", b"application/json"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ],
    )
    status, headers, chunks = serve(
        backend, wsgi(app), scope, request(body[:5], body[5:])
    ).response()
    assert status == 200
    assert (b"content-type", b"application/json") in headers
    assert flask.json.loads(b"".join(chunks)) == {
        "name": "caf\xe9",
        "payload": {"k": [1, 2]},
        "url": "/api/echo/caf%C3%A9",
        "cookie": "2",
    }

    peer = serve(backend, wsgi(app), http_scope(path="/stream"))
    assert peer.response()[2] == [b"a", b"b"]


# ---------------------------------------------------------------------------------------
# ASGIWrapper, wrap_app and load_application
# ---------------------------------------------------------------------------------------


def test_asgi_wrapper_passes_through(backend: Backend) -> None:
    calls: list[tuple[Scope, ASGIReceiveCallable, ASGISendCallable]] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        calls.append((scope, receive, send))
        assert await receive() == {"type": "http.request", "body": b"", "more_body": False}
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi"})

    scope = http_scope()
    peer = Peer(inbox=request())
    wrapper = ASGIWrapper(app)
    assert wrapper.app is app
    serve(backend, wrapper, scope, peer=peer)
    assert calls == [(scope, peer.receive, peer.send)]
    assert peer.sent[1] == {"type": "http.response.body", "body": b"asgi"}


async def asgi_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    pass


class ASGIObject:
    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        pass


@pytest.mark.parametrize(
    ("app", "mode", "expected"),
    [
        (asgi_app, None, ASGIWrapper),
        (ASGIObject(), None, ASGIWrapper),
        (hello, None, WSGIWrapper),
        (hello, "wsgi", WSGIWrapper),
        (asgi_app, "asgi", ASGIWrapper),
        (asgi_app, "wsgi", WSGIWrapper),  # an explicit mode wins over the guess
    ],
)
def test_wrap_app(app: Any, mode: Any, expected: type[object]) -> None:
    wrapper = wrap_app(app, 123, mode)
    assert type(wrapper) is expected
    assert isinstance(wrapper, ASGIWrapper | WSGIWrapper)
    assert wrapper.app is app
    if isinstance(wrapper, WSGIWrapper):
        assert wrapper.max_body_size == 123


def test_wrap_app_mode_defaults_to_none_and_rejects_others() -> None:
    assert isinstance(wrap_app(hello, 1), WSGIWrapper)
    bad: Any = "rsgi"
    with pytest.raises(ValueError, match="rsgi"):
        wrap_app(hello, 1, bad)


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp_path as the current directory; sys.path and modules imported from it restored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(tmp_path)):
            del sys.modules[name]


APP_MODULE = """
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"from a file"]

    async def asgi(scope, receive, send):
        pass
"""


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("wrapped_site", WSGIWrapper),
        ("wrapped_site:asgi", ASGIWrapper),
        ("wrapped_site.py:app", WSGIWrapper),
        ("asgi:wrapped_site:app", ASGIWrapper),
        ("wsgi:wrapped_site:asgi", WSGIWrapper),
    ],
)
def test_load_application(app_dir: Path, target: str, expected: type[object]) -> None:
    (app_dir / "wrapped_site.py").write_text(textwrap.dedent(APP_MODULE))
    wrapper = load_application(target, 99)
    assert type(wrapper) is expected
    if isinstance(wrapper, WSGIWrapper):
        assert wrapper.max_body_size == 99


def test_loaded_wsgi_app_serves(app_dir: Path, backend: Backend) -> None:
    (app_dir / "served_site.py").write_text(textwrap.dedent(APP_MODULE))
    peer = serve(backend, load_application("served_site:app", 10), http_scope())
    assert peer.response() == (200, [(b"content-type", b"text/plain")], [b"from a file"])


def test_load_application_reports_a_missing_app(app_dir: Path) -> None:
    with pytest.raises(NoAppError, match="no_such_module"):
        load_application("no_such_module:app", 10)


def test_invalid_path_error_is_an_exception() -> None:
    assert issubclass(InvalidPathError, Exception)
