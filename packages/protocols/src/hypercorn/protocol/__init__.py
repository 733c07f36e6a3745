"""Sans-IO HTTP/1.1, HTTP/2 and WebSocket state machines that speak ASGI.

Nothing in this package performs I/O, reads a clock, sleeps, logs or awaits: connections
are fed bytes and the time, and hand back bytes to write and events for the driver that
runs the applications. Start with :class:`ServerConnection` (one per client connection)
and :class:`~hypercorn.protocol.context.ProtocolContext` (one per server); the contracts
between the pieces are in :mod:`hypercorn.protocol.context`, and the docs page "Building a
server on hypercorn.protocol" walks through a complete driver.
"""

from hypercorn.protocol.context import ProtocolContext, http_date
from hypercorn.protocol.server import ServerConnection

__all__ = ("ProtocolContext", "ServerConnection", "http_date")
