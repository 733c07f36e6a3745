"""Tests of hypercorn.config: options, properties, loaders, TLS context and response headers.

Socket creation is tested in test_sockets.py.
"""

from __future__ import annotations

import importlib
import pickle
import socket
import ssl
import sys
import threading
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from time import time
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

import hypercorn.config
from hypercorn.config import (
    BYTES,
    OCTETS,
    SECONDS,
    Config,
    ConfigError,
    Sockets,
    SocketTypeError,
)
from hypercorn.logging import Logger

# -- module names ---------------------------------------------------------------------------


def test_unit_constants() -> None:
    assert (BYTES, OCTETS, SECONDS) == (1, 1, 1.0)
    assert isinstance(SECONDS, float)


def test_sockets_fields_in_order() -> None:
    a, b, c = socket.socket(), socket.socket(), socket.socket()
    with a, b, c:
        sockets = Sockets([a], [b], [c])
        assert sockets.secure_sockets == [a]
        assert sockets.insecure_sockets == [b]
        assert sockets.quic_sockets == [c]


def test_socket_type_error() -> None:
    error = SocketTypeError(socket.SOCK_STREAM, socket.SOCK_DGRAM)
    assert (error.expected, error.actual) == (socket.SOCK_STREAM, socket.SOCK_DGRAM)
    assert "SOCK_STREAM" in str(error)
    assert "SOCK_DGRAM" in str(error)
    assert isinstance(error, ConfigError)
    assert isinstance(error, ValueError)
    restored = pickle.loads(pickle.dumps(error))
    assert str(restored) == str(error)
    assert str(SocketTypeError(1, 999)).endswith("got 999")


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# -- defaults -------------------------------------------------------------------------------

DEFAULTS: list[tuple[str, object]] = [
    ("access_log_format", '%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'),
    ("accesslog", None),
    ("alpn_protocols", ["h2", "http/1.1"]),
    ("alt_svc_headers", []),
    ("backlog", 100),
    ("ca_certs", None),
    ("certfile", None),
    ("ciphers", "ECDHE+AESGCM"),
    ("daemon", True),
    ("debug", False),
    ("dogstatsd_tags", ""),
    ("errorlog", "-"),
    ("graceful_timeout", 3.0),
    ("read_timeout", None),
    ("group", None),
    ("h11_max_incomplete_size", 16 * 1024),
    ("h11_pass_raw_headers", False),
    ("h2_max_concurrent_streams", 100),
    ("h2_max_header_list_size", 2**16),
    ("h2_max_inbound_frame_size", 2**14),
    ("http1_parser", "auto"),
    ("include_date_header", True),
    ("include_server_header", True),
    ("keep_alive_timeout", 5.0),
    ("keep_alive_max_requests", 1000),
    ("keyfile", None),
    ("keyfile_password", None),
    ("logconfig", None),
    ("logconfig_dict", None),
    ("logger_class", Logger),
    ("loglevel", "INFO"),
    ("max_app_queue_size", 10),
    ("max_requests", None),
    ("max_requests_jitter", 0),
    ("pid_path", None),
    ("server_names", []),
    ("shutdown_timeout", 60.0),
    ("ssl_handshake_timeout", 60.0),
    ("startup_timeout", 60.0),
    ("statsd_host", None),
    ("statsd_prefix", ""),
    ("umask", None),
    ("use_reloader", False),
    ("user", None),
    ("verify_flags", None),
    ("verify_mode", None),
    ("websocket_max_message_size", 16 * 1024 * 1024),
    ("websocket_ping_interval", None),
    ("worker_class", "asyncio"),
    ("worker_heartbeat_timeout", 30.0),
    ("workers", 1),
    ("wsgi_max_body_size", 16 * 1024 * 1024),
]


@pytest.mark.parametrize(("name", "default"), DEFAULTS)
def test_default_on_class_and_instance(name: str, default: object) -> None:
    assert getattr(Config, name) == default
    assert getattr(Config(), name) == default


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("bind", ["127.0.0.1:8000"]),
        ("insecure_bind", []),
        ("quic_bind", []),
        ("root_path", ""),
        ("ssl_enabled", False),
    ],
)
def test_property_defaults(name: str, default: object) -> None:
    assert getattr(Config(), name) == default


