"""HTTPToHTTPSRedirectMiddleware: 307 for http and ws, denial response or close, host choice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hypercorn.middleware import HTTPToHTTPSRedirectMiddleware
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

PASSED: list[ASGISendEvent] = [{"type": "lifespan.startup.complete"}]


async def downstream(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The wrapped app: says it was reached (with a message type no redirect uses)."""
    await send({"type": "lifespan.startup.complete"})


def call(host: str | None, scope: dict[str, Any]) -> list[ASGISendEvent]:
    sent: list[ASGISendEvent] = []

    async def receive() -> ASGIReceiveEvent:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: ASGISendEvent) -> None:
        sent.append(message)

    middleware = HTTPToHTTPSRedirectMiddleware(downstream, host)
    asyncio.run(asyncio.wait_for(middleware(scope, receive, send), 5))  # type: ignore[arg-type]
    return sent


def make_scope(
    kind: str = "http",
    scheme: str = "http",
    *,
    raw_path: bytes | None = b"/path",
    path: str = "/path",
    query: bytes = b"",
    root_path: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    http_version: str = "1.1",
    extensions: dict[str, dict[Any, Any]] | None = None,
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "scheme": scheme,
        "path": path,
        "query_string": query,
        "root_path": root_path,
        "headers": [(b"host", b"from-header.test:8080")] if headers is None else headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {} if extensions is None else extensions,
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    if kind == "http":
        scope["method"] = "GET"
    else:
        scope["subprotocols"] = []
    return scope


def redirect(location: bytes) -> list[ASGISendEvent]:
    return [
        {
            "type": "http.response.start",
            "status": 307,
            "headers": [(b"location", location), (b"content-length", b"0")],
        },
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


BAD_REQUEST: list[ASGISendEvent] = [
    {"type": "http.response.start", "status": 400, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b"", "more_body": False},
]

HTTP_CASES = [
    # (host, scope keyword arguments, expected location or None for 400)
    ("example.com", {}, b"https://example.com/path"),
    ("example.com:8443", {"query": b"a=1&b=%20"}, b"https://example.com:8443/path?a=1&b=%20"),
    (
        "example.com",
        {"raw_path": b"/caf%C3%A9", "path": "/caf\u00e9"},
        b"https://example.com/caf%C3%A9",
    ),
    # Without raw_path the decoded path is encoded again.
    (
        "example.com",
        {"raw_path": None, "path": "/caf\u00e9 x"},
        b"https://example.com/caf%C3%A9%20x",
    ),
    # root_path is added when the path does not carry it, never doubled.
    ("example.com", {"root_path": "/app"}, b"https://example.com/app/path"),
    (
        "example.com",
        {"root_path": "/app", "raw_path": b"/app/path", "path": "/app/path"},
        b"https://example.com/app/path",
    ),
    (
        "example.com",
        {"root_path": "/app", "raw_path": b"/application", "path": "/application"},
        b"https://example.com/app/application",
    ),
    # host None: the request's Host header, or a 400 without a usable one.
    (None, {}, b"https://from-header.test:8080/path"),
    (None, {"headers": [(b"accept", b"*/*"), (b"host", b"h.test")]}, b"https://h.test/path"),
    (None, {"headers": []}, None),
    (None, {"headers": [(b"host", b"")]}, None),
    (None, {"headers": [(b"host", b"evil.test/x")]}, None),
    (None, {"headers": [(b"host", b"user@evil.test")]}, None),
    (None, {"headers": [(b"host", b"a b")]}, None),
]


@pytest.mark.parametrize(("host", "options", "location"), HTTP_CASES)
def test_http_is_redirected(
    host: str | None, options: dict[str, Any], location: bytes | None
) -> None:
    sent = call(host, make_scope(**options))
    assert sent == (BAD_REQUEST if location is None else redirect(location))


@pytest.mark.parametrize(
    ("kind", "scheme"), [("http", "https"), ("websocket", "wss"), ("lifespan", "")]
)
def test_secure_requests_and_lifespan_pass_through(kind: str, scheme: str) -> None:
    scope = make_scope(kind, scheme) if kind != "lifespan" else {"type": "lifespan"}
    assert call("example.com", scope) == PASSED


def websocket_redirect(location: bytes, status: int = 307) -> list[ASGISendEvent]:
    headers = [(b"location", location)] if status == 307 else []
    return [
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", b"0")],
        },
        {"type": "websocket.http.response.body", "body": b"", "more_body": False},
    ]


DENIAL: dict[str, dict[Any, Any]] = {"websocket.http.response": {}}
CLOSE: list[ASGISendEvent] = [{"type": "websocket.close", "code": 1000, "reason": None}]

WEBSOCKET_CASES = [
    # (host, scope keyword arguments, expected messages)
    ("example.com", {"extensions": DENIAL}, websocket_redirect(b"wss://example.com/path")),
    (
        "example.com",
        {"extensions": DENIAL, "query": b"room=1"},
        websocket_redirect(b"wss://example.com/path?room=1"),
    ),
    # WebSockets over HTTP/2 and HTTP/3 are opened with an https request.
    (
        "example.com",
        {"extensions": DENIAL, "http_version": "2"},
        websocket_redirect(b"https://example.com/path"),
    ),
    (
        "example.com",
        {"extensions": DENIAL, "http_version": "3"},
        websocket_redirect(b"https://example.com/path"),
    ),
    (None, {"extensions": DENIAL}, websocket_redirect(b"wss://from-header.test:8080/path")),
    (None, {"extensions": DENIAL, "headers": []}, websocket_redirect(b"", status=400)),
    # Without the denial-response extension the only option is to close.
    ("example.com", {}, CLOSE),
    (None, {"headers": []}, CLOSE),
]


@pytest.mark.parametrize(("host", "options", "expected"), WEBSOCKET_CASES)
def test_websocket_is_redirected_or_closed(
    host: str | None, options: dict[str, Any], expected: list[ASGISendEvent]
) -> None:
    assert call(host, make_scope("websocket", "ws", **options)) == expected


def test_host_is_a_required_argument() -> None:
    with pytest.raises(TypeError):
        HTTPToHTTPSRedirectMiddleware(downstream)  # type: ignore[call-arg]
    middleware = HTTPToHTTPSRedirectMiddleware(downstream, None)
    assert (middleware.app, middleware.host) == (downstream, None)
