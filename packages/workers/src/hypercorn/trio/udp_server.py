"""HTTP/3 on trio: a reading task around the shared
:class:`~hypercorn.driver.quic.QuicListener`.

One task reads the UDP socket and hands each datagram to the listener; the listener sends
with the socket's own non-blocking ``sendto`` (no await: a datagram the kernel cannot take
now is dropped, and QUIC retransmits it). The applications of every QUIC connection on the
socket run in a nursery inside that task, so
:meth:`~hypercorn.driver.quic.QuicListener.cancel` (one cancel scope) ends them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from hypercorn.driver.quic import QuicListener, load_quic
from hypercorn.utils import parse_socket_addr

if TYPE_CHECKING:
    import socket

    from hypercorn.driver.serve import ConnectionTasks
    from hypercorn.driver.worker import WorkerState
    from hypercorn.protocol.quic import QuicEndpoint

__all__ = ("listen_quic",)

#: The largest UDP payload; QUIC datagrams are far smaller, anything bigger is cut.
MAX_DATAGRAM = 65535


async def listen_quic(
    nursery: trio.Nursery,
    sock: socket.socket,
    worker: WorkerState,
    connections: ConnectionTasks,
) -> QuicListener:
    """Serve HTTP/3 on the UDP socket ``sock``, as a task of ``nursery``."""
    endpoint = load_quic(worker, parse_socket_addr(sock.family, sock.getsockname()))
    listener: QuicListener = await nursery.start(_serve, sock, worker, connections, endpoint)
    return listener


async def _serve(
    sock: socket.socket,
    worker: WorkerState,
    connections: ConnectionTasks,
    endpoint: QuicEndpoint,
    *,
    task_status: trio.TaskStatus[QuicListener] = trio.TASK_STATUS_IGNORED,
) -> None:
    reader = trio.socket.from_stdlib_socket(sock)
    scope = trio.CancelScope()
    with scope:
        async with trio.open_nursery() as applications:

            def close_socket() -> None:
                scope.cancel()  # ends the reading loop (and nothing else is left)

            def sendto(data: bytes, address: tuple[Any, ...]) -> None:
                sock.sendto(data, address)

            listener = QuicListener(
                worker,
                endpoint,
                connections,
                sendto=sendto,
                spawn=applications.start_soon,
                cancel_tasks=applications.cancel_scope.cancel,
                close_socket=close_socket,
            )
            task_status.started(listener)
            while True:
                try:
                    data, address = await reader.recvfrom(MAX_DATAGRAM)
                except OSError:  # e.g. ICMP port unreachable reported on the socket
                    continue
                listener.datagram_received(data, address)
    reader.close()
