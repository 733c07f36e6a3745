"""ServerConnection: one connection object from accept to close, whatever HTTP it speaks."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.protocol import ProtocolContext, ServerConnection
from hypercorn.protocol.context import Connection
from hypercorn.protocol.events import SpawnApp, StreamEnded
from tests.protocols.support import make_context

CLIENT = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 8000)


def _connection(context: ProtocolContext, alpn: str | None = None) -> ServerConnection:
    return ServerConnection(
        context, ssl=alpn is not None, client=CLIENT, server=SERVER, alpn_protocol=alpn
    )


def _answer(connection: ServerConnection, body: bytes) -> SpawnApp:
    """Act as the application for the one spawned stream: respond with ``body``."""
    [spawn] = [e for e in connection.events() if isinstance(e, SpawnApp)]
    connection.app_send(spawn.stream_id, {"type": "http.response.start", "status": 200})
    connection.app_send(spawn.stream_id, {"type": "http.response.body", "body": body})
    connection.app_finished(spawn.stream_id)
    return spawn


def _h2_client() -> h2.connection.H2Connection:
    return h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))


def _h2_response(client: h2.connection.H2Connection, data: bytes) -> tuple[int, bytes]:
    status, body = 0, b""
    for event in client.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived):
            status = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            body += event.data
    return status, body


def test_is_a_connection() -> None:
    connection: Connection = _connection(make_context())
    assert not connection.closed


def test_http11_by_default() -> None:
    connection = _connection(make_context())
    assert connection.protocol == "h11"
    connection.receive_data(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    _answer(connection, b"one")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "a")]))
    client.receive_data(connection.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 200
    assert (b"server", b"hypercorn-h11") in response.headers.raw_items()


def test_alpn_h2_starts_as_http2() -> None:
    connection = _connection(make_context(), alpn="h2")
    assert connection.protocol == "h2"
    client = _h2_client()
    client.initiate_connection()
    client.send_headers(
        1,
        [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")],
        end_stream=True,
    )
    connection.receive_data(client.data_to_send())
    spawn = _answer(connection, b"two")
    assert spawn.scope["scheme"] == "https"
    assert spawn.scope["http_version"] == "2"
    assert _h2_response(client, connection.data_to_send()) == (200, b"two")


def test_prior_knowledge_switches_to_http2() -> None:
    connection = _connection(make_context())
    client = _h2_client()
    client.initiate_connection()
    client.send_headers(
        1,
        [(":method", "GET"), (":path", "/x"), (":scheme", "http"), (":authority", "a")],
        end_stream=True,
    )
    preface_and_request = client.data_to_send()
    # The preface arrives in two pieces: the switch must hand over every byte.
    connection.receive_data(preface_and_request[:5])
    connection.receive_data(preface_and_request[5:])
    assert connection.protocol == "h2"
    spawn = _answer(connection, b"prior")
    assert spawn.scope["path"] == "/x"
    assert _h2_response(client, connection.data_to_send()) == (200, b"prior")


def test_h2c_upgrade_answers_101_then_http2_on_stream_1() -> None:
    connection = _connection(make_context())
    client = _h2_client()
    settings_header = client.initiate_upgrade_connection()  # already base64url
    assert settings_header is not None
    connection.receive_data(
        b"GET /up HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        b"upgrade: h2c\r\nhttp2-settings: " + settings_header + b"\r\n\r\n"
    )
    assert connection.protocol == "h2"
    spawn = _answer(connection, b"upgraded")
    assert spawn.stream_id == 1
    assert spawn.scope["path"] == "/up"
    data = connection.data_to_send()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: h2c" in head.lower()
    assert _h2_response(client, rest) == (200, b"upgraded")


def test_events_of_the_replaced_connection_come_first() -> None:
    """A StreamEnded raised by HTTP/1.1 before the switch is not lost."""
    connection = _connection(make_context())
    connection.receive_data(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    _answer(connection, b"first")
    first = connection.data_to_send()
    assert first.startswith(b"HTTP/1.1 200")
    assert any(isinstance(e, StreamEnded) for e in connection.events())
    assert connection.protocol == "h11"


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET / HTTP/1.1\r\n"]),
    noise=st.binary(max_size=512),
    cut=st.integers(min_value=0, max_value=600),
)
def test_any_bytes_end_in_a_sane_state(prefix: bytes, noise: bytes, cut: int) -> None:
    """Whatever arrives, the connection raises nothing and its output stays bounded."""
    connection = _connection(make_context())
    data = prefix + noise
    for piece in (data[:cut], data[cut:], b""):
        connection.receive_data(piece)
        assert len(connection.data_to_send()) < 64 * 1024
        for event in connection.events():
            if isinstance(event, SpawnApp):
                connection.app_finished(event.stream_id)
    assert connection.closed
