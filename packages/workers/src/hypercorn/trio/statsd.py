"""StatsD metrics over UDP from a trio worker."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.driver.serve import statsd_address
from hypercorn.statsd import StatsdLogger as _BaseStatsdLogger

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ("StatsdLogger",)


class StatsdLogger(_BaseStatsdLogger):
    """Sends each metric as one UDP datagram to ``config.statsd_host`` (``host:port``).

    The socket is made (and the host resolved) on first use, and again after
    :meth:`close`, which the worker calls when it stops. A datagram that cannot be sent is
    dropped: metrics never disturb serving.
    """

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.address = statsd_address(config.statsd_host)
        self._socket: trio.socket.SocketType | None = None
        self._target: Any = None

    async def _socket_send(self, message: bytes) -> None:
        try:
            if self._socket is None:
                host, port = self.address
                infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
                family, kind, proto, _, target = infos[0]
                if self._socket is None:  # not made by another send meanwhile
                    self._socket = trio.socket.socket(family, kind, proto)
                    self._target = target
            await self._socket.sendto(message, self._target)
        except OSError:
            return

    def close(self) -> None:
        """Close the socket (the next metric makes a new one)."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
