"""Test support for QUIC and HTTP/3: aioquic clients and our endpoint, wired in memory.

:class:`Network` holds one :class:`~hypercorn.protocol.quic.QuicEndpoint` (the server
socket) and any number of :class:`Client` (aioquic's client-side ``QuicConnection`` and
``H3Connection``), moves datagrams between them by address and runs a fake clock: the test
is the driver (it pumps the server connections the endpoint hands back, and collects their
driver events) and the application.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trustme
from aioquic.h3.connection import H3_ALPN
from aioquic.h3.connection import H3Connection as ClientH3
from aioquic.h3.events import DataReceived, HeadersReceived, PushPromiseReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset

from hypercorn.config import Config
from hypercorn.protocol.events import DriverEvent, SpawnApp
from hypercorn.protocol.h3 import Address, H3Connection
from hypercorn.protocol.quic import QuicEndpoint, quic_configuration
from tests.protocols.support import SERVER, Headers, make_context, receive_all, respond

if TYPE_CHECKING:
    from collections.abc import Callable

#: The address the first client sends from.
CLIENT_ADDRESS = ("127.0.0.1", 51000)


@dataclass
class Certificates:
    """A CA, a server certificate and key for ``localhost``, as files."""

    ca: trustme.CA
    directory: Path
    certfile: str
    keyfile: str
    cafile: str

    def config(self, **options: Any) -> Config:
        config = Config.from_mapping(options)
        config.certfile = self.certfile
        config.keyfile = self.keyfile
        return config

    def client_certificate(self, ca: trustme.CA | None = None) -> tuple[str, str]:
        """A client certificate (cert file, key file) issued by ``ca`` (ours by default)."""
        issued = (ca or self.ca).issue_cert("client@example.com")
        name = "other" if ca is not None else "client"
        certfile = str(self.directory / f"{name}-cert.pem")
        keyfile = str(self.directory / f"{name}-key.pem")
        issued.cert_chain_pems[0].write_to_path(certfile)
        for pem in issued.cert_chain_pems[1:]:
            pem.write_to_path(certfile, append=True)
        issued.private_key_pem.write_to_path(keyfile)
        return certfile, keyfile


def make_certificates(directory: Path) -> Certificates:
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    certfile = str(directory / "cert.pem")
    keyfile = str(directory / "key.pem")
    cafile = str(directory / "ca.pem")
    issued.cert_chain_pems[0].write_to_path(certfile)
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(certfile, append=True)
    issued.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    return Certificates(ca, directory, certfile, keyfile, cafile)


@dataclass
class Response:
    """What a client saw on one stream."""

    headers: Headers = field(default_factory=list)
    informational: list[Headers] = field(default_factory=list)
    data: bytes = b""
    trailers: Headers | None = None
    ended: bool = False
    reset: int | None = None
    push_id: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class Client:
    """An aioquic HTTP/3 client on the in-memory network."""

    def __init__(
        self, network: Network, address: Address, configuration: QuicConfiguration
    ) -> None:
        self.network = network
        self.address = address
        self.quic = QuicConnection(configuration=configuration)
        self.h3 = ClientH3(self.quic)
        self.responses: dict[int, Response] = {}
        self.pushes: list[PushPromiseReceived] = []
        self.events: list[QuicEvent] = []
        self.terminated: ConnectionTerminated | None = None
        self.quic.connect(SERVER, now=network.context.now)

    def request(
        self,
        *,
        method: bytes = b"GET",
        path: bytes = b"/",
        headers: Headers | None = None,
        body: bytes | None = None,
        end: bool = True,
        authority: bytes = b"localhost",
        extra_pseudo: Headers | None = None,
    ) -> int:
        """Open a request stream; return its id."""
        stream_id = self.quic.get_next_available_stream_id()
        block: Headers = [
            (b":method", method),
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", path),
            *(extra_pseudo or []),
            *(headers or []),
        ]
        self.h3.send_headers(stream_id, block, end_stream=end and body is None)
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=end)
        self.responses[stream_id] = Response()
        return stream_id

    def handle(self, event: QuicEvent) -> None:
        self.events.append(event)
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        elif isinstance(event, StreamReset):
            self.responses.setdefault(event.stream_id, Response()).reset = event.error_code
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, PushPromiseReceived):
                self.pushes.append(h3_event)
                continue
            if not isinstance(h3_event, HeadersReceived | DataReceived):
                continue
            response = self.responses.setdefault(h3_event.stream_id, Response())
            response.push_id = h3_event.push_id
            if isinstance(h3_event, HeadersReceived):
                headers = list(h3_event.headers)
                if response.headers:
                    response.trailers = headers
                elif dict(headers)[b":status"].startswith(b"1"):
                    response.informational.append(headers)
                else:
                    response.headers = headers
            else:
                response.data += h3_event.data
            if h3_event.stream_ended:
                response.ended = True


class Network:
    """One endpoint, its clients, the driver's bookkeeping and the clock."""

    def __init__(
        self,
        certificates: Certificates,
        config: Config | None = None,
        *,
        retry: bool = False,
    ) -> None:
        self.certificates = certificates
        self.config = config or certificates.config()
        self.context = make_context(self.config)
        self.endpoint = QuicEndpoint(
            self.context, quic_configuration(self.config), server=SERVER, retry=retry
        )
        self.clients: dict[Address, Client] = {}
        self.connections: list[H3Connection] = []
        self.driver: list[DriverEvent] = []
        #: Every datagram the server side wrote: (data, to address).
        self.server_datagrams: list[tuple[bytes, Address]] = []
        self.dropped_to: list[Address] = []
        self._inboxes: dict[int, list[dict[str, Any]]] = {}

    # -- clients -------------------------------------------------------------------------

    def client_configuration(self, **options: Any) -> QuicConfiguration:
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=list(H3_ALPN), server_name="localhost", **options
        )
        configuration.load_verify_locations(self.certificates.cafile)
        return configuration

    def client(
        self,
        address: Address = CLIENT_ADDRESS,
        configuration: QuicConfiguration | None = None,
        *,
        handshake: bool = True,
    ) -> Client:
        client = Client(self, address, configuration or self.client_configuration())
        self.clients[address] = client
        if handshake:
            self.run(lambda: client.h3.received_settings is not None)
        return client

    def move(self, client: Client, address: Address) -> None:
        """The client's address changes (NAT rebinding or migration)."""
        del self.clients[client.address]
        client.address = address
        self.clients[address] = client

    # -- the network and the driver ------------------------------------------------------

    def to_server(self, data: bytes, address: Address) -> H3Connection | None:
        connection = self.endpoint.receive_datagram(data, address)
        if connection is not None and connection not in self.connections:
            self.connections.append(connection)
        return connection

    def to_client(self, data: bytes, address: Address) -> None:
        self.server_datagrams.append((data, address))
        client = self.clients.get(address)
        if client is None:
            self.dropped_to.append(address)
            return
        client.quic.receive_datagram(data, SERVER, now=self.context.now)

    def exchange(self, horizon: float = 0.1) -> None:
        """Move datagrams both ways, running the timers due within ``horizon`` seconds
        (acknowledgement delays, pacing), until nobody has anything to send."""
        limit = self.context.now + horizon
        while self.tick(limit):
            pass

    def flush(self) -> None:
        """Move datagrams both ways until nobody has anything to send right now."""
        now = self.context.now
        for _ in range(100_000):
            moved = False
            for client in list(self.clients.values()):
                for data, _address in client.quic.datagrams_to_send(now=now):
                    moved = True
                    self.to_server(data, client.address)
            for data, address in self.endpoint.datagrams_to_send():
                moved = True
                self.to_client(data, address)
            for connection in self.connections:
                for data, address in connection.datagrams_to_send():
                    moved = True
                    self.to_client(data, address)
                self.driver += connection.events()
            for client in list(self.clients.values()):
                while (event := client.quic.next_event()) is not None:
                    client.handle(event)
            if not moved:
                return
        raise AssertionError("the exchange never settles")  # pragma: no cover

    def next_timer(self) -> float | None:
        timers = [client.quic.get_timer() for client in self.clients.values()]
        timers += [connection.next_deadline() for connection in self.connections]
        due = [timer for timer in timers if timer is not None]
        return min(due) if due else None

    def tick(self, limit: float) -> bool:
        """Exchange, then move the clock to the next timer (not past ``limit``) and run
        the timers that are due. False when no timer is due before ``limit``."""
        self.flush()
        timer = self.next_timer()
        if timer is None or timer > limit:
            return False
        self.context.now = max(self.context.now, timer)
        now = self.context.now
        for client in list(self.clients.values()):
            client_timer = client.quic.get_timer()
            if client_timer is not None and client_timer <= now:
                client.quic.handle_timer(now=now)
        for connection in self.connections:
            deadline = connection.next_deadline()
            if deadline is not None and deadline <= now:
                connection.handle_timer()
        self.flush()
        return True

    def run(self, until: Callable[[], bool], seconds: float = 5.0) -> None:
        """Exchange and run timers until ``until()`` holds (within ``seconds`` of clock)."""
        limit = self.context.now + seconds
        for _ in range(100_000):
            self.flush()
            if until():
                return
            if not self.tick(limit):
                break
        if not until():
            raise AssertionError("the condition never held")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of clock pass, running every timer on the way."""
        limit = self.context.now + seconds
        while self.tick(limit):
            pass
        self.context.now = limit
        self.flush()

    # -- acting as the driver and the application ----------------------------------------

    def take_driver(self) -> list[DriverEvent]:
        for connection in self.connections:
            self.driver += connection.events()
        driver, self.driver = self.driver, []
        return driver

    def spawned(self) -> dict[int, dict[str, Any]]:
        return {
            event.stream_id: dict(event.scope)
            for event in self.take_driver()
            if isinstance(event, SpawnApp)
        }

    @property
    def server(self) -> H3Connection:
        """The (only) server connection."""
        [connection] = self.connections
        return connection

    def receive_all(self, stream_id: int) -> list[dict[str, Any]]:
        return receive_all(self.server, stream_id)

    def read(self, stream_id: int) -> list[dict[str, Any]]:
        """Every message the stream's application has been given so far (the inbox is
        drained into a record)."""
        record = self._inboxes.setdefault(stream_id, [])
        record += self.receive_all(stream_id)
        return record

    def respond(
        self,
        stream_id: int,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: Headers | None = None,
        finish: bool = True,
    ) -> None:
        respond(self.server, stream_id, body, status=status, headers=headers, finish=finish)
