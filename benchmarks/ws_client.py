"""WebSocket echo load client: many connections, each keeping ``--inflight`` small messages
unanswered and sending the next one as each echo arrives, for a fixed time.

Runs in the client virtualenv (picows, a Cython WebSocket library, on uvloop) so the
client costs little next to the server. Prints one JSON line:
``{"messages": N, "seconds": S, "rate": N/S, "errors": E}``. Several processes can be
started by the runner (``--processes``) and their rates added up, if one cannot saturate
the server.

    python ws_client.py ws://127.0.0.1:8000/ws --connections 32 --duration 5 --size 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


class _EchoListener(WSListener):
    """Sends the payload again each time the echo comes back, counting round trips."""

    def __init__(self, payload: bytes, state: dict[str, Any], inflight: int) -> None:
        super().__init__()
        self.payload = payload
        self.state = state
        self.inflight = inflight

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def start(self) -> None:
        for _ in range(self.inflight):
            self.transport.send(WSMsgType.BINARY, self.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            self.state["errors"] += 1
            transport.disconnect()
            return
        if self.state["running"]:
            self.state["messages"] += 1
            transport.send(WSMsgType.BINARY, self.payload)
        else:
            self.state["drained"] += 1


async def run(
    url: str, connections: int, duration: float, size: int, inflight: int = 1
) -> dict[str, float]:
    state: dict[str, Any] = {"messages": 0, "errors": 0, "running": True, "drained": 0}
    payload = b"x" * size
    ctx: ssl.SSLContext | None = None
    if url.startswith("wss:"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    listeners: list[_EchoListener] = []
    for _ in range(connections):
        _, listener = await ws_connect(
            lambda: _EchoListener(payload, state, inflight), url, ssl_context=ctx
        )
        assert isinstance(listener, _EchoListener)
        listeners.append(listener)
    started = time.perf_counter()
    for listener in listeners:
        listener.start()
    await asyncio.sleep(duration)
    state["running"] = False
    elapsed = time.perf_counter() - started
    messages = state["messages"]
    for listener in listeners:
        listener.transport.send_close()
        listener.transport.disconnect()
    await asyncio.sleep(0.05)
    return {
        "messages": messages,
        "seconds": elapsed,
        "rate": messages / elapsed,
        "errors": state["errors"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=32, help="message size in bytes")
    parser.add_argument(
        "--inflight", type=int, default=1, help="messages each connection keeps unanswered"
    )
    args = parser.parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(
            run(args.url, args.connections, args.duration, args.size, args.inflight)
        )
    except ImportError:
        result = asyncio.run(
            run(args.url, args.connections, args.duration, args.size, args.inflight)
        )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
