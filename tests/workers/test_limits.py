"""Limits a worker enforces: max_requests, backpressure both ways, sizes and host names."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
import websockets.exceptions
from websockets.sync.client import connect as ws_connect

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    H2Client,
    Signal,
    WorkerClass,
    connect,
    echo_app,
    read_body,
    recv_until,
    recv_until_eof,
    respond,
    running,
    start,
)

MIB = 1 << 20


def client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, trust_env=False)


@pytest.mark.parametrize("how", ["connections", "keep-alive", "h2c-streams"])
def test_max_requests_stops_the_worker(worker_class: WorkerClass, how: str) -> None:
    config = Config()
    config.max_requests = 3
    server = start(echo_app, config, worker_class)
    try:
        statuses: list[int] = []
        if how == "connections":
            for index in range(3):
                with client() as http:
                    statuses.append(http.get(f"{server.url}/{index}").status_code)
        elif how == "keep-alive":
            with client() as http:
                statuses.extend(
                    http.get(f"{server.url}/{index}").status_code for index in range(3)
                )
        else:
            with connect(server.address) as sock:
                h2 = H2Client(sock, f"127.0.0.1:{server.port}")
                ids = [h2.request("GET", f"/{index}") for index in range(3)]
                statuses.extend(h2.response(stream_id)[0] for stream_id in ids)
        # No trigger: the worker stops by itself, gracefully, once it served 3 requests.
        server.join()
        server.assert_no_errors()
    finally:
        server.stop()
        server.close_sockets()
    assert statuses == [200, 200, 200]


def test_unread_response_makes_the_apps_send_wait(worker_class: WorkerClass) -> None:
    chunk = b"x" * 65536
    chunks = 1024  # 64 MiB
    sent = [0]
    done = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent[0] += len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        done.set()

    with running(app, worker_class=worker_class) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(TIMEOUT)
            sock.connect(server.address)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = recv_until(sock, b"\r\n\r\n")
            # The client reads nothing more: the app must be held back, not buffered for.
            assert not done.wait_sync(2.0), "64 MiB were accepted from the app unread"
            assert sent[0] < 32 * MIB, sent[0]
            total = len(head.split(b"\r\n\r\n", 1)[1]) + len(recv_until_eof(sock, limit=1 << 30))
        assert done.wait_sync()
    assert total > chunks * len(chunk)


def test_unread_request_body_stops_the_server_reading(worker_class: WorkerClass) -> None:
    size = 64 * MIB
    entered = Signal()
    release = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        await release.wait()
        body = await read_body(receive)
        await respond(send, 200, str(len(body)).encode())

    with running(app, worker_class=worker_class) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(TIMEOUT)
            sock.connect(server.address)
            sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
            assert entered.wait_sync()
            piece = memoryview(b"y" * 65536)
            written = 0
            sock.settimeout(2.0)
            try:
                while written < size:
                    written += sock.send(piece[: min(len(piece), size - written)])
            except TimeoutError:
                pass
            assert written < 32 * MIB, f"the server read {written} bytes nobody asked for"
            release.set()
            sock.settimeout(TIMEOUT)
            while written < size:
                written += sock.send(piece[: min(len(piece), size - written)])
            reply = recv_until(sock, str(size).encode())
    assert reply.startswith(b"HTTP/1.1 200 ")


def test_websocket_message_too_big_closes_1009(worker_class: WorkerClass) -> None:
    codes: list[int] = []
    done = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    codes.append(message["code"])
                    return
                assert message["type"] == "websocket.receive"
                await send({"type": "websocket.send", "text": message.get("text")})
        finally:
            done.set()

    config = Config()
    config.websocket_max_message_size = 1000
    with (
        running(app, config, worker_class) as server,
        ws_connect(
            server.url.replace("http", "ws") + "/",
            proxy=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ) as ws,
    ):
        ws.send("a" * 1000)
        assert ws.recv(TIMEOUT) == "a" * 1000
        ws.send("a" * 1001)
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            ws.recv(TIMEOUT)
        assert done.wait_sync()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009
    assert codes == [1009]


def test_keep_alive_max_requests(worker_class: WorkerClass) -> None:
    config = Config()
    config.keep_alive_max_requests = 2
    with running(echo_app, config, worker_class) as server, connect(server.address) as sock:
        sock.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_eof(sock)
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ")
    assert b"connection: close" not in first.lower()
    assert second.startswith(b"200 ")
    assert b"connection: close" in second.lower()


@pytest.mark.parametrize(("host", "status"), [("good.test", 200), ("evil.test", 404)])
def test_server_names(worker_class: WorkerClass, host: str, status: int) -> None:
    config = Config()
    config.server_names = ["good.test"]
    with running(echo_app, config, worker_class) as server, client() as http:
        response = http.get(server.url, headers={"host": host})
    assert response.status_code == status


def test_h11_max_incomplete_size(worker_class: WorkerClass) -> None:
    config = Config()
    config.h11_max_incomplete_size = 1024
    with running(echo_app, config, worker_class) as server:
        with connect(server.address) as sock:
            # h11 bounds what it buffers of an *incomplete* head: this one never ends.
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2048)
            assert recv_until_eof(sock).startswith(b"HTTP/1.1 431 ")
        with client() as http:
            assert http.get(server.url, headers={"x-small": "a" * 500}).status_code == 200


def test_wsgi_max_body_size(worker_class: WorkerClass) -> None:
    called: list[int] = []

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        called.append(len(body))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    config = Config()
    config.wsgi_max_body_size = 1000
    with running(wsgi, config, worker_class, mode="wsgi") as server, client() as http:
        small = http.post(server.url, content=b"s" * 1000)
        big = http.post(server.url, content=b"b" * 1001)
    assert small.status_code == 200
    assert small.content == b"s" * 1000
    assert big.status_code == 413
    assert called == [1000]


def test_http2_unread_body_is_held_back_by_flow_control(worker_class: WorkerClass) -> None:
    size = 4 * MIB
    payload = b"z" * size
    entered = Signal()
    release = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        await release.wait()
        body = await read_body(receive)
        await respond(send, 200, str(len(body)).encode())

    with running(app, worker_class=worker_class) as server, connect(server.address) as sock:
        client = H2Client(sock, f"127.0.0.1:{server.port}")
        stream_id = client.request("POST", "/", end_stream=False)
        assert entered.wait_sync()
        conn = client.conn
        sent = 0
        sock.settimeout(1.0)
        try:
            while sent < size:
                room = min(
                    conn.local_flow_control_window(stream_id),
                    conn.max_outbound_frame_size,
                    size - sent,
                )
                if room <= 0:
                    client.receive_once()  # a WINDOW_UPDATE, or a timeout
                    continue
                conn.send_data(stream_id, payload[sent : sent + room])
                sent += room
                client.flush()
        except TimeoutError:
            pass
        # Nobody reads the body, so the server must not keep opening the window.
        assert sent < 2 * MIB, f"the server took {sent} bytes nobody asked for"
        release.set()
        sock.settimeout(TIMEOUT)
        client.send_body(stream_id, payload[sent:])
        assert client.response(stream_id) == (200, str(size).encode())
