"""The server's configuration: :class:`Config`, and the listening sockets it creates.

Every option is an annotated class attribute with its default, followed by a docstring for
users (the configuration reference in the documentation is generated from them). Reading an
option on the class, such as ``Config.workers``, gives its default; a ``Config()`` instance
starts with every default and gets its own copy of each list, so changing one configuration
never changes another.

A ``Config`` is built in code, or loaded with :meth:`Config.from_toml`,
:meth:`Config.from_pyfile`, :meth:`Config.from_object` or :meth:`Config.from_mapping`.
Mistakes a user can make in a configuration (a bind that cannot be parsed, a missing or
malformed file, a certificate or key that cannot be loaded) raise :class:`ConfigError`, a
:class:`ValueError` whose message names the option and the offending value.

:meth:`Config.create_sockets` is the one place in the protocol layer that makes sockets; the
rest of this module is plain data and never touches an event loop.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import ipaddress
import logging
import os
import socket
import ssl
import stat
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from hypercorn.logging import Logger

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = (
    "BYTES",
    "OCTETS",
    "SECONDS",
    "Config",
    "ConfigError",
    "FilePath",
    "SocketKind",
    "SocketTypeError",
    "Sockets",
)

BYTES = 1
"""Unit multiplier for sizes in bytes, e.g. ``32 * 1024 * BYTES``."""
OCTETS = 1
"""Unit multiplier for sizes in octets (the HTTP/2 name for bytes)."""
SECONDS = 1.0
"""Unit multiplier for durations in seconds."""

FilePath: TypeAlias = bytes | os.PathLike[str] | os.PathLike[bytes] | str
"""Anything :func:`open` accepts as a file name."""
SocketKind: TypeAlias = int | socket.SocketKind
"""A socket type such as :data:`socket.SOCK_STREAM`, as an enum member or a plain int."""

_DEFAULT_PORT = 8000
_ConfigT = TypeVar("_ConfigT", bound="Config")


class ConfigError(ValueError):
    """A configuration value is invalid, or a configuration file cannot be loaded.

    The message names the option (or file) and the offending value, so it can be shown to
    the user as it is.
    """


class SocketTypeError(ConfigError):
    """An ``fd://`` bind names a socket of the wrong type (e.g. UDP where TCP is needed).

    ``expected`` and ``actual`` are the wanted and the found socket types. It derives from
    :class:`ConfigError` (and so from :class:`Exception`, as in Hypercorn).
    """

    def __init__(self, expected: SocketKind, actual: SocketKind) -> None:
        super().__init__(expected, actual)
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return (
            f"Unexpected socket type: wanted {_kind_name(self.expected)}, "
            f"got {_kind_name(self.actual)}"
        )


def _kind_name(kind: SocketKind) -> str:
    try:
        return socket.SocketKind(kind).name
    except ValueError:
        return str(int(kind))


@dataclass
class Sockets:
    """The listening sockets made by :meth:`Config.create_sockets`, by role."""

    secure_sockets: list[socket.socket]
    """TCP sockets that speak TLS (HTTP/1.1 and HTTP/2 over TLS)."""
    insecure_sockets: list[socket.socket]
    """TCP (or unix) sockets that speak plaintext HTTP."""
    quic_sockets: list[socket.socket]
    """UDP sockets that speak QUIC (HTTP/3)."""


class Config:
    """Every setting of the server, with Hypercorn's names and defaults.

    ``Config()`` takes no arguments. Set options as attributes, or build one with the
    ``from_*`` class methods. Instances are picklable, so a configuration can be sent to
    worker processes (the cached :attr:`log` is left out and rebuilt on first use).
    A subclass that defines ``__init__`` must call ``super().__init__()``.
    """

    access_log_format: str = '%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    """The format of each access-log line, in ``%``-style with one atom per request field
    (e.g. ``%(h)s`` the remote address, ``%(r)s`` the request line, ``%(s)s`` the status).
    CLI: ``--access-logformat``."""

    accesslog: logging.Logger | str | None = None
    """Where access logs go: ``None`` turns them off, ``"-"`` writes to standard output, any
    other string is a file path, and a :class:`logging.Logger` is used as it is.
    CLI: ``--access-logfile``."""

    alpn_protocols: list[str] = ["h2", "http/1.1"]  # noqa: RUF012 - copied per instance
    """The protocols offered through TLS ALPN, in order of preference. Remove ``"h2"`` to
    serve only HTTP/1.1 over TLS."""

    alt_svc_headers: list[str] = []  # noqa: RUF012 - copied per instance
    """Values for ``alt-svc`` headers added to every response. When empty and QUIC sockets
    are bound, an ``alt-svc`` header advertising HTTP/3 on each QUIC port is added
    instead."""

    application_path: str
    """The application to serve, as ``[asgi:|wsgi:]module[:attribute]``. It has no default:
    the command line sets it from its ``APPLICATION`` argument, and reading it before it is
    set raises :class:`AttributeError` with an explanation."""

    backlog: int = 100
    """The most connections the operating system queues on each listening socket before
    the server accepts them. CLI: ``--backlog``."""

    ca_certs: str | None = None
    """Path of a file of CA certificates used to verify client certificates; ``None`` loads
    none. CLI: ``--ca-certs``."""

    certfile: str | None = None
    """Path of the TLS certificate chain (PEM). TLS is on when both this and
    :attr:`keyfile` are set. CLI: ``--certfile``."""

    ciphers: str = "ECDHE+AESGCM"
    """The TLS cipher suites to allow, as an OpenSSL cipher list string.
    CLI: ``--ciphers``."""

    daemon: bool = True
    """Whether worker processes are started as daemonic ``multiprocessing`` processes.
    Daemonic processes cannot start processes of their own: set this to ``False`` if the
    application uses ``multiprocessing``. Either way, workers stop when the supervisor
    stops or disappears. CLI: ``-D``/``--daemon`` (sets it to ``True``)."""

    debug: bool = False
    """Runs the asyncio and uvloop workers' event loop in debug mode. It has no effect when
    serving through ``hypercorn.asyncio.serve``. CLI: ``--debug``."""

    dogstatsd_tags: str = ""
    """DogStatsD tags such as ``"env:prod,region:eu"``, appended as ``|#<tags>`` to every
    StatsD metric; empty sends none."""

    errorlog: logging.Logger | str | None = "-"
    """Where error logs go: ``"-"`` (the default) writes to standard error, any other string
    is a file path, a :class:`logging.Logger` is used as it is, and ``None`` turns them off.
    CLI: ``--error-logfile`` or ``--log-file``."""

    graceful_timeout: float = 3.0
    """Seconds that open connections are given to finish after shutdown starts; anything
    still running then is cancelled. CLI: ``--graceful-timeout``."""

    group: int | None = None
    """Group id to give unix socket files to. It applies only when :attr:`user` is set too;
    ``None`` leaves ownership alone. CLI: ``-g``/``--group``."""

    h11_max_incomplete_size: int = 16384
    """The largest HTTP/1.1 request line plus headers accepted, in bytes (default 16 KiB).
    A bigger request head is refused with status 431."""

    h11_pass_raw_headers: bool = False
    """Pass HTTP/1.1 request header names to the application with the case the client used,
    instead of lower-cased."""

    h2_max_concurrent_streams: int = 100
    """The most HTTP/2 streams a client may have open on one connection at a time
    (``SETTINGS_MAX_CONCURRENT_STREAMS``)."""

    h2_max_header_list_size: int = 65536
    """The largest HTTP/2 header list accepted, in octets (``SETTINGS_MAX_HEADER_LIST_SIZE``,
    default 64 KiB)."""

    h2_max_inbound_frame_size: int = 16384
    """The largest HTTP/2 frame payload accepted from a client, in octets (default
    16 KiB)."""

    http1_parser: str = "auto"
    """The HTTP/1.1 request parser: ``"h11"``; ``"httptools"`` (llhttp, faster; needs the
    ``accel`` extra, ``pip install 'hypercorn-protocols[accel]'``); or ``"auto"``, which
    uses httptools when it is installed and h11 otherwise. Both accept and refuse the same
    requests and frame responses the same way. An unknown value, or ``"httptools"``
    without httptools 0.6.3 or newer, is a :class:`ConfigError` from
    :func:`hypercorn.protocol.http1.select_codec`, which chooses the parser of each
    HTTP/1.1 connection. An extension of this server. CLI: ``--http1-parser``."""

    include_date_header: bool = True
    """Add a ``date`` header to every response."""

    include_server_header: bool = True
    """Add a ``server: hypercorn-<protocol>`` header (``h11``, ``h2`` or ``h3``) to every
    response."""

    keep_alive_max_requests: int = 1000
    """The most requests served on one HTTP/1.1 or HTTP/2 connection before the server asks
    the client to open a new one."""

    keep_alive_timeout: float = 5.0
    """Seconds an idle connection (waiting for its next request) is kept open before it is
    closed. CLI: ``--keep-alive``."""

    keyfile: str | None = None
    """Path of the TLS private key (PEM). TLS is on when both this and :attr:`certfile` are
    set. CLI: ``--keyfile``."""

    keyfile_password: str | None = None
    """The password that decrypts :attr:`keyfile`; ``None`` if the key is not encrypted.
    CLI: ``--keyfile-password``."""

    logconfig: str | None = None
    """A logging configuration file: ``json:PATH`` or ``toml:PATH`` for a
    :func:`logging.config.dictConfig` dictionary, otherwise the path of an ini file for
    :func:`logging.config.fileConfig`. ``None`` loads none. CLI: ``--log-config``."""

    logconfig_dict: dict[str, Any] | None = None
    """A dictionary for :func:`logging.config.dictConfig`, used only when :attr:`logconfig`
    is ``None``."""

    logger_class: type[Logger] = Logger
    """The class whose instance, built with this configuration, does the server's logging
    (see :attr:`log`)."""

    loglevel: str = "INFO"
    """The level (e.g. ``"DEBUG"``, ``"WARNING"``, any case) of the error and access loggers
    the server creates. CLI: ``--log-level``."""

    max_app_queue_size: int = 10
    """The most messages waiting to be received by one application instance (per request,
    WebSocket or lifespan) before the server stops reading more for it."""

    max_requests: int | None = None
    """Restart each worker process after it has served this many requests (plus a random
    :attr:`max_requests_jitter`); ``None`` never restarts. CLI: ``--max-requests``."""

    max_requests_jitter: int = 0
    """Up to this many requests are added at random to :attr:`max_requests` for each worker,
    so that workers do not all restart at once. CLI: ``--max-requests-jitter``."""

    pid_path: str | None = None
    """Write the server's process id to this file; ``None`` writes none.
    CLI: ``-p``/``--pid``."""

    read_timeout: float | None = None
    """Seconds to wait for each read from a client before closing its connection; ``None``
    waits forever. CLI: ``--read-timeout``."""

    server_names: list[str] = []  # noqa: RUF012 - copied per instance
    """Host names the server answers to, compared with each request's ``Host`` (including
    any port). Requests for other hosts get a 404. Empty accepts every host.
    CLI: ``--server-name`` (repeatable)."""

    shutdown_timeout: float = 60.0
    """Seconds to wait for the application's lifespan shutdown to complete."""

    ssl_handshake_timeout: float = 60.0
    """Seconds a client is given to complete the TLS handshake."""

    startup_timeout: float = 60.0
    """Seconds to wait for the application's lifespan startup to complete."""

    statsd_host: str | None = None
    """``host:port`` of a StatsD server to send metrics to; ``None`` sends none.
    CLI: ``--statsd-host``."""

    statsd_prefix: str = ""
    """A prefix for every StatsD metric name (a ``.`` is added after it if missing).
    CLI: ``--statsd-prefix``."""

    umask: int | None = None
    """The umask applied while unix socket files are created, e.g. ``0o007``; ``None``
    keeps the process umask. CLI: ``-m``/``--umask``."""

    use_reloader: bool = False
    """Restart the workers whenever a Python file under the working directory (or the
    application file's directory) changes; for development. Needs at least one worker
    process. CLI: ``--reload``."""

    user: int | None = None
    """User id to give unix socket files to. It applies only when :attr:`group` is set too;
    ``None`` leaves ownership alone. CLI: ``-u``/``--user``."""

    verify_flags: ssl.VerifyFlags | None = None
    """Certificate verification flags for the TLS context (:attr:`ssl.SSLContext.
    verify_flags`); ``None`` keeps the defaults."""

    verify_mode: ssl.VerifyMode | None = None
    """Whether clients must present a certificate (e.g. ``ssl.CERT_REQUIRED``); ``None``
    keeps the default, which asks for none. CLI: ``--verify-mode``."""

    websocket_max_message_size: int = 16777216
    """The largest WebSocket message accepted, in bytes (default 16 MiB); the connection is
    closed with code 1009 when a message is bigger."""

    websocket_ping_interval: float | None = None
    """Seconds between pings the server sends on each open WebSocket; ``None`` sends none.
    CLI: ``--websocket-ping-interval``."""

    worker_class: str = "asyncio"
    """The event loop the workers run on: ``"asyncio"``, ``"uvloop"`` or ``"trio"``.
    CLI: ``-k``/``--worker-class``."""

    worker_heartbeat_timeout: float | None = 30.0
    """Seconds a worker's event loop may stay unresponsive (each worker reports to the
    supervisor once a second) before the supervisor kills and replaces the worker.
    ``None`` or ``0`` turns the check off. An extension of this server.
    CLI: ``--worker-heartbeat-timeout``."""

    workers: int = 1
    """The number of worker processes. ``0`` serves from the main process itself, without a
    supervisor. CLI: ``-w``/``--workers``."""

    wsgi_max_body_size: int = 16777216
    """The largest request body buffered for a WSGI application, in bytes (default 16 MiB);
    bigger requests get a 400."""

    def __init__(self) -> None:
        cls = type(self)
        # Own copies, so that changing one configuration's lists never changes another's.
        self.alpn_protocols = list(cls.alpn_protocols)
        self.alt_svc_headers = list(cls.alt_svc_headers)
        self.server_names = list(cls.server_names)
        self._bind: list[str] = [f"127.0.0.1:{_DEFAULT_PORT}"]
        self._insecure_bind: list[str] = []
        self._quic_bind: list[str] = []
        self._quic_addresses: list[tuple[Any, ...]] = []
        self._root_path = ""
        self._log: Logger | None = None

    if not TYPE_CHECKING:
        # Hidden from type checkers so that a misspelt option is still a type error.

        def __getattr__(self, name: str) -> Any:
            # Only called when normal lookup fails.
            if name == "application_path":
                raise AttributeError(
                    "Config.application_path is not set: set it to the application to "
                    "serve, such as 'module:app' (the command line sets it from its "
                    "APPLICATION argument)"
                )
            if name == "cert_reqs":  # the property's own message is lost on the way here
                raise AttributeError("Config.cert_reqs is write-only; read verify_mode instead")
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        # The cached logger holds open handlers; each process builds its own.
        state = self.__dict__.copy()
        state["_log"] = None
        return state

    # -- addresses ----------------------------------------------------------------------

    @property
    def bind(self) -> list[str]:
        """The addresses to listen on for TCP, default ``["127.0.0.1:8000"]``. Each is
        ``host:port``, ``host`` (port 8000), ``[ipv6]:port`` or ``[ipv6]`` (port 8000),
        ``unix:PATH`` or ``fd://N`` (an inherited socket). With TLS on these speak TLS;
        otherwise plaintext. A single string is taken as a one-item list. CLI: ``-b``/``--bind``
        (repeatable)."""
        return self._bind

    @bind.setter
    def bind(self, value: str | Iterable[str]) -> None:
        self._bind = _bind_list("bind", value)

    @property
    def insecure_bind(self) -> list[str]:
        """Extra addresses to listen on for plaintext HTTP while TLS is on (for example to
        redirect to HTTPS), in the :attr:`bind` syntax; default none. Ignored when TLS is off.
        CLI: ``--insecure-bind`` (repeatable)."""
        return self._insecure_bind

    @insecure_bind.setter
    def insecure_bind(self, value: str | Iterable[str]) -> None:
        self._insecure_bind = _bind_list("insecure_bind", value)

    @property
    def quic_bind(self) -> list[str]:
        """UDP addresses to serve HTTP/3 (QUIC) on, in the :attr:`bind` syntax; default none.
        HTTP/3 needs TLS, so these are ignored when TLS is off, and the ``h3`` extra
        (aioquic) must be installed. CLI: ``--quic-bind`` (repeatable)."""
        return self._quic_bind

    @quic_bind.setter
    def quic_bind(self, value: str | Iterable[str]) -> None:
        self._quic_bind = _bind_list("quic_bind", value)

    @property
    def root_path(self) -> str:
        """The ASGI ``root_path``: the path prefix under which the application is mounted,
        such as ``"/api"``; default ``""``. A trailing ``/`` is removed when it is set.
        CLI: ``--root-path``."""
        return self._root_path

    @root_path.setter
    def root_path(self, value: str) -> None:
        if not isinstance(value, str):
            raise ConfigError(f"root_path must be a string, not {value!r}")
        self._root_path = value.rstrip("/")

    # -- derived values -----------------------------------------------------------------

    @property
    def log(self) -> Logger:
        """The logger, an instance of :attr:`logger_class`, built on first use and kept."""
        if self._log is None:
            try:
                self._log = self.logger_class(self)
            except AttributeError as exc:
                # Left as it is, Python would report it as "Config has no attribute 'log'".
                raise RuntimeError(f"{self.logger_class.__name__}(config) failed: {exc}") from exc
        return self._log

    @property
    def ssl_enabled(self) -> bool:
        """True when TLS is on, that is when both :attr:`certfile` and :attr:`keyfile` are
        set."""
        return self.certfile is not None and self.keyfile is not None

    @property
    def cert_reqs(self) -> int:
        """Deprecated and write-only: setting it sets :attr:`verify_mode` (and warns).
        CLI: ``--cert-reqs``."""
        raise AttributeError("Config.cert_reqs is write-only; read verify_mode instead")

    @cert_reqs.setter
    def cert_reqs(self, value: int) -> None:
        self.set_cert_reqs(value)

    def set_cert_reqs(self, value: int) -> None:
        """Set :attr:`verify_mode` from an ``ssl.CERT_*`` value; use ``verify_mode``.

        Emits a :class:`FutureWarning` (a deprecation warning shown to end users by default).
        """
        warnings.warn(
            "cert_reqs is deprecated, set verify_mode instead", FutureWarning, stacklevel=2
        )
        try:
            self.verify_mode = ssl.VerifyMode(value)
        except ValueError:
            raise ConfigError(
                f"cert_reqs must be one of the ssl.CERT_* values, not {value!r}"
            ) from None

    def set_statsd_logger_class(self, statsd_logger: type[Logger]) -> None:
        """Use ``statsd_logger`` as :attr:`logger_class` when :attr:`statsd_host` is set and
        the logger class is still the default; otherwise do nothing.

        Workers call this with their StatsD logger. A logger already built by :attr:`log`
        is dropped, so the next use builds one of the new class.
        """
        if self.logger_class is Logger and self.statsd_host is not None:
            self.logger_class = statsd_logger
            self._log = None

    # -- TLS ----------------------------------------------------------------------------

    def create_ssl_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context, or ``None`` when TLS is off.

        It allows TLS 1.2 and newer with :attr:`ciphers`, disables TLS compression, offers
        :attr:`alpn_protocols`, loads :attr:`certfile` and :attr:`keyfile` (decrypted with
        :attr:`keyfile_password`), then :attr:`ca_certs`, :attr:`verify_mode` and
        :attr:`verify_flags` when set. Python's secure default options are kept (Hypercorn
        replaced them all by ``OP_NO_COMPRESSION``). A file that is missing or cannot be
        loaded, a wrong password, or an encrypted key without a password raises
        :class:`ConfigError` naming the option; OpenSSL never prompts for a password.
        """
        certfile, keyfile = self.certfile, self.keyfile
        if certfile is None or keyfile is None:  # not self.ssl_enabled
            return None
        for option, path in (("certfile", certfile), ("keyfile", keyfile)):
            if not os.path.isfile(path):
                raise ConfigError(f"{option}: file not found: {path!r}")

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.set_ciphers(self.ciphers)
        except ssl.SSLError as exc:
            raise ConfigError(f"ciphers: no usable cipher in {self.ciphers!r}") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 9113 section 9.2
        context.options |= ssl.OP_NO_COMPRESSION  # RFC 9113 section 9.2.1
        context.set_alpn_protocols(self.alpn_protocols)

        password_asked = False

        def password() -> str:
            nonlocal password_asked
            password_asked = True
            if self.keyfile_password is None:
                raise ConfigError(
                    f"keyfile {keyfile!r} is encrypted: set keyfile_password to decrypt it"
                )
            return self.keyfile_password

        try:
            context.load_cert_chain(certfile, keyfile, password=password)
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                message = f"keyfile {keyfile!r} is not the key of certfile {certfile!r}"
            elif password_asked:
                message = f"keyfile_password: wrong password for keyfile {keyfile!r}"
            else:
                message = (
                    f"certfile {certfile!r} / keyfile {keyfile!r}: cannot load the "
                    f"certificate chain and private key (are they PEM files?): {exc}"
                )
            raise ConfigError(message) from exc

        if self.ca_certs is not None:
            if not os.path.isfile(self.ca_certs):
                raise ConfigError(f"ca_certs: file not found: {self.ca_certs!r}")
            try:
                context.load_verify_locations(self.ca_certs)
            except ssl.SSLError as exc:
                raise ConfigError(f"ca_certs: cannot load {self.ca_certs!r}: {exc}") from exc
        if self.verify_mode is not None:
            context.verify_mode = self.verify_mode
        if self.verify_flags is not None:
            context.verify_flags = self.verify_flags
        return context

    # -- sockets ------------------------------------------------------------------------

    def create_sockets(self) -> Sockets:
        """Create, bind and listen on every configured socket, grouped by role.

        With TLS on, :attr:`bind` gives the TLS sockets, :attr:`insecure_bind` the plaintext
        ones and :attr:`quic_bind` the UDP ones for HTTP/3 (whose ports are then advertised
        in ``alt-svc``). With TLS off, :attr:`bind` gives plaintext sockets and the other
        two lists are ignored.

        Every socket is non-blocking and inheritable, with ``SO_REUSEADDR``; TCP sockets
        also get ``TCP_NODELAY`` and, when :attr:`workers` is above 1, ``SO_REUSEPORT``
        where the platform has it. Stream sockets this method binds are put in listening
        state with :attr:`backlog`; ``fd://`` sockets are adopted as they are. For
        ``unix:PATH`` a leftover socket file at PATH is removed first (any other kind of
        file there is an error), the file is created under :attr:`umask` and given to
        :attr:`user` and :attr:`group`.

        Binds are validated when set and again here (a list can be changed in place):
        an unparsable one raises :class:`ConfigError`; a bind the OS refuses raises
        :class:`OSError` naming it. On any error the sockets already made are closed.
        """
        if self.ssl_enabled:
            secure = self._create_sockets(self.bind, option="bind")
            try:
                insecure = self._create_sockets(self.insecure_bind, option="insecure_bind")
                try:
                    quic = self._create_sockets(
                        self.quic_bind, socket.SOCK_DGRAM, option="quic_bind"
                    )
                except BaseException:
                    _close_all(insecure)
                    raise
            except BaseException:
                _close_all(secure)
                raise
            self._set_quic_addresses(quic)
            return Sockets(secure, insecure, quic)
        insecure = self._create_sockets(self.bind, option="bind")
        self._quic_addresses = []
        return Sockets([], insecure, [])

    def _create_sockets(
        self, binds: list[str], type_: int = socket.SOCK_STREAM, *, option: str = "bind"
    ) -> list[socket.socket]:
        sockets: list[socket.socket] = []
        try:
            for bind in binds:
                sockets.append(self._create_socket(option, bind, type_))
        except BaseException:
            _close_all(sockets)
            raise
        return sockets

    def _create_socket(self, option: str, bind: str, type_: int) -> socket.socket:
        family, address = _parse_bind(option, bind)
        if family is None:
            assert isinstance(address, int)
            return self._adopt_socket(option, bind, address, type_)

        sock = socket.socket(family, type_)
        try:
            self._set_options(sock)
            if family == socket.AF_UNIX:
                assert isinstance(address, str)
                self._bind_unix(option, bind, sock, address)
            else:
                assert isinstance(address, tuple)
                try:
                    sock.bind(address)
                except OSError as exc:
                    raise OSError(exc.errno, f"{option} {bind!r}: {exc.strerror}") from exc
            if type_ == socket.SOCK_STREAM:
                sock.listen(self.backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def _adopt_socket(self, option: str, bind: str, fd: int, type_: int) -> socket.socket:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ConfigError(
                f"{option} {bind!r}: file descriptor {fd} is not an open socket ({exc})"
            ) from exc
        actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        if actual != type_:
            sock.detach()  # the descriptor is not ours to close
            raise SocketTypeError(type_, actual)
        self._set_options(sock)
        return sock

    def _set_options(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            if sock.type == socket.SOCK_STREAM:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.workers > 1 and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setblocking(False)
        sock.set_inheritable(True)

    def _bind_unix(self, option: str, bind: str, sock: socket.socket, path: str) -> None:
        abstract = path.startswith("\0")  # Linux abstract namespace: no file
        if not abstract:
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                pass
            else:
                if not stat.S_ISSOCK(mode):
                    raise ConfigError(
                        f"{option} {bind!r}: {path!r} exists and is not a socket; "
                        "refusing to remove it"
                    )
                os.unlink(path)  # a socket file left behind by an earlier server
        previous_umask = os.umask(self.umask) if self.umask is not None else None
        try:
            sock.bind(path)
        except OSError as exc:
            raise OSError(exc.errno, f"{option} {bind!r}: {exc.strerror}") from exc
        finally:
            if previous_umask is not None:
                os.umask(previous_umask)
        if not abstract and self.user is not None and self.group is not None:
            os.chown(path, self.user, self.group)

    def _set_quic_addresses(self, sockets: list[socket.socket]) -> None:
        self._quic_addresses = []
        for sock in sockets:
            name = sock.getsockname()
            if isinstance(name, tuple) and len(name) >= 2:
                self._quic_addresses.append(name)
            else:
                warnings.warn(
                    f"cannot advertise the QUIC socket at {name!r} in alt-svc: it has no port",
                    RuntimeWarning,
                    stacklevel=3,
                )

    # -- responses ----------------------------------------------------------------------

    def response_headers(
        self, protocol: str, *, date: bytes | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The headers the server adds to every response sent over ``protocol``.

        ``protocol`` is ``"h11"``, ``"h2"`` or ``"h3"``. The result holds ``date`` (when
        :attr:`include_date_header`), ``server: hypercorn-<protocol>`` (when
        :attr:`include_server_header`), then one ``alt-svc`` per :attr:`alt_svc_headers`
        entry, or, if there are none, one per HTTP/3 ALPN id and bound QUIC port, such as
        ``h3=":443"; ma=3600``. ``date`` is the header value to use; when ``None`` the
        current time is formatted (RFC 9110 IMF-fixdate), so sans-IO callers can pass
        their own clock.
        """
        headers: list[tuple[bytes, bytes]] = []
        if self.include_date_header:
            if date is None:
                date = formatdate(usegmt=True).encode("ascii")
            headers.append((b"date", date))
        if self.include_server_header:
            headers.append((b"server", f"hypercorn-{protocol}".encode("ascii")))
        if self.alt_svc_headers:
            headers.extend((b"alt-svc", value.encode("latin-1")) for value in self.alt_svc_headers)
        elif self._quic_addresses:
            for alpn in _h3_alpn_ids():
                for address in self._quic_addresses:
                    value = f'{alpn}=":{address[1]}"; ma=3600'
                    headers.append((b"alt-svc", value.encode("ascii")))
        return headers

    # -- loaders ------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls: type[_ConfigT], mapping: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> _ConfigT:
        """A new configuration with each key of ``mapping``, then of ``kwargs``, set.

        Keyword arguments win over the mapping. Read-only attributes (such as ``log`` or
        ``ssl_enabled``) are skipped; keys that are not options are set as plain attributes.
        Invalid values of validated options (such as ``bind``) raise :class:`ConfigError`.
        """
        values: dict[str, Any] = dict(mapping or {})
        values.update(kwargs)
        config = cls()
        for key, value in values.items():
            with contextlib.suppress(AttributeError):  # a read-only property
                setattr(config, key, value)
        return config

    @classmethod
    def from_toml(cls: type[_ConfigT], filename: FilePath) -> _ConfigT:
        """A new configuration from the top-level keys of a TOML file.

        For example ``bind = "0.0.0.0:8000"`` or ``bind = ["[::]:443", "0.0.0.0:443"]``.
        A missing or unreadable file, or invalid TOML, raises :class:`ConfigError` naming
        the file.
        """
        name = os.fsdecode(filename)
        try:
            with open(filename, "rb") as file:
                data = tomllib.load(file)
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {name!r}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {name!r}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in configuration file {name!r}: {exc}") from exc
        return cls.from_mapping(data)

    @classmethod
    def from_pyfile(cls: type[_ConfigT], filename: FilePath) -> _ConfigT:
        """A new configuration from the module-level names of a Python file.

        The file is executed as a module (whatever its file name suffix) and passed to
        :meth:`from_object`. A missing file raises :class:`ConfigError`; errors raised by
        the file's code propagate unchanged.
        """
        path = os.fsdecode(filename)
        if not os.path.isfile(path):
            raise ConfigError(f"configuration file not found: {path!r}")
        loader = importlib.machinery.SourceFileLoader("hypercorn_config", path)
        spec = importlib.util.spec_from_loader(loader.name, loader)
        assert spec is not None  # always made for a loader
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return cls.from_object(module)

    @classmethod
    def from_object(cls: type[_ConfigT], instance: object | str) -> _ConfigT:
        """A new configuration from the attributes of a module, class or other object.

        A string is an import path: ``"package.module"`` names a module and
        ``"package.module.name"`` an object in one. Every attribute whose name does not
        start with ``__`` and whose value is not a module is used (see
        :meth:`from_mapping`). A string that cannot be imported raises :class:`ConfigError`.
        """
        source = _import_object(instance) if isinstance(instance, str) else instance
        mapping = {
            key: getattr(source, key)
            for key in dir(source)
            if not key.startswith("__") and not isinstance(getattr(source, key), ModuleType)
        }
        return cls.from_mapping(mapping)


