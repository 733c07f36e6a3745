"""The bundled example application (examples/app.py) works as README.md says.

Each test serves the example in-process with ``hypercorn.asyncio.serve`` on a port the OS
picks (the port is read from the ``Running on ...`` line) and talks to it with real
clients: httpx over HTTP/1.1 and HTTP/2 (prior knowledge, as ``curl
--http2-prior-knowledge`` does) and the ``websockets`` client. Everything runs on one
asyncio loop bounded by :data:`TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

import hypercorn.asyncio
from examples.app import app
from hypercorn.config import Config
from hypercorn.utils import load_application

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


class _Log(logging.Handler):
    """Keeps every record; sets ``running`` once the server logs its ``Running on`` line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.running = asyncio.Event()
        self.url = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        message = record.getMessage()
        if message.startswith("Running on ") and not self.running.is_set():
            self.url = message.split()[2]
            self.running.set()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    """Serve the example on 127.0.0.1 (a free port) and yield its ``http://`` URL."""
    log = _Log()
    error_log = logging.Logger("test-example-app", logging.INFO)
    error_log.propagate = False
    error_log.addHandler(log)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = error_log
    stop = asyncio.Event()
    server = asyncio.ensure_future(
        hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait)
    )
    try:
        running = asyncio.ensure_future(log.running.wait())
        await asyncio.wait({server, running}, return_when=asyncio.FIRST_COMPLETED)
        running.cancel()
        if server.done():
            server.result()  # raises what serve() raised
            raise AssertionError("serve() returned before it listened")
        yield log.url
    finally:
        stop.set()
        await server  # a graceful stop, lifespan shutdown included
    problems = [r.getMessage() for r in log.records if r.levelno >= logging.WARNING]
    assert problems == []


def run(main: Callable[[str], Awaitable[None]]) -> None:
    """Serve the example, run ``main(url)`` against it and stop, all within TIMEOUT."""

    async def bounded() -> None:
        async with serving() as url:
            await main(url)

    asyncio.run(asyncio.wait_for(bounded(), TIMEOUT))


@pytest.mark.parametrize(("http2", "version"), [(False, "1.1"), (True, "2")], ids=["h1", "h2"])
def test_the_page_names_the_http_version(http2: bool, version: str) -> None:
    async def main(url: str) -> None:
        async with httpx.AsyncClient(http1=not http2, http2=http2, timeout=TIMEOUT) as client:
            response = await client.get(f"{url}/")
        assert response.status_code == 200
        assert response.http_version == f"HTTP/{version}"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        lines = response.text.splitlines()
        assert lines[0] == "Hello from examples/app.py"
        assert f"HTTP version: {version}" in lines
        assert "ASGI: 3.0 (spec 2.1)" in lines
        assert f"server: {url.removeprefix('http://')}" in lines
        # The lifespan startup ran: the page shows when.
        assert "started" in lines[-1]
        assert "no lifespan" not in lines[-1]

    run(main)


@pytest.mark.parametrize("size", [0, 11, 300_000])
@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
def test_echo_returns_the_body(http2: bool, size: int) -> None:
    body = bytes(i % 251 for i in range(size))

    async def main(url: str) -> None:
        async with httpx.AsyncClient(http1=not http2, http2=http2, timeout=TIMEOUT) as client:
            response = await client.post(
                f"{url}/echo", content=body, headers={"content-type": "application/x-test"}
            )
        assert response.status_code == 200
        assert response.content == body
        assert response.headers["content-type"] == "application/x-test"

    run(main)


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("GET", "/echo"), ("POST", "/")])
def test_other_routes_are_404(method: str, path: str) -> None:
    async def main(url: str) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.request(method, f"{url}{path}")
        assert response.status_code == 404

    run(main)


def test_websocket_echoes_text_and_bytes() -> None:
    async def main(url: str) -> None:
        ws_url = url.replace("http://", "ws://", 1) + "/ws"
        async with connect(ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            messages: list[str | bytes] = ["hello", "héllo " * 1000, b"\x00\x01\xff", b""]
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message

    run(main)


def test_websocket_on_another_path_is_refused() -> None:
    async def main(url: str) -> None:
        ws_url = url.replace("http://", "ws://", 1) + "/elsewhere"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(ws_url, open_timeout=TIMEOUT):
                pass
        assert refused.value.response.status_code == 403

    run(main)


def test_the_readme_application_path_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hypercorn examples/app.py:app``, run from the repository root, finds the app."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_application prepends examples/
    try:
        loaded = load_application("examples/app.py:app")
        assert loaded.mode == "asgi"
        module = sys.modules["app"]
        assert module.__file__ == str(ROOT / "examples" / "app.py")
        assert loaded.app is module.app
    finally:
        sys.modules.pop("app", None)
