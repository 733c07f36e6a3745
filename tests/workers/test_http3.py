"""HTTP/3 over QUIC on every worker, with aioquic's own client on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent
from wsproto.frame_protocol import FrameProtocol, Opcode

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    WORKER_CLASSES,
    Signal,
    TLSFiles,
    WorkerClass,
    read_body,
    running,
)

pytestmark = pytest.mark.parametrize("worker_class", WORKER_CLASSES)


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": "echo: " + (message["text"] or "")})
    assert scope["type"] == "http"
    body = await read_body(receive)
    if scope["path"] == "/big":
        size = int(scope["query_string"] or b"0")
        payload = bytes(range(256)) * (size // 256)
    elif scope["path"] == "/echo":
        payload = body
    else:
        payload = json.dumps(
            {
                "http_version": scope["http_version"],
                "scheme": scope["scheme"],
                "path": scope["path"],
                "method": scope["method"],
                "length": len(body),
            }
        ).encode()
    headers = [(b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# ---------------------------------------------------------------------------------------
# A small HTTP/3 client on aioquic
# ---------------------------------------------------------------------------------------


class Reply:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.done = asyncio.Event()
        self.events: asyncio.Queue[H3Event] = asyncio.Queue()

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.replies: dict[int, Reply] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.http.handle_event(event):
            if not isinstance(h3_event, HeadersReceived | DataReceived):
                continue
            reply = self.replies.get(h3_event.stream_id)
            if reply is None:
                continue
            reply.events.put_nowait(h3_event)
            if isinstance(h3_event, HeadersReceived):
                reply.headers.extend(h3_event.headers)
            else:
                reply.body += h3_event.data
            if h3_event.stream_ended:
                reply.done.set()

    def open(self, headers: list[tuple[bytes, bytes]], *, end_stream: bool) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        self.replies[stream_id] = Reply()
        self.http.send_headers(stream_id, headers, end_stream=end_stream)
        self.transmit()
        return stream_id

    def send(self, stream_id: int, data: bytes, *, end_stream: bool) -> None:
        self.http.send_data(stream_id, data, end_stream=end_stream)
        self.transmit()

    async def request(
        self, method: str, path: str, body: bytes = b"", authority: str = "localhost"
    ) -> Reply:
        head = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        stream_id = self.open(head, end_stream=not body)
        if body:
            self.send(stream_id, body, end_stream=True)
        reply = self.replies[stream_id]
        await asyncio.wait_for(reply.done.wait(), TIMEOUT)
        return reply


@asynccontextmanager
async def h3_client(port: int, tls: TLSFiles) -> AsyncIterator[H3Client]:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(cadata=tls.ca.cert_pem.bytes())
    configuration.server_name = "localhost"
    async with connect(
        "127.0.0.1",
        port,
        configuration=configuration,
        create_protocol=H3Client,
        wait_connected=True,
    ) as client:
        yield cast("H3Client", client)


def quic_port(server: Any) -> int:
    port: int = server.sockets.quic_sockets[0].getsockname()[1]
    return port


def h3_config() -> Config:
    config = Config()
    config.quic_bind = ["127.0.0.1:0"]
    return config


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 3 * TIMEOUT))


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------


def test_get_over_http3(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    with running(app, h3_config(), worker_class, tls=tls_files) as server:

        async def main() -> Reply:
            async with h3_client(quic_port(server), tls_files) as client:
                return await client.request("GET", "/hello")

        reply = run(main())
        assert reply.status == 200
        assert json.loads(reply.body) == {
            "http_version": "3",
            "scheme": "https",
            "path": "/hello",
            "method": "GET",
            "length": 0,
        }
    access = "\n".join(server.access_log.texts)
    assert "HTTP/3" in access or "/hello" in access


def test_large_bodies_both_ways(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    upload = bytes(range(256)) * 4096  # 1 MiB
    with running(app, h3_config(), worker_class, tls=tls_files) as server:

        async def main() -> tuple[Reply, Reply]:
            async with h3_client(quic_port(server), tls_files) as client:
                echoed = await client.request("POST", "/echo", upload)
                big = await client.request("GET", f"/big?{2 * len(upload)}")
                return echoed, big

        echoed, big = run(main())
    assert echoed.status == 200
    assert bytes(echoed.body) == upload
    assert big.status == 200
    assert bytes(big.body) == upload * 2


def test_many_concurrent_streams(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    with running(app, h3_config(), worker_class, tls=tls_files) as server:

        async def main() -> list[Reply]:
            async with h3_client(quic_port(server), tls_files) as client:
                return await asyncio.gather(
                    *(client.request("POST", f"/n/{n}", b"x" * n) for n in range(60))
                )

        replies = run(main())
    for n, reply in enumerate(replies):
        assert reply.status == 200
        assert json.loads(reply.body)["path"] == f"/n/{n}"
        assert json.loads(reply.body)["length"] == n


def test_alt_svc_is_advertised_on_tcp(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    with running(app, h3_config(), worker_class, tls=tls_files) as server:
        port = quic_port(server)
        with httpx.Client(verify=tls_files.client_context(), timeout=TIMEOUT) as http:
            response = http.get(server.https_url + "/")
    assert f'h3=":{port}"; ma=3600' in response.headers.get_list("alt-svc")


def test_websocket_over_http3(worker_class: WorkerClass, tls_files: TLSFiles) -> None:
    with running(app, h3_config(), worker_class, tls=tls_files) as server:

        async def main() -> tuple[int, str]:
            async with h3_client(quic_port(server), tls_files) as client:
                stream_id = client.open(
                    [
                        (b":method", b"CONNECT"),
                        (b":protocol", b"websocket"),
                        (b":scheme", b"https"),
                        (b":authority", b"localhost"),
                        (b":path", b"/ws"),
                        (b"sec-websocket-version", b"13"),
                    ],
                    end_stream=False,
                )
                reply = client.replies[stream_id]
                head = await asyncio.wait_for(reply.events.get(), TIMEOUT)
                assert isinstance(head, HeadersReceived)
                framer = FrameProtocol(client=True, extensions=[])
                client.send(stream_id, bytes(framer.send_data("hi", fin=True)), end_stream=False)
                reader = FrameProtocol(client=True, extensions=[])
                while True:
                    event = await asyncio.wait_for(reply.events.get(), TIMEOUT)
                    assert isinstance(event, DataReceived)
                    reader.receive_bytes(event.data)
                    frames = list(reader.received_frames())
                    if frames:
                        assert frames[0].opcode is Opcode.TEXT
                        client.send(stream_id, bytes(framer.close(1000)), end_stream=True)
                        return reply.status, str(frames[0].payload)

        status, text = run(main())
    assert status == 200
    assert text == "echo: hi"


def test_garbage_datagrams_do_not_stop_the_server(
    worker_class: WorkerClass, tls_files: TLSFiles
) -> None:
    with running(app, h3_config(), worker_class, tls=tls_files) as server:
        port = quic_port(server)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for datagram in (b"", b"\x00", b"\xc0" + b"\xff" * 40, b"\x40" * 1300, b"x" * 1500):
                raw.sendto(datagram, ("127.0.0.1", port))

        async def main() -> Reply:
            async with h3_client(port, tls_files) as client:
                return await client.request("GET", "/after")

        assert run(main()).status == 200


def test_graceful_shutdown_finishes_an_open_stream(
    worker_class: WorkerClass, tls_files: TLSFiles
) -> None:
    entered, release = Signal(), Signal()

    async def slow(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    with running(slow, h3_config(), worker_class, tls=tls_files) as server:
        port = quic_port(server)

        async def main() -> Reply:
            async with h3_client(port, tls_files) as client:
                pending = asyncio.ensure_future(client.request("GET", "/slow"))
                await asyncio.to_thread(entered.wait_sync)
                server.stop()  # the worker stops taking connections; this stream finishes
                release.set()
                return await pending

        reply = run(main())
        server.wait_finished()
    assert reply.status == 200
    assert bytes(reply.body) == b"finished"


def test_http3_streams_count_towards_max_requests_and_the_access_log(
    worker_class: WorkerClass, tls_files: TLSFiles
) -> None:
    config = h3_config()
    config.max_requests = 3
    config.access_log_format = "%(H)s %(m)s %(U)s %(s)s"
    with running(app, config, worker_class, tls=tls_files) as server:
        port = quic_port(server)

        async def main() -> list[Reply]:
            async with h3_client(port, tls_files) as client:
                return [await client.request("GET", f"/r{n}") for n in range(3)]

        assert [reply.status for reply in run(main())] == [200, 200, 200]
        server.wait_finished()  # the third request used up the worker's budget
    assert server.access_log.texts == [f"INFO 3 GET /r{n} 200" for n in range(3)]
