"""StatsD metrics over UDP from an asyncio (or uvloop) worker."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hypercorn.driver.serve import statsd_address
from hypercorn.statsd import StatsdLogger as _BaseStatsdLogger

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ("StatsdLogger",)


class StatsdLogger(_BaseStatsdLogger):
    """Sends each metric as one UDP datagram to ``config.statsd_host`` (``host:port``).

    The datagram endpoint is made on first use in the running loop (again if the logger is
    later used from another loop, or after :meth:`close`, which the worker calls when it
    stops). A datagram that cannot be sent is dropped: metrics never disturb serving.
    """

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.address = statsd_address(config.statsd_host)
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _endpoint(self, loop: asyncio.AbstractEventLoop) -> asyncio.DatagramTransport | None:
        transport = self._transport
        if transport is None or self._loop is not loop or transport.is_closing():
            return None
        return transport

    async def _socket_send(self, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        transport = self._endpoint(loop)
        if transport is None:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=self.address
                )
            except OSError:
                return
            if (current := self._endpoint(loop)) is not None:
                transport.close()  # another send made one meanwhile
                transport = current
            else:
                self._transport, self._loop = transport, loop
        transport.sendto(message)

    def close(self) -> None:
        """Close the datagram endpoint (the next metric makes a new one)."""
        transport, self._transport, self._loop = self._transport, None, None
        if transport is not None:
            transport.close()
