"""WebSockets: the websockets client over HTTP/1.1, wsproto raw, and RFC 8441 over h2c."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from ssl import SSLContext
from typing import Any

import pytest
import websockets.exceptions
import wsproto
import wsproto.connection
import wsproto.events
import wsproto.extensions
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from hypercorn.config import Config
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from tests.workers.support import (
    TIMEOUT,
    H2Client,
    Signal,
    TLSFiles,
    WorkerClass,
    connect,
    recv_until_eof,
    respond,
    running,
)

MIB = 1 << 20


class EchoApp:
    """Accepts (choosing the last offered subprotocol) and echoes; records what it saw."""

    def __init__(self) -> None:
        self.subprotocols: list[str] = []
        self.codes: list[int] = []
        self.done = Signal()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            await respond(send, 426, b"websockets only")
            return
        if scope["type"] != "websocket":
            return
        try:
            connect_message = await receive()
            assert connect_message["type"] == "websocket.connect"
            offered = list(scope["subprotocols"])
            self.subprotocols = offered
            if scope["path"] == "/deny":
                await send({"type": "websocket.close", "code": 1000})
                return
            if scope["path"] == "/denial-response":
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": 401,
                        "headers": [(b"content-length", b"6")],
                    }
                )
                await send({"type": "websocket.http.response.body", "body": b"denied"})
                return
            await send(
                {"type": "websocket.accept", "subprotocol": offered[-1] if offered else None}
            )
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.codes.append(message["code"])
                    return
                assert message["type"] == "websocket.receive"
                text = message.get("text")
                if text == "close-me":
                    await send({"type": "websocket.close", "code": 4002, "reason": "bye"})
                    return
                if text == "raise":
                    raise RuntimeError("app failure")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes")})
        finally:
            self.done.set()


def ws_url(url: str, path: str = "/ws") -> str:
    return url.replace("http", "ws", 1) + path


@pytest.fixture
def echo() -> EchoApp:
    return EchoApp()


def open_ws(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    compression: str | None = "deflate",
    max_size: int = MIB,
    ssl: SSLContext | None = None,
) -> ClientConnection:
    return ws_connect(
        url,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        subprotocols=None if subprotocols is None else [Subprotocol(s) for s in subprotocols],
        compression=compression,
        max_size=max_size,
        ssl=ssl,
    )


def test_echo_text_and_bytes(worker_class: WorkerClass, echo: EchoApp) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    with (
        running(echo, worker_class=worker_class) as server,
        open_ws(ws_url(server.url), max_size=2 * MIB) as ws,
    ):
        ws.send("hello")
        assert ws.recv(TIMEOUT) == "hello"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(TIMEOUT) == b"\x00\x01\x02"
        ws.send(big)
        assert ws.recv(TIMEOUT) == big
        ws.send("ünïcødé")
        assert ws.recv(TIMEOUT) == "ünïcødé"
    assert echo.done.wait_sync()
    assert echo.codes == [1000]


def test_subprotocol_negotiation(worker_class: WorkerClass, echo: EchoApp) -> None:
    with (
        running(echo, worker_class=worker_class) as server,
        open_ws(ws_url(server.url), subprotocols=["one", "two"]) as ws,
    ):
        assert ws.subprotocol == "two"
        ws.send("x")
        assert ws.recv(TIMEOUT) == "x"
    assert echo.subprotocols == ["one", "two"]


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going"), (4001, "custom")])
def test_client_close_code_reaches_the_app(
    worker_class: WorkerClass, echo: EchoApp, code: int, reason: str
) -> None:
    with running(echo, worker_class=worker_class) as server:
        with open_ws(ws_url(server.url)) as ws:
            ws.send("x")
            assert ws.recv(TIMEOUT) == "x"
            ws.close(code, reason)
        assert echo.done.wait_sync()
    assert echo.codes == [code]


def _ws_handshake(
    address: tuple[str, int], path: str = "/ws"
) -> tuple[socket.socket, wsproto.WSConnection]:
    sock = connect(address)
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    sock.sendall(ws.send(wsproto.events.Request(host=f"{address[0]}:{address[1]}", target=path)))
    while True:
        data = sock.recv(65536)
        assert data, "connection closed during the handshake"
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, wsproto.events.AcceptConnection):
                return sock, ws
            raise AssertionError(f"handshake refused: {event!r}")


def _ws_events(sock: socket.socket, ws: wsproto.WSConnection) -> Iterator[wsproto.events.Event]:
    while True:
        data = sock.recv(65536)
        ws.receive_data(data or None)
        yield from ws.events()
        if not data:
            return


def test_client_vanishing_gives_1006(worker_class: WorkerClass, echo: EchoApp) -> None:
    with running(echo, worker_class=worker_class) as server:
        sock, ws = _ws_handshake(server.address)
        sock.sendall(ws.send(wsproto.events.TextMessage("x")))
        for event in _ws_events(sock, ws):
            assert isinstance(event, wsproto.events.TextMessage)
            break
        sock.close()  # no close frame
        assert echo.done.wait_sync()
    assert echo.codes == [1006]


def test_client_close_without_code_gives_1005(worker_class: WorkerClass, echo: EchoApp) -> None:
    with running(echo, worker_class=worker_class) as server:
        sock, _ws = _ws_handshake(server.address)
        with sock:
            # A close frame with an empty payload: "no status code" (RFC 6455 §7.1.5).
            sock.sendall(b"\x88\x80\x00\x00\x00\x00")
            assert echo.done.wait_sync()
    assert echo.codes == [1005]


def test_app_close_code_reaches_the_client(worker_class: WorkerClass, echo: EchoApp) -> None:
    with running(echo, worker_class=worker_class) as server, open_ws(ws_url(server.url)) as ws:
        ws.send("close-me")
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            ws.recv(TIMEOUT)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4002
    assert info.value.rcvd.reason == "bye"


def test_app_exception_closes_with_1011(worker_class: WorkerClass, echo: EchoApp) -> None:
    with running(echo, worker_class=worker_class, expect_errors=True) as server:
        with open_ws(ws_url(server.url)) as ws:
            ws.send("raise")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                ws.recv(TIMEOUT)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1011
        # Only that client: the next one is served.
        with open_ws(ws_url(server.url)) as ws:
            ws.send("still here")
            assert ws.recv(TIMEOUT) == "still here"
        server.error_log.wait_for_message("Error in ASGI Framework")


def test_close_before_accept_is_403(worker_class: WorkerClass, echo: EchoApp) -> None:
    with (
        running(echo, worker_class=worker_class) as server,
        pytest.raises(websockets.exceptions.InvalidStatus) as info,
    ):
        open_ws(ws_url(server.url, "/deny"))
    assert info.value.response.status_code == 403


def test_denial_response(worker_class: WorkerClass, echo: EchoApp) -> None:
    with (
        running(echo, worker_class=worker_class) as server,
        pytest.raises(websockets.exceptions.InvalidStatus) as info,
    ):
        open_ws(ws_url(server.url, "/denial-response"))
    assert info.value.response.status_code == 401
    assert info.value.response.body == b"denied"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_permessage_deflate(
    worker_class: WorkerClass, echo: EchoApp, compression: str | None
) -> None:
    text = "compressible " * 50_000  # 650 kB of text
    with (
        running(echo, worker_class=worker_class) as server,
        open_ws(ws_url(server.url), compression=compression, max_size=2 * MIB) as ws,
    ):
        assert ws.response is not None
        header = ws.response.headers.get("sec-websocket-extensions", "")
        negotiated = [type(extension) for extension in ws.protocol.extensions]
        for _ in range(3):
            ws.send(text)
            assert ws.recv(TIMEOUT) == text
        ws.send(b"\x00" * 100_000)
        assert ws.recv(TIMEOUT) == b"\x00" * 100_000
    if compression is None:
        assert header == ""
        assert negotiated == []
    else:
        assert "permessage-deflate" in header
        assert negotiated == [PerMessageDeflate]


def test_secure_websocket(worker_class: WorkerClass, echo: EchoApp, tls_files: TLSFiles) -> None:
    with (
        running(echo, worker_class=worker_class, tls=tls_files) as server,
        open_ws(ws_url(server.https_url), ssl=tls_files.client_context()) as ws,
    ):
        ws.send("secret")
        assert ws.recv(TIMEOUT) == "secret"


def test_server_pings(worker_class: WorkerClass, echo: EchoApp) -> None:
    config = Config()
    config.websocket_ping_interval = 0.2
    with running(echo, config, worker_class) as server:
        sock, ws = _ws_handshake(server.address)
        with sock:
            pings = 0
            for event in _ws_events(sock, ws):
                if isinstance(event, wsproto.events.Ping):
                    pings += 1
                    sock.sendall(ws.send(event.response()))
                    if pings == 2:
                        break
            sock.sendall(ws.send(wsproto.events.CloseConnection(code=1000)))
            recv_until_eof(sock)
    assert pings == 2


def test_plain_http_request_to_websocket_app(worker_class: WorkerClass, echo: EchoApp) -> None:
    with running(echo, worker_class=worker_class) as server, connect(server.address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert recv_until_eof(sock).startswith(b"HTTP/1.1 426 ")


@pytest.mark.parametrize("deflate", [False, True])
def test_rfc8441_websocket_over_h2c(
    worker_class: WorkerClass, echo: EchoApp, deflate: bool
) -> None:
    with running(echo, worker_class=worker_class) as server, connect(server.address) as sock:
        client = H2Client(sock, f"127.0.0.1:{server.port}")
        client.receive_until(lambda: bool(client.conn.remote_settings.enable_connect_protocol))
        # ":protocol" makes it an extended CONNECT (RFC 8441 §4).
        extra = [
            (":protocol", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat"),
        ]
        if deflate:
            extra.append(("sec-websocket-extensions", "permessage-deflate"))
        stream_id = client.request("CONNECT", "/ws", headers=extra, end_stream=False)
        client.receive_until(lambda: stream_id in client.headers or stream_id in client.reset)
        assert stream_id not in client.reset
        headers = dict(client.headers[stream_id])
        assert headers[b":status"] == b"200"
        assert headers[b"sec-websocket-protocol"] == b"chat"
        extensions: list[wsproto.extensions.Extension] = []
        if deflate:
            assert b"permessage-deflate" in headers[b"sec-websocket-extensions"]
            deflate_extension = wsproto.extensions.PerMessageDeflate()
            deflate_extension.finalize(headers[b"sec-websocket-extensions"].decode())
            extensions.append(deflate_extension)
        ws = wsproto.connection.Connection(
            wsproto.connection.ConnectionType.CLIENT, extensions=extensions
        )

        def send_ws(event: wsproto.events.Event) -> None:
            client.send_body(stream_id, ws.send(event), end_stream=False)

        received: list[wsproto.events.Event] = []
        partial: list[wsproto.events.Message[Any]] = []

        def pump() -> None:
            data = client.data.pop(stream_id, bytearray())
            if data:
                ws.receive_data(bytes(data))
            for event in ws.events():
                if isinstance(event, wsproto.events.Message):
                    partial.append(event)  # wsproto hands over frames as they arrive
                    if event.message_finished:
                        first = partial[0]
                        if isinstance(first, wsproto.events.TextMessage):
                            text = "".join(str(piece.data) for piece in partial)
                            received.append(wsproto.events.TextMessage(text))
                        else:
                            whole = b"".join(bytes(piece.data) for piece in partial)
                            received.append(wsproto.events.BytesMessage(whole))
                        partial.clear()
                else:
                    received.append(event)

        def wait_message() -> wsproto.events.Event:
            def ready() -> bool:
                pump()
                return bool(received)

            client.receive_until(ready)
            return received.pop(0)

        send_ws(wsproto.events.TextMessage("over h2"))
        message = wait_message()
        assert isinstance(message, wsproto.events.TextMessage)
        assert message.data == "over h2"
        send_ws(wsproto.events.BytesMessage(b"\x01" * 70_000))  # beyond one window
        message = wait_message()
        assert isinstance(message, wsproto.events.BytesMessage)
        assert bytes(message.data) == b"\x01" * 70_000
        send_ws(wsproto.events.CloseConnection(code=4003))
        reply = wait_message()
        assert isinstance(reply, wsproto.events.CloseConnection)
        client.receive_until(lambda: stream_id in client.ended or stream_id in client.reset)
        assert echo.done.wait_sync()
    assert echo.codes == [4003]
    assert echo.subprotocols == ["chat"]


def test_keep_alive_timeout_does_not_close_an_open_websocket(
    worker_class: WorkerClass, echo: EchoApp
) -> None:
    config = Config()
    config.keep_alive_timeout = 0.2
    config.websocket_ping_interval = 0.1  # the server's pings are the test's clock
    with running(echo, config, worker_class) as server:
        sock, ws = _ws_handshake(server.address)
        with sock:
            pings = 0
            events = _ws_events(sock, ws)
            for event in events:
                if isinstance(event, wsproto.events.Ping):
                    pings += 1
                    sock.sendall(ws.send(event.response()))
                    if pings == 5:  # at least 0.5 s, over twice keep_alive_timeout
                        break
            sock.sendall(ws.send(wsproto.events.TextMessage("still open")))
            for event in events:
                if isinstance(event, wsproto.events.TextMessage):
                    assert event.data == "still open"
                    break
                assert isinstance(event, wsproto.events.Ping), event
                sock.sendall(ws.send(event.response()))
            sock.sendall(ws.send(wsproto.events.CloseConnection(code=1000)))
            recv_until_eof(sock)
    assert echo.codes == [1000]
