"""HTTP/2: httpx over TLS (ALPN h2), and the h2 library as a raw h2c peer."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import h2.settings
import httpx
import pytest

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    H2Client,
    Signal,
    TLSFiles,
    WorkerClass,
    connect,
    echo_app,
    recv_until,
    recv_until_eof,
    respond,
    running,
)

MIB = 1 << 20


def test_http2_over_tls_with_alpn(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    with (
        running(echo_app, worker_class=worker_class, tls=tls_files) as server,
        httpx.Client(
            http2=True, verify=tls_files.client_context(), timeout=TIMEOUT, trust_env=False
        ) as http,
    ):
        response = http.post(f"{server.https_url}/path?q=1", content=b"hello")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.content == b"hello"
    assert response.headers["x-http-version"] == "2"
    assert response.headers["x-scheme"] == "https"
    assert response.headers["x-path"] == "/path"
    assert response.headers["x-query"] == "q=1"
    assert response.headers["server"] == "hypercorn-h2"


def test_http1_over_tls_and_plain_insecure_bind(
    worker_class: WorkerClass, tls_files: TLSFiles
) -> None:
    with (
        running(echo_app, worker_class=worker_class, tls=tls_files) as server,
        httpx.Client(verify=tls_files.client_context(), timeout=TIMEOUT, trust_env=False) as http,
    ):
        secure = http.get(server.https_url)
        plain = http.get(server.http_url)
    assert secure.http_version == "HTTP/1.1"
    assert secure.headers["x-scheme"] == "https"
    assert plain.http_version == "HTTP/1.1"
    assert plain.headers["x-scheme"] == "http"


def test_many_concurrent_streams_on_one_connection(
    worker_class: WorkerClass, tls_files: TLSFiles
) -> None:
    count = 20
    arrived: list[int] = []
    all_in = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        client = scope["client"]
        arrived.append(client[1] if client else 0)
        if len(arrived) == count:
            all_in.set()
        # Every stream waits for all the others: served one at a time, this would hang.
        await all_in.wait()
        await respond(send, 200, scope["path"].encode())

    async def fetch_all(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(
            http2=True, verify=tls_files.client_context(), timeout=TIMEOUT, trust_env=False
        ) as http:
            return await asyncio.gather(*(http.get(f"{url}/{index}") for index in range(count)))

    with running(app, worker_class=worker_class, tls=tls_files) as server:
        responses = asyncio.run(fetch_all(server.https_url))
    assert [response.content for response in responses] == [
        f"/{index}".encode() for index in range(count)
    ]
    assert {response.http_version for response in responses} == {"HTTP/2"}
    assert len(set(arrived)) == 1, "all the streams should share one connection"


def test_large_bodies_both_ways_need_flow_control(
    worker_class: WorkerClass, tls_files: TLSFiles
) -> None:
    bodies = [os.urandom(MIB) for _ in range(3)]

    async def post_all(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(
            http2=True, verify=tls_files.client_context(), timeout=TIMEOUT, trust_env=False
        ) as http:
            return await asyncio.gather(*(http.post(url, content=body) for body in bodies))

    with running(echo_app, worker_class=worker_class, tls=tls_files) as server:
        responses = asyncio.run(post_all(server.https_url))
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert [response.content for response in responses] == bodies
    assert {response.http_version for response in responses} == {"HTTP/2"}


def test_h2c_prior_knowledge(worker_class: WorkerClass) -> None:
    body = os.urandom(256 * 1024)  # over the 64 KiB initial windows
    with running(echo_app, worker_class=worker_class) as server, connect(server.address) as sock:
        client = H2Client(sock, f"127.0.0.1:{server.port}")
        get = client.request("GET", "/get")
        post = client.request("POST", "/post", body=body)
        get_status, get_body = client.response(get)
        post_status, post_body = client.response(post)
        headers = dict(client.headers[post])
    assert get_status == 200
    assert get_body == b""
    assert post_status == 200
    assert post_body == body
    assert headers[b"x-http-version"] == b"2"
    assert headers[b"x-scheme"] == b"http"
    assert headers[b"server"] == b"hypercorn-h2"


def test_server_settings(worker_class: WorkerClass) -> None:
    config = Config()
    config.h2_max_concurrent_streams = 7
    with (
        running(echo_app, config, worker_class) as server,
        connect(server.address) as sock,
    ):
        client = H2Client(sock, f"127.0.0.1:{server.port}")
        stream = client.request("GET", "/")
        client.response(stream)
        settings = client.conn.remote_settings
        assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7
        assert settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


def test_h2c_upgrade_from_http1(worker_class: WorkerClass) -> None:
    with running(echo_app, worker_class=worker_class) as server, connect(server.address) as sock:
        client = H2Client(sock, f"127.0.0.1:{server.port}", initiate=False)
        settings = client.conn.initiate_upgrade_connection()
        assert settings is not None
        sock.sendall(
            b"GET /upgraded HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        data = recv_until(sock, b"\r\n\r\n")
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"upgrade: h2c" in head.lower()
        client.flush()
        if rest:
            client.feed(rest)
        status, body = client.response(1)
        headers = dict(client.headers[1])
    assert status == 200
    assert body == b""
    assert headers[b"x-path"] == b"/upgraded"
    assert headers[b"x-http-version"] == b"2"


@pytest.mark.parametrize("streams", [1, 8])
def test_server_sends_large_responses_within_windows(
    worker_class: WorkerClass, streams: int
) -> None:
    payload = os.urandom(MIB)

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        await respond(send, 200, payload)

    with running(app, worker_class=worker_class) as server, connect(server.address) as sock:
        client = H2Client(sock, f"127.0.0.1:{server.port}")
        ids = [client.request("GET", f"/{index}") for index in range(streams)]
        results = [client.response(stream_id) for stream_id in ids]
    assert results == [(200, payload)] * streams


def test_http2_app_exception_fails_that_stream_only(worker_class: WorkerClass) -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError("kaboom")
        await respond(send, 200, b"fine")

    with (
        running(app, worker_class=worker_class, expect_errors=True) as server,
        connect(server.address) as sock,
    ):
        client = H2Client(sock, f"127.0.0.1:{server.port}")
        boom = client.request("GET", "/boom")
        fine = client.request("GET", "/fine")
        assert client.response(fine) == (200, b"fine")
        client.receive_until(lambda: boom in client.ended or boom in client.reset)
        if boom in client.ended:
            assert client.status(boom) == 500
        again = client.request("GET", "/again")
        assert client.response(again) == (200, b"fine")


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="plaintext"),
        pytest.param(b"\x16\x03\x01\x00\x05hello", id="bad-hello"),
        pytest.param(b"", id="nothing"),
    ],
)
def test_tls_port_survives_non_tls_clients(
    worker_class: WorkerClass, tls_files: TLSFiles, garbage: bytes
) -> None:
    with running(echo_app, worker_class=worker_class, tls=tls_files) as server:
        with connect(server.https_address) as sock:
            if garbage:
                sock.sendall(garbage)
            else:
                sock.shutdown(socket.SHUT_WR)
            recv_until_eof(sock)  # the server hangs up (perhaps after a TLS alert)
        with httpx.Client(
            http2=True, verify=tls_files.client_context(), timeout=TIMEOUT, trust_env=False
        ) as http:
            assert http.get(server.https_url).status_code == 200


def test_ssl_handshake_timeout(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    config = Config()
    config.ssl_handshake_timeout = 0.5
    config.keep_alive_timeout = 60
    with (
        running(echo_app, config, worker_class, tls=tls_files) as server,
        connect(server.https_address) as sock,
    ):
        started = time.monotonic()
        assert recv_until_eof(sock) == b""  # a silent client is dropped
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 5.0, elapsed
