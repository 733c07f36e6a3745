"""A complete HTTP/1.1, h2c and WebSocket server on hypercorn.protocol, without asyncio.

It uses nothing but the standard library's ``selectors`` and ``socket`` modules for I/O:
the protocol layer decides everything about the wire, and this file only moves bytes,
keeps time and runs the applications. ASGI applications are coroutines; here each one is
stepped by hand (``coroutine.send(None)``) and may await only ``receive()`` and
``send()`` — a real driver uses an event loop instead.

Run it with ``python selectors_server.py [PORT]`` (0 picks a free port); it prints
``listening on http://127.0.0.1:PORT`` and serves until interrupted.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from hypercorn.config import Config
from hypercorn.protocol import ServerConnection
from hypercorn.protocol.context import ProtocolContext, http_date
from hypercorn.protocol.events import ReceiveReady, SendReady, SpawnApp, StreamEnded
from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, Scope

Receive = Callable[[], Awaitable[ASGIReceiveEvent]]
Send = Callable[[ASGISendEvent], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo application: ``/echo`` returns the request body, WebSockets echo, else hello."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        body += message["body"]
        if not message["more_body"]:
            break
    if scope["path"] != "/echo":
        body = f"hello over HTTP/{scope['http_version']}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@types.coroutine
def _suspend() -> Generator[None, None, None]:
    """Give control back to the server until it resumes this application."""
    yield


class AppRunner:
    """Runs one ASGI application for one stream, one step at a time."""

    def __init__(self, connection: ServerConnection, stream_id: int, scope: Scope) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.coroutine: Coroutine[Any, Any, None] = app(scope, self.receive, self.send)
        self.started = time.monotonic()
        self.done = False

    async def receive(self) -> ASGIReceiveEvent:
        while (message := self.connection.app_receive(self.stream_id)) is None:
            await _suspend()  # resumed on ReceiveReady
        return message

    async def send(self, message: ASGISendEvent) -> None:
        self.connection.app_send(self.stream_id, message)
        while not self.connection.can_send(self.stream_id):
            await _suspend()  # resumed on SendReady

    def step(self) -> None:
        """Run the application until it waits again (or finishes)."""
        if self.done:
            return
        try:
            self.coroutine.send(None)
        except StopIteration:
            self.finish()
        except Exception as error:  # the application failed: the protocol answers 500
            print(f"application error: {error!r}", file=sys.stderr)
            self.finish()

    def finish(self) -> None:
        self.done = True
        self.connection.app_finished(self.stream_id)


class Client:
    """One accepted socket and its protocol connection."""

    def __init__(self, sock: socket.socket, context: ProtocolContext) -> None:
        self.sock = sock
        peer = sock.getpeername()
        local = sock.getsockname()
        self.connection = ServerConnection(
            context, ssl=False, client=(peer[0], peer[1]), server=(local[0], local[1])
        )
        self.apps: dict[int, AppRunner] = {}
        self.reading = True  # registered with the selector for reading

    def pump(self) -> None:
        """Write what the protocol produced and act on its events, until both are empty."""
        while True:
            data = self.connection.data_to_send()
            if data:
                self.sock.sendall(data)  # blocking writes keep the example short
            events = self.connection.events()
            if not events:
                return
            for event in events:
                if isinstance(event, SpawnApp):
                    runner = AppRunner(self.connection, event.stream_id, event.scope)
                    self.apps[event.stream_id] = runner
                    runner.step()
                elif isinstance(event, ReceiveReady | SendReady):
                    if (waiting := self.apps.get(event.stream_id)) is not None:
                        waiting.step()
                elif isinstance(event, StreamEnded):
                    ended = self.apps.get(event.stream_id)
                    status = event.response["status"] if event.response else "-"
                    took = time.monotonic() - ended.started if ended is not None else 0.0
                    path = event.scope["path"]
                    print(f"{path} -> {status} in {took * 1000:.1f} ms", flush=True)
            # Forget applications that have finished.
            for stream_id in [i for i, runner in self.apps.items() if runner.done]:
                del self.apps[stream_id]


def serve(port: int) -> None:
    context = ProtocolContext(Config())
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    clients: dict[socket.socket, Client] = {}
    print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)

    while True:
        # Time goes in; deadlines (keep-alive, WebSocket pings) come out.
        context.now = time.monotonic()
        context.set_date(http_date(time.time()))
        deadlines = [d for c in clients.values() if (d := c.connection.next_deadline())]
        timeout = max(0.0, min(deadlines) - context.now) if deadlines else 1.0
        for key, _ in selector.select(min(timeout, 1.0)):
            if key.fileobj is listener:
                sock, _ = listener.accept()
                clients[sock] = Client(sock, context)
                selector.register(sock, selectors.EVENT_READ)
                continue
            client = clients[key.fileobj]  # type: ignore[index]
            try:
                data = client.sock.recv(65536)
            except ConnectionError:
                data = b""
            context.now = time.monotonic()
            client.connection.receive_data(data)  # b"" tells it the peer closed
            client.pump()
        context.now = time.monotonic()
        for client in list(clients.values()):
            deadline = client.connection.next_deadline()
            if deadline is not None and deadline <= context.now:
                client.connection.handle_timer()
                client.pump()
            if client.connection.closed:
                if client.reading:
                    selector.unregister(client.sock)
                client.sock.close()
                del clients[client.sock]
            elif client.connection.reading_paused == client.reading:
                # Backpressure: stop reading while the protocol asks us to, resume after.
                if client.reading:
                    selector.unregister(client.sock)
                else:
                    selector.register(client.sock, selectors.EVENT_READ)
                client.reading = not client.reading


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
