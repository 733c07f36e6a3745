"""Tests of Config.create_sockets: every bind kind really bound on loopback."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import hypercorn.config
from hypercorn.config import Config, ConfigError, Sockets, SocketTypeError
from tests.helpers import ipv6_loopback_available

needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="this machine cannot bind the IPv6 loopback ::1"
)
needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")


@contextmanager
def created(config: Config) -> Iterator[Sockets]:
    """create_sockets(), closing every socket afterwards."""
    sockets = config.create_sockets()
    try:
        yield sockets
    finally:
        for group in (sockets.secure_sockets, sockets.insecure_sockets, sockets.quic_sockets):
            for sock in group:
                sock.close()


def _option(sock: socket.socket, level: int, name: int) -> int:
    return sock.getsockopt(level, name)


def _listening(sock: socket.socket) -> bool:
    return _option(sock, socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0


def _assert_common(sock: socket.socket) -> None:
    assert _option(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    assert sock.getblocking() is False
    assert sock.get_inheritable() is True


def _connect_and_accept(
    server: socket.socket, family: int, address: tuple[Any, ...] | str
) -> None:
    """Prove a listening socket works: a client connects and the server accepts."""
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        server.settimeout(5)
        connection, _ = server.accept()
        connection.close()
        server.setblocking(False)


# -- TCP ------------------------------------------------------------------------------------


def test_tcp_ipv4() -> None:
    config = Config()
    config.bind = "127.0.0.1:0"
    with created(config) as sockets:
        assert sockets.secure_sockets == []
        assert sockets.quic_sockets == []
        [sock] = sockets.insecure_sockets
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        host, port = sock.getsockname()
        assert host == "127.0.0.1"
        assert port > 0
        _assert_common(sock)
        assert _option(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert _listening(sock)
        _connect_and_accept(sock, socket.AF_INET, ("127.0.0.1", port))


def test_tcp_several_binds() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0", "127.0.0.1:0"]
    with created(config) as sockets:
        assert len(sockets.insecure_sockets) == 2
        ports = {sock.getsockname()[1] for sock in sockets.insecure_sockets}
        assert len(ports) == 2


@needs_ipv6
@pytest.mark.parametrize("bind", ["[::1]:0", "::1:0"])
def test_tcp_ipv6(bind: str) -> None:
    config = Config()
    config.bind = bind
    with created(config) as sockets:
        [sock] = sockets.insecure_sockets
        assert sock.family == socket.AF_INET6
        host, port, *_ = sock.getsockname()
        assert host == "::1"
        _assert_common(sock)
        assert _option(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        _connect_and_accept(sock, socket.AF_INET6, ("::1", port))


@pytest.mark.parametrize(
    ("bind", "family", "address"),
    [
        ("127.0.0.1", socket.AF_INET, ("127.0.0.1", 8000)),
        ("localhost:81", socket.AF_INET, ("localhost", 81)),
        (":0", socket.AF_INET, ("", 0)),
        ("[::1]", socket.AF_INET6, ("::1", 8000)),  # Hypercorn parsed this as port 1
        ("[::]:5000", socket.AF_INET6, ("::", 5000)),
        ("::1:5000", socket.AF_INET6, ("::1", 5000)),
        ("unix:/run/a.sock", socket.AF_UNIX, "/run/a.sock"),
        ("fd://7", None, 7),
    ],
)
def test_bind_parsing(bind: str, family: int | None, address: object) -> None:
    assert hypercorn.config._parse_bind("bind", bind) == (family, address)


@needs_ipv6
def test_bracketed_ipv6_without_port_listens_on_8000() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("::1", 8000))
        except OSError as error:
            pytest.skip(f"port 8000 on ::1 is in use on this machine ({error})")
    config = Config()
    config.bind = "[::1]"
    with created(config) as sockets:
        assert sockets.insecure_sockets[0].getsockname()[1] == 8000


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
@pytest.mark.parametrize(("workers", "expected"), [(0, False), (1, False), (2, True)])
def test_reuse_port_with_several_workers(workers: int, expected: bool) -> None:
    config = Config()
    config.bind = "127.0.0.1:0"
    config.workers = workers
    with created(config) as sockets:
        [sock] = sockets.insecure_sockets
        assert (_option(sock, socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0) is expected


def test_backlog_and_address_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = Config()
        config.bind = ["127.0.0.1:0", f"127.0.0.1:{port}"]
        with pytest.raises(OSError, match=rf"bind '127\.0\.0\.1:{port}'") as info:
            config.create_sockets()
        assert info.value.errno == errno.EADDRINUSE


def test_bind_changed_in_place_is_checked_again() -> None:
    config = Config()
    config.bind.append("127.0.0.1:http")
    with pytest.raises(ConfigError, match=r"bind: cannot parse '127\.0\.0\.1:http'"):
        config.create_sockets()


# -- TLS roles ------------------------------------------------------------------------------


def test_tls_off_ignores_insecure_and_quic_binds() -> None:
    config = Config()
    config.bind = "127.0.0.1:0"
    config.insecure_bind = "127.0.0.1:0"
    config.quic_bind = "127.0.0.1:0"
    with created(config) as sockets:
        assert sockets.secure_sockets == []
        assert len(sockets.insecure_sockets) == 1
        assert sockets.quic_sockets == []
    assert [name for name, _ in config.response_headers("h11", date=b"D")] == [
        b"date",
        b"server",
    ]


def test_tls_on_roles_and_alt_svc() -> None:
    config = Config()
    config.certfile, config.keyfile = "cert.pem", "key.pem"  # only needed for the TLS context
    config.bind = "127.0.0.1:0"
    config.insecure_bind = "127.0.0.1:0"
    config.quic_bind = ["127.0.0.1:0", "127.0.0.1:0"]
    with created(config) as sockets:
        [secure] = sockets.secure_sockets
        [insecure] = sockets.insecure_sockets
        assert secure.type == insecure.type == socket.SOCK_STREAM
        assert _listening(secure)
        assert _listening(insecure)
        assert len(sockets.quic_sockets) == 2
        ports = []
        for quic in sockets.quic_sockets:
            assert quic.type == socket.SOCK_DGRAM
            _assert_common(quic)
            ports.append(quic.getsockname()[1])

        headers = config.response_headers("h3", date=b"D")
        assert headers == [
            (b"date", b"D"),
            (b"server", b"hypercorn-h3"),
            *[
                (b"alt-svc", f'{alpn}=":{port}"; ma=3600'.encode())
                for alpn in hypercorn.config._h3_alpn_ids()
                for port in ports
            ],
        ]
        # Explicit values replace the advertised QUIC ports.
        config.alt_svc_headers = ["clear"]
        assert config.response_headers("h3", date=b"D")[2:] == [(b"alt-svc", b"clear")]


def test_quic_addresses_are_reset_when_tls_is_turned_off() -> None:
    config = Config()
    config.certfile, config.keyfile = "cert.pem", "key.pem"
    config.bind = "127.0.0.1:0"
    config.quic_bind = "127.0.0.1:0"
    with created(config):
        pass
    assert len(config.response_headers("h2")) == 3
    config.certfile = None
    with created(config):
        pass
    assert len(config.response_headers("h2")) == 2


def test_failure_in_a_later_group_closes_earlier_sockets() -> None:
    config = Config()
    config.certfile, config.keyfile = "cert.pem", "key.pem"
    config.bind = "127.0.0.1:0"
    config.quic_bind = "127.0.0.1:0"
    config.quic_bind.append("[::1")  # bypasses the setter's check
    with pytest.raises(ConfigError, match="quic_bind"):
        config.create_sockets()
    # Nothing leaked: an unclosed socket would raise ResourceWarning (an error here).


# -- unix -----------------------------------------------------------------------------------


@pytest.fixture
def short_tmp(tmp_path: Path) -> Path:
    """A directory whose paths fit in sockaddr_un (about 100 bytes)."""
    if len(str(tmp_path)) > 80:
        pytest.skip(f"temporary directory path too long for a unix socket: {tmp_path}")
    return tmp_path


@needs_unix
def test_unix_socket_with_umask(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    config = Config()
    config.bind = f"unix:{path}"
    config.umask = 0o077
    before = os.umask(0o022)
    try:
        with created(config) as sockets:
            assert os.umask(0o022) == 0o022  # restored after binding
            [sock] = sockets.insecure_sockets
            assert (sock.family, sock.type) == (socket.AF_UNIX, socket.SOCK_STREAM)
            assert sock.getsockname() == str(path)
            _assert_common(sock)
            assert _listening(sock)
            mode = path.stat().st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) & 0o077 == 0
            _connect_and_accept(sock, socket.AF_UNIX, str(path))
    finally:
        os.umask(before)


@needs_unix
def test_unix_stale_socket_is_replaced(short_tmp: Path) -> None:
    path = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as old:
        old.bind(str(path))
    assert stat.S_ISSOCK(path.stat().st_mode)  # left behind by the closed socket
    config = Config()
    config.bind = f"unix:{path}"
    with created(config) as sockets:
        _connect_and_accept(sockets.insecure_sockets[0], socket.AF_UNIX, str(path))


@needs_unix
def test_unix_refuses_to_remove_a_regular_file(short_tmp: Path) -> None:
    path = short_tmp / "data.txt"
    path.write_text("precious", encoding="utf-8")
    config = Config()
    config.bind = f"unix:{path}"
    with pytest.raises(ConfigError, match="exists and is not a socket") as info:
        config.create_sockets()
    assert str(path) in str(info.value)
    assert path.read_text(encoding="utf-8") == "precious"


@needs_unix
def test_unix_chown_to_user_and_group(short_tmp: Path) -> None:
    path = short_tmp / "own.sock"
    config = Config()
    config.bind = f"unix:{path}"
    config.user, config.group = os.getuid(), os.getgid()
    with created(config):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())


@needs_unix
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize(
    ("user", "group", "owner"), [(4321, 4322, (4321, 4322)), (4321, None, (0, 0))]
)
def test_unix_chown_only_with_both_ids(
    short_tmp: Path, user: int, group: int | None, owner: tuple[int, int]
) -> None:
    path = short_tmp / "root.sock"
    config = Config()
    config.bind = f"unix:{path}"
    config.user, config.group = user, group
    with created(config):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == owner


@needs_unix
def test_unix_datagram_quic_socket_cannot_be_advertised(short_tmp: Path) -> None:
    path = short_tmp / "q.sock"
    config = Config()
    config.certfile, config.keyfile = "cert.pem", "key.pem"
    config.bind = "127.0.0.1:0"
    config.quic_bind = f"unix:{path}"
    with pytest.warns(RuntimeWarning, match="cannot advertise"):
        sockets = config.create_sockets()
    [secure] = sockets.secure_sockets
    [quic] = sockets.quic_sockets
    secure.close()
    quic.close()
    assert (quic.family, quic.type) == (socket.AF_UNIX, socket.SOCK_DGRAM)
    assert len(config.response_headers("h3")) == 2


# -- fd:// ----------------------------------------------------------------------------------


def test_fd_adopts_a_listening_socket() -> None:
    original = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    original.bind(("127.0.0.1", 0))
    original.listen(5)
    address = original.getsockname()
    fd = original.detach()  # the adopted socket owns the descriptor from now on
    config = Config()
    config.bind = f"fd://{fd}"
    with created(config) as sockets:
        [sock] = sockets.insecure_sockets
        assert sock.fileno() == fd
        assert sock.getsockname() == address
        _assert_common(sock)
        assert _option(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        _connect_and_accept(sock, socket.AF_INET, address)


def test_fd_adopts_a_udp_socket_for_quic() -> None:
    original = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    original.bind(("127.0.0.1", 0))
    port = original.getsockname()[1]
    fd = original.detach()
    config = Config()
    config.certfile, config.keyfile = "cert.pem", "key.pem"
    config.bind = "127.0.0.1:0"
    config.quic_bind = f"fd://{fd}"
    with created(config) as sockets:
        assert sockets.quic_sockets[0].fileno() == fd
        assert config.response_headers("h3", date=b"D")[2][1].endswith(
            f'":{port}"; ma=3600'.encode()
        )


@pytest.mark.parametrize(
    ("kind", "option", "wanted"),
    [
        (socket.SOCK_DGRAM, "bind", socket.SOCK_STREAM),
        (socket.SOCK_STREAM, "quic_bind", socket.SOCK_DGRAM),
    ],
)
def test_fd_of_the_wrong_type(kind: int, option: str, wanted: int) -> None:
    with socket.socket(socket.AF_INET, kind) as original:
        config = Config()
        config.certfile, config.keyfile = "cert.pem", "key.pem"
        config.bind = "127.0.0.1:0"
        setattr(config, option, f"fd://{original.fileno()}")
        with pytest.raises(SocketTypeError) as info:
            config.create_sockets()
        assert (info.value.expected, info.value.actual) == (wanted, kind)
        original.getsockname()  # the descriptor was left open for its owner


def test_fd_that_is_not_a_socket(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as file:
        config = Config()
        config.bind = f"fd://{file.fileno()}"
        with pytest.raises(ConfigError, match=r"file descriptor \d+ is not an open socket"):
            config.create_sockets()
