"""The QUIC endpoint of one UDP socket: routes datagrams to HTTP/3 connections, sans I/O.

:class:`QuicEndpoint` is fed every datagram the socket receives, with its source address,
and hands back the :class:`~hypercorn.protocol.h3.H3Connection` it belongs to (which the
driver then pumps: ``datagrams_to_send``, ``events``, ``next_deadline``) plus datagrams of
its own to write (version negotiation, retry). :func:`quic_configuration` builds aioquic's
server configuration from :class:`~hypercorn.config.Config`.

Rules this module enforces
==========================

**Routing.** A datagram goes to the connection that owns its destination connection id:
the id the client chose for its first Initial, the server's first id, and every id aioquic
issues later (NEW_CONNECTION_ID) until it is retired. So a client that changes address or
connection id (migration, NAT rebinding) stays on its connection; aioquic validates the new
path. A datagram whose header does not parse is dropped, as is a Version Negotiation packet
(a server never answers one, which also stops reflection loops).

**New connections** come only from a long-header Initial of a supported version, in a
datagram of at least 1200 bytes (RFC 9000 §14.1), with a destination connection id of at
least 8 bytes (§7.2), and only while the endpoint accepts connections. The new connection
is kept only if aioquic could decrypt a packet of that datagram, so forged Initials leave
nothing behind. With ``retry=True`` the client must first prove its address: an Initial
without a token is answered with a Retry (the token is bound to the address and ids and
lives 30 s); an Initial with a token that does not validate is answered with
CONNECTION_CLOSE ``INVALID_TOKEN`` (RFC 9000 §8.1.3).

**Version negotiation.** A long-header packet of an unsupported version, in a datagram of
at least 1200 bytes, is answered with a Version Negotiation packet listing aioquic's
versions (QUIC v1 and v2); smaller ones are dropped (§5.2.2, so the answer is never larger
than the question).

**Not done.** Stateless resets: aioquic draws a random reset token for every connection id
and keeps no key to recompute it, so a server that has forgotten a connection cannot
produce the token; packets for unknown connection ids are simply dropped.

**aioquic internals.** :class:`ServerQuicConnection` and :class:`ServerH3Connection`
subclass aioquic's classes for what aioquic 1.7 has no public API for: asking for and
verifying client certificates, how many bytes of a stream are unsent (backpressure),
whether a stream's output was acknowledged (graceful close), whether a packet was
decrypted, writing GOAWAY, and forgetting a stream we reset. Each touches aioquic's
private state in one small method.

**Shutdown.** :meth:`QuicEndpoint.shutdown` stops new connections (their Initials are
dropped) and shuts every connection down gracefully. :meth:`QuicEndpoint.discard` forgets a
connection the driver saw close. Nothing a peer sends makes a method raise.
"""

from __future__ import annotations

import inspect
import os
import ssl
from typing import TYPE_CHECKING, Any, cast, final

import aioquic.buffer
from aioquic.h3.connection import FrameType, encode_frame
from aioquic.h3.connection import H3Connection as AioquicH3Connection
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionState
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.retry import QuicRetryTokenHandler
from aioquic.tls import Alert, AlertDescription, load_pem_x509_certificates, verify_certificate
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hypercorn.config import ConfigError
from hypercorn.protocol.h3 import H3_ALPN, Address, H3Connection

if TYPE_CHECKING:
    from aioquic.quic.packet import QuicHeader

    from hypercorn.config import Config
    from hypercorn.protocol.context import ProtocolContext

__all__ = (
    "Address",
    "H3Connection",
    "QuicEndpoint",
    "ServerH3Connection",
    "ServerQuicConnection",
    "quic_configuration",
)

#: The shortest connection id a client may choose for its first Initial (RFC 9000 §7.2).
_MIN_INITIAL_CID = 8
#: The shortest QUIC idle timeout the server offers, in seconds.
_MIN_IDLE_TIMEOUT = 30.0


