"""What a worker logs: the bind lines, access lines, app errors, and statsd datagrams."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import httpx
import pytest
import websockets.exceptions
from websockets.sync.client import connect as ws_connect

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.backend import AsyncioBackend
from hypercorn.asyncio.statsd import StatsdLogger as AsyncioStatsdLogger
from hypercorn.config import Config
from hypercorn.driver.worker import WorkerState
from hypercorn.logging import Logger
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    H2Client,
    TLSFiles,
    WorkerClass,
    connect,
    echo_app,
    respond,
    running,
)


def client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, trust_env=False)


def test_running_on_lines(worker_class: WorkerClass) -> None:
    with running(echo_app, worker_class=worker_class) as server:
        message = server.error_log.wait_for_message("Running on")
    assert message == f"Running on http://127.0.0.1:{server.port} (CTRL + C to quit)"


def test_running_on_lines_with_tls(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    with running(echo_app, worker_class=worker_class, tls=tls_files) as server:
        server.error_log.wait_for(
            lambda messages: sum("Running on" in message for message in messages) >= 2
        )
        lines = [message for message in server.error_log.messages() if "Running on" in message]
    https_port = server.https_address[1]
    http_port = server.http_address[1]
    assert sorted(lines) == sorted(
        [
            f"Running on https://127.0.0.1:{https_port} (CTRL + C to quit)",
            f"Running on http://127.0.0.1:{http_port} (CTRL + C to quit)",
        ]
    )


ACCESS_LINE = re.compile(
    r"^127\.0\.0\.1:(?P<port>\d+) - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
    r'"POST /path 1\.1" 200 5 "http://referer\.test/" "test-agent/1\.0"$'
)


def test_access_log_default_format(worker_class: WorkerClass) -> None:
    with running(echo_app, worker_class=worker_class) as server, client() as http:
        response = http.post(
            f"{server.url}/path?query=1",
            content=b"hello",
            headers={"user-agent": "test-agent/1.0", "referer": "http://referer.test/"},
        )
        line = server.access_log.wait_for_message("POST /path")
    match = ACCESS_LINE.match(line)
    assert match is not None, line
    assert match["port"] == response.headers["x-client-port"]


CUSTOM_FORMAT = "%(m)s %(U)s %(q)s %(s)s %(H)s %({x-in}i)s %({x-out}o)s %(S)s"


async def _headers_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "http":
        await respond(send, 201, b"", [(b"x-out", b"from-app")])
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})


@pytest.mark.parametrize("protocol", ["h11", "h2c", "websocket"])
def test_access_log_custom_format(worker_class: WorkerClass, protocol: str) -> None:
    config = Config()
    config.access_log_format = CUSTOM_FORMAT
    with running(_headers_app, config, worker_class) as server:
        if protocol == "h11":
            with client() as http:
                http.get(f"{server.url}/p?a=b", headers={"x-in": "from-client"})
            expected = "GET /p a=b 201 1.1 from-client from-app http"
        elif protocol == "h2c":
            with connect(server.address) as sock:
                h2 = H2Client(sock, f"127.0.0.1:{server.port}")
                h2.response(h2.request("GET", "/p?a=b", headers=[("x-in", "from-client")]))
            expected = "GET /p a=b 201 2 from-client from-app http"
        else:
            with (
                ws_connect(
                    server.url.replace("http", "ws") + "/p?a=b",
                    proxy=None,
                    open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT,
                    additional_headers={"x-in": "from-client"},
                ) as ws,
                pytest.raises(websockets.exceptions.ConnectionClosedOK),
            ):
                ws.recv(TIMEOUT)  # the app closes at once
            expected = "GET /p a=b 101 1.1 from-client - ws"
        line = server.access_log.wait_for_message("/p")
    assert line == expected


def test_app_error_traceback_in_error_log(worker_class: WorkerClass) -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http":
            raise ValueError("kaboom in the app")

    with (
        running(app, worker_class=worker_class, expect_errors=True) as server,
        client() as http,
    ):
        assert http.get(server.url).status_code == 500
        server.error_log.wait_for_message("Error in ASGI Framework")
    records = [
        record
        for record in server.error_log.records
        if "Error in ASGI Framework" in record.getMessage()
    ]
    assert len(records) == 1
    assert records[0].levelname == "ERROR"
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ValueError)
    text = server.error_log.text()
    assert "Traceback (most recent call last)" in text
    assert "ValueError: kaboom in the app" in text


def _datagrams(udp: socket.socket, until: bytes, timeout: float = TIMEOUT) -> list[bytes]:
    """Receive datagrams until one starts with ``until``."""
    received: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not any(datagram.startswith(until) for datagram in received):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {until!r} datagram; got {received}"
        udp.settimeout(remaining)
        received.append(udp.recv(65536))
    return received


@pytest.mark.parametrize(
    ("prefix", "tags", "name_prefix", "suffix"),
    [("", "", b"", b""), ("svc", "env:test", b"svc.", b"|#env:test")],
)
def test_statsd_datagrams(
    worker_class: WorkerClass, prefix: str, tags: str, name_prefix: bytes, suffix: bytes
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        config = Config()
        config.statsd_host = f"127.0.0.1:{udp.getsockname()[1]}"
        config.statsd_prefix = prefix
        config.dogstatsd_tags = tags
        with running(echo_app, config, worker_class) as server, client() as http:
            assert http.get(server.url).status_code == 200
            received = _datagrams(udp, name_prefix + b"hypercorn.request.status.200:")
    assert name_prefix + b"hypercorn.requests:1|c|@1.0" + suffix in received
    assert name_prefix + b"hypercorn.request.status.200:1|c|@1.0" + suffix in received
    durations = [d for d in received if d.startswith(name_prefix + b"hypercorn.request.duration:")]
    assert len(durations) == 1
    assert re.fullmatch(
        re.escape(name_prefix) + rb"hypercorn\.request\.duration:[0-9.]+\|ms" + re.escape(suffix),
        durations[0],
    )


class _CountingLogger(Logger):
    async def access(self, request: Any, response: Any, request_time: float) -> None:
        return None


@pytest.mark.parametrize(
    ("options", "logs"),
    [
        ({}, False),  # the access log is off: the driver skips it for every stream
        ({"accesslog": "-"}, True),
        ({"logger_class": _CountingLogger}, True),  # an overridden access() is always called
        ({"statsd_host": "127.0.0.1:9125"}, True),
    ],
)
def test_worker_skips_the_access_log_only_when_nothing_logs(
    options: dict[str, Any], logs: bool
) -> None:
    config = Config()
    for name, value in options.items():
        setattr(config, name, value)
    config.set_statsd_logger_class(AsyncioStatsdLogger)
    loop = asyncio.new_event_loop()
    try:
        worker = WorkerState(ASGIWrapper(echo_app), config, AsyncioBackend(loop))
        assert worker.logs_access is logs
    finally:
        loop.close()
