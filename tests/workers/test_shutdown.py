"""Graceful shutdown: in-flight work finishes, new work is refused, stragglers are cut."""

from __future__ import annotations

import concurrent.futures
import socket
import time

import h2.errors
import httpx

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    H2Client,
    Signal,
    WorkerClass,
    connect,
    recv_until,
    recv_until_eof,
    respond,
    start,
    wait_until,
)


class SlowApp:
    """``/slow`` waits for :attr:`release`; ``/forever`` never answers; the rest is 200."""

    def __init__(self) -> None:
        self.entered = Signal()
        self.release = Signal()
        self.never = Signal()
        self.exited = Signal()
        self.events: list[str] = []

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.events.append("lifespan.shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        if scope["path"] == "/slow":
            self.entered.set()
            await self.release.wait()
            await respond(send, 200, b"done")
            self.events.append("slow done")
        elif scope["path"] == "/forever":
            self.entered.set()
            try:
                await self.never.wait()
            finally:
                self.exited.set()
        else:
            await respond(send, 200, b"ok")


def get(url: str) -> httpx.Response:
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as http:
        return http.get(url)


def refused(address: tuple[str, int]) -> bool:
    """True when a new TCP connection to ``address`` is refused.

    A reset counts too: a SYN that reached the listening socket just as it was closed is
    answered with a reset, which ``connect`` reports as ECONNRESET.
    """
    try:
        sock = socket.create_connection(address, timeout=TIMEOUT)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    sock.close()
    return False


def test_in_flight_request_finishes_and_new_connections_are_refused(
    worker_class: WorkerClass,
) -> None:
    app = SlowApp()
    config = Config()
    config.graceful_timeout = 30
    server = start(app, config, worker_class)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, f"{server.url}/slow")
            assert app.entered.wait_sync()
            server.stop()
            assert wait_until(lambda: refused(server.address)), "still accepting connections"
            assert not pending.done()
            app.release.set()
            response = pending.result(TIMEOUT)
        server.join()
        server.assert_no_errors()
    finally:
        app.release.set()
        server.stop()
        server.close_sockets()
    assert response.status_code == 200
    assert response.content == b"done"
    # Not recycled: the client is told the connection ends with this response.
    assert response.headers.get("connection") == "close"
    # Lifespan shutdown comes after the in-flight request.
    assert app.events == ["slow done", "lifespan.shutdown"]


def test_idle_keep_alive_connections_close_at_once(worker_class: WorkerClass) -> None:
    app = SlowApp()
    config = Config()
    config.keep_alive_timeout = 60
    config.graceful_timeout = 30
    server = start(app, config, worker_class)
    try:
        with (
            concurrent.futures.ThreadPoolExecutor(1) as pool,
            connect(server.address) as idle,
        ):
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            recv_until(idle, b"ok")
            pending = pool.submit(get, f"{server.url}/slow")
            assert app.entered.wait_sync()
            server.stop()
            started = time.monotonic()
            assert recv_until_eof(idle) == b""
            assert time.monotonic() - started < 5.0
            assert not pending.done(), "the idle connection should close before the slow one"
            app.release.set()
            assert pending.result(TIMEOUT).content == b"done"
        server.join()
        server.assert_no_errors()
    finally:
        app.release.set()
        server.stop()
        server.close_sockets()


def test_http2_goaway_and_open_streams_finish(worker_class: WorkerClass) -> None:
    app = SlowApp()
    config = Config()
    config.graceful_timeout = 30
    server = start(app, config, worker_class)
    try:
        with connect(server.address) as sock:
            client = H2Client(sock, f"127.0.0.1:{server.port}")
            stream_id = client.request("GET", "/slow")
            assert app.entered.wait_sync()
            server.stop()
            # The server says it is going away while the stream is still open (GOAWAY, or at
            # least no more streams allowed).
            client.receive_until(
                lambda: (
                    client.goaway is not None
                    or client.conn.remote_settings.max_concurrent_streams == 0
                )
            )
            assert stream_id not in client.ended
            app.release.set()
            assert client.response(stream_id) == (200, b"done")
            if client.goaway is None:
                client.receive_until(lambda: client.goaway is not None)
            assert client.goaway is not None
            assert client.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
            assert (client.goaway.last_stream_id or 0) >= stream_id
            assert recv_until_eof(sock) == b""
        server.join()
        server.assert_no_errors()
    finally:
        app.release.set()
        server.stop()
        server.close_sockets()


def test_graceful_timeout_cuts_a_never_ending_request(worker_class: WorkerClass) -> None:
    app = SlowApp()
    config = Config()
    config.graceful_timeout = 0.5
    server = start(app, config, worker_class)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, f"{server.url}/forever")
            assert app.entered.wait_sync()
            started = time.monotonic()
            server.stop()
            server.join()
            elapsed = time.monotonic() - started
            try:
                response = pending.result(TIMEOUT)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass  # cut without an answer
            else:
                assert response.status_code >= 500  # or told so
    finally:
        app.never.set()
        server.stop()
        server.close_sockets()
    assert elapsed < 5.0, elapsed
    assert app.exited.is_set(), "the application task was abandoned, not cancelled"
    # Cutting stragglers is the configured behaviour, not an error of the server.
    errors = [text for text in server.error_log.texts if text.startswith("ERROR")]
    assert errors == []


def test_stop_without_connections_is_prompt(worker_class: WorkerClass) -> None:
    app = SlowApp()
    server = start(app, Config(), worker_class)
    try:
        assert get(server.url).content == b"ok"
        started = time.monotonic()
        server.stop()
        server.join()
        server.assert_no_errors()
        elapsed = time.monotonic() - started
    finally:
        server.stop()
        server.close_sockets()
    # Nothing in flight: no reason to sit out graceful_timeout (3 s).
    assert elapsed < 2.0, elapsed
    assert app.events == ["lifespan.shutdown"]
