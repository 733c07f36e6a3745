"""HTTP/1.1 through real sockets: httpx as the client, raw sockets for what httpx won't send."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    Signal,
    WorkerClass,
    connect,
    echo_app,
    recv_until,
    recv_until_eof,
    respond,
    running,
)

MIB = 1 << 20


def client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, trust_env=False)


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, MIB])
def test_post_echo(worker_class: WorkerClass, size: int) -> None:
    body = os.urandom(size)
    with running(echo_app, worker_class=worker_class) as server, client() as http:
        response = http.post(f"{server.url}/echo?x=1", content=body)
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-length"] == str(size)
    assert response.headers["x-method"] == "POST"
    assert response.headers["x-path"] == "/echo"
    assert response.headers["x-query"] == "x=1"
    assert response.headers["x-http-version"] == "1.1"
    assert response.headers["x-scheme"] == "http"
    assert response.headers["server"] == "hypercorn-h11"
    assert "date" in response.headers


def test_get_and_chunked_request_body(worker_class: WorkerClass) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * MIB

    with running(echo_app, worker_class=worker_class) as server, client() as http:
        got = http.get(f"{server.url}/")
        streamed = http.post(f"{server.url}/", content=pieces())
    assert got.status_code == 200
    assert got.content == b""
    assert got.headers["x-method"] == "GET"
    assert streamed.status_code == 200
    assert streamed.content == b"a" * 1000 + b"b" * MIB


def test_large_response(worker_class: WorkerClass) -> None:
    chunk = os.urandom(65536)

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(16):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    with running(app, worker_class=worker_class) as server, client() as http:
        response = http.get(server.url)
    assert response.status_code == 200
    assert response.content == chunk * 16
    assert response.headers["transfer-encoding"] == "chunked"


def test_keep_alive_reuses_the_connection(worker_class: WorkerClass) -> None:
    with running(echo_app, worker_class=worker_class) as server, client() as http:
        ports = {http.get(f"{server.url}/{index}").headers["x-client-port"] for index in range(5)}
    assert len(ports) == 1


def test_streaming_response_arrives_before_it_is_finished(worker_class: WorkerClass) -> None:
    proceed = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await proceed.wait()
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    with running(app, worker_class=worker_class) as server, client() as http:
        with http.stream("GET", server.url) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            chunks = response.iter_raw()
            assert next(chunks) == b"first"  # the app is still waiting for `proceed`
            proceed.set()
            assert b"".join(chunks) == b"second"
        proceed.set()


def test_head_has_no_body_and_keeps_the_connection(worker_class: WorkerClass) -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        await respond(send, 200, b"hello")

    with running(app, worker_class=worker_class) as server, connect(server.address) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\nGET / HTTP/1.1\r\nHost: test\r\n\r\n")
        data = recv_until(sock, b"\r\n\r\nhello")
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 5" in head.lower()
    # The HEAD response carries no body: the next bytes are the GET's status line.
    assert rest.startswith(b"HTTP/1.1 200 ")


def test_expect_100_continue(worker_class: WorkerClass) -> None:
    with running(echo_app, worker_class=worker_class) as server, connect(server.address) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = recv_until(sock, b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        final = recv_until(sock, b"hello")
    assert b"HTTP/1.1 200 " in final


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", 400, id="request-line"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, id="header"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, id="cl"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000, 431, id="huge"),
    ],
)
def test_malformed_request_gets_an_error_and_the_server_carries_on(
    worker_class: WorkerClass, request_bytes: bytes, status: int
) -> None:
    with running(echo_app, worker_class=worker_class) as server:
        with connect(server.address) as sock:
            sock.sendall(request_bytes)
            reply = recv_until_eof(sock)
        assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]
        with client() as http:
            assert http.get(server.url).status_code == 200


def test_app_exception_is_a_500_for_that_client_only(worker_class: WorkerClass) -> None:
    entered = Signal()
    release = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError("kaboom")
        entered.set()
        await release.wait()
        await respond(send, 200, b"fine")

    with (
        running(app, worker_class=worker_class, expect_errors=True) as server,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        client() as other,
    ):
        pending = pool.submit(other.get, f"{server.url}/slow")
        assert entered.wait_sync()
        with client() as http:
            boom = http.get(f"{server.url}/boom")
        release.set()
        slow = pending.result(TIMEOUT)
    assert boom.status_code == 500
    assert slow.status_code == 200
    assert slow.content == b"fine"


def _abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a crashed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("when", ["mid-body", "mid-response"])
def test_client_vanishing_mid_request_never_crashes_the_worker(
    worker_class: WorkerClass, when: str, how: str
) -> None:
    entered = Signal()
    finished = Signal()
    outcome: list[str] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ok":
            await respond(send, 200, b"ok")
            return
        try:
            if scope["path"] == "/body":
                first = await receive()
                entered.set()
                assert first["type"] == "http.request"
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        outcome.append("disconnect")
                        return
            else:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                entered.set()
                chunk = b"x" * 65536
                try:
                    for _ in range(1024):  # 64 MiB that nobody reads
                        await send(
                            {"type": "http.response.body", "body": chunk, "more_body": True}
                        )
                except OSError:
                    pass
                outcome.append("sent")
        finally:
            finished.set()

    with running(app, worker_class=worker_class) as server:
        sock = connect(server.address)
        if when == "mid-body":
            sock.sendall(
                b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
            )
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait_sync()
        if how == "reset":
            _abort(sock)
        else:
            sock.close()
        assert finished.wait_sync(), "the application never learnt that the client left"
        with client() as http:
            assert http.get(f"{server.url}/ok").content == b"ok"
    assert outcome == ["disconnect" if when == "mid-body" else "sent"]


@pytest.mark.parametrize("after_request", [False, True], ids=["fresh", "after-request"])
def test_keep_alive_timeout_closes_idle_connections(
    worker_class: WorkerClass, after_request: bool
) -> None:
    config = Config()
    config.keep_alive_timeout = 0.5
    with running(echo_app, config, worker_class) as server, connect(server.address) as sock:
        if after_request:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            recv_until(sock, b"\r\n\r\n")
        started = time.monotonic()
        rest = recv_until_eof(sock)
        elapsed = time.monotonic() - started
    assert rest == b""
    assert 0.3 <= elapsed < 5.0, elapsed


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", id="head"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012", id="body"),
    ],
)
def test_read_timeout_closes_a_stalled_request(worker_class: WorkerClass, partial: bytes) -> None:
    config = Config()
    config.keep_alive_timeout = 60
    config.read_timeout = 0.5
    with running(echo_app, config, worker_class) as server:
        with connect(server.address) as sock:
            sock.sendall(partial)
            started = time.monotonic()
            reply = recv_until_eof(sock)
            elapsed = time.monotonic() - started
        # The server may say 408 (or nothing) but must hang up, and soon.
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408 "), reply[:200]
        assert elapsed < 5.0, elapsed
        with client() as http:
            assert http.get(server.url).status_code == 200


def test_many_clients_at_once(worker_class: WorkerClass) -> None:
    with (
        running(echo_app, worker_class=worker_class) as server,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):

        def one(index: int) -> bytes:
            with client() as http:
                return http.post(server.url, content=str(index).encode() * 1000).content

        results = list(pool.map(one, range(32)))
    assert results == [str(index).encode() * 1000 for index in range(32)]


def test_pipelined_requests_are_answered_in_order(worker_class: WorkerClass) -> None:
    with running(echo_app, worker_class=worker_class) as server, connect(server.address) as sock:
        sock.sendall(
            b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
            b"POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree"
        )
        data = recv_until_eof(sock)
    assert data.count(b"HTTP/1.1 200 ") == 3
    assert data.index(b"one") < data.index(b"two") < data.index(b"three")


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_each_http1_parser_serves(worker_class: WorkerClass, parser: str) -> None:
    config = Config()
    config.http1_parser = parser
    with running(echo_app, config, worker_class=worker_class) as server:
        with client() as http:
            sized = http.post(f"{server.url}/a?b=c", content=b"hello")
            chunked = http.post(server.url, content=iter([b"a" * 1000, b"b" * 70_000]))
        with connect(server.address) as sock:
            sock.sendall(
                b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
                b"GET /3 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
            )
            pipelined = recv_until_eof(sock)
    assert (sized.status_code, sized.content, sized.headers["x-query"]) == (200, b"hello", "b=c")
    assert chunked.content == b"a" * 1000 + b"b" * 70_000
    assert pipelined.count(b"HTTP/1.1 200 ") == 2
    assert b"two" in pipelined
    assert b"HTTP/1.1 400 " in pipelined  # two Host headers
