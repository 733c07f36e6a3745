"""A WebSocket echo server on one of our workers: the Autobahn testsuite's target.

Usage: ``python tools/ws_echo_server.py {asyncio,uvloop,trio} PORT``. It serves until
SIGINT or SIGTERM, then shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import sys

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope


async def echo(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Accept every WebSocket and send each message back as it came."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def main() -> None:
    worker, port = sys.argv[1], int(sys.argv[2])
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    if worker == "trio":
        import trio

        import hypercorn.trio

        trio.run(hypercorn.trio.serve, echo, config)
        return
    import hypercorn.asyncio

    if worker == "uvloop":
        import uvloop

        uvloop.run(hypercorn.asyncio.serve(echo, config))
    else:
        asyncio.run(hypercorn.asyncio.serve(echo, config))


if __name__ == "__main__":
    main()
