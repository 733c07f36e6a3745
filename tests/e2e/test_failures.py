"""Startup failures of the installed ``hypercorn`` command: a non-zero exit code and one
clear line naming what went wrong and where, never a traceback.

Exit codes (docs: the runner's design): 1 a problem the supervisor finds before any worker
starts, 2 a command-line usage error, 3 a worker that could not start serving.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.support import (
    APP,
    TLSFiles,
    listening_socket,
    run_to_exit,
    write_app,
)

LIFESPAN_FAILS = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "the database is down"})
"""

#: One line of error: a log record at ERROR level, or argparse's / the CLI's own line.
ERROR_LINE = re.compile(r"\[ERROR\]|^hypercorn: error:")


# Each case: arguments ({port}: a port in use, {tmp}: the test's directory, {cert}, {key},
# {encrypted_key}: TLS files), the exit code, and fragments the error line must contain.
CASES: dict[str, tuple[list[str], int, list[str]]] = {
    "module-not-found": (
        ["-b", "127.0.0.1:0", "no_such_module:app"],
        3,
        ["Cannot load application 'no_such_module:app'", "no_such_module", "{tmp}"],
    ),
    "module-not-found-in-process": (
        ["-w", "0", "-b", "127.0.0.1:0", "no_such_module:app"],
        3,
        ["Cannot load application 'no_such_module:app'", "no_such_module"],
    ),
    "attribute-not-found": (
        ["-b", "127.0.0.1:0", "app:not_there"],
        3,
        ["'app:not_there'", "no attribute 'not_there'"],
    ),
    "lifespan-startup-failed": (
        ["-b", "127.0.0.1:0", "lifespan_fails:app"],
        3,
        ["Lifespan startup failed", "the database is down"],
    ),
    "lifespan-startup-failed-two-workers": (
        ["-w", "2", "-b", "127.0.0.1:0", "lifespan_fails:app"],
        3,
        ["Lifespan startup failed", "the database is down"],
    ),
    "port-in-use": (
        ["-b", "127.0.0.1:{port}", "app:app"],
        1,
        ["bind '127.0.0.1:{port}'", "Address already in use"],
    ),
    "port-in-use-several-workers": (
        ["-w", "3", "-b", "127.0.0.1:{port}", "app:app"],
        1,
        ["bind '127.0.0.1:{port}'", "Address already in use"],
    ),
    "certificate-not-found": (
        ["--certfile", "{tmp}/missing.pem", "--keyfile", "{key}", "-b", "127.0.0.1:0", "app:app"],
        1,
        ["certfile", "missing.pem"],
    ),
    "certificate-unreadable": (
        ["--certfile", "{tmp}/app.py", "--keyfile", "{key}", "-b", "127.0.0.1:0", "app:app"],
        1,
        ["app.py"],
    ),
    "certificate-is-a-directory": (
        ["--certfile", "{tmp}", "--keyfile", "{key}", "-b", "127.0.0.1:0", "app:app"],
        1,
        ["certfile", "{tmp}"],
    ),
    "wrong-key-password": (
        [
            *("--certfile", "{cert}", "--keyfile", "{encrypted_key}"),
            *("--keyfile-password", "wrong", "-b", "127.0.0.1:0", "app:app"),
        ],
        1,
        ["keyfile", "server-encrypted.key", "password"],
    ),
    "unknown-flag": (["--no-such-flag", "app:app"], 2, ["--no-such-flag"]),
    "bad-value": (["-w", "many", "app:app"], 2, ["-w/--workers", "'many'"]),
    "bad-worker-class": (["-k", "gevent", "app:app"], 2, ["gevent"]),
    "missing-config-file": (["-c", "missing.toml", "app:app"], 1, ["missing.toml"]),
}


@pytest.mark.parametrize(("args", "code", "fragments"), CASES.values(), ids=CASES.keys())
def test_startup_failure(
    tmp_path: Path, tls: TLSFiles, args: list[str], code: int, fragments: list[str]
) -> None:
    write_app(tmp_path, APP)
    write_app(tmp_path, LIFESPAN_FAILS, name="lifespan_fails")
    with listening_socket() as busy:
        values = {
            "port": str(busy.getsockname()[1]),
            "tmp": str(tmp_path),
            "cert": str(tls.certfile),
            "key": str(tls.keyfile),
            "encrypted_key": str(tls.encrypted_keyfile),
        }
        result = run_to_exit([arg.format(**values) for arg in args], tmp_path)
    output = result.output
    assert result.code == code, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment.format(**values) in errors[0], output
