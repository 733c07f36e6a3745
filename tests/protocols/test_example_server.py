"""The documented selectors example is a working server: run it and talk to it.

The example in docs/examples/selectors_server.py drives hypercorn.protocol with nothing but
selectors and sockets; docs/protocol.md shows the same file verbatim.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
import wsproto
import wsproto.events

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "selectors_server.py"
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLE), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("listening on http://127.0.0.1:"), line
            yield int(line.rsplit(":", 1)[1])
        finally:
            process.terminate()
            _, errors = process.communicate(timeout=TIMEOUT)
    # The example reports application failures on stderr: there must be none.
    assert "Traceback" not in errors, errors
    assert "error" not in errors, errors


def test_docs_page_shows_the_tested_file() -> None:
    page = (ROOT / "docs" / "protocol.md").read_text()
    start = page.index("```python\n", page.index("<!-- example: selectors_server.py -->"))
    block = page[start + len("```python\n") : page.index("\n```", start)] + "\n"
    assert block == EXAMPLE.read_text()


def test_http11_keep_alive_and_body(port: int) -> None:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    client.request("GET", "/")
    response = client.getresponse()
    assert response.status == 200
    assert response.read() == b"hello over HTTP/1.1\n"
    assert response.getheader("server") == "hypercorn-h11"
    assert response.getheader("date")
    client.request("POST", "/echo", body=b"x" * 100_000)  # same connection, kept alive
    response = client.getresponse()
    assert response.read() == b"x" * 100_000
    client.close()


def _h2_request(sock: socket.socket, path: str) -> tuple[int, bytes]:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(
        stream_id,
        [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")],
        end_stream=True,
    )
    sock.sendall(conn.data_to_send())
    status, body = 0, b""
    while True:
        data = sock.recv(65536)
        assert data, "server closed the connection"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                return status, body
        sock.sendall(conn.data_to_send())


def test_http2_prior_knowledge(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        assert _h2_request(sock, "/") == (200, b"hello over HTTP/2\n")


def test_websocket_echo(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        sock.sendall(ws.send(wsproto.events.Request(host="127.0.0.1", target="/ws")))
        received: list[wsproto.events.Event] = []

        def until(kind: type) -> wsproto.events.Event:
            while True:
                for event in received:
                    if isinstance(event, kind):
                        received.remove(event)
                        return event
                data = sock.recv(65536)
                assert data, "server closed the connection"
                ws.receive_data(data)
                received.extend(ws.events())

        until(wsproto.events.AcceptConnection)
        sock.sendall(ws.send(wsproto.events.TextMessage(data="ping?")))
        message = until(wsproto.events.TextMessage)
        assert isinstance(message, wsproto.events.TextMessage)
        assert message.data == "ping?"
        sock.sendall(ws.send(wsproto.events.CloseConnection(code=1000)))
        closed = until(wsproto.events.CloseConnection)
        assert isinstance(closed, wsproto.events.CloseConnection)
