"""One real request through each worker (asyncio, uvloop, trio), from the public entry points.

The server runs in the test's own event loop; the client (httpx, blocking, with a timeout)
runs in a worker thread of that loop. Ports are chosen by the OS: asyncio gets port-0
sockets made by the test (``worker_serve(..., sockets=...)``) or a unix socket path
(``serve()``), trio reports its URLs through ``task_status``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import trio
import uvloop

import hypercorn.asyncio
import hypercorn.trio
from hypercorn.app_wrappers import wrap_app
from hypercorn.asyncio.run import worker_serve as asyncio_worker_serve
from hypercorn.config import Config
from hypercorn.driver.serve import IgnoredOptionWarning
from hypercorn.trio.run import worker_serve as trio_worker_serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Framework, Scope
from hypercorn.utils import LifespanFailureError

Loop = Literal["asyncio", "uvloop", "trio"]
LOOPS: tuple[Loop, ...] = ("asyncio", "uvloop", "trio")
TIMEOUT = 10.0


async def asgi_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    body = f"{scope['state']['greeting']} {scope['path']} over asgi".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ['PATH_INFO']} over wsgi".encode()]


APPS: dict[str, Framework] = {"asgi": asgi_app, "wsgi": wsgi_app}


def run_loop(loop: Loop, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` on a fresh ``loop``, bounded by :data:`TIMEOUT`."""
    if loop == "trio":

        async def trio_main() -> None:
            with trio.fail_after(TIMEOUT):
                await main()

        trio.run(trio_main)
        return
    event_loop = uvloop.new_event_loop() if loop == "uvloop" else asyncio.new_event_loop()
    try:
        event_loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
        event_loop.run_until_complete(event_loop.shutdown_default_executor())
    finally:
        event_loop.close()


def fetch(url: str, *, uds: str | None = None) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=uds) if uds is not None else None
    with httpx.Client(timeout=TIMEOUT, transport=transport) as client:
        return client.get(url)


def tcp_config() -> Config:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    return config


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("loop", LOOPS)
def test_one_get(loop: Loop, kind: str) -> None:
    config = tcp_config()
    responses: list[httpx.Response] = []

    async def asyncio_main() -> None:
        sockets = config.create_sockets()
        port = sockets.insecure_sockets[0].getsockname()[1]
        stop = asyncio.Event()
        app = wrap_app(APPS[kind], config.wsgi_max_body_size)
        server = asyncio.ensure_future(
            asyncio_worker_serve(app, config, sockets=sockets, shutdown_trigger=stop.wait)
        )
        # The socket already listens: the request waits in the backlog if need be.
        responses.append(await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/path"))
        stop.set()
        await server

    async def trio_main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            urls: list[str] = await nursery.start(_trio_serve, APPS[kind], config, stop.wait)
            assert len(urls) == 1
            assert urls[0].startswith("http://127.0.0.1:")
            assert not urls[0].endswith(":0")
            response = await trio.to_thread.run_sync(fetch, f"{urls[0]}/path")
            responses.append(response)
            stop.set()

    run_loop(loop, trio_main if loop == "trio" else asyncio_main)
    [response] = responses
    assert response.status_code == 200
    assert response.text == f"hello /path over {kind}"
    assert response.headers["server"] == "hypercorn-h11"
    assert "date" in response.headers


async def _trio_serve(
    app: Framework,
    config: Config,
    trigger: Callable[[], Awaitable[object]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await hypercorn.trio.serve(app, config, shutdown_trigger=trigger, task_status=task_status)


class _RunningOn(logging.Handler):
    """Sets an asyncio Event when the server logs its "Running on" line."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__()
        self.event = event
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if record.getMessage().startswith("Running on "):
            self.event.set()


@pytest.mark.skipif(sys.platform == "win32", reason="unix sockets")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_asyncio_serve_on_a_unix_socket(loop: Loop, tmp_path: Path) -> None:
    path = str(tmp_path / "server.sock")
    config = Config()
    config.bind = [f"unix:{path}"]
    error_log = logging.Logger("test-serve-smoke", logging.INFO)
    config.errorlog = error_log
    responses: list[httpx.Response] = []
    handlers: list[_RunningOn] = []

    async def main() -> None:
        stop = asyncio.Event()
        handler = _RunningOn(asyncio.Event())
        handlers.append(handler)
        error_log.addHandler(handler)
        server = asyncio.ensure_future(
            hypercorn.asyncio.serve(asgi_app, config, shutdown_trigger=stop.wait)
        )
        await handler.event.wait()  # logged once the socket listens
        responses.append(await asyncio.to_thread(fetch, "http://server/unix", uds=path))
        stop.set()
        await server

    run_loop(loop, main)
    [response] = responses
    assert response.text == "hello /unix over asgi"
    assert f"Running on http://unix:{path} (CTRL + C to quit)" in handlers[0].messages


@pytest.mark.parametrize(
    ("option", "value"), [("debug", True), ("workers", 2), ("workers", 0)], ids=str
)
@pytest.mark.parametrize("loop", LOOPS)
def test_serve_warns_about_options_it_ignores(loop: Loop, option: str, value: object) -> None:
    config = tcp_config()
    setattr(config, option, value)

    async def stop_at_once() -> None:
        return None

    async def main() -> None:
        if loop == "trio":
            await hypercorn.trio.serve(asgi_app, config, shutdown_trigger=stop_at_once)
        else:
            await hypercorn.asyncio.serve(asgi_app, config, shutdown_trigger=stop_at_once)

    with pytest.warns(IgnoredOptionWarning, match=option):
        run_loop(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_failed_lifespan_startup_raises_the_apps_message(loop: Loop) -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    config = tcp_config()
    wrapped = wrap_app(app, config.wsgi_max_body_size)

    async def main() -> None:
        if loop == "trio":
            await trio_worker_serve(wrapped, config, shutdown_trigger=trio.sleep_forever)
        else:
            await asyncio_worker_serve(wrapped, config, shutdown_trigger=asyncio.Event().wait)

    # The error itself, not an exception group, so callers can catch it.
    with pytest.raises(LifespanFailureError, match="no database"):
        run_loop(loop, main)
