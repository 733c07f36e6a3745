"""Every flag of the installed ``hypercorn`` command reaches the running server.

Each test starts the real command on free ports (``:0``; the ``Running on`` lines tell the
port), talks to it with real clients and, where the flag concerns the process, checks what
the process did (pid file, log files, exit code).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import (
    TIMEOUT,
    Load,
    TLSFiles,
    client,
    get_json,
    hypercorn,
    listening_socket,
    wait_until,
    write_app,
)
from tests.helpers import ipv6_loopback_available

# ---------------------------------------------------------------------------------------
# Binds
# ---------------------------------------------------------------------------------------


def test_bind_ipv4(app_dir: Path) -> None:
    with hypercorn(["-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        url = server.wait_serving().url
        assert url.startswith("http://127.0.0.1:")
        body = get_json(url)
        assert body["server"] == ["127.0.0.1", int(url.rsplit(":", 1)[1])]
        assert body["lifespan"] == "started"
        assert server.stop() == 0


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_bind_ipv6(app_dir: Path) -> None:
    with hypercorn(["-b", "[::1]:0", "app:app"], app_dir) as server:
        url = server.wait_serving().url
        assert url.startswith("http://[::1]:")
        assert get_json(url)["server"][0] == "::1"
        assert server.stop() == 0


def test_bind_unix_socket(app_dir: Path) -> None:
    path = app_dir / "hc.sock"
    with hypercorn(["-b", f"unix:{path}", "app:app"], app_dir) as server:
        assert server.wait_serving().url == f"http://unix:{path}"
        transport = httpx.HTTPTransport(uds=str(path))
        with client(transport=transport) as http:
            body = get_json("http://localhost/unix", http)
        assert body["path"] == "/unix"
        assert server.stop() == 0


def test_bind_inherited_fd(app_dir: Path) -> None:
    """``fd://N`` serves on a listening socket the parent passed (as systemd does)."""
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        fd = sock.fileno()
        with hypercorn(["-b", f"fd://{fd}", "app:app"], app_dir, pass_fds=[fd]) as server:
            server.wait_serving()
            assert get_json(f"http://127.0.0.1:{port}/fd")["path"] == "/fd"
            assert server.stop() == 0


def test_several_binds_one_server(app_dir: Path) -> None:
    """Repeated ``-b``: every address serves, from every worker."""
    path = app_dir / "hc.sock"
    args = ["-w", "2", "-b", "127.0.0.1:0", "-b", f"unix:{path}", "app:app"]
    with hypercorn(args, app_dir) as server:
        serving = server.wait_serving(workers=2, binds=2)
        assert len(serving.urls) == 2
        get_json(serving.first("http") + "/tcp")
        with client(transport=httpx.HTTPTransport(uds=str(path))) as http:
            get_json("http://localhost/unix", http)
        assert server.stop() == 0


@pytest.mark.parametrize(("umask", "mode"), [("077", 0o700), ("0o027", 0o750)])
def test_umask_applies_to_unix_sockets(app_dir: Path, umask: str, mode: int) -> None:
    path = app_dir / "hc.sock"
    with hypercorn(["-m", umask, "-b", f"unix:{path}", "app:app"], app_dir) as server:
        server.wait_serving()
        assert stat.S_IMODE(path.stat().st_mode) == mode
        assert server.stop() == 0


# ---------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------


def test_tls_with_insecure_bind(app_dir: Path, tls: TLSFiles) -> None:
    """``-b`` speaks TLS (HTTP/2 by ALPN) and ``--insecure-bind`` plaintext."""
    args = [
        *("--certfile", str(tls.certfile), "--keyfile", str(tls.keyfile)),
        *("-b", "127.0.0.1:0", "--insecure-bind", "127.0.0.1:0"),
        "app:app",
    ]
    with hypercorn(args, app_dir) as server:
        serving = server.wait_serving(binds=2)
        with client(verify=tls.client_context(), http2=True) as http:
            response = http.get(serving.first("https") + "/secure")
            assert response.status_code == 200
            assert response.http_version == "HTTP/2"
            assert response.json()["scheme"] == "https"
        assert get_json(serving.first("http") + "/plain")["scheme"] == "http"
        assert server.stop() == 0


def test_keyfile_password(app_dir: Path, tls: TLSFiles) -> None:
    args = [
        *("--certfile", str(tls.certfile), "--keyfile", str(tls.encrypted_keyfile)),
        *("--keyfile-password", tls.password, "-b", "127.0.0.1:0", "app:app"),
    ]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().first("https")
        with client(verify=tls.client_context()) as http:
            assert get_json(url, http)["scheme"] == "https"
        assert server.stop() == 0


