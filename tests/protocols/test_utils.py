from __future__ import annotations

import asyncio
import enum
import multiprocessing
import os
import pickle
import socket
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hypercorn.config import Config
from hypercorn.utils import (
    FrameTooLargeError,
    LifespanFailureError,
    LifespanTimeoutError,
    LoadedApplication,
    NoAppError,
    ShutdownError,
    UnexpectedMessageError,
    build_and_validate_headers,
    check_for_updates,
    check_multiprocess_shutdown_event,
    files_to_watch,
    filter_pseudo_headers,
    is_asgi,
    load_application,
    parse_socket_addr,
    raise_shutdown,
    repr_socket_addr,
    suppress_body,
    valid_server_name,
    write_pid_file,
)
from tests.helpers import ipv6_loopback_available

# ---------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------


class _State(enum.Enum):
    REQUEST = enum.auto()


@pytest.mark.parametrize(
    ("error", "fragments"),
    [
        (LifespanTimeoutError("startup"), ["startup", "startup_timeout"]),
        (LifespanTimeoutError("shutdown"), ["shutdown", "shutdown_timeout"]),
        (LifespanFailureError("startup", "db down"), ["startup", "db down"]),
        (UnexpectedMessageError(_State.REQUEST, "http.response.body"), ["REQUEST", "body"]),
        (NoAppError("no app"), ["no app"]),
        (ShutdownError(), []),
        (FrameTooLargeError(), []),
    ],
)
def test_exceptions_explain_themselves_and_pickle(error: Exception, fragments: list[str]) -> None:
    for fragment in fragments:
        assert fragment in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)


def test_exception_attributes() -> None:
    assert LifespanTimeoutError("startup").stage == "startup"
    failure = LifespanFailureError("shutdown", "oops")
    assert (failure.stage, failure.message) == ("shutdown", "oops")
    unexpected = UnexpectedMessageError(_State.REQUEST, "websocket.send")
    assert (unexpected.state, unexpected.message_type) == (_State.REQUEST, "websocket.send")


# ---------------------------------------------------------------------------------------
# Headers and bodies
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("HEAD", 200, True),
        ("HEAD", 404, True),
        ("GET", 100, True),
        ("GET", 101, True),
        ("GET", 199, True),
        ("GET", 200, False),
        ("GET", 204, True),
        ("POST", 304, True),
        ("GET", 412, False),
        ("GET", 500, False),
    ],
)
def test_suppress_body(method: str, status: int, expected: bool) -> None:
    assert suppress_body(method, status) is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], []),
        ([(b"Content-Type", b" text/plain ")], [(b"content-type", b"text/plain")]),
        (
            [(bytearray(b"X-A"), memoryview(b"1")), (b"x-a", b"2")],
            [(b"x-a", b"1"), (b"x-a", b"2")],
        ),
        ([(b" Server ", b"")], [(b"server", b"")]),
    ],
)
def test_build_and_validate_headers(
    headers: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    assert build_and_validate_headers(headers) == expected


@pytest.mark.parametrize(
    ("headers", "error", "match"),
    [
        ([(b":status", b"200")], ValueError, "Pseudo"),
        ([(b"", b"x")], ValueError, "empty"),
        ([(b"  ", b"x")], ValueError, "empty"),
        ([("content-type", b"x")], TypeError, "str"),
        ([(b"content-type", "text/plain")], TypeError, "str"),
        ([(b"content-length", 5)], TypeError, "int"),
    ],
)
def test_build_and_validate_headers_rejects(
    headers: list[tuple[object, object]], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build_and_validate_headers(headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], [(b"host", b"")]),
        (
            [(b":method", b"GET"), (b":authority", b"example.com"), (b"accept", b"*/*")],
            [(b"host", b"example.com"), (b"accept", b"*/*")],
        ),
        (
            [(b":path", b"/"), (b"accept", b"*/*"), (b"host", b"h.example:8000")],
            [(b"host", b"h.example:8000"), (b"accept", b"*/*")],
        ),
        (
            [(b"host", b"ignored"), (b":authority", b"wins"), (b"x", b"1")],
            [(b"host", b"wins"), (b"x", b"1")],
        ),
        ([(b"host", b"first"), (b"host", b"second")], [(b"host", b"first")]),
    ],
)
def test_filter_pseudo_headers(
    headers: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    assert filter_pseudo_headers(headers) == expected


@dataclass(frozen=True)
class _Request:
    headers: list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("server_names", "headers", "expected"),
    [
        ([], [], True),
        ([], [(b"host", b"anything")], True),
        (["example.com"], [(b"host", b"example.com")], True),
        (["example.com"], [(b"Host", b"example.com")], True),
        (["example.com"], [(b"host", b"example.com:8000")], False),
        (["example.com:8000"], [(b"host", b"example.com:8000")], True),
        (["example.com"], [(b"host", b"other.com")], False),
        (["example.com"], [], False),
        (["example.com"], [(b"host", b"example.com"), (b"host", b"x")], True),
        (["example.com"], [(b"host", b"\xff\xfe")], False),
    ],
)
def test_valid_server_name(
    server_names: list[str], headers: list[tuple[bytes, bytes]], expected: bool
) -> None:
    config = Config()
    config.server_names = server_names
    assert valid_server_name(config, _Request(headers)) is expected


