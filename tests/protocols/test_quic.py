"""The QUIC endpoint: routing, new connections, version negotiation, retry, migration,
client certificates, the aioquic configuration, and datagrams that are not QUIC at all.

Peers are aioquic clients on the in-memory network of :mod:`tests.protocols.h3_support`,
plus hand-made datagrams for what a well-behaved client never sends.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # (re-exported)
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicPacketType,
    QuicProtocolVersion,
    pull_quic_header,
)
from aioquic.tls import AlertDescription
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypercorn.config import Config, ConfigError
from hypercorn.protocol.events import SpawnApp
from hypercorn.protocol.quic import QuicEndpoint, quic_configuration
from tests.protocols.h3_support import (
    CLIENT_ADDRESS,
    Certificates,
    Client,
    Network,
    make_certificates,
)
from tests.protocols.support import SERVER, make_context

UNKNOWN_VERSION = 0x1A2A3A4A


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("quic")))


def long_header_packet(
    version: int, size: int, *, token: bytes = b"", dcid_size: int = 8
) -> bytes:
    """A long-header Initial (by its header) of ``size`` bytes whose payload is garbage."""
    head = (
        bytes([0xC3])
        + version.to_bytes(4, "big")
        + bytes([dcid_size])
        + b"d" * dcid_size
        + bytes([8])
        + b"s" * 8
        + bytes([len(token)])
        + token
    )
    rest = size - len(head) - 2
    assert 0 < rest < 0x4000
    return head + bytes([0x40 | rest >> 8, rest & 0xFF]) + b"\x00" * rest


def header_type(data: bytes) -> QuicPacketType:
    return pull_quic_header(Buffer(data=data), host_cid_length=8).packet_type


def get_works(network: Network, client: Client | None = None) -> bool:
    """``client`` (by default a fresh one) gets a response."""
    if client is None:
        client = network.client(("127.0.0.1", 52000))
    stream_id = client.request()
    network.exchange()
    connection = network.connections[-1]
    spawned = [e for e in connection.events() + network.take_driver() if isinstance(e, SpawnApp)]
    if not spawned:
        return False
    connection.app_send(stream_id, {"type": "http.response.start", "status": 204})
    connection.app_send(stream_id, {"type": "http.response.body"})
    connection.app_finished(stream_id)
    network.exchange()
    return client.responses[stream_id].status == 204


# ---------------------------------------------------------------------------------------
# The configuration
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("keep_alive", "idle"), [(5.0, 30.0), (45.0, 45.0)])
def test_quic_configuration(certificates: Certificates, keep_alive: float, idle: float) -> None:
    configuration = quic_configuration(certificates.config(keep_alive_timeout=keep_alive))
    assert not configuration.is_client
    assert configuration.alpn_protocols == ["h3"]
    assert configuration.idle_timeout == idle
    assert configuration.verify_mode == ssl.CERT_NONE
    assert configuration.max_datagram_frame_size is None
    assert configuration.certificate is not None
    assert configuration.private_key is not None
    assert configuration.cafile is None


def _encrypt(keyfile: str, target: Path, password: bytes) -> str:
    key = serialization.load_pem_private_key(Path(keyfile).read_bytes(), password=None)
    target.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return str(target)


def test_keyfile_password(certificates: Certificates, tmp_path: Path) -> None:
    config = certificates.config(keyfile_password="s3cret")
    config.keyfile = _encrypt(certificates.keyfile, tmp_path / "enc.pem", b"s3cret")
    network = Network(certificates, config)
    network.client()
    assert get_works(network)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("wrong", "keyfile_password: wrong password for keyfile"),
        (None, "is encrypted: set keyfile_password"),
    ],
)
def test_encrypted_key_errors(
    certificates: Certificates, tmp_path: Path, password: str | None, message: str
) -> None:
    config = certificates.config(keyfile_password=password)
    config.keyfile = _encrypt(certificates.keyfile, tmp_path / "enc.pem", b"s3cret")
    with pytest.raises(ConfigError, match=message):
        quic_configuration(config)


def test_password_for_a_plain_key_is_ignored(certificates: Certificates) -> None:
    # As on TCP, where OpenSSL only asks for a password it needs.
    configuration = quic_configuration(certificates.config(keyfile_password="unused"))
    assert configuration.private_key is not None


def test_configuration_errors(certificates: Certificates, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HTTP/3 needs TLS"):
        quic_configuration(Config())
    config = certificates.config()
    config.certfile = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="certfile: file not found"):
        quic_configuration(config)
    config = certificates.config()
    other = trustme.CA().issue_cert("localhost")
    config.keyfile = str(tmp_path / "other-key.pem")
    other.private_key_pem.write_to_path(config.keyfile)
    with pytest.raises(ConfigError, match="is not the key of certfile"):
        quic_configuration(config)
    config = certificates.config()
    config.keyfile = str(tmp_path / "not-a-key.pem")
    Path(config.keyfile).write_text("hello\n")
    with pytest.raises(ConfigError, match="cannot load the certificate chain"):
        quic_configuration(config)
    config = certificates.config()
    config.ca_certs = str(tmp_path / "missing-ca.pem")
    with pytest.raises(ConfigError, match="ca_certs: file not found"):
        quic_configuration(config)
    for text in ("not a certificate\n", ""):
        Path(config.ca_certs).write_text(text)
        with pytest.raises(ConfigError, match="ca_certs: cannot load"):
            quic_configuration(config)


# ---------------------------------------------------------------------------------------
# Client certificates
# ---------------------------------------------------------------------------------------


def test_cert_required_refuses_a_client_without_certificate(certificates: Certificates) -> None:
    config = certificates.config(verify_mode=ssl.CERT_REQUIRED, ca_certs=certificates.cafile)
    network = Network(certificates, config)
    client = network.client(handshake=False)
    network.run(lambda: client.terminated is not None)
    assert client.terminated is not None
    assert client.terminated.error_code == (
        QuicErrorCode.CRYPTO_ERROR + AlertDescription.certificate_required
    )
    assert not network.spawned()


@pytest.mark.parametrize("mode", [ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL])
def test_client_certificate_from_the_ca_is_accepted(
    certificates: Certificates, mode: ssl.VerifyMode
) -> None:
    config = certificates.config(verify_mode=mode, ca_certs=certificates.cafile)
    network = Network(certificates, config)
    client_configuration = network.client_configuration()
    client_configuration.load_cert_chain(*certificates.client_certificate())
    client = network.client(configuration=client_configuration)
    assert get_works(network, client)


def test_client_certificate_from_another_ca_is_refused(certificates: Certificates) -> None:
    config = certificates.config(verify_mode=ssl.CERT_OPTIONAL, ca_certs=certificates.cafile)
    network = Network(certificates, config)
    client_configuration = network.client_configuration()
    client_configuration.load_cert_chain(*certificates.client_certificate(trustme.CA()))
    client = network.client(configuration=client_configuration, handshake=False)
    network.run(lambda: client.terminated is not None)
    assert client.terminated is not None
    assert client.terminated.error_code == (
        QuicErrorCode.CRYPTO_ERROR + AlertDescription.bad_certificate
    )


def test_cert_optional_accepts_a_client_without_certificate(certificates: Certificates) -> None:
    config = certificates.config(verify_mode=ssl.CERT_OPTIONAL, ca_certs=certificates.cafile)
    network = Network(certificates, config)
    network.client()
    assert get_works(network)


# ---------------------------------------------------------------------------------------
# New connections, version negotiation, retry
# ---------------------------------------------------------------------------------------


def test_version_negotiation(certificates: Certificates) -> None:
    network = Network(certificates)
    configuration = network.client_configuration(
        supported_versions=[UNKNOWN_VERSION, QuicProtocolVersion.VERSION_1],
    )
    client = network.client(configuration=configuration)
    first, _address = network.server_datagrams[0]
    assert header_type(first) is QuicPacketType.VERSION_NEGOTIATION
    header = pull_quic_header(Buffer(data=first), host_cid_length=8)
    assert QuicProtocolVersion.VERSION_1 in header.supported_versions
    # The client came back with a version we speak, and is served.
    assert client.h3.received_settings is not None
    assert len(network.connections) == 1


@pytest.mark.parametrize(("size", "answered"), [(1199, False), (1200, True)])
def test_version_negotiation_only_for_full_size_datagrams(
    certificates: Certificates, size: int, answered: bool
) -> None:
    endpoint = QuicEndpoint(
        make_context(), quic_configuration(certificates.config()), server=SERVER
    )
    assert (
        endpoint.receive_datagram(long_header_packet(UNKNOWN_VERSION, size), CLIENT_ADDRESS)
        is None
    )
    out = endpoint.datagrams_to_send()
    assert len(out) == int(answered)
    if answered:
        data, address = out[0]
        assert address == CLIENT_ADDRESS
        assert header_type(data) is QuicPacketType.VERSION_NEGOTIATION
        assert len(data) < size


def test_version_negotiation_packets_are_never_answered(certificates: Certificates) -> None:
    endpoint = QuicEndpoint(
        make_context(), quic_configuration(certificates.config()), server=SERVER
    )
    packet = bytes([0x80]) + b"\x00\x00\x00\x00" + b"\x08" + b"d" * 8 + b"\x08" + b"s" * 8
    packet += b"\x00\x00\x00\x01" * 300
    assert endpoint.receive_datagram(packet, CLIENT_ADDRESS) is None
    assert endpoint.datagrams_to_send() == []


@pytest.mark.parametrize(
    ("size", "dcid_size", "answered"), [(1199, 8, False), (1200, 7, False), (1200, 8, True)]
)
def test_new_connections_need_a_full_size_initial(
    certificates: Certificates, size: int, dcid_size: int, answered: bool
) -> None:
    # With retry on, a tokenless Initial that may start a connection gets a Retry, which
    # shows whether the endpoint took it as a connection attempt.
    endpoint = QuicEndpoint(
        make_context(), quic_configuration(certificates.config()), server=SERVER, retry=True
    )
    packet = long_header_packet(QuicProtocolVersion.VERSION_1, size, dcid_size=dcid_size)
    assert endpoint.receive_datagram(packet, CLIENT_ADDRESS) is None
    out = endpoint.datagrams_to_send()
    assert [header_type(data) for data, _ in out] == ([QuicPacketType.RETRY] if answered else [])


def test_forged_initial_leaves_no_connection(certificates: Certificates) -> None:
    endpoint = QuicEndpoint(
        make_context(), quic_configuration(certificates.config()), server=SERVER
    )
    packet = long_header_packet(QuicProtocolVersion.VERSION_1, 1200)
    assert endpoint.receive_datagram(packet, CLIENT_ADDRESS) is None
    assert endpoint.connections == []
    assert endpoint.datagrams_to_send() == []


def test_retry(certificates: Certificates) -> None:
    network = Network(certificates, retry=True)
    client = network.client()
    first, _address = network.server_datagrams[0]
    assert header_type(first) is QuicPacketType.RETRY
    assert client.h3.received_settings is not None
    assert get_works(network)


def test_invalid_retry_token_is_refused(certificates: Certificates) -> None:
    network = Network(certificates, retry=True)
    configuration = network.client_configuration(token=b"forged token, 28 bytes long!")
    client = network.client(configuration=configuration, handshake=False)
    network.run(lambda: client.terminated is not None)
    assert client.terminated is not None
    assert client.terminated.error_code == QuicErrorCode.INVALID_TOKEN
    assert network.connections == []


def test_shutdown_takes_no_new_connections(certificates: Certificates) -> None:
    network = Network(certificates)
    first = network.client()
    network.endpoint.shutdown()
    network.run(lambda: first.terminated is not None)
    late = network.client(("127.0.0.1", 52001), handshake=False)
    network.advance(1.0)
    assert late.h3.received_settings is None
    assert len(network.connections) == 1
    network.run(lambda: network.endpoint.connections == [])


# ---------------------------------------------------------------------------------------
# Routing: connection ids and migration
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("new_cid", [False, True])
def test_migration_to_a_new_address(certificates: Certificates, new_cid: bool) -> None:
    network = Network(certificates)
    client = network.client()
    network.exchange()
    if new_cid:
        # The client moves to a connection id the server issued (routed by the endpoint).
        client.quic.change_connection_id()
    new_address = ("127.0.0.1", 53000)
    network.move(client, new_address)
    stream_id = client.request()
    network.exchange()
    [scope] = network.spawned().values()
    assert scope["client"] == new_address
    network.server.app_send(stream_id, {"type": "http.response.start", "status": 204})
    network.server.app_send(stream_id, {"type": "http.response.body"})
    network.server.app_finished(stream_id)
    network.exchange()
    assert client.responses[stream_id].status == 204
    assert len(network.connections) == 1
    assert CLIENT_ADDRESS not in {address for _, address in network.server_datagrams[-3:]}


def test_discard_forgets_every_connection_id(certificates: Certificates) -> None:
    network = Network(certificates)
    client = network.client()
    network.exchange()
    network.endpoint.discard(network.server)
    assert network.endpoint.connections == []
    client.request()
    for data, _address in client.quic.datagrams_to_send(now=network.context.now):
        assert network.endpoint.receive_datagram(data, client.address) is None


# ---------------------------------------------------------------------------------------
# Datagrams that are not QUIC
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x40" + b"x" * 3,  # a short header too short for a connection id
        b"\x40" + b"unknown!" + b"x" * 40,  # a short header for an unknown connection
        b"\xc0\x00\x00\x00\x01\xff",  # a long header with an impossible connection id
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_garbage_is_dropped_and_others_are_served(certificates: Certificates, data: bytes) -> None:
    network = Network(certificates)
    network.client()
    assert network.endpoint.receive_datagram(data, ("127.0.0.1", 9)) is None
    assert network.endpoint.datagrams_to_send() == []
    assert get_works(network)


def test_truncated_datagrams_of_a_live_connection(certificates: Certificates) -> None:
    network = Network(certificates)
    client = network.client()
    client.request()
    datagrams = client.quic.datagrams_to_send(now=network.context.now)
    for data, _address in datagrams:
        for cut in (1, 9, len(data) // 2, len(data) - 1):
            network.to_server(data[:cut], client.address)
        network.to_server(data, client.address)
    network.exchange()
    assert len(network.spawned()) == 1
    assert client.terminated is None


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    datagrams=st.lists(
        st.one_of(
            st.binary(max_size=1500),
            st.binary(min_size=1, max_size=40).map(lambda tail: b"\xc3\x00\x00\x00\x01" + tail),
            st.binary(min_size=1200, max_size=1300).map(lambda rest: b"\xc3" + rest),
        ),
        max_size=5,
    )
)
def test_random_datagrams_never_raise(certificates: Certificates, datagrams: list[bytes]) -> None:
    endpoint = QuicEndpoint(
        make_context(), quic_configuration(certificates.config()), server=SERVER
    )
    for data in datagrams:
        connection = endpoint.receive_datagram(data, CLIENT_ADDRESS)
        if connection is not None:  # pragma: no cover - a forged Initial never decrypts
            connection.datagrams_to_send()
            connection.events()
        endpoint.datagrams_to_send()