def quic_configuration(config: Config) -> QuicConfiguration:
    """aioquic's server configuration for HTTP/3 from ``config``.

    TLS is the same as on TCP: :attr:`~Config.certfile` and :attr:`~Config.keyfile`
    (decrypted with :attr:`~Config.keyfile_password`), :attr:`~Config.ca_certs` and
    :attr:`~Config.verify_mode` (client certificates; ``CERT_NONE`` when unset). The ALPN
    is ``h3``. The QUIC idle timeout is ``max(keep_alive_timeout, 30)`` seconds: QUIC ends a
    connection on which nothing was heard for that long, even in the middle of a request, so
    it must not be as short as HTTP keep-alive (the connection itself closes after
    ``keep_alive_timeout`` without streams, and pings a silent client while streams are
    open). DATAGRAM frames are not offered. Files that are missing or cannot be loaded, a
    wrong or missing password and a key that does not match the certificate raise
    :class:`~hypercorn.config.ConfigError` naming the option.
    """
    certfile, keyfile = config.certfile, config.keyfile
    if certfile is None or keyfile is None:
        raise ConfigError("quic_bind: HTTP/3 needs TLS, set certfile and keyfile")
    for option, path in (("certfile", certfile), ("keyfile", keyfile)):
        if not os.path.isfile(path):
            raise ConfigError(f"{option}: file not found: {path!r}")
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=list(H3_ALPN),
        idle_timeout=max(float(config.keep_alive_timeout), _MIN_IDLE_TIMEOUT),
        max_datagram_frame_size=None,
    )
    # As OpenSSL on TCP, use the password only for a key that needs one.
    password = config.keyfile_password if _is_encrypted(keyfile) else None
    try:
        configuration.load_cert_chain(certfile, keyfile, password=password)
    except TypeError as exc:  # cryptography: an encrypted key and no password.
        message = f"keyfile {keyfile!r} is encrypted: set keyfile_password to decrypt it"
        raise ConfigError(message) from exc
    except (ValueError, IndexError, OSError) as exc:
        if password is not None:
            message = f"keyfile_password: wrong password for keyfile {keyfile!r}"
        else:
            message = (
                f"certfile {certfile!r} / keyfile {keyfile!r}: cannot load the "
                f"certificate chain and private key (are they PEM files?): {exc}"
            )
        raise ConfigError(message) from exc
    if not _key_matches(configuration):
        raise ConfigError(f"keyfile {keyfile!r} is not the key of certfile {certfile!r}")
    if config.ca_certs is not None:
        ca_certs = config.ca_certs
        if not os.path.isfile(ca_certs):
            raise ConfigError(f"ca_certs: file not found: {ca_certs!r}")
        try:
            with open(ca_certs, "rb") as file:
                if not load_pem_x509_certificates(file.read()):
                    raise ValueError("no PEM certificate in it")
        except (ValueError, OSError) as exc:
            raise ConfigError(f"ca_certs: cannot load {ca_certs!r}: {exc}") from exc
        configuration.load_verify_locations(cafile=ca_certs)
    mode = config.verify_mode
    configuration.verify_mode = ssl.CERT_NONE if mode is None else int(mode)
    return configuration


def _is_encrypted(keyfile: str) -> bool:
    try:
        with open(keyfile, "rb") as file:
            return b"ENCRYPTED" in file.read()
    except OSError:
        return False


def _key_matches(configuration: QuicConfiguration) -> bool:
    certificate = configuration.certificate
    private_key = configuration.private_key
    if certificate is None or private_key is None:
        return False
    try:
        ours = private_key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        theirs = certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # A key type without a public key: aioquic cannot use it either.
        return False
    return bool(ours == theirs)


@final
class ServerH3Connection(AioquicH3Connection):
    """aioquic's HTTP/3 connection plus two calls it lacks (both use its internals)."""

    def send_goaway(self, stream_id: int) -> None:
        """Write GOAWAY on our control stream."""
        control = self._local_control_stream_id
        if control is not None:
            frame = encode_frame(FrameType.GOAWAY, aioquic.buffer.encode_uint_var(stream_id))
            self._quic.send_stream_data(control, frame)

    def sending_done(self, stream_id: int) -> None:
        """A stream we reset sends nothing more: forget it once the client's side ends
        (aioquic only learns of the end of sending from the FIN it writes itself)."""
        stream = self._stream.get(stream_id)
        if stream is not None:
            stream.sending_ended = True
            if stream.is_ended():
                del self._stream[stream_id]


