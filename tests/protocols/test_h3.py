"""The HTTP/3 connection: requests, bodies, flow control, trailers, hints, push, WebSockets,
shutdown and timeouts.

The peer is aioquic's client-side ``QuicConnection`` and ``H3Connection``; datagrams move
in memory through our :class:`~hypercorn.protocol.quic.QuicEndpoint` with a fake clock
(:class:`~tests.protocols.h3_support.Network`). The test acts as the driver and the
application by calling ``app_receive``/``app_send``/``app_finished``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import ErrorCode, FrameType, Setting, encode_frame
from aioquic.quic.events import StopSendingReceived, StreamDataReceived
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from hypercorn.protocol import h3
from hypercorn.protocol.events import ReceiveReady, SendReady, SpawnApp, StreamEnded
from hypercorn.protocol.h3 import BUFFER_HIGH_WATER, H3Connection
from hypercorn.protocol.quic import QuicEndpoint
from hypercorn.typing import ASGISendEvent
from tests.protocols.h3_support import (
    CLIENT_ADDRESS,
    Certificates,
    Client,
    Network,
    make_certificates,
)
from tests.protocols.support import DATE, SERVER, Headers, body_of

DEFAULT_HEADERS: Headers = [(b"date", DATE), (b"server", b"hypercorn-h3")]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("h3")))


def started(certificates: Certificates, **options: Any) -> tuple[Network, Client]:
    network = Network(certificates, certificates.config(**options))
    client = network.client()
    return network, client


def gone(client: Client) -> bool:
    """Whether the client's connection was terminated (a call, for mypy)."""
    return client.terminated is not None


def close_code(client: Client) -> int:
    assert client.terminated is not None
    return client.terminated.error_code


def ended(client: Client, stream_id: int) -> bool:
    """Whether the client saw the end of the stream (a call: mypy must not narrow it)."""
    return client.responses[stream_id].ended


# ---------------------------------------------------------------------------------------
# Start and requests
# ---------------------------------------------------------------------------------------


def test_handshake_and_settings(certificates: Certificates) -> None:
    network, client = started(certificates)
    settings = client.h3.received_settings
    assert settings is not None
    # RFC 9220: WebSockets over extended CONNECT are offered.
    assert settings[Setting.ENABLE_CONNECT_PROTOCOL] == 1
    server = network.server
    assert not server.closed
    assert not server.reading_paused
    assert network.endpoint.connections == [server]


def test_get_scope_and_response(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(
        method=b"get",
        path=b"/a%20b?x=1",
        authority=b"localhost:4433",
        headers=[(b"user-agent", b"test"), (b"cookie", b"a=1")],
    )
    network.exchange()
    scope = network.spawned()[stream_id]
    assert scope["http_version"] == "3"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/a b"
    assert scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["headers"][0] == (b"host", b"localhost:4433")
    assert (b"user-agent", b"test") in scope["headers"]
    assert scope["client"] == CLIENT_ADDRESS
    assert scope["server"] == SERVER
    assert {"http.response.trailers", "http.response.push", "http.response.early_hint"} <= set(
        scope["extensions"]
    )
    assert network.receive_all(stream_id) == [
        {"type": "http.request", "body": b"", "more_body": False}
    ]
    network.respond(stream_id, b"hello", headers=[(b"content-type", b"text/plain")])
    network.exchange()
    response = client.responses[stream_id]
    assert response.headers == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        *DEFAULT_HEADERS,
    ]
    assert response.data == b"hello"
    assert response.ended
    [end] = [event for event in network.take_driver() if isinstance(event, StreamEnded)]
    assert end.response == {"status": 200, "headers": [(b"content-type", b"text/plain")]}