def test_constructor_takes_no_arguments() -> None:
    with pytest.raises(TypeError):
        Config(workers=2)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "name", ["alpn_protocols", "alt_svc_headers", "server_names", "bind", "insecure_bind"]
)
def test_lists_are_per_instance(name: str) -> None:
    first, second = Config(), Config()
    before = list(getattr(second, name))
    getattr(first, name).append("127.0.0.1:9")
    assert getattr(second, name) == before
    assert getattr(Config(), name) == before
    if name not in ("bind", "insecure_bind"):
        assert getattr(Config, name) == before


def test_unknown_attributes_can_be_set() -> None:
    config = Config()
    config.custom_option = 1  # type: ignore[attr-defined]
    assert config.custom_option == 1  # type: ignore[attr-defined]


def test_misspelt_option_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError, match="worker_klass"):
        _ = Config().worker_klass  # type: ignore[attr-defined]


# -- application_path -----------------------------------------------------------------------


def test_application_path_unset_explains_itself() -> None:
    config = Config()
    with pytest.raises(AttributeError, match="application_path is not set"):
        _ = config.application_path
    assert not hasattr(config, "application_path")
    config.application_path = "module:app"
    assert config.application_path == "module:app"
    assert hasattr(config, "application_path")


# -- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bind", "insecure_bind", "quic_bind"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5000", ["127.0.0.1:5000"]),
        (["127.0.0.1:5000", "[::1]:5001"], ["127.0.0.1:5000", "[::1]:5001"]),
        (("unix:/tmp/x.sock", "fd://3"), ["unix:/tmp/x.sock", "fd://3"]),
        ([], []),
    ],
)
def test_bind_setters(name: str, value: Any, expected: list[str]) -> None:
    config = Config()
    setattr(config, name, value)
    assert getattr(config, name) == expected


def test_bind_setter_stores_a_copy() -> None:
    binds = ["127.0.0.1:5000"]
    config = Config()
    config.bind = binds
    binds.append("127.0.0.1:5001")
    assert config.bind == ["127.0.0.1:5000"]


GOOD_BINDS = [
    "127.0.0.1:5000",
    "localhost",
    "localhost:0",
    "0.0.0.0:65535",
    ":5000",
    "[::1]:5000",
    "[::]",
    "[fe80::1%eth0]:80",
    "::1:5000",
    "unix:/run/app.sock",
    "unix:relative.sock",
    "fd://0",
    "fd://12",
]


@pytest.mark.parametrize("bind", GOOD_BINDS)
def test_valid_binds_accepted(bind: str) -> None:
    config = Config()
    config.bind = bind
    assert config.bind == [bind]


@pytest.mark.parametrize(
    ("bind", "reason"),
    [
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
        ("127.0.0.1:", "port must be a number"),
        ("127.0.0.1:-1", "port must be a number"),
        ("", "empty address"),
        ("[::1", "missing ']'"),
        ("[::1]5000", "expected ':PORT'"),
        ("[localhost]:80", "not an IPv6 address"),
        ("::1", "brackets"),
        ("2001:db8::1", "brackets"),
        ("unix:", "no socket path"),
        ("fd://", "file descriptor number"),
        ("fd://x", "file descriptor number"),
        ("fd://-1", "file descriptor number"),
    ],
)
@pytest.mark.parametrize("option", ["bind", "insecure_bind", "quic_bind"])
def test_invalid_bind_names_option_and_value(option: str, bind: str, reason: str) -> None:
    config = Config()
    with pytest.raises(ConfigError) as info:
        setattr(config, option, ["127.0.0.1:1", bind])
    message = str(info.value)
    assert message.startswith(f"{option}: ")
    assert repr(bind) in message
    assert reason in message
    assert getattr(config, option) == getattr(Config(), option)  # unchanged


@pytest.mark.parametrize("value", [5000, [5000], None, [b"127.0.0.1:1"]])
def test_bind_of_wrong_type(value: Any) -> None:
    with pytest.raises(ConfigError, match="bind must be a string or a list of strings"):
        Config().bind = value


@pytest.mark.parametrize(
    ("value", "expected"), [("/api/", "/api"), ("/api", "/api"), ("/", ""), ("//x//", "//x")]
)
def test_root_path_strips_trailing_slash(value: str, expected: str) -> None:
    config = Config()
    config.root_path = value
    assert config.root_path == expected