# ---------------------------------------------------------------------------------------
# is_asgi
# ---------------------------------------------------------------------------------------


async def _asgi_function(scope: object, receive: object, send: object) -> None:
    pass


def _wsgi_function(environ: object, start_response: object) -> list[bytes]:
    return []


class _ASGIClass:
    async def __call__(self, scope: object, receive: object, send: object) -> None:
        pass


class _WSGIClass:
    def __call__(self, environ: object, start_response: object) -> list[bytes]:
        return []


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (_asgi_function, True),
        (_ASGIClass(), True),
        (_wsgi_function, False),
        (_WSGIClass(), False),
        (len, False),
        (42, False),
    ],
)
def test_is_asgi(app: object, expected: bool) -> None:
    assert is_asgi(app) is expected


# ---------------------------------------------------------------------------------------
# load_application, against real files
# ---------------------------------------------------------------------------------------


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh current directory; sys.path and the modules imported from it are restored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    root = str(tmp_path)
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        locations = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])]
        if any(str(location).startswith(root) for location in locations):
            del sys.modules[name]


def _write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


APP_SOURCE = """
    class ASGIApp:
        def __init__(self, name="default", debug=False):
            self.name = name
            self.debug = debug

        async def __call__(self, scope, receive, send):
            pass

    async def app(scope, receive, send):
        pass

    def wsgi_app(environ, start_response):
        return [b"ok"]

    def create_app(name="made", debug=False):
        return ASGIApp(name, debug)

    def create_wsgi(*parts):
        def application(environ, start_response):
            return [b"-".join(part.encode() for part in parts)]
        return application

    class Holder:
        class inner:
            app = ASGIApp("nested")

    class Framework:
        def __init__(self):
            self.asgi = ASGIApp("from factory")

    def make_framework():
        return Framework()

    def broken_factory():
        raise RuntimeError("database is unreachable")

    value = 42
    """


def _module(name: str) -> object:
    return sys.modules[name]


def test_load_dotted_module_in_package(app_dir: Path) -> None:
    _write(app_dir / "webpkg" / "__init__.py", "")
    _write(app_dir / "webpkg" / "server.py", APP_SOURCE)
    loaded = load_application("webpkg.server:app")
    assert loaded == LoadedApplication(_module("webpkg.server").app, "asgi")  # type: ignore[attr-defined]
    assert sys.path[0] == str(app_dir)


def test_load_defaults_to_attribute_app(app_dir: Path) -> None:
    _write(app_dir / "defaultmod.py", APP_SOURCE)
    loaded = load_application("defaultmod")
    assert loaded.app is _module("defaultmod").app  # type: ignore[attr-defined]
    assert loaded.mode == "asgi"


def test_load_python_file_path(app_dir: Path) -> None:
    _write(app_dir / "deploy" / "site" / "service.py", APP_SOURCE)
    loaded = load_application("deploy/site/service.py:wsgi_app")
    assert loaded.mode == "wsgi"
    assert loaded.app is _module("service").wsgi_app  # type: ignore[attr-defined]
    assert sys.path[0] == str(app_dir / "deploy" / "site")


def test_load_dotted_module_under_a_path(app_dir: Path) -> None:
    _write(app_dir / "src" / "shop" / "__init__.py", "")
    _write(app_dir / "src" / "shop" / "entry.py", APP_SOURCE)
    loaded = load_application("src/shop.entry:app")
    assert loaded.app is _module("shop.entry").app  # type: ignore[attr-defined]
    assert sys.path[0] == str(app_dir / "src")


