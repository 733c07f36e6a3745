"""HTTP/3 on asyncio: a datagram endpoint around the shared
:class:`~hypercorn.driver.quic.QuicListener`.

asyncio reads the UDP socket (``loop.create_datagram_endpoint``) and calls
:meth:`_DatagramProtocol.datagram_received`, which hands each datagram to the listener;
the listener sends with the endpoint transport's ``sendto``. The applications of every QUIC
connection on the socket run as tasks of the worker's task group, tracked here so that
:meth:`~hypercorn.driver.quic.QuicListener.cancel` can cancel them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, final

from hypercorn.driver.quic import QuicListener, load_quic
from hypercorn.utils import parse_socket_addr

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable

    from hypercorn.asyncio.tcp_server import CreateTask
    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState

__all__ = ("listen_quic",)


@final
class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.listener: QuicListener | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.listener is not None:
            self.listener.datagram_received(data, addr)


async def listen_quic(
    sock: socket.socket,
    worker: WorkerState,
    connections: ConnectionTasks,
    create_task: CreateTask,
) -> QuicListener:
    """Serve HTTP/3 on the UDP socket ``sock`` until the listener finishes."""
    endpoint = load_quic(worker, parse_socket_addr(sock.family, sock.getsockname()))
    loop = asyncio.get_running_loop()
    protocol = _DatagramProtocol()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(function: Callable[..., Awaitable[None]], *args: object) -> None:
        async def run() -> None:
            await function(*args)

        task = create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def cancel_tasks() -> None:
        for task in list(tasks):
            task.cancel()

    protocol.listener = QuicListener(
        worker,
        endpoint,
        connections,
        sendto=transport.sendto,
        spawn=spawn,
        cancel_tasks=cancel_tasks,
        close_socket=transport.close,
    )
    return protocol.listener