def test_client_certificates(app_dir: Path, tls: TLSFiles) -> None:
    """``--ca-certs`` with ``--verify-mode CERT_REQUIRED``: only a client presenting a
    certificate from that CA is served."""
    args = [
        *("--certfile", str(tls.certfile), "--keyfile", str(tls.keyfile)),
        *("--ca-certs", str(tls.cafile), "--verify-mode", "CERT_REQUIRED"),
        *("-b", "127.0.0.1:0", "app:app"),
    ]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().first("https")
        with client(verify=tls.client_context(client_cert=True)) as http:
            assert get_json(url, http)["scheme"] == "https"
        with client(verify=tls.client_context()) as http, pytest.raises(httpx.HTTPError):
            http.get(url)
        assert server.stop() == 0


# ---------------------------------------------------------------------------------------
# Logs and pid file
# ---------------------------------------------------------------------------------------


def test_access_and_error_log_files(app_dir: Path) -> None:
    """``--access-logfile`` with ``--access-logformat``, ``--error-logfile``: the lines go to
    the files, not to the terminal."""
    access, errors = app_dir / "access.log", app_dir / "error.log"
    with listening_socket() as sock:  # the port is known: "Running on" goes to the file
        fd, port = sock.fileno(), sock.getsockname()[1]
        args = [
            *("-b", f"fd://{fd}", "--access-logfile", str(access)),
            *("--access-logformat", "%(h)s|%(m)s|%(U)s|%(q)s|%(s)s|custom"),
            *("--error-logfile", str(errors), "app:app"),
        ]
        with hypercorn(args, app_dir, pass_fds=[fd]) as server:
            assert wait_until(lambda: "Running on" in _read(errors)), server.describe()
            get_json(f"http://127.0.0.1:{port}/logged?x=1")
            assert server.stop() == 0
            assert server.stdout == ""
            assert "Running on" not in server.stderr
    # One line: the log's prefix (time, pid, level), then the format (%(h)s has the port).
    [line] = access.read_text().splitlines()
    assert re.search(r"\[INFO\] 127\.0\.0\.1:\d+\|GET\|/logged\|x=1\|200\|custom$", line), line
    assert "Running on" in errors.read_text()


def test_access_log_to_stdout(app_dir: Path) -> None:
    """``--access-logfile -`` writes to standard output, one line per request."""
    args = ["-b", "127.0.0.1:0", "--access-logfile", "-", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        get_json(url + "/to-stdout")
        line = server.wait_for(r"GET /to-stdout", stream="stdout")[0].string
        assert '"GET /to-stdout 1.1" 200' in line
        assert server.stop() == 0


def test_log_level(app_dir: Path) -> None:
    """``--log-level WARNING`` silences the INFO lines of the error and access logs."""
    with listening_socket() as sock:
        fd, port = sock.fileno(), sock.getsockname()[1]
        args = ["-b", f"fd://{fd}", "--log-level", "WARNING", "--access-logfile", "-", "app:app"]
        with hypercorn(args, app_dir, pass_fds=[fd]) as server:
            get_json(f"http://127.0.0.1:{port}/quiet")
            assert server.stop() == 0
            assert server.stderr == ""
            assert server.stdout == ""


def test_log_config(app_dir: Path) -> None:
    """``--log-config json:PATH``: a dictConfig document shapes the error log."""
    log_file = app_dir / "configured.log"
    document = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tagged": {"format": "TAGGED %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "tagged",
            }
        },
        "loggers": {"hypercorn.error": {"handlers": ["file"], "level": "INFO"}},
    }
    (app_dir / "logging.json").write_text(json.dumps(document))
    with listening_socket() as sock:  # the lines go where the document says: not to stderr
        fd, port = sock.fileno(), sock.getsockname()[1]
        args = ["-b", f"fd://{fd}", "--log-config", "json:logging.json", "app:app"]
        with hypercorn(args, app_dir, pass_fds=[fd]) as server:
            assert wait_until(lambda: "Running on" in _read(log_file)), server.describe()
            get_json(f"http://127.0.0.1:{port}/")
            assert server.stop() == 0
    assert f"TAGGED INFO Running on http://127.0.0.1:{port}" in log_file.read_text()