def test_load_factory_with_literal_arguments(app_dir: Path) -> None:
    _write(app_dir / "factorymod.py", APP_SOURCE)
    loaded = load_application("factorymod:create_app(name='svc', debug=True)")
    assert loaded.mode == "asgi"
    assert (loaded.app.name, loaded.app.debug) == ("svc", True)  # type: ignore[union-attr]

    wsgi = load_application('factorymod:create_wsgi("a", "b:c")')
    assert wsgi.mode == "wsgi"
    assert wsgi.app({}, print) == [b"a-b:c"]  # type: ignore[call-arg, arg-type]


def test_load_nested_attribute_and_chained_call(app_dir: Path) -> None:
    _write(app_dir / "nestedmod.py", APP_SOURCE)
    nested = load_application("nestedmod:Holder.inner.app")
    assert nested.app.name == "nested"  # type: ignore[union-attr]
    chained = load_application("nestedmod:make_framework().asgi")
    assert chained.app.name == "from factory"  # type: ignore[union-attr]
    assert chained.mode == "asgi"


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("modesmod:app", "asgi"),
        ("modesmod:ASGIApp()", "asgi"),
        ("modesmod:wsgi_app", "wsgi"),
        ("asgi:modesmod:wsgi_app", "asgi"),
        ("wsgi:modesmod:app", "wsgi"),
        ("wsgi:app", "asgi"),  # two parts: module "wsgi", attribute "app"
    ],
)
def test_load_detects_or_takes_the_mode(app_dir: Path, path: str, mode: str) -> None:
    _write(app_dir / "modesmod.py", APP_SOURCE)
    _write(app_dir / "wsgi.py", "async def app(scope, receive, send):\n    pass\n")
    assert load_application(path).mode == mode


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "no module given"),
        (":app", "no module given"),
        ("errmod:", "no application name given"),
        ("xsgi:errmod:app", "unknown prefix 'xsgi'"),
        ("no_such_module_q7:app", "module 'no_such_module_q7' not found"),
        ("no_such_pkg_q7.sub:app", "module 'no_such_pkg_q7.sub' not found"),
        ("missing_file_q7.py:app", "file 'missing_file_q7.py' not found"),
        ("C:/nowhere_q7/app.py:app", "file 'C:/nowhere_q7/app.py' not found"),
        ("wsgi:C:/nowhere_q7/app.py:app", "file 'C:/nowhere_q7/app.py' not found"),
        ("errmod:nope", "module 'errmod' has no attribute 'nope'"),
        ("errmod:Holder.nope", "'Holder' in module 'errmod' has no attribute 'nope'"),
        ("errmod:value", "'value' in module 'errmod' is not callable"),
        ("errmod:value()", "'value' in module 'errmod' is not callable"),
        ("errmod:broken_factory()", "raised RuntimeError: database is unreachable"),
        ("errmod:create_app(name=value)", "argument 'value' in 'create_app(name=value)'"),
        ("errmod:create_app(*[1])", "'*' arguments are not supported"),
        ("errmod:create_app(**{})", "'**' arguments are not supported"),
        ("errmod:app(", "is not a valid expression"),
        ("errmod:Holder[0]", "'Holder[0]' is not supported"),
        ("errmod:__import__('os').getcwd()", "has no attribute '__import__'"),
    ],
)
def test_load_errors_are_clear(app_dir: Path, path: str, message: str) -> None:
    _write(app_dir / "errmod.py", APP_SOURCE)
    with pytest.raises(NoAppError) as info:
        load_application(path)
    assert message in str(info.value)
    assert repr(path) in str(info.value)


def test_missing_import_inside_the_app_is_not_reported_as_a_missing_app(app_dir: Path) -> None:
    _write(app_dir / "needsdep.py", "import no_such_dependency_q7\napp = None\n")
    with pytest.raises(NoAppError) as info:
        load_application("needsdep:app")
    text = str(info.value)
    assert "'needsdep:app'" in text
    assert "importing module 'needsdep' failed" in text
    assert "No module named 'no_such_dependency_q7'" in text
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert info.value.__cause__.name == "no_such_dependency_q7"


