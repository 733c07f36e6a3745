"""A small ASGI application with no dependencies, to try the server with.

Serve it from the repository root with ``hypercorn examples/app.py:app``, then:

* ``GET /`` answers with a short text page: the HTTP version that carried the request
  (``1.1``, ``2``, ...), the ASGI version, the address the server listens on and the pid
  of the worker process that answered;
* ``POST /echo`` answers with the request body;
* ``/ws`` is a WebSocket that sends every text or binary message back;
* everything else is a 404.

It takes part in lifespan: the startup time it records is shown on the page.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the types only; the application itself imports nothing from hypercorn
    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        HTTPScope,
        LifespanScope,
        Scope,
        WebsocketScope,
    )


async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)


async def lifespan(
    scope: LifespanScope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        body += message["body"]
        if not message["more_body"]:
            break

    route = (scope["method"], scope["path"])
    if route == ("GET", "/"):
        await respond(send, 200, page(scope).encode(), b"text/plain; charset=utf-8")
    elif route == ("POST", "/echo"):
        content_type = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
        await respond(send, 200, bytes(body), content_type)
    else:
        await respond(send, 404, b"not found\n", b"text/plain; charset=utf-8")


def page(scope: HTTPScope) -> str:
    asgi = scope["asgi"]
    server = scope["server"]
    where = "a unix socket" if server is None or server[1] is None else f"{server[0]}:{server[1]}"
    started = scope["state"].get("started")
    since = (
        "no lifespan" if started is None else time.strftime("%H:%M:%S", time.localtime(started))
    )
    return (
        "Hello from examples/app.py\n"
        f"HTTP version: {scope['http_version']}\n"
        f"ASGI: {asgi.get('version', '2.0')} (spec {asgi.get('spec_version', '2.0')})\n"
        f"server: {where}\n"
        f"worker pid: {os.getpid()}, started {since}\n"
    )


async def respond(send: ASGISendCallable, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def websocket(
    scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        return
    if scope["path"] != "/ws":
        await send({"type": "websocket.close"})  # refused: the client sees 403
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        if message["text"] is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
