"""Lifespan on a real worker: state into scopes, failures that stop it, apps that opt out."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from hypercorn.utils import LifespanFailureError, LifespanTimeoutError
from tests.workers.support import TIMEOUT, Signal, WorkerClass, respond, running, start


def get(url: str) -> httpx.Response:
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as http:
        return http.get(url)


def test_startup_state_reaches_every_request_as_a_copy(worker_class: WorkerClass) -> None:
    events: list[str] = []
    shut_down = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["greeting"] = "hello"
                    scope["state"]["shared"] = ["one"]
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    shut_down.set()
                    return
        assert scope["type"] == "http"
        state = scope["state"]
        seen = sorted(state)
        state["mutated"] = True  # must not leak into the next request's state
        await respond(send, 200, json.dumps([state["greeting"], state["shared"], seen]).encode())

    with running(app, worker_class=worker_class) as server:
        first = get(server.url)
        second = get(server.url)
        assert not shut_down.is_set()
    assert first.json() == ["hello", ["one"], ["greeting", "shared"]]
    assert second.json() == first.json()
    assert shut_down.is_set()
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def _failing_with_message(message: str) -> Callable[..., Any]:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": message})
            await receive()

    return app


def _raising_during_startup(message: str) -> Callable[..., Any]:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await receive()
            raise RuntimeError(message)

    return app


@pytest.mark.parametrize("make_app", [_failing_with_message, _raising_during_startup])
def test_startup_failure_stops_the_worker_with_the_apps_message(
    worker_class: WorkerClass, make_app: Callable[[str], Any]
) -> None:
    app = make_app("database unreachable")
    server = start(app, worker_class=worker_class)
    try:
        with pytest.raises(LifespanFailureError) as info:
            server.join(TIMEOUT)
    finally:
        server.close_sockets()
    assert info.value.stage == "startup"
    assert "database unreachable" in str(info.value)


def test_startup_timeout(worker_class: WorkerClass) -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await receive()  # never answers startup

    config = Config()
    config.startup_timeout = 0.3
    server = start(app, config, worker_class)
    try:
        with pytest.raises(LifespanTimeoutError) as info:
            server.join(TIMEOUT)
    finally:
        server.close_sockets()
    assert "startup" in str(info.value)


def test_shutdown_failure_is_reported(worker_class: WorkerClass) -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "cleanup broke"})
            return
        await respond(send, 200, b"ok")

    with pytest.raises(LifespanFailureError) as info, running(app, worker_class=worker_class) as s:
        assert get(s.url).content == b"ok"
    assert info.value.stage == "shutdown"
    assert "cleanup broke" in str(info.value)


async def _http_only(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']}")
    await respond(send, 200, b"plain")


async def _returns_at_once(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    if scope["type"] == "http":
        await respond(send, 200, b"plain")


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "5")])
    return [b"plain"]


@pytest.mark.parametrize(
    "app", [_http_only, _returns_at_once, _wsgi], ids=["raises", "returns", "wsgi"]
)
def test_apps_without_lifespan_are_served(worker_class: WorkerClass, app: Any) -> None:
    with running(app, worker_class=worker_class) as server:
        response = get(server.url)
        assert response.status_code == 200
        assert response.content == b"plain"
    errors = [record for record in server.error_log.records if record.levelname == "ERROR"]
    assert errors == []