def test_root_path_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="root_path"):
        Config().root_path = 1  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("certfile", "keyfile", "enabled"),
    [(None, None, False), ("c.pem", None, False), (None, "k.pem", False), ("c", "k", True)],
)
def test_ssl_enabled(certfile: str | None, keyfile: str | None, enabled: bool) -> None:
    config = Config()
    config.certfile, config.keyfile = certfile, keyfile
    assert config.ssl_enabled is enabled


@pytest.mark.parametrize("name", ["log", "ssl_enabled"])
def test_read_only_properties(name: str) -> None:
    with pytest.raises(AttributeError):
        setattr(Config(), name, None)


def test_cert_reqs_is_deprecated_and_sets_verify_mode() -> None:
    config = Config()
    with pytest.warns(FutureWarning, match="verify_mode"):
        config.cert_reqs = ssl.CERT_REQUIRED
    assert config.verify_mode is ssl.VerifyMode.CERT_REQUIRED
    with pytest.raises(AttributeError, match="write-only"):
        _ = config.cert_reqs
    other = Config()
    with pytest.warns(FutureWarning, match="verify_mode"):
        other.set_cert_reqs(0)
    assert other.verify_mode is ssl.VerifyMode.CERT_NONE


def test_cert_reqs_rejects_unknown_values() -> None:
    config = Config()
    with pytest.warns(FutureWarning), pytest.raises(ConfigError, match=r"cert_reqs.*42"):
        config.cert_reqs = 42


# -- log ------------------------------------------------------------------------------------