@final
class ServerQuicConnection(QuicConnection):
    """aioquic's server-side ``QuicConnection``, plus what :class:`H3Connection` needs.

    aioquic 1.7 has no public API for these, so each reads or sets its internals in one
    small method here, and a change in aioquic breaks one of them.

    Client certificates: aioquic's TLS server never asks for one (the switch exists "for
    test purposes") and never verifies one. With ``verify_mode`` other than ``CERT_NONE``
    the request is turned on as the TLS context is made, and
    :meth:`client_certificate_problem` checks what the client sent once the handshake is
    complete. If aioquic stops calling the hook, no certificate arrives and
    ``CERT_REQUIRED`` refuses every client: it fails closed.
    """

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        mode = self.configuration.verify_mode
        if mode is not None and mode != ssl.CERT_NONE:
            self.tls._request_client_certificate = True

    def peer_address(self) -> Address | None:
        """The client's current address (aioquic 1.4 added ``get_peer_address``; the
        last release for Python 3.10, 1.3, keeps it in its network paths)."""
        getter = getattr(QuicConnection, "get_peer_address", None)
        if getter is not None:
            address: Address | None = getter(self)
            return address
        paths = self._network_paths
        return tuple(paths[0].addr) if paths else None

    def client_certificate_problem(self) -> tuple[int, str] | None:
        """None if the client's certificate is acceptable, else (TLS alert, reason)."""
        configuration = self.configuration
        mode = configuration.verify_mode
        if mode is None or mode == ssl.CERT_NONE:
            return None
        certificate = self.tls._peer_certificate
        if certificate is None:
            if mode == ssl.CERT_REQUIRED:
                return AlertDescription.certificate_required, "client certificate required"
            return None
        try:
            verify_certificate(
                certificate=certificate,
                chain=list(self.tls._peer_certificate_chain),
                cadata=configuration.cadata,
                cafile=configuration.cafile,
                capath=configuration.capath,
            )
        except Alert as exc:
            return int(exc.description), f"bad client certificate: {exc}"
        return None

    @property
    def established(self) -> bool:
        """True once a packet was decrypted (the connection left its first flight)."""
        return self._state is not QuicConnectionState.FIRSTFLIGHT

    def unsent_bytes(self, stream_id: int) -> int:
        """Bytes written to a stream and not sent once yet (retransmissions aside): its
        sender holds them from ``highest_offset`` up to ``_buffer_stop``."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return max(0, sender._buffer_stop - sender.highest_offset)

    def start_http3(self) -> ServerH3Connection:
        """Start HTTP/3 on this connection (its control and QPACK streams, SETTINGS)."""
        return ServerH3Connection(self)

    def delivered(self, stream_id: int) -> bool:
        """True once everything written on a stream was acknowledged (or it was reset):
        its sender is finished, or aioquic has already forgotten the stream."""
        stream = self._streams.get(stream_id)
        return stream is None or stream.sender.is_finished


@final
class QuicEndpoint:
    """The QUIC side of one UDP socket; see the module docstring for the rules.

    ``configuration`` is from :func:`quic_configuration`; ``server`` is the socket's local
    ``(host, port)`` for the scopes; ``retry`` turns on address validation with Retry
    packets (one more round trip per connection, in exchange for not doing any TLS work for
    a spoofed address).
    """

    __slots__ = (
        "_accepting",
        "_configuration",
        "_connections",
        "_context",
        "_out",
        "_retry",
        "_routes",
        "_server",
    )

    def __init__(
        self,
        context: ProtocolContext,
        configuration: QuicConfiguration,
        *,
        server: tuple[str, int] | None,
        retry: bool = False,
    ) -> None:
        self._context = context
        self._configuration = configuration
        self._server = server
        self._retry = QuicRetryTokenHandler() if retry else None
        self._routes: dict[bytes, H3Connection] = {}
        self._connections: dict[H3Connection, set[bytes]] = {}
        self._out: list[tuple[bytes, Address]] = []
        self._accepting = True

    @property
    def connections(self) -> list[H3Connection]:
        """The connections that are not closed yet."""
        return [connection for connection in self._connections if not connection.closed]

    def receive_datagram(self, data: bytes, address: Address) -> H3Connection | None:
        """Route a datagram; return the connection that took it, or None. Never raises."""
        # (aioquic.buffer re-exports Buffer from its C module without declaring it.)
        buffer = aioquic.buffer.Buffer(data=data)  # type: ignore[attr-defined]
        try:
            header = pull_quic_header(
                buffer, host_cid_length=self._configuration.connection_id_length
            )
        except Exception:  # Not a QUIC packet we can read: drop it.
            return None
        if header.packet_type is QuicPacketType.VERSION_NEGOTIATION:
            return None
        if header.version is not None and header.version not in self._supported_versions():
            if len(data) >= SMALLEST_MAX_DATAGRAM_SIZE:
                self._out.append(
                    (
                        encode_quic_version_negotiation(
                            source_cid=header.destination_cid,
                            destination_cid=header.source_cid,
                            supported_versions=self._supported_versions(),
                        ),
                        address,
                    )
                )
            return None
        connection = self._routes.get(header.destination_cid)
        if connection is not None:
            connection.receive_datagram(data, address)
            return connection
        if (
            not self._accepting
            or header.packet_type is not QuicPacketType.INITIAL
            or len(data) < SMALLEST_MAX_DATAGRAM_SIZE
            or len(header.destination_cid) < _MIN_INITIAL_CID
        ):
            return None
        return self._accept(header, data, address)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Take the endpoint's own datagrams (version negotiation, retry, INVALID_TOKEN)."""
        out, self._out = self._out, []
        return out

    def discard(self, connection: H3Connection) -> None:
        """Forget a (closed) connection and every connection id routed to it."""
        for cid in self._connections.pop(connection, ()):
            if self._routes.get(cid) is connection:
                del self._routes[cid]

    def shutdown(self) -> None:
        """Accept no new connections; shut every connection down gracefully."""
        self._accepting = False
        for connection in list(self._connections):
            connection.shutdown()

    # -----------------------------------------------------------------------------------
    # New connections
    # -----------------------------------------------------------------------------------

    def _supported_versions(self) -> list[int]:
        return self._configuration.supported_versions

    def _accept(self, header: QuicHeader, data: bytes, address: Address) -> H3Connection | None:
        original_cid = header.destination_cid
        retry_cid: bytes | None = None
        version = header.version
        assert version is not None  # An Initial is a long-header packet.
        retry = self._retry
        if retry is not None:
            now = self._context.now
            if not header.token:
                source_cid = os.urandom(self._configuration.connection_id_length)
                token = _create_token(retry, address, header.destination_cid, source_cid, now)
                packet = encode_quic_retry(
                    version=version,
                    source_cid=source_cid,
                    destination_cid=header.source_cid,
                    original_destination_cid=header.destination_cid,
                    retry_token=token,
                )
                self._out.append((packet, address))
                return None
            try:
                original_cid = _validate_token(
                    retry, address, header.destination_cid, header.token, now
                )
            except Exception:  # Forged, expired, for another address or id: refuse it.
                self._out.append((_invalid_token_close(header), address))
                return None
            retry_cid = header.destination_cid
        try:
            quic = ServerQuicConnection(
                configuration=self._configuration,
                original_destination_connection_id=original_cid,
                retry_source_connection_id=retry_cid,
            )
        except Exception:  # (Defensive: a configuration aioquic cannot serve with.)
            return None
        connection = H3Connection(
            self._context, quic, server=self._server, on_connection_id=self._connection_id
        )
        cids = {header.destination_cid, quic.host_cid}
        self._connections[connection] = cids
        for cid in cids:
            self._routes[cid] = connection
        connection.receive_datagram(data, address)
        if not connection.established:
            self.discard(connection)
            return None
        return connection

    def _connection_id(self, connection: H3Connection, cid: bytes, issued: bool) -> None:
        cids = self._connections.get(connection)
        if cids is None:
            return
        if issued:
            cids.add(cid)
            self._routes[cid] = connection
        else:
            cids.discard(cid)
            if self._routes.get(cid) is connection:
                del self._routes[cid]