def test_statsd(app_dir: Path) -> None:
    """``--statsd-host`` and ``--statsd-prefix``: a request sends its metrics over UDP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(TIMEOUT)
        host, port = collector.getsockname()
        args = [
            *("-b", "127.0.0.1:0", "--statsd-host", f"{host}:{port}"),
            *("--statsd-prefix", "e2e", "app:app"),
        ]
        with hypercorn(args, app_dir) as server:
            url = server.wait_serving().url
            get_json(url)
            expected = {"e2e.hypercorn.requests:1|c", "e2e.hypercorn.request.status.200:1|c"}
            metrics: list[str] = []
            while not all(any(m.startswith(e) for m in metrics) for e in expected):
                metrics += collector.recv(65536).decode().splitlines()  # bounded: TIMEOUT
            assert server.stop() == 0


def test_pid_file(app_dir: Path) -> None:
    pid_file = app_dir / "run" / "hypercorn.pid"
    pid_file.parent.mkdir()
    with hypercorn(["-b", "127.0.0.1:0", "--pid", str(pid_file), "app:app"], app_dir) as server:
        server.wait_serving()
        assert pid_file.read_text().strip() == str(server.pid)
        assert server.stop() == 0
    assert not pid_file.exists()


# ---------------------------------------------------------------------------------------
# Configuration files and what reaches the application
# ---------------------------------------------------------------------------------------

CONFIG_PY = """
bind = ["127.0.0.1:0"]
root_path = "/from-file"
include_server_header = False
"""
CONFIG_TOML = """
bind = ["127.0.0.1:0"]
root_path = "/from-file"
include_server_header = false
"""


@pytest.mark.parametrize(
    ("filename", "content", "option"),
    [
        ("hypercorn.toml", CONFIG_TOML, "hypercorn.toml"),
        ("settings.py", CONFIG_PY, "file:settings.py"),
        ("settings_module.py", CONFIG_PY, "python:settings_module"),
    ],
    ids=["toml", "file", "python"],
)
def test_config_file_and_flag_precedence(
    app_dir: Path, filename: str, content: str, option: str
) -> None:
    """The file's options reach the server (its bind, ``include_server_header``, which has
    no flag); a flag given on the command line wins over the file (``--root-path``)."""
    (app_dir / filename).write_text(content)
    # A python: module in the current directory is found, as with ``python -m``.
    with hypercorn(["-c", option, "--root-path", "/from-flag", "app:app"], app_dir) as s:
        url = s.wait_serving().url
        assert url.startswith("http://127.0.0.1:")
        with client() as http:
            response = http.get(url + "/from-flag/page")
        assert response.status_code == 200
        assert response.json()["root_path"] == "/from-flag"
        assert "server" not in response.headers
        assert s.stop() == 0


def test_root_path(app_dir: Path) -> None:
    args = ["-b", "127.0.0.1:0", "--root-path", "/api/", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        body = get_json(url + "/api/items")
        assert body["root_path"] == "/api"
        assert body["path"] == "/api/items"
        assert server.stop() == 0


def test_server_name(app_dir: Path) -> None:
    """``--server-name``: a request for another host gets the server's 404."""
    args = ["-b", "127.0.0.1:0", "--server-name", "good.example", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        with client() as http:
            assert http.get(url, headers={"Host": "good.example"}).status_code == 200
            wrong = http.get(url, headers={"Host": "evil.example"})
            assert wrong.status_code == 404
            assert wrong.content == b""
        assert server.stop() == 0


# ---------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------


def test_two_workers_serve(app_dir: Path) -> None:
    """``-w 2``: two processes serve the same port. While one worker's event loop is blocked
    inside a request, the other one answers."""
    with hypercorn(["-w", "2", "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        serving = server.wait_serving(workers=2)
        assert len(serving.pids) == 2
        assert server.worker_pids() == serving.pids
        url = serving.url
        seen: set[int] = set()
        with client() as http:
            for _ in range(3):  # a retry if the blocked one took the second connection too
                with http.stream("GET", url + "/block?1") as blocked:
                    lines = blocked.iter_lines()
                    first = int(next(lines).split()[1])
                    second = get_json(url + "/other", http)["pid"]
                    assert list(lines) == ["done"]
                seen |= {first, second}
                if len(seen) == 2:
                    break
        assert seen == serving.pids
        assert server.stop() == 0


@pytest.mark.timeout(90)
def test_max_requests_recycles_workers(app_dir: Path) -> None:
    """``--max-requests 5``: the worker is replaced after its budget, while every request of
    a steady stream is answered."""
    args = ["-b", "127.0.0.1:0", "--max-requests", "5", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        with Load(url) as load:
            load.wait_for_pids(3, timeout=30)
        assert load.errors == []
        assert set(load.statuses()) == {200}
        pids = load.pids()
        assert pids.count(pids[0]) >= 5
        server.wait_for(r"served its max_requests: replacing it", count=2)
        assert server.stop() == 0


@pytest.mark.timeout(90)
def test_reload_on_source_change(tmp_path: Path) -> None:
    """``--reload``: editing the application file restarts the workers with the new code,
    and requests keep being answered meanwhile."""
    source = """
        import json, os

        VERSION = "{version}"

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            body = json.dumps({{"pid": os.getpid(), "version": VERSION}}).encode()
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": body}})
    """
    path = write_app(tmp_path, source.format(version="one"))
    with hypercorn(["--reload", "-b", "127.0.0.1:0", "app:app"], tmp_path) as server:
        url = server.wait_serving().url
        with Load(url) as load:
            load.wait_for(lambda bodies: bool(bodies))
            path.write_text(path.read_text().replace('"one"', '"two"'))
            load.wait_for(lambda bodies: bodies[-1]["version"] == "two", timeout=30)
        assert load.errors == []
        assert set(load.statuses()) == {200}
        server.wait_for(r"Restarting the workers: source files changed")
        assert server.stop() == 0


@pytest.mark.parametrize("worker_class", ["trio", "uvloop"])
def test_worker_class(app_dir: Path, worker_class: str) -> None:
    args = ["-k", worker_class, "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        body = get_json(url)
        if worker_class == "trio":
            assert body["loop"] == "trio"
        else:
            assert (body["loop"], body["loop_class"]) == ("asyncio", "uvloop")
        assert body["lifespan"] == "started"
        assert server.stop() == 0
        server.wait_for(f"starting 1 {worker_class} worker")


# ---------------------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------------------


def test_keep_alive(app_dir: Path) -> None:
    """``--keep-alive 0.3`` closes an idle connection well before the default 5 s."""
    with hypercorn(["-b", "127.0.0.1:0", "--keep-alive", "0.3", "app:app"], app_dir) as server:
        host, port = server.wait_serving().url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            received = b""
            while b"}" not in received:  # the end of the JSON body
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            answered = time.monotonic()
            _read_until_closed(sock)
            idle = time.monotonic() - answered
        assert received.startswith(b"HTTP/1.1 200")
        assert idle < 3.0
        assert server.stop() == 0


def test_read_timeout(app_dir: Path) -> None:
    """``--read-timeout 0.3``: a client that stops sending in the middle of its request is
    disconnected."""
    args = ["-b", "127.0.0.1:0", "--read-timeout", "0.3", "app:app"]
    with hypercorn(args, app_dir) as server:
        host, port = server.wait_serving().url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n")  # and nothing more
            sent = time.monotonic()
            _read_until_closed(sock)  # whatever the server answers, then the end
            waited = time.monotonic() - sent
        assert waited < 3.0
        assert server.stop() == 0


def test_websocket_ping_interval(app_dir: Path) -> None:
    """``--websocket-ping-interval 0.2``: the server pings an open WebSocket."""
    args = ["-b", "127.0.0.1:0", "--websocket-ping-interval", "0.2", "app:app"]
    with hypercorn(args, app_dir) as server:
        host, port = server.wait_serving().url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            head, _, frames = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            while len(frames) < 2:
                chunk = sock.recv(65536)
                assert chunk, frames
                frames += chunk
            assert frames[0] == 0x89  # FIN + ping
        assert server.stop() == 0


# ---------------------------------------------------------------------------------------
# Frameworks
# ---------------------------------------------------------------------------------------

STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def home(request):
    return PlainTextResponse(f"starlette {request.url.path}")


app = Starlette(routes=[Route("/hello", home)])
"""
FLASK_APP = """
from flask import Flask, request

app = Flask(__name__)


@app.get("/hello")
def home():
    return f"flask {request.path}"
"""
WSGI_FUNCTION = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi {environ['PATH_INFO']}".encode()]
"""


@pytest.mark.parametrize(
    ("module", "source", "target", "expected"),
    [
        ("starlette_app", STARLETTE_APP, "starlette_app:app", "starlette /hello"),
        ("flask_app", FLASK_APP, "flask_app:app", "flask /hello"),
        ("wsgi_function", WSGI_FUNCTION, "wsgi:wsgi_function:app", "wsgi /hello"),
    ],
    ids=["starlette", "flask", "wsgi-function"],
)
def test_frameworks(tmp_path: Path, module: str, source: str, target: str, expected: str) -> None:
    write_app(tmp_path, source, name=module)
    with hypercorn(["-b", "127.0.0.1:0", target], tmp_path) as server:
        url = server.wait_serving().url
        with client() as http:
            response = http.get(url + "/hello")
        assert (response.status_code, response.text) == (200, expected)
        assert server.stop() == 0


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts too)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
