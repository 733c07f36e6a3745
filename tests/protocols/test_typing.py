"""hypercorn.typing: the names import, and realistic values satisfy them.

Most checks here are static: mypy --strict runs over this file, so each annotated assignment
below is a type test. A few runtime checks cover what mypy cannot see (required keys of the
TypedDicts, the module's import footprint), and one test runs mypy on snippets that must be
rejected, so the types are not vacuously permissive.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import h11
import pytest

import hypercorn.typing as hypercorn_typing
from hypercorn.config import Config, Sockets
from hypercorn.typing import (
    AppWrapper,
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    ConnectionState,
    Event,
    EventType,
    Framework,
    H11SendableEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPResponseTrailersEvent,
    HTTPScope,
    LifespanScope,
    ResponseSummary,
    Scope,
    WebsocketCloseEvent,
    WebsocketScope,
    WorkerFunc,
    WSGIFramework,
    WWWScope,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_exported_name_exists() -> None:
    missing = [name for name in hypercorn_typing.__all__ if not hasattr(hypercorn_typing, name)]
    assert missing == []
    assert len(set(hypercorn_typing.__all__)) == len(hypercorn_typing.__all__)


def test_import_is_light() -> None:
    """Importing the module loads neither the config module nor any event loop."""
    code = (
        "import sys, hypercorn.typing; "
        "print(sorted(m for m in ('hypercorn.config', 'asyncio', 'trio', 'uvloop', 'anyio') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"


def _http_scope() -> HTTPScope:
    return {
        "type": "http",
        "asgi": {"spec_version": "2.4", "version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/search",
        "raw_path": b"/search",
        "query_string": b"q=hypercorn",
        "root_path": "",
        "headers": [(b"host", b"example.com"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": ConnectionState({}),
        "extensions": {"http.response.trailers": {}},
    }


def test_realistic_scopes() -> None:
    http = _http_scope()
    websocket: WebsocketScope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "scheme": "wss",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "/api",
        "headers": [(b"host", b"example.com")],
        "client": None,
        "server": ("/tmp/hypercorn.sock", None),
        "subprotocols": ["chat"],
        "state": ConnectionState({"pool": object()}),
        "extensions": {"websocket.http.response": {}},
    }
    lifespan: LifespanScope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    scopes: list[Scope] = [http, websocket, lifespan]
    www: list[WWWScope] = [http, websocket]
    assert [scope["type"] for scope in scopes] == ["http", "websocket", "lifespan"]
    assert len(www) == 2
    assert set(http) == HTTPScope.__required_keys__
    assert set(websocket) == WebsocketScope.__required_keys__


def test_not_required_keys() -> None:
    # Keys the ASGI spec lets an app leave out are NotRequired.
    assert HTTPResponseStartEvent.__optional_keys__ == frozenset({"headers", "trailers"})
    assert HTTPResponseBodyEvent.__optional_keys__ == frozenset({"body", "more_body"})
    assert WebsocketCloseEvent.__optional_keys__ == frozenset({"code", "reason"})
    assert HTTPResponseTrailersEvent.__optional_keys__ == frozenset({"more_trailers"})
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 200, "headers": []}
    with_trailers: HTTPResponseStartEvent = {**start, "trailers": True}
    assert "trailers" not in start
    assert with_trailers["trailers"] is True


async def _echo_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body += message["body"]
            if not message["more_body"]:
                break
        elif message["type"] == "http.disconnect":
            return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"hello"]


def test_frameworks_accept_asgi_and_wsgi_callables() -> None:
    asgi: ASGIFramework = _echo_app
    wsgi: WSGIFramework = _wsgi_app
    apps: list[Framework] = [asgi, wsgi]
    assert len(apps) == 2

    received: list[ASGIReceiveEvent] = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"c", "more_body": False},
    ]
    sent: list[ASGISendEvent] = []

    async def receive() -> ASGIReceiveEvent:
        return received.pop(0)

    async def send(message: ASGISendEvent) -> None:
        sent.append(message)

    async def call() -> None:
        await asgi(_http_scope(), receive, send)

    asyncio.run(call())
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"abc", "more_body": False},
    ]


class _ASGIWrapper:
    """A minimal AppWrapper, as the workers distribution provides."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None:
        await self.app(scope, receive, send)


class _AsyncioEvent:
    """The Event protocol over asyncio.Event."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def clear(self) -> None:
        self._event.clear()

    async def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def is_set(self) -> bool:
        return self._event.is_set()


def _worker(config: Config, sockets: Sockets | None, shutdown_event: EventType | None) -> None:
    pass


def test_runtime_protocols_are_structural() -> None:
    wrapper: AppWrapper = _ASGIWrapper(_echo_app)
    event_class: type[Event] = _AsyncioEvent
    worker: WorkerFunc = _worker
    h11_event: H11SendableEvent = h11.Response(status_code=204, headers=[])
    summary: ResponseSummary = {"status": 204, "headers": []}
    assert callable(wrapper)
    assert callable(worker)
    assert isinstance(h11_event, h11.Response)
    assert summary["status"] == 204

    async def flip() -> bool:
        event = event_class()
        await event.set()
        await event.wait()
        return event.is_set()

    assert asyncio.run(flip()) is True


BAD_SNIPPETS = {
    "unknown message type": """
        from hypercorn.typing import ASGISendEvent
        message: ASGISendEvent = {"type": "http.response.begin", "status": 200}
    """,
    "missing required key": """
        from hypercorn.typing import HTTPResponseStartEvent
        message: HTTPResponseStartEvent = {"type": "http.response.start", "headers": []}
    """,
    "str body": """
        from hypercorn.typing import HTTPRequestEvent
        message: HTTPRequestEvent = {"type": "http.request", "body": "x", "more_body": False}
    """,
    "sync function as an ASGI app": """
        from hypercorn.typing import ASGIFramework
        def app(scope: object, receive: object, send: object) -> None: ...
        framework: ASGIFramework = app
    """,
}


def test_mypy_rejects_misuse(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    paths = []
    for index, snippet in enumerate(BAD_SNIPPETS.values()):
        path = tmp_path / f"snippet_{index}.py"
        path.write_text(textwrap.dedent(snippet))
        paths.append(str(path))
    stdout, _, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path), *paths]
    )
    assert status == 1, stdout
    for index, name in enumerate(BAD_SNIPPETS):
        assert f"snippet_{index}.py:" in stdout, name
