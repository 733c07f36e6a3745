"""DispatcherMiddleware: routing by path segment, 404/close, lifespan fan-out on both loops.

The test plays the server: ``receive``/``send`` are small async functions over lists, and
the mounted applications are plain ASGI callables that record what they saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel

from hypercorn.middleware import (
    AsyncioDispatcherMiddleware,
    DispatcherMiddleware,
    TrioDispatcherMiddleware,
)
from hypercorn.middleware.dispatcher import MAX_QUEUE_SIZE, _DispatcherMiddleware
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    LifespanScope,
    Scope,
    WebsocketScope,
)
from tests.workers.support import run_bounded as run

FLAVOURS: dict[str, type[_DispatcherMiddleware]] = {
    "asyncio": AsyncioDispatcherMiddleware,
    "trio": TrioDispatcherMiddleware,
    "uvloop": AsyncioDispatcherMiddleware,
}
BACKENDS = sorted(FLAVOURS)


async def checkpoint(backend: str) -> None:
    """Let the other tasks run once."""
    if backend != "trio":
        await asyncio.sleep(0)
    else:
        await trio.lowlevel.checkpoint()


class Flag:
    """A one-shot event on either loop."""

    def __init__(self, backend: str) -> None:
        self._event: asyncio.Event | trio.Event = (
            trio.Event() if backend == "trio" else asyncio.Event()
        )

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


# ---------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------


def http_scope(path: str, root_path: str = "") -> HTTPScope:
    return {
        "type": "http",
        "asgi": {"spec_version": "2.1", "version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": root_path,
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},  # type: ignore[typeddict-item]
        "extensions": {},
    }


def websocket_scope(path: str) -> WebsocketScope:
    return {
        "type": "websocket",
        "asgi": {"spec_version": "2.3", "version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "state": {},  # type: ignore[typeddict-item]
        "extensions": {"websocket.http.response": {}},
    }


def naming_app(name: str) -> ASGIFramework:
    """An app answering ``<name> <root_path> <path>``."""

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        assert scope["type"] == "http"
        body = f"{name} {scope['root_path']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return app


async def request(app: ASGIFramework, scope: Scope) -> list[ASGISendEvent]:
    sent: list[ASGISendEvent] = []

    async def receive() -> ASGIReceiveEvent:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: ASGISendEvent) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


NOT_FOUND: list[ASGISendEvent] = [
    {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b"", "more_body": False},
]

NESTED = {"/api/v2": "v2", "/api": "api", "/static/": "static"}
CATCH_ALL = {"/api": "api", "/": "root"}
SHADOWED = {"/api": "api", "/api/v2": "v2"}

ROUTES = [
    # (mounts, root_path, path, expected body or None for 404)
    (NESTED, "", "/api", "api /api /api"),
    (NESTED, "", "/api/", "api /api /api/"),
    (NESTED, "", "/api/users/1", "api /api /api/users/1"),
    (NESTED, "", "/api/v2", "v2 /api/v2 /api/v2"),
    (NESTED, "", "/api/v2/items", "v2 /api/v2 /api/v2/items"),
    (NESTED, "", "/api/v20", "api /api /api/v20"),
    (NESTED, "", "/apiary", None),
    (NESTED, "", "/", None),
    (NESTED, "", "/static", "static /static /static"),
    (NESTED, "", "/static/app.css", "static /static /static/app.css"),
    (NESTED, "", "/staticky", None),
    (CATCH_ALL, "", "/api/x", "api /api /api/x"),
    (CATCH_ALL, "", "/apiary", "root  /apiary"),
    (CATCH_ALL, "", "/", "root  /"),
    # Insertion order decides: /api is listed first and takes /api/v2 too.
    (SHADOWED, "", "/api/v2/items", "api /api /api/v2/items"),
    # Below an outer root_path that the path carries (nested dispatchers, server root_path).
    (NESTED, "/app", "/app/api/x", "api /app/api /app/api/x"),
    (NESTED, "/app", "/app/apiary", None),
    (NESTED, "/app", "/app", None),
    # A path that does not carry the outer root_path (a proxy stripped it).
    (NESTED, "/app", "/api/x", "api /app/api /api/x"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("mounts", "root_path", "path", "expected"), ROUTES)
def test_routing_table(
    backend: str, mounts: dict[str, str], root_path: str, path: str, expected: str | None
) -> None:
    dispatcher = FLAVOURS[backend]({prefix: naming_app(n) for prefix, n in mounts.items()})
    scope = http_scope(path, root_path)
    original = dict(scope)
    sent: list[ASGISendEvent] = []

    async def main() -> None:
        sent.extend(await request(dispatcher, scope))

    run(backend, main)
    assert scope == original  # the mount got a copy
    if expected is None:
        assert sent == NOT_FOUND
    else:
        assert sent[1] == {
            "type": "http.response.body",
            "body": expected.encode(),
            "more_body": False,
        }


def test_dispatcher_middleware_is_the_asyncio_flavour() -> None:
    assert DispatcherMiddleware is AsyncioDispatcherMiddleware
    assert MAX_QUEUE_SIZE == 10


def test_mount_scope_is_a_shallow_copy_sharing_state() -> None:
    seen: list[HTTPScope] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        assert scope["type"] == "http"
        seen.append(scope)

    scope = http_scope("/api/x")
    asyncio.run(request(AsyncioDispatcherMiddleware({"/api": app}), scope))
    assert seen[0] is not scope
    assert seen[0]["root_path"] == "/api"
    assert scope["root_path"] == ""
    assert seen[0]["state"] is scope["state"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_websocket_without_a_mount_is_closed(backend: str) -> None:
    dispatcher = FLAVOURS[backend]({"/api": naming_app("api")})
    sent: list[ASGISendEvent] = []

    async def main() -> None:
        sent.extend(await request(dispatcher, websocket_scope("/apiary")))

    run(backend, main)
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": None}]


def test_websocket_is_routed_to_its_mount() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append(scope)
        await send({"type": "websocket.accept"})

    sent = asyncio.run(request(DispatcherMiddleware({"/ws": app}), websocket_scope("/ws/chat")))
    assert sent == [{"type": "websocket.accept"}]
    assert seen[0]["type"] == "websocket"
    assert (seen[0]["root_path"], seen[0]["path"]) == ("/ws", "/ws/chat")


@pytest.mark.parametrize("prefix", ["api", "api/"])
def test_prefix_must_start_with_a_slash(prefix: str) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        DispatcherMiddleware({prefix: naming_app("x")})


def test_unknown_scope_type_is_an_error() -> None:
    scope: Any = {"type": "webtransport", "path": "/"}
    with pytest.raises(ValueError, match="webtransport"):
        asyncio.run(request(DispatcherMiddleware({}), scope))


# ---------------------------------------------------------------------------------------
# Lifespan
# ---------------------------------------------------------------------------------------


class LifespanServer:
    """Plays the server side of lifespan: startup, wait for the answer, then shutdown."""

    def __init__(self, backend: str) -> None:
        self.sent: list[ASGISendEvent] = []
        self._answered = Flag(backend)
        self._calls = 0

    async def receive(self) -> ASGIReceiveEvent:
        self._calls += 1
        if self._calls == 1:
            return {"type": "lifespan.startup"}
        if self._calls == 2:
            await self._answered.wait()
            return {"type": "lifespan.shutdown"}
        raise AssertionError("the dispatcher read past lifespan.shutdown")

    async def send(self, message: ASGISendEvent) -> None:
        self.sent.append(message)
        if message["type"].startswith("lifespan.startup."):
            self._answered.set()

    def run(self, backend: str, mounts: dict[str, ASGIFramework]) -> _DispatcherMiddleware:
        dispatcher = FLAVOURS[backend](mounts)
        scope: LifespanScope = {
            "type": "lifespan",
            "asgi": {"spec_version": "2.0", "version": "3.0"},
            "state": {},
        }

        async def main() -> None:
            await dispatcher(scope, self.receive, self.send)

        run(backend, main)
        return dispatcher


class LifespanApp:
    """A mount taking part in lifespan; ``startup``/``shutdown`` pick its answers."""

    def __init__(
        self,
        name: str,
        startup: str = "complete",
        shutdown: str = "complete",
        before_startup: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.startup = startup
        self.shutdown = shutdown
        self.before_startup = before_startup
        self.received: list[str] = []

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        self.received.append(message["type"])
        scope["state"][self.name] = True
        if self.before_startup is not None:
            await self.before_startup()
        if self.startup == "failed":
            await send({"type": "lifespan.startup.failed", "message": f"{self.name} is down"})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        self.received.append(message["type"])
        if self.shutdown == "raise":
            raise RuntimeError(f"{self.name} exploded")
        if self.shutdown == "failed":
            await send({"type": "lifespan.shutdown.failed", "message": f"{self.name} leaked"})
        else:
            await send({"type": "lifespan.shutdown.complete"})


async def raises_on_lifespan(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    if scope["type"] != "http":
        raise RuntimeError("only http is supported")


async def returns_on_lifespan(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    if scope["type"] == "lifespan":
        return


COMPLETE: list[ASGISendEvent] = [
    {"type": "lifespan.startup.complete"},
    {"type": "lifespan.shutdown.complete"},
]
BOTH_PHASES = ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifespan_completes_once_every_mount_completed(backend: str) -> None:
    server = LifespanServer(backend)
    observed: list[int] = []

    async def late() -> None:
        # Let the other mount answer first, then check nothing was reported yet.
        for _ in range(5):
            await checkpoint(backend)
        observed.append(len(server.sent))

    first = LifespanApp("first")
    second = LifespanApp("second", before_startup=late)
    dispatcher = server.run(backend, {"/first": first, "/second": second})
    assert server.sent == COMPLETE
    assert observed == [0]
    assert first.received == second.received == BOTH_PHASES
    assert dispatcher.startup_complete == {"/first": True, "/second": True}
    assert dispatcher.shutdown_complete == {"/first": True, "/second": True}


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifespan_state_is_shared_by_every_mount(backend: str) -> None:
    states: list[dict[str, Any]] = []

    class Recording(LifespanApp):
        async def __call__(
            self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
        ) -> None:
            assert scope["type"] == "lifespan"
            states.append(scope["state"])
            await super().__call__(scope, receive, send)

    server = LifespanServer(backend)
    server.run(backend, {"/a": Recording("a"), "/b": Recording("b")})
    assert states[0] is states[1]
    assert states[0] == {"a": True, "b": True}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_startup_is_forwarded_with_its_message(backend: str) -> None:
    server = LifespanServer(backend)
    healthy = LifespanApp("healthy")
    broken = LifespanApp("broken", startup="failed")
    server.run(backend, {"/healthy": healthy, "/broken": broken})
    assert server.sent[0] == {
        "type": "lifespan.startup.failed",
        "message": "/broken: broken is down",
    }
    # The mount that did start is still shut down cleanly when the server asks.
    assert server.sent[1:] == [{"type": "lifespan.shutdown.complete"}]
    assert healthy.received == BOTH_PHASES
    assert broken.received == ["lifespan.startup"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_failed_mount_is_named(backend: str) -> None:
    server = LifespanServer(backend)
    mounts: dict[str, ASGIFramework] = {
        "/a": LifespanApp("a", startup="failed"),
        "/b": LifespanApp("b"),
        "/": LifespanApp("c", startup="failed"),
    }
    server.run(backend, mounts)
    assert server.sent[0] == {
        "type": "lifespan.startup.failed",
        "message": "/a: a is down; /: c is down",
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("unsupported", [raises_on_lifespan, returns_on_lifespan])
def test_a_mount_without_lifespan_does_not_hold_the_others(
    backend: str, unsupported: ASGIFramework
) -> None:
    server = LifespanServer(backend)
    app = LifespanApp("app")
    dispatcher = server.run(backend, {"/plain": unsupported, "/app": app})
    assert server.sent == COMPLETE
    assert app.received == BOTH_PHASES
    assert dispatcher.startup_complete == {"/plain": False, "/app": True}


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifespan_completes_when_no_mount_takes_part(backend: str) -> None:
    server = LifespanServer(backend)
    server.run(backend, {"/a": raises_on_lifespan, "/b": returns_on_lifespan})
    assert server.sent == COMPLETE


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifespan_with_no_mounts_completes(backend: str) -> None:
    server = LifespanServer(backend)
    server.run(backend, {})
    assert server.sent == COMPLETE


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("shutdown", "message"),
    [("failed", "/b: b leaked"), ("raise", "/b: RuntimeError: b exploded")],
)
def test_a_failed_shutdown_is_forwarded(backend: str, shutdown: str, message: str) -> None:
    server = LifespanServer(backend)
    server.run(backend, {"/a": LifespanApp("a"), "/b": LifespanApp("b", shutdown=shutdown)})
    assert server.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.failed", "message": message},
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mount_that_returns_after_startup_counts_as_shut_down(backend: str) -> None:
    async def short_lived(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    server = LifespanServer(backend)
    server.run(backend, {"/short": short_lived, "/app": LifespanApp("app")})
    assert server.sent == COMPLETE


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_message_out_of_order_is_refused(backend: str) -> None:
    errors: list[str] = []

    async def confused(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await receive()
        try:
            await send({"type": "lifespan.shutdown.complete"})
        except RuntimeError as exc:
            errors.append(str(exc))
            raise

    server = LifespanServer(backend)
    server.run(backend, {"/confused": confused, "/app": LifespanApp("app")})
    # The mount raised before settling its startup: it takes no part in lifespan.
    assert server.sent == COMPLETE
    assert len(errors) == 1
    assert "'/confused' sent 'lifespan.shutdown.complete'" in errors[0]


def test_trio_cancellation_stops_every_mount() -> None:
    exited: list[str] = []

    async def waits_forever(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        try:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
        finally:
            exited.append("mount")

    async def main() -> None:
        started = trio.Event()

        async def receive() -> ASGIReceiveEvent:
            if not started.is_set():
                return {"type": "lifespan.startup"}
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: ASGISendEvent) -> None:
            started.set()

        scope: LifespanScope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        with trio.move_on_after(5) as cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    TrioDispatcherMiddleware({"/": waits_forever}), scope, receive, send
                )
                await started.wait()
                nursery.cancel_scope.cancel()
        assert not cancel_scope.cancelled_caught

    trio.run(main)
    assert exited == ["mount"]


def test_asyncio_cancellation_stops_every_mount() -> None:
    exited: list[str] = []

    async def waits_forever(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        try:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
        finally:
            exited.append("mount")

    async def main() -> None:
        started = asyncio.Event()
        never = asyncio.Event()

        async def receive() -> ASGIReceiveEvent:
            if not started.is_set():
                return {"type": "lifespan.startup"}
            await never.wait()
            raise AssertionError("unreachable")

        async def send(message: ASGISendEvent) -> None:
            started.set()

        scope: LifespanScope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        dispatcher = AsyncioDispatcherMiddleware({"/": waits_forever})
        task = asyncio.ensure_future(dispatcher(scope, receive, send))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert exited == ["mount"]
