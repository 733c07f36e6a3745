"""The ASGI application every benchmarked server runs.

Plain ASGI 3 with no imports beyond the standard library, so our server, Hypercorn 0.18,
uvicorn and granian (through its ASGI interface) all run exactly the same code:

* ``GET /`` (any path but the two below): ``200``, ``Hello, world!`` as text;
* ``POST /echo``: ``200`` with the request body sent back (read whole, then written);
* ``/ws`` (WebSocket): accepts and sends every text or binary message back.

Lifespan is answered (startup and shutdown complete at once) so that no server logs a
lifespan error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

HELLO_BODY = b"Hello, world!"
_HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(HELLO_BODY)).encode()),
    ],
}
_HELLO_BODY = {"type": "http.response.body", "body": HELLO_BODY}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The benchmark application: hello, POST echo, WebSocket echo and lifespan."""
    kind = scope["type"]
    if kind == "http":
        if scope["method"] == "POST" and scope["path"] == "/echo":
            await _echo(receive, send)
        else:
            # A fresh dict each time: a server may keep or alter the message it is given.
            await send(dict(_HELLO_START))
            await send(dict(_HELLO_BODY))
    elif kind == "websocket":
        await _websocket(receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)


async def _echo(receive: Receive, send: Send) -> None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _websocket(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