class RecordingLogger(Logger):
    """A logger that records its config and holds something that cannot be pickled."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lock = threading.Lock()


class StatsdLogger(Logger):
    pass


def test_log_is_built_lazily_once() -> None:
    config = Config()
    config.logger_class = RecordingLogger
    log = config.log
    assert isinstance(log, RecordingLogger)
    assert log.config is config
    assert config.log is log


class BrokenLogger(Logger):
    def __init__(self, config: Config) -> None:
        _ = config.application_path


def test_log_reports_an_attribute_error_of_the_logger_class() -> None:
    config = Config()
    config.logger_class = BrokenLogger
    with pytest.raises(RuntimeError, match=r"BrokenLogger.*application_path is not set"):
        _ = config.log


def test_log_default_class() -> None:
    config = Config()
    config.errorlog = None
    assert type(config.log) is Logger


@pytest.mark.parametrize(
    ("statsd_host", "logger_class", "expected"),
    [
        ("localhost:8125", Logger, StatsdLogger),
        (None, Logger, Logger),
        ("localhost:8125", RecordingLogger, RecordingLogger),
        (None, RecordingLogger, RecordingLogger),
    ],
)
def test_set_statsd_logger_class(
    statsd_host: str | None, logger_class: type[Logger], expected: type[Logger]
) -> None:
    config = Config()
    config.statsd_host = statsd_host
    config.logger_class = logger_class
    config.set_statsd_logger_class(StatsdLogger)
    assert config.logger_class is expected


def test_set_statsd_logger_class_drops_a_built_logger() -> None:
    config = Config()
    config.errorlog = None
    config.statsd_host = "localhost:8125"
    assert type(config.log) is Logger
    config.set_statsd_logger_class(StatsdLogger)
    assert type(config.log) is StatsdLogger


# -- pickling -------------------------------------------------------------------------------


def test_pickle_round_trip_keeps_values_and_drops_the_logger() -> None:
    config = Config()
    config.bind = ["127.0.0.1:5000", "unix:/tmp/x.sock"]
    config.insecure_bind = "127.0.0.1:5001"
    config.quic_bind = "127.0.0.1:5002"
    config.root_path = "/api/"
    config.workers = 4
    config.verify_mode = ssl.CERT_OPTIONAL
    config.alpn_protocols.remove("h2")
    config.application_path = "module:app"
    config.logger_class = RecordingLogger
    original_log = config.log  # holds a lock, which cannot be pickled

    restored = pickle.loads(pickle.dumps(config))

    assert restored.bind == ["127.0.0.1:5000", "unix:/tmp/x.sock"]
    assert restored.insecure_bind == ["127.0.0.1:5001"]
    assert restored.quic_bind == ["127.0.0.1:5002"]
    assert restored.root_path == "/api"
    assert restored.workers == 4
    assert restored.verify_mode is ssl.VerifyMode.CERT_OPTIONAL
    assert restored.alpn_protocols == ["http/1.1"]
    assert restored.application_path == "module:app"
    assert restored.logger_class is RecordingLogger
    new_log = restored.log
    assert isinstance(new_log, RecordingLogger)
    assert new_log is not original_log
    assert new_log.config is restored
    assert config.log is original_log  # pickling did not disturb the original


def test_pickle_of_a_fresh_config() -> None:
    restored = pickle.loads(pickle.dumps(Config()))
    assert restored.bind == ["127.0.0.1:8000"]
    assert not hasattr(restored, "application_path")


# -- from_mapping ---------------------------------------------------------------------------


def test_from_mapping_merges_kwargs_last() -> None:
    config = Config.from_mapping(
        {"workers": 2, "bind": "0.0.0.0:9000", "backlog": 5}, backlog=7, keyfile="k.pem"
    )
    assert (config.workers, config.bind, config.backlog) == (2, ["0.0.0.0:9000"], 7)
    assert config.keyfile == "k.pem"


def test_from_mapping_skips_read_only_and_sets_unknown() -> None:
    config = Config.from_mapping({"log": "ignored", "ssl_enabled": True, "custom": [1]})
    assert config.ssl_enabled is False
    assert config.custom == [1]  # type: ignore[attr-defined]


def test_from_mapping_without_arguments() -> None:
    assert Config.from_mapping().workers == 1
    assert Config.from_mapping(None, workers=3).workers == 3


def test_from_mapping_rejects_a_bad_bind() -> None:
    with pytest.raises(ConfigError, match=r"quic_bind: cannot parse 'host:port'"):
        Config.from_mapping(quic_bind=["host:port"])


def test_from_mapping_returns_the_subclass() -> None:
    class MyConfig(Config):
        pass

    assert type(MyConfig.from_mapping(workers=2)) is MyConfig


# -- from_toml ------------------------------------------------------------------------------


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "hypercorn.toml"
    path.write_text(
        "\n".join(
            [
                'bind = ["0.0.0.0:8443", "[::]:8443"]',
                'insecure_bind = "0.0.0.0:8080"',
                "workers = 3",
                "graceful_timeout = 1.5",
                'alt_svc_headers = ["h3=\\":443\\"; ma=86400"]',
                "include_server_header = false",
                'root_path = "/app/"',
                'my_setting = "x"',
            ]
        ),
        encoding="utf-8",
    )
    for filename in (path, str(path), bytes(path)):
        config = Config.from_toml(filename)
        assert config.bind == ["0.0.0.0:8443", "[::]:8443"]
        assert config.insecure_bind == ["0.0.0.0:8080"]
        assert config.workers == 3
        assert config.graceful_timeout == 1.5
        assert config.alt_svc_headers == ['h3=":443"; ma=86400']
        assert config.include_server_header is False
        assert config.root_path == "/app"
        assert config.my_setting == "x"  # type: ignore[attr-defined]


def test_from_toml_syntax_error_names_file_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('workers = 2\nbind = "127.0.0.1:8000\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config.from_toml(path)
    assert str(path) in str(info.value)
    assert "invalid TOML" in str(info.value)
    assert "line 2" in str(info.value)
    assert info.value.__cause__ is not None


def test_from_toml_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"configuration file not found: .*missing\.toml"):
        Config.from_toml(path)


def test_from_toml_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        Config.from_toml(tmp_path)


def test_from_toml_bad_bind_names_option(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('bind = "127.0.0.1:port"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bind: cannot parse '127\.0\.0\.1:port'"):
        Config.from_toml(path)


# -- from_pyfile ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hypercorn_conf.py", "hypercorn.conf"])
def test_from_pyfile(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(
        "import os\n"
        "bind = ['127.0.0.1:9000']\n"
        "workers = 1 + 1\n"
        "_private = 'kept'\n"
        "__dunder__ = 'skipped'\n",
        encoding="utf-8",
    )
    config = Config.from_pyfile(path)
    assert config.bind == ["127.0.0.1:9000"]
    assert config.workers == 2
    assert config._private == "kept"  # type: ignore[attr-defined]
    assert not hasattr(config, "os")
    assert not hasattr(config, "__dunder__")


def test_from_pyfile_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"configuration file not found: .*nope\.py"):
        Config.from_pyfile(tmp_path / "nope.py")


def test_from_pyfile_errors_propagate(tmp_path: Path) -> None:
    path = tmp_path / "conf.py"
    path.write_text("workers = 1 / 0\n", encoding="utf-8")
    with pytest.raises(ZeroDivisionError):
        Config.from_pyfile(path)


# -- from_object ----------------------------------------------------------------------------


@pytest.fixture
def config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module with settings at module level and in a class."""
    name = f"hypercorn_test_settings_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "import ssl\n"
        "workers = 5\n"
        "bind = '127.0.0.1:7000'\n"
        "class Settings:\n"
        "    workers = 6\n"
        "    keep_alive_timeout = 2.0\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_from_object_module_name(config_module: str) -> None:
    config = Config.from_object(config_module)
    assert config.workers == 5
    assert config.bind == ["127.0.0.1:7000"]
    assert not hasattr(config, "ssl")  # modules are skipped