def test_file_shadowed_by_an_imported_module(app_dir: Path) -> None:
    _write(app_dir / "shadow" / "textwrap.py", APP_SOURCE)  # the stdlib one is imported
    with pytest.raises(NoAppError) as info:
        load_application("shadow/textwrap.py:app")
    assert "'shadow/textwrap.py:app'" in str(info.value)
    assert "module name 'textwrap' is already taken" in str(info.value)


def test_other_errors_in_the_app_module_propagate(app_dir: Path) -> None:
    _write(app_dir / "crashes.py", "raise LookupError('SECRET_KEY is not set')\n")
    with pytest.raises(LookupError, match="SECRET_KEY"):
        load_application("crashes:app")


# ---------------------------------------------------------------------------------------
# Reloader helpers, against real files
# ---------------------------------------------------------------------------------------


def test_files_to_watch_includes_imported_module_files(app_dir: Path) -> None:
    source = _write(app_dir / "watchedmod.py", APP_SOURCE)
    load_application("watchedmod:app")
    watched = files_to_watch()
    assert watched[source] == source.stat().st_mtime
    assert all(isinstance(mtime, float) for mtime in watched.values())


def test_check_for_updates(tmp_path: Path) -> None:
    first = _write(tmp_path / "first.py", "x = 1\n")
    second = _write(tmp_path / "second.py", "y = 2\n")
    os.utime(first, (1_000_000, 1_000_000))
    os.utime(second, (1_000_000, 1_000_000))
    files = {first: first.stat().st_mtime, second: second.stat().st_mtime}

    assert check_for_updates(files) is False

    os.utime(first, (1_000_000, 1_000_010))  # newer
    assert check_for_updates(files) is True
    assert files[first] == 1_000_010
    assert check_for_updates(files) is False

    os.utime(second, (1_000_000, 999_000))  # moved back in time
    assert check_for_updates(files) is True
    assert check_for_updates(files) is False

    second.unlink()
    assert check_for_updates(files) is True
    assert second not in files
    assert check_for_updates(files) is False


# ---------------------------------------------------------------------------------------
# Shutdown helpers
# ---------------------------------------------------------------------------------------


def test_raise_shutdown_waits_for_the_trigger() -> None:
    fired: list[bool] = []

    async def trigger() -> None:
        fired.append(True)

    with pytest.raises(ShutdownError):
        asyncio.run(raise_shutdown(trigger))
    assert fired == [True]


def test_check_multiprocess_shutdown_event_returns_when_set() -> None:
    event = multiprocessing.get_context("spawn").Event()
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 3:
            event.set()
        await asyncio.sleep(0)

    asyncio.run(check_multiprocess_shutdown_event(event, sleep))
    assert sleeps == [0.1, 0.1, 0.1]

    sleeps.clear()
    asyncio.run(check_multiprocess_shutdown_event(event, sleep))  # already set
    assert sleeps == []


# ---------------------------------------------------------------------------------------
# Process and socket helpers
# ---------------------------------------------------------------------------------------


def test_write_pid_file(tmp_path: Path) -> None:
    pid_path = tmp_path / "hypercorn.pid"
    write_pid_file(str(pid_path))
    assert pid_path.read_text() == str(os.getpid())
    pid_path.write_text("stale contents that are longer")
    write_pid_file(pid_path)
    assert int(pid_path.read_text()) == os.getpid()


def test_inet_socket_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        address = sock.getsockname()
        port = address[1]
        assert parse_socket_addr(sock.family, address) == ("127.0.0.1", port)
        assert repr_socket_addr(sock.family, address) == f"127.0.0.1:{port}"


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_inet6_socket_address() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        address = sock.getsockname()  # (host, port, flowinfo, scope_id)
        assert len(address) == 4
        port = address[1]
        assert parse_socket_addr(sock.family, address) == ("::1", port)
        assert repr_socket_addr(sock.family, address) == f"[::1]:{port}"


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_unix_socket_address(tmp_path: Path) -> None:
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))
        address = sock.getsockname()
        assert parse_socket_addr(sock.family, address) is None
        assert repr_socket_addr(sock.family, address) == f"unix:{sock_path}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux")
def test_abstract_unix_socket_address() -> None:
    name = f"hypercorn-test-{os.getpid()}".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(b"\0" + name)
        address = sock.getsockname()
        assert repr_socket_addr(sock.family, address) == f"unix:@{name.decode()}"


def test_unknown_family_address() -> None:
    assert parse_socket_addr(-1, ("x", 1)) is None
    assert repr_socket_addr(-1, ("x", 1)) == "('x', 1)"
