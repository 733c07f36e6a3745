"""What is particular to asyncio connections: no task while idle, and gathered writes.

The write tests drive :class:`hypercorn.asyncio.tcp_server.ConnectionProtocol` over a real
socket pair, with the transport's ``write`` wrapped to count the calls that reach it, and
check what the peer receives.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.backend import AsyncioBackend
from hypercorn.asyncio.run import worker_serve
from hypercorn.asyncio.tcp_server import CORK_LIMIT, ConnectionProtocol
from hypercorn.config import Config
from hypercorn.driver.worker import WorkerState


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _with_protocol(
    body: Callable[[ConnectionProtocol, list[bytes], socket.socket], Awaitable[None]],
) -> None:
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    try:
        worker = WorkerState(ASGIWrapper(_app), Config(), AsyncioBackend())
        protocol = ConnectionProtocol(worker, ssl=False)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
        writes: list[bytes] = []
        real_write = transport.write

        def counting_write(data: Any) -> None:
            writes.append(bytes(data))
            real_write(data)

        transport.write = counting_write  # type: ignore[method-assign]
        await body(protocol, writes, peer)
        transport.abort()
    finally:
        peer.close()


async def _read(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await asyncio.wait_for(loop.sock_recv(peer, 65536), 5)
    return data


def test_writes_of_one_turn_go_out_together() -> None:
    async def body(protocol: ConnectionProtocol, writes: list[bytes], peer: socket.socket) -> None:
        protocol.write(b"one ")  # the first write of the turn: at once
        assert writes == [b"one "]
        protocol.write(b"two ")
        protocol.write(b"three")
        assert writes == [b"one "]  # gathered until the end of the turn
        assert await _read(peer, 13) == b"one two three"
        assert writes == [b"one ", b"two three"]
        # The next turn writes its first piece at once again.
        protocol.write(b"four")
        assert writes[-1] == b"four"

    asyncio.run(body_runner(body))


def test_close_sends_gathered_writes_first() -> None:
    async def body(protocol: ConnectionProtocol, writes: list[bytes], peer: socket.socket) -> None:
        protocol.write(b"a")
        protocol.write(b"b")
        protocol.close()
        assert writes == [b"a", b"b"]
        assert await _read(peer, 2) == b"ab"

    asyncio.run(body_runner(body))


@pytest.mark.parametrize("pieces", [2, 5])
def test_a_large_turn_is_written_at_the_limit(pieces: int) -> None:
    chunk = b"x" * (CORK_LIMIT // 2)

    async def body(protocol: ConnectionProtocol, writes: list[bytes], peer: socket.socket) -> None:
        for _ in range(pieces + 1):
            protocol.write(chunk)
        # The first went at once; the gathered ones are written whenever they reach the
        # limit, without waiting for the end of the turn.
        assert len(writes) == 1 + pieces // 2
        assert all(len(data) <= CORK_LIMIT for data in writes)
        assert await _read(peer, len(chunk) * (pieces + 1)) == chunk * (pieces + 1)

    asyncio.run(body_runner(body))


def test_abort_drops_gathered_writes() -> None:
    async def body(protocol: ConnectionProtocol, writes: list[bytes], peer: socket.socket) -> None:
        protocol.write(b"sent")
        protocol.write(b"dropped")
        protocol._abort()
        await asyncio.sleep(0)
        assert writes == [b"sent"]

    asyncio.run(body_runner(body))


async def body_runner(
    body: Callable[[ConnectionProtocol, list[bytes], socket.socket], Awaitable[None]],
) -> None:
    await asyncio.wait_for(_with_protocol(body), 10)


def test_idle_keep_alive_connections_have_no_task() -> None:
    async def hello(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        sockets = config.create_sockets()  # listening already: clients may connect at once
        port = sockets.insecure_sockets[0].getsockname()[1]
        stop = asyncio.Event()
        server = asyncio.create_task(
            worker_serve(ASGIWrapper(hello), config, sockets=sockets, shutdown_trigger=stop.wait)
        )
        streams = []
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            streams.append(writer)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await reader.readuntil(b"hi")
            baseline = len(asyncio.all_tasks())
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                streams.append(writer)
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                await reader.readuntil(b"hi")
            # Every application and access-log task has ended; the connections stay open.
            for _ in range(100):
                if len(asyncio.all_tasks()) <= baseline:
                    break
                await asyncio.sleep(0)
            assert len(asyncio.all_tasks()) <= baseline
        finally:
            for writer in streams:
                writer.close()
            stop.set()
            await asyncio.wait_for(server, 10)

    asyncio.run(asyncio.wait_for(main(), 20))
