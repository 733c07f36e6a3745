"""HTTP/3 through the installed command: ``--quic-bind`` beside TLS on TCP, one worker and
several (each worker reads its own UDP socket of one SO_REUSEPORT group)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

from tests.e2e.support import TIMEOUT, TLSFiles, client, get_json, hypercorn

QUIC_LINE = r"\[(?P<pid>\d+)\] \[INFO\] Running on https://127\.0\.0\.1:(?P<port>\d+) over HTTP/3"


class _Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.done: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.parts: dict[int, list[bytes]] = {}
        self.status: dict[int, int] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.http.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.status[h3_event.stream_id] = int(dict(h3_event.headers)[b":status"])
            elif isinstance(h3_event, DataReceived):
                self.parts.setdefault(h3_event.stream_id, []).append(h3_event.data)
            else:
                continue
            future = self.done.get(h3_event.stream_id)
            if h3_event.stream_ended and future is not None and not future.done():
                body = b"".join(self.parts.get(h3_event.stream_id, []))
                future.set_result((self.status[h3_event.stream_id], body))

    async def get(self, path: str) -> tuple[int, bytes]:
        stream_id = self._quic.get_next_available_stream_id()
        self.done[stream_id] = asyncio.get_running_loop().create_future()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        self.http.send_headers(stream_id, headers, end_stream=True)
        self.transmit()
        return await asyncio.wait_for(self.done[stream_id], TIMEOUT)


async def _get_over_h3(port: int, tls: TLSFiles, path: str) -> tuple[int, dict[str, Any]]:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(cadata=tls.ca.cert_pem.bytes())
    configuration.server_name = "localhost"
    async with connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=_Client
    ) as connection:
        assert isinstance(connection, _Client)
        status, body = await connection.get(path)
        return status, json.loads(body)


@pytest.mark.parametrize("workers", [1, 3])
def test_quic_bind_serves_http3_beside_tls(app_dir: Path, tls: TLSFiles, workers: int) -> None:
    args = [
        "-w",
        str(workers),
        "--certfile",
        str(tls.certfile),
        "--keyfile",
        str(tls.keyfile),
        "-b",
        "127.0.0.1:0",
        "--quic-bind",
        "127.0.0.1:0",
        "app:app",
    ]
    with hypercorn(args, app_dir) as server:
        serving = server.wait_serving(workers=workers, binds=2)
        (line,) = {match["port"] for match in server.wait_for(QUIC_LINE, count=workers)}
        port = int(line)
        with client(verify=tls.client_context()) as http:
            response = http.get(serving.first("https"))
            assert f'h3=":{port}"; ma=3600' in response.headers.get_list("alt-svc")
            assert get_json(serving.first("https"), http)["http_version"] in ("1.1", "2")

        async def many() -> list[tuple[int, dict[str, Any]]]:
            # Separate connections from separate client ports: with several workers the
            # kernel spreads them, and each must reach the worker that holds its state.
            return await asyncio.gather(*(_get_over_h3(port, tls, f"/h3/{n}") for n in range(12)))

        results = asyncio.run(asyncio.wait_for(many(), 3 * TIMEOUT))
        assert [status for status, _ in results] == [200] * 12
        assert {body["http_version"] for _, body in results} == {"3"}
        assert {body["scheme"] for _, body in results} == {"https"}
        assert {body["pid"] for _, body in results} <= serving.pids
        assert server.stop() == 0
    assert not re.search(r"\[ERROR\]", server.stderr), server.stderr