def test_connection_specific_headers_are_dropped(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    network.respond(
        stream_id,
        headers=[
            (b"connection", b"close"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-connection", b"x"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h3"),
            (b"te", b"trailers"),
            (b"x-kept", b"1"),
        ],
    )
    network.exchange()
    # aioquic's client would have failed the connection on any of them.
    assert not gone(client)
    assert client.responses[stream_id].headers == [
        (b":status", b"200"),
        (b"x-kept", b"1"),
        *DEFAULT_HEADERS,
    ]


@pytest.mark.parametrize("header", [(b"x-bad", b"a\r\nb"), (b"bad name", b"1")])
def test_invalid_response_header_is_a_value_error(
    certificates: Certificates, header: tuple[bytes, bytes]
) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": [header]})
    with pytest.raises(ValueError, match="Invalid HTTP/3 header"):
        server.app_send(stream_id, {"type": "http.response.body", "body": b"x"})
    server.app_finished(stream_id)  # nothing went out: a clean 500
    network.exchange()
    assert client.responses[stream_id].status == 500
    assert ended(client, stream_id)


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204)])
def test_bodyless_response_is_one_headers_frame_with_fin(
    certificates: Certificates, method: bytes, status: int
) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=method)
    network.exchange()
    network.respond(stream_id, b"ignored", status=status)
    network.exchange()
    response = client.responses[stream_id]
    assert response.status == status
    assert response.data == b""
    assert response.ended


