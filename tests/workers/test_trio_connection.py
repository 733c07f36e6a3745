"""What is particular to trio connections: how few tasks an idle one keeps, and how the tasks
of a connection are tracked (errors, graceful shutdown) on both of trio's transports.

Plain TCP connections run their applications in the worker's nursery under scopes the
:class:`hypercorn.trio.tcp_server.SocketTransport` keeps; TLS connections in a nursery of
their own. Both must log an error escaping a connection's task, drop that connection only,
and have graceful shutdown cancel an application that waits for a queued response.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import trio
import trio.testing

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.logging import Logger
from hypercorn.trio.run import worker_serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    Signal,
    TLSFiles,
    connect,
    recv_until,
    respond,
    running,
    start,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def hello(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "http":
        await respond(send, 200, b"hi")


def open_client(address: tuple[str, int], tls: TLSFiles | None) -> socket.socket:
    """A blocking client socket (TLS with ``tls``'s CA when given)."""
    sock = connect(address)
    if tls is None:
        return sock
    return tls.client_context().wrap_socket(sock, server_hostname="localhost")


def read_until_closed(sock: socket.socket) -> bytes:
    """What arrives until the server closes or drops the connection (TimeoutError if not)."""
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise
        except OSError:  # reset, or TLS cut without close_notify
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def _all_tasks() -> list[trio.lowlevel.Task]:
    tasks = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        assert task is not None
        tasks.append(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return tasks


def test_idle_keep_alive_connections_are_one_task_each_with_no_nursery() -> None:
    def hold(port: int, count: int) -> list[socket.socket]:
        socks = []
        for _ in range(count):
            sock = connect(("127.0.0.1", port))
            sock.sendall(REQUEST)
            recv_until(sock, b"hi")
            socks.append(sock)
        return socks

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        sockets = config.create_sockets()
        port = sockets.insecure_sockets[0].getsockname()[1]
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: worker_serve(
                    ASGIWrapper(hello), config, sockets=sockets, shutdown_trigger=stop.wait
                )
            )
            socks = await trio.to_thread.run_sync(hold, port, 20)
            try:
                # The applications have returned (the responses arrived); let them unwind.
                await trio.testing.wait_all_tasks_blocked()
                names = [task.name for task in _all_tasks()]
                connections = [
                    task for task in _all_tasks() if task.name.endswith("SocketTransport.serve")
                ]
                assert len(connections) == 20, names
                assert all(task.child_nurseries == [] for task in connections)
                assert not [name for name in names if "SocketTransport._run_task" in name]
            finally:
                for sock in socks:
                    sock.close()
                stop.set()

    trio.run(main)


class FailingAccessLogger(Logger):
    """A logger whose access lines fail: an error in a connection's task, not in an app."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        raise RuntimeError("the access log is broken")


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
def test_an_error_outside_the_application_drops_only_its_connection(
    secure: bool, tls_files: TLSFiles
) -> None:
    config = Config()
    config.logger_class = FailingAccessLogger
    tls = tls_files if secure else None
    with running(hello, config, "trio", tls=tls, expect_errors=True) as server:
        address = server.https_address if secure else server.http_address
        for _ in range(2):  # the worker goes on serving new connections
            with open_client(address, tls) as sock:
                sock.sendall(REQUEST)
                # The connection is dropped (although the response keeps it alive) once the
                # access line failed, with or without the response: plain TCP sent it at
                # once, TLS had it queued for the writer task.
                response = read_until_closed(sock)
                assert response == b"" or response.endswith(b"\r\n\r\nhi"), response
        server.error_log.wait_for(lambda messages: messages.count("Error in connection") == 2)
    errors = [text for text in server.error_log.texts if text.startswith("ERROR")]
    assert len(errors) == 2, errors
    assert all("RuntimeError: the access log is broken" in text for text in errors)


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
def test_graceful_timeout_drops_a_queued_response_and_cancels_its_application(
    secure: bool, tls_files: TLSFiles
) -> None:
    entered = Signal()
    exited = Signal()

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            entered.set()
            # More than the socket buffers take: the rest waits in the transport's queue (a
            # writer task waits for the socket), and this send waits for it to drain.
            body = b"x" * (16 << 20)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            exited.set()

    config = Config()
    config.graceful_timeout = 0.5
    tls = tls_files if secure else None
    server = start(app, config, "trio", tls=tls)
    try:
        address = server.https_address if secure else server.http_address
        with open_client(address, tls) as sock:
            sock.sendall(REQUEST)
            recv_until(sock, b"\r\n\r\n")  # and nothing more is read
            assert entered.wait_sync()
            started = time.monotonic()
            server.stop()
            server.join()
            elapsed = time.monotonic() - started
        assert exited.wait_sync(TIMEOUT)
        server.assert_no_errors()
    finally:
        server.stop()
        server.close_sockets()
    assert elapsed < 5.0, elapsed
