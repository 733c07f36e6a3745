"""Sans-IO HTTP/1.1, HTTP/2 and WebSocket state machines that speak ASGI.

Nothing in this package performs I/O, reads a clock, sleeps, logs or awaits: connections
are fed bytes and the time, and hand back bytes to write and events for the driver that
runs the applications. See :mod:`hypercorn.protocol.context` for the contracts.
"""