def test_app_without_response_gets_500(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    network.server.app_finished(stream_id)
    network.exchange()
    response = client.responses[stream_id]
    assert response.status == 500
    assert (b"content-length", b"0") in response.headers
    assert response.ended


def test_app_failing_mid_response_resets_the_stream(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    server.app_send(stream_id, {"type": "http.response.body", "body": b"part", "more_body": True})
    network.exchange()
    server.app_finished(stream_id)
    network.exchange()
    response = client.responses[stream_id]
    assert response.reset == ErrorCode.H3_INTERNAL_ERROR
    assert not response.ended
    assert not gone(client)


def test_many_concurrent_streams(certificates: Certificates) -> None:
    network, client = started(certificates)
    streams = [client.request(path=f"/{n}".encode()) for n in range(60)]
    network.exchange()
    spawned = network.spawned()
    assert sorted(spawned) == streams
    for stream_id in reversed(streams):
        network.respond(stream_id, spawned[stream_id]["path"].encode())
    network.run(lambda: all(ended(client, stream_id) for stream_id in streams))
    for stream_id in streams:
        assert client.responses[stream_id].data == spawned[stream_id]["path"].encode()


def test_too_many_running_applications_are_rejected(certificates: Certificates) -> None:
    network, client = started(certificates, h2_max_concurrent_streams=2)
    first, second, third = (client.request() for _ in range(3))
    network.exchange()
    assert sorted(network.spawned()) == [first, second]
    assert client.responses[third].reset == ErrorCode.H3_REQUEST_REJECTED
    network.respond(first)
    network.exchange()
    fourth = client.request()
    network.exchange()
    assert list(network.spawned()) == [fourth]


# ---------------------------------------------------------------------------------------
# Bodies and flow control
# ---------------------------------------------------------------------------------------


def test_large_bodies_both_ways_with_backpressure(certificates: Certificates) -> None:
    network, client = started(certificates)
    # Larger than aioquic's initial 1 MiB stream and connection windows.
    upload = bytes(range(256)) * 12_000  # ~3 MB
    stream_id = client.request(method=b"POST", body=upload)
    network.run(lambda: upload == body_of(network.read(stream_id)), seconds=30)
    network.take_driver()

    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    download = b"z" * 3_000_000
    chunk = 64 * 1024
    sent = 0
    blocked = 0
    for _ in range(10_000):
        while sent < len(download) and server.can_send(stream_id):
            part = download[sent : sent + chunk]
            sent += len(part)
            server.app_send(
                stream_id,
                {"type": "http.response.body", "body": part, "more_body": sent < len(download)},
            )
        if sent >= len(download):
            break
        blocked += 1
        # The application waits for SendReady; the network keeps moving meanwhile.
        network.run(lambda: any(isinstance(e, SendReady) for e in network.driver), seconds=30)
        assert SendReady(stream_id) in network.take_driver()
    assert blocked > 0
    server.app_finished(stream_id)
    network.run(lambda: ended(client, stream_id), seconds=30)
    assert client.responses[stream_id].data == download


def test_can_send_counts_the_unsent_bytes(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    server.app_send(
        stream_id,
        {"type": "http.response.body", "body": b"x" * (BUFFER_HIGH_WATER + 1), "more_body": True},
    )
    assert not server.can_send(stream_id)
    network.run(lambda: SendReady(stream_id) in network.driver)
    assert server.can_send(stream_id)
    assert server.can_send(999)  # an unknown stream never blocks


def test_request_trailers_and_body_events(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=b"POST", body=b"abc", end=False)
    network.exchange()
    client.h3.send_headers(stream_id, [(b"x-checksum", b"1")], end_stream=True)
    network.exchange()
    assert body_of(network.receive_all(stream_id)) == b"abc"
    network.respond(stream_id, b"ok")
    network.exchange()
    assert client.responses[stream_id].data == b"ok"


# ---------------------------------------------------------------------------------------
# Trailers, early hints, push
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("te_trailers", [True, False])
def test_response_trailers(certificates: Certificates, te_trailers: bool) -> None:
    network, client = started(certificates)
    stream_id = client.request(headers=[(b"te", b"trailers")] if te_trailers else [])
    network.exchange()
    server = network.server
    server.app_send(
        stream_id, {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
    )
    server.app_send(stream_id, {"type": "http.response.body", "body": b"data"})
    server.app_send(
        stream_id,
        {"type": "http.response.trailers", "headers": [(b"x-sum", b"42")], "more_trailers": False},
    )
    server.app_finished(stream_id)
    network.exchange()
    response = client.responses[stream_id]
    assert response.data == b"data"
    assert response.ended
    assert response.trailers == ([(b"x-sum", b"42")] if te_trailers else None)


@pytest.mark.skipif(
    not h3._INFORMATIONAL_HEADS,
    reason="aioquic 1.3 (Python 3.10) takes a second head for trailers",
)
def test_early_hints_are_informational_heads(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    network.server.app_send(
        stream_id,
        {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]},
    )
    network.respond(stream_id, b"page")
    network.exchange()
    response = client.responses[stream_id]
    assert response.informational == [
        [(b":status", b"103"), (b"link", b"</style.css>; rel=preload"), *DEFAULT_HEADERS]
    ]
    assert response.status == 200
    assert response.data == b"page"


def test_server_push(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(path=b"/index.html")
    network.exchange()
    network.take_driver()
    push: ASGISendEvent = {
        "type": "http.response.push",
        "path": "/style.css",
        "headers": [(b"accept", b"text/css")],
    }
    network.server.app_send(stream_id, push)
    network.respond(stream_id, b"<html>")
    network.exchange()
    [promise] = client.pushes
    assert promise.stream_id == stream_id
    assert promise.headers == [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", b"/style.css"),
        (b"accept", b"text/css"),
    ]
    [(pushed_id, scope)] = network.spawned().items()
    assert scope["path"] == "/style.css"
    assert scope["http_version"] == "3"
    assert scope["headers"][0] == (b"host", b"localhost")
    assert network.receive_all(pushed_id) == [
        {"type": "http.request", "body": b"", "more_body": False}
    ]
    network.respond(pushed_id, b"body{}", headers=[(b"content-type", b"text/css")])
    network.exchange()
    assert client.responses[stream_id].data == b"<html>"
    pushed = client.responses[pushed_id]
    assert pushed.push_id == promise.push_id
    assert pushed.data == b"body{}"
    assert pushed.ended


def test_pushes_beyond_the_clients_max_push_id_are_dropped(
    certificates: Certificates,
) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    network.take_driver()
    for n in range(12):
        push: ASGISendEvent = {"type": "http.response.push", "path": f"/{n}", "headers": []}
        network.server.app_send(stream_id, push)
    network.respond(stream_id, b"ok")
    network.exchange()
    # The client's MAX_PUSH_ID: 8 with aioquic 1.7's client (push ids 0 to 8), 7 with 1.3's.
    assert len(client.pushes) in (8, 9)
    assert len(network.spawned()) == len(client.pushes)
    assert client.responses[stream_id].data == b"ok"
    assert not gone(client)


# ---------------------------------------------------------------------------------------
# WebSockets over HTTP/3 (RFC 9220)
# ---------------------------------------------------------------------------------------


def test_extended_connect_websocket(certificates: Certificates) -> None:
    network, client = started(certificates, websocket_ping_interval=20.0)
    stream_id = client.request(
        method=b"CONNECT",
        path=b"/chat",
        extra_pseudo=[(b":protocol", b"websocket")],
        headers=[(b"sec-websocket-version", b"13")],
        end=False,
    )
    network.exchange()
    scope = network.spawned()[stream_id]
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "3"
    assert scope["scheme"] == "wss"
    assert scope["path"] == "/chat"
    server = network.server
    assert network.receive_all(stream_id) == [{"type": "websocket.connect"}]
    server.app_send(stream_id, {"type": "websocket.accept"})
    network.exchange()
    assert client.responses[stream_id].status == 200
    assert not ended(client, stream_id)

    ws = WSConnection(ConnectionType.CLIENT)
    client.h3.send_data(stream_id, ws.send(TextMessage(data="hello")), end_stream=False)
    network.exchange()
    [message] = network.receive_all(stream_id)
    assert message == {"type": "websocket.receive", "bytes": None, "text": "hello"}
    server.app_send(stream_id, {"type": "websocket.send", "text": "hello back"})
    network.exchange()
    ws.receive_data(client.responses[stream_id].data)
    assert [e.data for e in ws.events() if isinstance(e, TextMessage)] == ["hello back"]

    # A quiet WebSocket: the stream's pings are sent, and the connection does not idle out.
    client.responses[stream_id].data = b""
    network.advance(65.0)
    assert not gone(client)
    ws.receive_data(client.responses[stream_id].data)
    assert len([e for e in ws.events() if isinstance(e, Ping)]) == 3

    client.responses[stream_id].data = b""
    server.app_send(stream_id, {"type": "websocket.send", "bytes": b"\x00\x01"})
    server.app_send(stream_id, {"type": "websocket.close", "code": 1000})
    server.app_finished(stream_id)
    network.exchange()
    assert ended(client, stream_id)
    ws.receive_data(client.responses[stream_id].data)
    events = list(ws.events())
    assert [e.data for e in events if isinstance(e, BytesMessage)] == [b"\x00\x01"]
    assert any(isinstance(e, CloseConnection) for e in events)


# ---------------------------------------------------------------------------------------
# The client going away, shutdown, limits and timeouts
# ---------------------------------------------------------------------------------------


def test_client_aborting_its_upload_cancels_the_request(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=b"POST", body=b"start", end=False)
    network.exchange()
    network.take_driver()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    server.app_send(stream_id, {"type": "http.response.body", "body": b"x", "more_body": True})
    network.exchange()
    client.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
    network.exchange()
    assert network.read(stream_id)[-1] == {"type": "http.disconnect"}
    assert client.responses[stream_id].reset == ErrorCode.H3_REQUEST_CANCELLED
    server.app_finished(stream_id)
    network.exchange()
    assert not gone(client)


def test_complete_response_stops_the_rest_of_the_upload(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=b"POST", body=b"part", end=False)
    network.exchange()
    network.take_driver()
    network.respond(stream_id, b"too large", status=413)
    network.exchange()
    assert client.responses[stream_id].status == 413
    assert ended(client, stream_id)
    [stop] = [e for e in client.events if isinstance(e, StopSendingReceived)]
    assert stop.stream_id == stream_id
    assert stop.error_code == ErrorCode.H3_NO_ERROR
    assert not gone(client)


def test_request_data_after_a_complete_response_is_ignored(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=b"POST", body=b"part", end=False)
    network.exchange()
    network.take_driver()
    network.respond(stream_id, b"early")
    # The client sends the rest before it hears of the response.
    client.h3.send_data(stream_id, b"more", end_stream=False)
    client.h3.send_headers(stream_id, [(b"x-trailer", b"1")], end_stream=True)
    network.exchange()
    assert [e for e in network.take_driver() if not isinstance(e, StreamEnded)] == []
    assert client.responses[stream_id].data == b"early"
    assert not gone(client)


def test_app_failing_during_the_upload_resets_both_ways(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=b"POST", body=b"part", end=False)
    network.exchange()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    server.app_send(stream_id, {"type": "http.response.body", "body": b"x", "more_body": True})
    server.app_finished(stream_id)
    network.exchange()
    assert client.responses[stream_id].reset == ErrorCode.H3_INTERNAL_ERROR
    [stop] = [e for e in client.events if isinstance(e, StopSendingReceived)]
    assert stop.error_code == ErrorCode.H3_INTERNAL_ERROR


def test_end_of_a_streamed_response_after_its_data_went_out(
    certificates: Certificates,
) -> None:
    network, client = started(certificates)
    stream_id = client.request()
    network.exchange()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    server.app_send(stream_id, {"type": "http.response.body", "body": b"one", "more_body": True})
    network.exchange()
    assert client.responses[stream_id].data == b"one"
    assert not ended(client, stream_id)
    server.app_send(stream_id, {"type": "http.response.body", "body": b"", "more_body": False})
    server.app_finished(stream_id)
    network.exchange()
    assert ended(client, stream_id)
    assert client.responses[stream_id].data == b"one"


def test_client_reset_disconnects_and_wakes_a_blocked_sender(certificates: Certificates) -> None:
    network, client = started(certificates)
    stream_id = client.request(method=b"POST", end=False)
    network.exchange()
    network.take_driver()
    server = network.server
    server.app_send(stream_id, {"type": "http.response.start", "status": 200, "headers": []})
    server.app_send(
        stream_id,
        {"type": "http.response.body", "body": b"x" * 100_000, "more_body": True},
    )
    assert not server.can_send(stream_id)
    client.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
    client.quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
    network.exchange()
    driver = network.take_driver()
    assert SendReady(stream_id) in driver
    assert ReceiveReady(stream_id) in driver
    assert network.receive_all(stream_id) == [{"type": "http.disconnect"}]
    assert any(isinstance(e, StreamEnded) for e in driver)
    assert server.can_send(stream_id)
    # Later messages of the application are dropped quietly.
    server.app_send(stream_id, {"type": "http.response.body", "body": b"late"})
    server.app_finished(stream_id)
    assert not gone(client)


def test_shutdown_lets_open_streams_finish(certificates: Certificates) -> None:
    network, client = started(certificates)
    first = client.request()
    second = client.request(method=b"POST", end=False)
    network.exchange()
    assert sorted(network.spawned()) == [first, second]
    server = network.server
    server.shutdown()
    network.exchange()
    # GOAWAY names the first request stream that will not be processed (after 0 and 4).
    control = b"".join(
        event.data
        for event in client.events
        if isinstance(event, StreamDataReceived) and event.stream_id == 3
    )
    assert control.endswith(encode_frame(FrameType.GOAWAY, encode_uint_var(8)))
    # The client opens a request after the GOAWAY: it is rejected, no application runs.
    third = client.request()
    network.exchange()
    assert client.responses[third].reset == ErrorCode.H3_REQUEST_REJECTED
    assert not network.spawned()
    network.respond(first, b"one")
    network.exchange()
    assert not server.closed
    assert not gone(client)
    client.h3.send_data(second, b"body", end_stream=True)
    network.exchange()
    assert body_of(network.receive_all(second)) == b"body"
    network.respond(second, b"two")
    network.run(lambda: gone(client))
    assert client.responses[first].data == b"one"
    assert client.responses[second].data == b"two"
    assert gone(client)
    assert close_code(client) == ErrorCode.H3_NO_ERROR
    network.run(lambda: server.closed)
    assert server.next_deadline() is None
    assert server.datagrams_to_send() == []


def test_shutdown_of_an_idle_connection_closes_at_once(certificates: Certificates) -> None:
    network, client = started(certificates)
    network.server.shutdown()
    network.exchange()
    assert gone(client)
    assert close_code(client) == ErrorCode.H3_NO_ERROR
    network.server.shutdown()  # idempotent
    network.run(lambda: network.server.closed)


def test_keep_alive_max_requests(certificates: Certificates) -> None:
    network, client = started(certificates, keep_alive_max_requests=2)
    first, second = client.request(), client.request()
    network.exchange()
    third = client.request()
    network.exchange()
    assert sorted(network.spawned()) == [first, second]
    assert client.responses[third].reset == ErrorCode.H3_REQUEST_REJECTED
    network.respond(first, b"a")
    network.respond(second, b"b")
    network.run(lambda: gone(client))
    assert client.responses[second].data == b"b"


def test_keep_alive_timeout_closes_an_idle_connection(certificates: Certificates) -> None:
    network, client = started(certificates, keep_alive_timeout=5.0)
    server = network.server
    stream_id = client.request()
    network.exchange()
    # Busy: an application slower than the keep-alive timeout (and than QUIC's idle
    # timeout) keeps the connection, which pings the silent client.
    network.advance(45.0)
    assert not gone(client)
    network.respond(stream_id, b"late")
    network.exchange()
    assert client.responses[stream_id].data == b"late"
    start = network.context.now
    network.run(lambda: gone(client), seconds=10.0)
    assert gone(client)
    assert close_code(client) == ErrorCode.H3_NO_ERROR
    assert 5.0 <= network.context.now - start < 6.0
    network.run(lambda: server.closed)


def test_quic_idle_timeout_when_the_client_vanishes(certificates: Certificates) -> None:
    network, client = started(certificates, keep_alive_timeout=5.0)
    server = network.server
    stream_id = client.request(method=b"POST", end=False)
    network.exchange()
    network.take_driver()
    del network.clients[client.address]  # the client is gone without a word
    network.advance(60.0)
    assert server.closed
    assert network.receive_all(stream_id) == [{"type": "http.disconnect"}]
    assert any(isinstance(e, StreamEnded) for e in network.take_driver())
    assert network.endpoint.connections == []


def test_contract_for_the_driver(certificates: Certificates) -> None:
    network, client = started(certificates)
    server: H3Connection = network.server
    endpoint: QuicEndpoint = network.endpoint
    stream_id = client.request()
    network.exchange()
    events = network.take_driver()
    assert isinstance(events[0], SpawnApp)
    assert server.app_receive(12345) is None
    server.app_send(12345, {"type": "http.response.start", "status": 200})  # ignored
    server.app_finished(12345)  # ignored
    network.respond(stream_id)
    network.exchange()
    assert ended(client, stream_id)
    endpoint.discard(server)
    assert endpoint.connections == []


# ---------------------------------------------------------------------------------------
# Nothing the client sends makes the server raise
# ---------------------------------------------------------------------------------------

_FRAMES = st.builds(
    encode_frame,
    st.sampled_from([0x0, 0x1, 0x3, 0x4, 0x5, 0x7, 0xD, 0x21, 0x41]),
    st.binary(max_size=60),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=st.one_of(st.binary(max_size=120), st.lists(_FRAMES, max_size=4).map(b"".join)),
    unidirectional=st.booleans(),
    fin=st.booleans(),
)
def test_random_stream_bytes_never_raise(
    certificates: Certificates, payload: bytes, unidirectional: bool, fin: bool
) -> None:
    network, client = started(certificates)
    stream_id = client.quic.get_next_available_stream_id(is_unidirectional=unidirectional)
    client.quic.send_stream_data(stream_id, payload, end_stream=fin)
    network.exchange()
    server = network.server
    for event in network.take_driver():
        if isinstance(event, SpawnApp):
            server.app_send(event.stream_id, {"type": "http.response.start", "status": 204})
            server.app_send(event.stream_id, {"type": "http.response.body"})
            server.app_finished(event.stream_id)
    network.exchange(horizon=1.0)
    if not gone(client):
        stream_id = client.request()
        network.exchange()
        assert stream_id in network.spawned()