# aioquic 1.4 made the retry token handler keyword-only, with a lifetime and a check of
# the connection id; 1.3 is the last release for Python 3.10 and has neither.
_TIMED_TOKENS = "now" in inspect.signature(QuicRetryTokenHandler.create_token).parameters


def _create_token(
    retry: QuicRetryTokenHandler, address: Address, original: bytes, source: bytes, now: float
) -> bytes:
    if _TIMED_TOKENS:
        return retry.create_token(
            address=address,
            original_destination_connection_id=original,
            retry_source_connection_id=source,
            now=now,
        )
    token: bytes = cast("Any", retry).create_token(address, original, source)
    return token


def _validate_token(
    retry: QuicRetryTokenHandler, address: Address, destination: bytes, token: bytes, now: float
) -> bytes:
    """The original destination connection id the token carries; raises if it is not
    valid for ``address`` and ``destination`` (the id the Retry gave the client)."""
    if _TIMED_TOKENS:
        return retry.validate_token(
            address=address, destination_cid=destination, token=token, now=now
        )
    original, source = cast("Any", retry).validate_token(address, token)
    if source != destination:
        raise ValueError("the token was issued for another connection id")
    return bytes(original)


def _invalid_token_close(header: QuicHeader) -> bytes:
    """A server Initial packet closing the connection with ``INVALID_TOKEN``.

    It is protected with the Initial keys of the client's destination connection id, which
    the client can derive, and addressed to the client's source connection id.
    """
    version = header.version
    assert version is not None
    crypto = CryptoPair()
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=version)
    builder = QuicPacketBuilder(
        host_cid=header.destination_cid,
        peer_cid=header.source_cid,
        version=version,
        is_client=False,
        max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE,
    )
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    frame = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=32)
    frame.push_uint_var(QuicErrorCode.INVALID_TOKEN)
    frame.push_uint_var(QuicFrameType.PADDING)  # the frame type that caused it: none
    frame.push_uint_var(0)  # no reason phrase
    datagrams, _ = builder.flush()
    return datagrams[0]