# -- helpers ------------------------------------------------------------------------------


def _bind_list(option: str, value: str | Iterable[str]) -> list[str]:
    """Validate a bind option's new value and return a list copy of it."""
    binds = [value] if isinstance(value, str) else value
    try:
        result = list(binds)
    except TypeError:
        raise ConfigError(
            f"{option} must be a string or a list of strings, not {value!r}"
        ) from None
    for bind in result:
        if not isinstance(bind, str):
            raise ConfigError(f"{option} must be a string or a list of strings, not {value!r}")
        _parse_bind(option, bind)
    return result


def _parse_bind(
    option: str, bind: str
) -> tuple[socket.AddressFamily | None, str | int | tuple[str, int]]:
    """Parse one bind into (family, address); family None means ``fd://`` (address = fd).

    ``[ipv6]`` without a port means port 8000, like a bare ``host`` (Hypercorn bound port 1
    there). An IPv6 address without brackets is split at its last colon, as in Hypercorn,
    and must then be a valid address; prefer brackets.
    """

    def invalid(reason: str) -> ConfigError:
        return ConfigError(f"{option}: cannot parse {bind!r}: {reason}")

    if bind.startswith("unix:"):
        path = bind[len("unix:") :]
        if not path:
            raise invalid("no socket path after 'unix:'")
        return socket.AF_UNIX, path
    if bind.startswith("fd://"):
        text = bind[len("fd://") :]
        if not (text.isascii() and text.isdigit()):
            raise invalid("expected a file descriptor number after 'fd://'")
        return None, int(text)

    def port_number(text: str) -> int:
        if text.isascii() and text.isdigit() and int(text) <= 65535:
            return int(text)
        raise invalid(f"the port must be a number from 0 to 65535, not {text!r}")

    if bind.startswith("["):
        host, bracket, rest = bind[1:].partition("]")
        if not bracket:
            raise invalid("missing ']' after the IPv6 address")
        if rest and not rest.startswith(":"):
            raise invalid("expected ':PORT' after ']'")
        port = port_number(rest[1:]) if rest else _DEFAULT_PORT
        if not _is_ipv6(host):
            raise invalid(f"{host!r} is not an IPv6 address")
        return socket.AF_INET6, (host, port)

    colons = bind.count(":")
    if colons == 0:
        host, port = bind, _DEFAULT_PORT
    else:
        host, _, port_text = bind.rpartition(":")
        if colons > 1 and not _is_ipv6(host):
            raise invalid("write IPv6 addresses in brackets, such as '[::1]:8000'")
        port = port_number(port_text)
    if not host and colons == 0:
        raise invalid("empty address")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, port)


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _import_object(name: str) -> object:
    """Import ``package.module`` or ``package.module.attribute``."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name or "." not in name:
            raise ConfigError(f"cannot import configuration {name!r}: {exc}") from exc
    except ImportError as exc:
        raise ConfigError(f"cannot import configuration {name!r}: {exc}") from exc
    module_name, _, attribute = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import configuration {name!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(
            f"cannot import configuration {name!r}: module {module_name!r} has no "
            f"attribute {attribute!r}"
        ) from None


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


@functools.cache
def _h3_alpn_ids() -> tuple[str, ...]:
    """The HTTP/3 ALPN ids to advertise: aioquic's list when installed, else ``h3``."""
    try:
        connection = importlib.import_module("aioquic.h3.connection")
    except ImportError:
        return ("h3",)
    return tuple(connection.H3_ALPN)