def test_from_object_module_attribute(config_module: str) -> None:
    config = Config.from_object(f"{config_module}.Settings")
    assert config.workers == 6
    assert config.keep_alive_timeout == 2.0
    assert config.bind == ["127.0.0.1:8000"]


def test_from_object_module_and_class_objects(config_module: str) -> None:
    module = importlib.import_module(config_module)
    assert Config.from_object(module).workers == 5
    assert Config.from_object(module.Settings).workers == 6
    assert Config.from_object(module.Settings()).workers == 6


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (".Missing", "has no attribute 'Missing'"),
        (".sub.Settings", "No module named"),
    ],
)
def test_from_object_bad_attribute(config_module: str, suffix: str, message: str) -> None:
    name = config_module + suffix
    with pytest.raises(ConfigError, match=f"cannot import configuration '{name}'.*{message}"):
        Config.from_object(name)


@pytest.mark.parametrize("name", ["no_such_module_xyz", "no_such_package_xyz.settings.X"])
def test_from_object_missing_module(name: str) -> None:
    with pytest.raises(ConfigError, match=f"cannot import configuration '{name}'"):
        Config.from_object(name)


def test_from_object_import_error_inside_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"hypercorn_test_broken_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("import no_such_dependency_xyz\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="no_such_dependency_xyz") as info:
        Config.from_object(name)
    assert isinstance(info.value.__cause__, ImportError)


