"""run(config) in this process: the checks before any worker starts, and workers = 0.

The supervisor with worker processes is tested through the installed command in
tests/e2e; here run() is called directly, as a program embedding the server calls it.
"""

from __future__ import annotations

import socket
import textwrap
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from hypercorn.config import Config
from hypercorn.run import EXIT_ERROR, EXIT_OK, EXIT_STARTUP_FAILED, run

APP = """
import os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("FAIL_STARTUP"):
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # In-process runs import the module into this interpreter: one name per test.
    module = tmp_path / f"runapp_{uuid.uuid4().hex}.py"
    module.write_text(textwrap.dedent(APP))
    config = Config()
    config.application_path = f"{module}:app"
    config.bind = ["127.0.0.1:0"]
    config.errorlog = str(tmp_path / "error.log")
    config.accesslog = None
    config.workers = 0
    return config


def _error_log(config: Config) -> str:
    assert isinstance(config.errorlog, str)
    return Path(config.errorlog).read_text()


def _encrypted_key(cert: trustme.LeafCert, password: bytes) -> bytes:
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def _port_in_use(config: Config, tmp_path: Path) -> socket.socket:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config.bind = [f"127.0.0.1:{taken.getsockname()[1]}"]
    return taken


def _tls(config: Config, tmp_path: Path, *, password: str | None, key_password: bytes) -> None:
    cert = trustme.CA().issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    (tmp_path / "key.pem").write_bytes(_encrypted_key(cert, key_password))
    config.certfile = str(tmp_path / "cert.pem")
    config.keyfile = str(tmp_path / "key.pem")
    config.keyfile_password = password


def _wrong_password(config: Config, tmp_path: Path) -> None:
    _tls(config, tmp_path, password="wrong", key_password=b"right")


def _missing_certificate(config: Config, tmp_path: Path) -> None:
    config.certfile = str(tmp_path / "missing.pem")
    config.keyfile = str(tmp_path / "missing-key.pem")


def _set(**options: object) -> Callable[[Config, Path], None]:
    def apply(config: Config, tmp_path: Path) -> None:
        for name, value in options.items():
            setattr(config, name, value)

    return apply


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (_set(worker_class="gevent"), "worker_class 'gevent' does not exist"),
        (_set(workers=-1), "workers must be a whole number >= 0, not -1"),
        (_set(use_reloader=True), "use_reloader needs worker processes"),
        (_missing_certificate, "file not found"),
        (_wrong_password, "keyfile"),
        (_set(pid_path="/nonexistent-directory/server.pid"), "/nonexistent-directory/server.pid"),
        (_set(bind=["unix:/nonexistent-directory/server.sock"]), "/nonexistent-directory"),
    ],
)
def test_mistakes_are_one_line_and_exit_1(
    config: Config, tmp_path: Path, mistake: Callable[[Config, Path], None], message: str
) -> None:
    mistake(config, tmp_path)
    assert run(config) == EXIT_ERROR
    lines = _error_log(config).splitlines()
    assert len(lines) == 1, lines
    assert "[ERROR]" in lines[0]
    assert message in lines[0]


def test_a_port_in_use_names_the_address(config: Config, tmp_path: Path) -> None:
    with _port_in_use(config, tmp_path):
        assert run(config) == EXIT_ERROR
    (line,) = _error_log(config).splitlines()
    assert f"{config.bind[0]!r}" in line
    assert "in use" in line


def test_without_an_error_log_the_line_goes_to_stderr(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    config.errorlog = None
    config.worker_class = "gevent"
    assert run(config) == EXIT_ERROR
    assert capsys.readouterr().err.startswith("hypercorn: error: worker_class 'gevent'")


def test_an_error_log_that_cannot_be_opened_is_reported_on_stderr(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    config.errorlog = "/nonexistent-directory/error.log"
    assert run(config) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "errorlog='/nonexistent-directory/error.log': cannot open the file" in err


@pytest.mark.parametrize("worker_class", ["asyncio", "uvloop", "trio"])
def test_workers_0_serves_in_this_process_until_max_requests(
    config: Config, tmp_path: Path, worker_class: str
) -> None:
    import os

    config.worker_class = worker_class
    config.max_requests = 1
    config.pid_path = str(tmp_path / "server.pid")
    # An inherited socket (fd://) already listens: the request waits in its backlog until
    # the worker accepts it, so the test needs no "is it up yet" loop.
    sock = socket.create_server(("127.0.0.1", 0))
    config.bind = [f"fd://{sock.fileno()}"]
    port = sock.getsockname()[1]
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(config)))
    thread.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert response.text == str(os.getpid())
        assert Path(config.pid_path).read_text() == str(os.getpid())
    finally:
        thread.join(30)
        sock.detach()  # run() adopted the descriptor and closed it
    assert result == [EXIT_OK]
    assert not Path(config.pid_path).exists()


def test_workers_0_reports_a_failed_startup(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_STARTUP", "1")
    assert run(config) == EXIT_STARTUP_FAILED
    log = _error_log(config)
    assert "Lifespan startup failed: 'no database'" in log
    assert "Traceback" not in log


def test_workers_0_reports_a_missing_application(config: Config, tmp_path: Path) -> None:
    config.application_path = "no_such_module_here:app"
    assert run(config) == EXIT_STARTUP_FAILED
    (line,) = _error_log(config).splitlines()
    assert "module 'no_such_module_here' not found" in line
