"""AsyncioWSGIMiddleware and TrioWSGIMiddleware: a small WSGI app served on both loops."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from hypercorn.app_wrappers import WSGIWrapper
from hypercorn.middleware import (
    AsyncioDispatcherMiddleware,
    AsyncioWSGIMiddleware,
    TrioDispatcherMiddleware,
    TrioWSGIMiddleware,
)
from hypercorn.middleware.wsgi import MAX_BODY_SIZE, InvalidPathError, _WSGIMiddleware
from hypercorn.typing import ASGIFramework, ASGIReceiveEvent, ASGISendEvent, HTTPScope, Scope
from tests.workers.support import run_bounded as run

FLAVOURS: dict[str, type[_WSGIMiddleware]] = {
    "asyncio": AsyncioWSGIMiddleware,
    "trio": TrioWSGIMiddleware,
    "uvloop": AsyncioWSGIMiddleware,
}
BACKENDS = sorted(FLAVOURS)


def http_scope(
    path: str = "/echo", *, method: str = "POST", query: bytes = b"", root_path: str = ""
) -> HTTPScope:
    return {
        "type": "http",
        "asgi": {"spec_version": "2.1", "version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": root_path,
        "headers": [(b"host", b"example.com"), (b"content-type", b"text/plain")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},  # type: ignore[typeddict-item]
        "extensions": {},
    }


def serve(
    backend: str, app: ASGIFramework, scope: Scope, body: Iterable[bytes] = (b"",)
) -> list[ASGISendEvent]:
    """Play the server for one request whose body arrives in the chunks ``body``."""
    chunks = list(body)
    incoming: list[ASGIReceiveEvent] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[ASGISendEvent] = []

    async def receive() -> ASGIReceiveEvent:
        if incoming:
            return incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: ASGISendEvent) -> None:
        sent.append(message)

    async def main() -> None:
        await app(scope, receive, send)

    run(backend, main)
    return sent


def response_body(sent: list[ASGISendEvent]) -> bytes:
    """The whole response body; checks that the last message ends it."""
    last = sent[-1]
    assert last["type"] == "http.response.body"
    assert not last.get("more_body", False)
    return b"".join(
        message.get("body", b"") for message in sent if message["type"] == "http.response.body"
    )


class EchoApp:
    """A WSGI app that echoes the request line, path split and body; records its threads."""

    def __init__(self) -> None:
        self.calls = 0
        self.threads: list[int] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.calls += 1
        self.threads.append(threading.get_ident())
        body = environ["wsgi.input"].read()
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Echo", "yes")])
        line = " ".join(
            [
                environ["REQUEST_METHOD"],
                environ["SCRIPT_NAME"],
                environ["PATH_INFO"],
                environ["QUERY_STRING"],
                environ.get("CONTENT_TYPE", "-"),
            ]
        )
        return [line.encode() + b"|" + body]


@pytest.mark.parametrize("backend", BACKENDS)
def test_request_and_response(backend: str) -> None:
    app = EchoApp()
    scope = http_scope(query=b"a=1")
    sent = serve(backend, FLAVOURS[backend](app), scope, [b"hello ", b"world"])
    assert sent[0] == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"text/plain"), (b"x-echo", b"yes")],
    }
    assert response_body(sent) == b"POST  /echo a=1 text/plain|hello world"
    assert app.calls == 1
    assert app.threads[0] != threading.get_ident()  # the app ran in a worker thread


@pytest.mark.parametrize("backend", BACKENDS)
def test_streamed_response_is_sent_chunk_by_chunk_and_closed(backend: str) -> None:
    closed: list[bool] = []

    class Stream:
        def __iter__(self) -> Iterator[bytes]:
            yield b"one,"
            yield b""
            yield b"two,"
            yield b"three"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Stream()

    sent = serve(backend, FLAVOURS[backend](app), http_scope(method="GET"))
    bodies = [message for message in sent if message["type"] == "http.response.body"]
    assert [message.get("body") for message in bodies] == [b"one,", b"two,", b"three", b""]
    assert response_body(sent) == b"one,two,three"
    assert closed == [True]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("max_body_size", "chunks", "status"),
    [
        (None, [b"x" * MAX_BODY_SIZE], 201),
        (None, [b"x" * MAX_BODY_SIZE, b"y"], 413),
        (10, [b"0123456789"], 201),
        (10, [b"01234", b"56789", b"!"], 413),
    ],
)
def test_body_size_limit(
    backend: str, max_body_size: int | None, chunks: list[bytes], status: int
) -> None:
    app = EchoApp()
    middleware = (
        FLAVOURS[backend](app)
        if max_body_size is None
        else FLAVOURS[backend](app, max_body_size=max_body_size)
    )
    sent = serve(backend, middleware, http_scope(), chunks)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == status
    if status == 413:
        assert app.calls == 0
        assert response_body(sent) == b""


def test_defaults() -> None:
    assert MAX_BODY_SIZE == 2**16

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return []

    for flavour in (AsyncioWSGIMiddleware, TrioWSGIMiddleware):
        middleware = flavour(app)
        assert middleware.max_body_size == MAX_BODY_SIZE
        assert isinstance(middleware.wsgi_app, WSGIWrapper)
        assert middleware.wsgi_app.app is app
        assert middleware.wsgi_app.max_body_size == MAX_BODY_SIZE
        assert flavour(app, 5).wsgi_app.max_body_size == 5
    assert issubclass(InvalidPathError, Exception)


@pytest.mark.parametrize("backend", BACKENDS)
def test_websocket_is_closed_and_lifespan_returns(backend: str) -> None:
    app = EchoApp()
    websocket: Any = {**http_scope(), "type": "websocket", "scheme": "ws", "subprotocols": []}
    assert serve(backend, FLAVOURS[backend](app), websocket) == [{"type": "websocket.close"}]
    lifespan: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    assert serve(backend, FLAVOURS[backend](app), lifespan) == []
    assert app.calls == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_app_exception_reaches_the_server(backend: str) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise LookupError("broken app")

    with pytest.raises(LookupError, match="broken app"):
        serve(backend, FLAVOURS[backend](app), http_scope())


DISPATCHERS: dict[str, Callable[[dict[str, ASGIFramework]], ASGIFramework]] = {
    "asyncio": AsyncioDispatcherMiddleware,
    "trio": TrioDispatcherMiddleware,
    "uvloop": AsyncioDispatcherMiddleware,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/legacy/users", b"GET /legacy /users  text/plain|"),
        ("/legacy", b"GET /legacy /  text/plain|"),
    ],
)
def test_mounted_under_a_dispatcher(backend: str, path: str, expected: bytes) -> None:
    dispatcher = DISPATCHERS[backend]({"/legacy": FLAVOURS[backend](EchoApp())})
    sent = serve(backend, dispatcher, http_scope(path, method="GET"))
    assert response_body(sent) == expected


CHILD = textwrap.dedent(
    """
    import asyncio
    import sys

    sys.modules["trio"] = None  # any "import trio" now raises ImportError

    import hypercorn.middleware as middleware
    from hypercorn.middleware import dispatcher, http_to_https, proxy_fix, wsgi

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    trio_wsgi = middleware.TrioWSGIMiddleware(app)
    trio_dispatcher = middleware.TrioDispatcherMiddleware({"/": trio_wsgi})

    # The asyncio flavours work without trio.
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"",
        "root_path": "", "headers": [], "client": None, "server": None, "state": {},
        "extensions": {},
    }
    app_under_test = middleware.DispatcherMiddleware(
        {"/": middleware.AsyncioWSGIMiddleware(app)}
    )
    asyncio.run(app_under_test(scope, receive, send))
    assert sent[0]["status"] == 200, sent

    # Using a trio flavour is what needs trio.
    try:
        asyncio.run(trio_wsgi(scope, receive, send))
    except ImportError:
        print("trio needed only when used")
    """
)


def test_middleware_imports_without_trio() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "trio needed only when used"


def test_importing_middleware_does_not_import_trio() -> None:
    code = (
        "import sys, hypercorn.middleware\n"
        "print(sorted(m for m in sys.modules if m == 'trio' or m.startswith('trio.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