# -- create_ssl_context ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_config(ca: trustme.CA, tmp_path: Path) -> Config:
    cert = ca.issue_cert("localhost")
    config = Config()
    config.certfile = str(tmp_path / "cert.pem")
    config.keyfile = str(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(config.certfile)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(config.certfile, append=True)
    cert.private_key_pem.write_to_path(config.keyfile)
    return config


def _encrypt_key(config: Config, password: bytes) -> None:
    assert config.keyfile is not None
    path = Path(config.keyfile)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """Run a TLS handshake in memory and return the client's side of it."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client_side
    raise AssertionError("handshake did not finish")


def test_no_ssl_context_without_tls() -> None:
    assert Config().create_ssl_context() is None


def test_ssl_context(ca: trustme.CA, tls_config: Config) -> None:
    context = tls_config.create_ssl_context()
    assert context is not None
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.verify_mode is ssl.CERT_NONE
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    assert all("ECDHE" in c["name"] and "GCM" in c["name"] for c in tls12)

    for offered, chosen in [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        client.set_alpn_protocols(offered)
        assert _handshake(context, client).selected_alpn_protocol() == chosen


def test_ssl_context_alpn_protocols_option(ca: trustme.CA, tls_config: Config) -> None:
    tls_config.alpn_protocols = ["http/1.1"]
    context = tls_config.create_ssl_context()
    assert context is not None
    client = ssl.create_default_context()
    ca.configure_trust(client)
    client.set_alpn_protocols(["h2", "http/1.1"])
    assert _handshake(context, client).selected_alpn_protocol() == "http/1.1"


def test_ssl_context_client_verification(ca: trustme.CA, tls_config: Config) -> None:
    assert tls_config.keyfile is not None
    ca_path = Path(tls_config.keyfile).with_name("ca.pem")
    ca.cert_pem.write_to_path(str(ca_path))
    tls_config.ca_certs = str(ca_path)
    tls_config.verify_mode = ssl.CERT_REQUIRED
    tls_config.verify_flags = ssl.VERIFY_X509_STRICT
    context = tls_config.create_ssl_context()
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.cert_store_stats()["x509_ca"] == 1


def test_ssl_context_encrypted_key(ca: trustme.CA, tls_config: Config) -> None:
    _encrypt_key(tls_config, b"s3cret")
    tls_config.keyfile_password = "s3cret"
    context = tls_config.create_ssl_context()
    assert context is not None
    client = ssl.create_default_context()
    ca.configure_trust(client)
    _handshake(context, client)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("wrong", "keyfile_password: wrong password for keyfile"),
        (None, "is encrypted: set keyfile_password"),
    ],
)
def test_ssl_context_encrypted_key_errors(
    tls_config: Config, password: str | None, message: str
) -> None:
    _encrypt_key(tls_config, b"s3cret")
    tls_config.keyfile_password = password
    with pytest.raises(ConfigError, match=message) as info:
        tls_config.create_ssl_context()
    assert str(tls_config.keyfile) in str(info.value)


@pytest.mark.parametrize("option", ["certfile", "keyfile", "ca_certs"])
def test_ssl_context_missing_file(tls_config: Config, tmp_path: Path, option: str) -> None:
    missing = str(tmp_path / "missing.pem")
    setattr(tls_config, option, missing)
    with pytest.raises(ConfigError, match=f"{option}: file not found") as info:
        tls_config.create_ssl_context()
    assert missing in str(info.value)


def test_ssl_context_key_of_another_certificate(
    ca: trustme.CA, tls_config: Config, tmp_path: Path
) -> None:
    other = tmp_path / "other-key.pem"
    ca.issue_cert("example.org").private_key_pem.write_to_path(str(other))
    tls_config.keyfile = str(other)
    with pytest.raises(ConfigError, match="is not the key of certfile"):
        tls_config.create_ssl_context()


def test_ssl_context_not_pem(tls_config: Config) -> None:
    tls_config.keyfile = tls_config.certfile  # a certificate is not a key
    with pytest.raises(ConfigError, match=r"certfile .* keyfile .*cannot load"):
        tls_config.create_ssl_context()


def test_ssl_context_bad_ciphers(tls_config: Config) -> None:
    tls_config.ciphers = "NO-SUCH-CIPHER"
    with pytest.raises(ConfigError, match="ciphers: no usable cipher in 'NO-SUCH-CIPHER'"):
        tls_config.create_ssl_context()


# -- response_headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "protocol", "expected"),
    [
        ({}, "h11", [(b"date", b"D"), (b"server", b"hypercorn-h11")]),
        ({}, "h2", [(b"date", b"D"), (b"server", b"hypercorn-h2")]),
        ({"include_date_header": False}, "h3", [(b"server", b"hypercorn-h3")]),
        ({"include_server_header": False}, "h11", [(b"date", b"D")]),
        ({"include_date_header": False, "include_server_header": False}, "h11", []),
        (
            {"include_date_header": False, "alt_svc_headers": ['h3=":443"', "clear"]},
            "h2",
            [(b"server", b"hypercorn-h2"), (b"alt-svc", b'h3=":443"'), (b"alt-svc", b"clear")],
        ),
    ],
)
def test_response_headers(
    settings: dict[str, Any], protocol: str, expected: list[tuple[bytes, bytes]]
) -> None:
    config = Config.from_mapping(settings)
    assert config.response_headers(protocol, date=b"D") == expected


def test_response_headers_formats_the_current_date() -> None:
    headers = dict(Config().response_headers("h11"))
    value = headers[b"date"].decode("ascii")
    assert value.endswith(" GMT")
    assert abs(parsedate_to_datetime(value).timestamp() - time()) < 5


def test_response_headers_positional_signature() -> None:
    assert Config().response_headers("h2")[1] == (b"server", b"hypercorn-h2")


def test_h3_alpn_ids_without_aioquic() -> None:
    ids = hypercorn.config._h3_alpn_ids()
    assert "h3" in ids
