"""The harness of the end-to-end tests: the installed ``hypercorn`` command in a subprocess.

:func:`hypercorn` starts ``<venv>/bin/hypercorn ARGS`` (the console script installed next to
the interpreter running the tests) in its own session, with ``cwd`` set to the test's
directory, and yields a :class:`Hypercorn`. Two threads read its standard output and
standard error line by line, so a test waits for an event (``Running on http://...``, a
supervisor message) with a deadline instead of sleeping. On exit the whole process group
is killed, whatever happened, so no worker outlives its test.

:func:`run_to_exit` runs a command that is expected to stop by itself (a startup failure)
and returns its exit code and output.

The applications the tests serve are Python source written into the test's directory
(:func:`write_app`); :data:`APP` is the common one: it reports its pid, scope and lifespan
state as JSON and has slow, blocking and WebSocket routes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, Literal

import httpx
import trustme
from cryptography.hazmat.primitives import serialization

#: The command under test: the console script of the environment running the tests.
HYPERCORN: Final = Path(sys.executable).parent / "hypercorn"
#: The repository root (``examples/`` lives there).
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
#: Upper bound for anything a test waits for (a log line, a response, a restart).
TIMEOUT: Final = 15.0
#: Upper bound for a graceful stop (graceful_timeout is 3 s; workers then run lifespan).
STOP_TIMEOUT: Final = 20.0

#: ``[date] [pid] [LEVEL] Running on URL (CTRL + C to quit)``, the line of each worker and bind.
RUNNING: Final = re.compile(r"\[(?P<pid>\d+)\] \[INFO\] Running on (?P<url>\S+)")

Stream = Literal["stdout", "stderr"]


# ---------------------------------------------------------------------------------------
# The process
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Serving:
    """What :meth:`Hypercorn.wait_serving` learned from the ``Running on`` lines."""

    #: Every distinct URL, in the order the first worker printed them.
    urls: list[str]
    #: The pids of the workers that printed them.
    pids: set[int]

    @property
    def url(self) -> str:
        return self.urls[0]

    def first(self, scheme: str) -> str:
        """The first URL of ``scheme`` (``http``, ``https``)."""
        for url in self.urls:
            if url.startswith(f"{scheme}://"):
                return url
        raise AssertionError(f"no {scheme} URL in {self.urls}")


class _Lines:
    """The lines of one pipe, appended by a reader thread; waited on with a condition."""

    def __init__(self, pipe: IO[str], condition: threading.Condition) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._pipe = pipe
        self._condition = condition
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._pipe:
                with self._condition:
                    self.lines.append(line.rstrip("\n"))
                    self._condition.notify_all()
        finally:
            with self._condition:
                self.closed = True
                self._condition.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._pipe.close()


class Hypercorn:
    """One running ``hypercorn`` command (see :func:`hypercorn`)."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.args = [str(HYPERCORN), *args]
        environment = dict(os.environ)
        environment["PYTHONUNBUFFERED"] = "1"
        environment.update(env or {})
        self.process = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group: killed as a whole at the end
            pass_fds=tuple(pass_fds),
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._condition = threading.Condition()
        self._streams: dict[Stream, _Lines] = {
            "stdout": _Lines(self.process.stdout, self._condition),
            "stderr": _Lines(self.process.stderr, self._condition),
        }

    @property
    def pid(self) -> int:
        """The supervisor's pid (the console script execs nothing: it is the supervisor)."""
        return self.process.pid

    # -- output ---------------------------------------------------------------------------

    def lines(self, stream: Stream = "stderr") -> list[str]:
        with self._condition:
            return list(self._streams[stream].lines)

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines("stdout"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines("stderr"))

    def mark(self, stream: Stream = "stderr") -> int:
        """The number of lines so far: pass it as ``since`` to wait for later lines only."""
        return len(self.lines(stream))

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.args)}\nexit code: {self.process.poll()}\n"
            f"--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout}"
        )

    def wait_for_matches(
        self,
        pattern: str | re.Pattern[str],
        predicate: Callable[[list[re.Match[str]]], bool],
        *,
        stream: Stream = "stderr",
        since: int = 0,
        timeout: float = TIMEOUT,
    ) -> list[re.Match[str]]:
        """Wait until ``predicate`` holds for the matches of ``pattern`` (in lines from
        ``since`` on) and return them. AssertionError on timeout, or when the stream ends
        without it."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []
        lines = self._streams[stream]

        def done() -> bool:
            found[:] = [
                match for line in lines.lines[since:] if (match := regex.search(line)) is not None
            ]
            return predicate(found) or lines.closed

        with self._condition:
            self._condition.wait_for(done, timeout)
            if predicate(found):
                return list(found)
        raise AssertionError(
            f"no line matching {regex.pattern!r} as expected within {timeout} s\n{self.describe()}"
        )

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        *,
        stream: Stream = "stderr",
        since: int = 0,
        count: int = 1,
        timeout: float = TIMEOUT,
    ) -> list[re.Match[str]]:
        """Wait for ``count`` lines matching ``pattern`` (see :meth:`wait_for_matches`)."""
        return self.wait_for_matches(
            pattern,
            lambda matches: len(matches) >= count,
            stream=stream,
            since=since,
            timeout=timeout,
        )

    def wait_serving(
        self,
        workers: int = 1,
        binds: int = 1,
        *,
        since: int = 0,
        exclude: set[int] | frozenset[int] = frozenset(),
        timeout: float = TIMEOUT,
    ) -> Serving:
        """Wait until ``workers`` worker processes (other than ``exclude``) have each printed
        ``Running on`` for ``binds`` addresses; return their URLs and pids."""

        def enough(matches: list[re.Match[str]]) -> bool:
            per_pid: dict[int, int] = {}
            for match in matches:
                pid = int(match["pid"])
                if pid not in exclude:
                    per_pid[pid] = per_pid.get(pid, 0) + 1
            return sum(count >= binds for count in per_pid.values()) >= workers

        matches = self.wait_for_matches(RUNNING, enough, since=since, timeout=timeout)
        urls: list[str] = []
        pids: set[int] = set()
        for match in matches:
            pid = int(match["pid"])
            if pid in exclude:
                continue
            pids.add(pid)
            if match["url"] not in urls:
                urls.append(match["url"])
        return Serving(urls, pids)

    # -- control --------------------------------------------------------------------------

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the supervisor to exit; its exit code (AssertionError on timeout)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"hypercorn still running {timeout} s later\n{self.describe()}"
            ) from None
        # Its output is complete once every process holding the pipes is gone.
        with self._condition:
            self._condition.wait_for(
                lambda: all(lines.closed for lines in self._streams.values()), timeout
            )
        return code

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``signum`` and wait for the exit code."""
        self.send_signal(signum)
        return self.wait(timeout)

    def group_pids(self) -> set[int]:
        """The processes still running in the command's process group (read from /proc).

        Zombies do not count: they have exited, and whether their new parent (init, once the
        supervisor is gone) has reaped them yet is not the server's business.
        """
        return {
            process.pid
            for process in _processes()
            if process.pgid == self.pid and process.state != "Z"
        }

    def worker_pids(self) -> set[int]:
        """The supervisor's running children titled ``hypercorn: worker ...`` (from /proc)."""
        return {
            process.pid
            for process in _processes()
            if process.ppid == self.pid
            and process.state != "Z"
            and process.cmdline.startswith("hypercorn: worker")
        }

    def kill_group(self) -> None:
        """SIGKILL to every process of the group; reap the supervisor; close the pipes."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)
        for lines in self._streams.values():
            lines.join(STOP_TIMEOUT)


@dataclasses.dataclass(frozen=True)
class _Process:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: str


def _processes() -> Iterator[_Process]:
    """Every process visible in /proc."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as file:
                stat = file.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as binary:
                cmdline = binary.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:  # gone meanwhile
            continue
        # The command name (2nd field) is in parentheses and may contain spaces.
        state, ppid, pgid = stat[stat.rindex(")") + 2 :].split()[:3]
        yield _Process(int(entry.name), int(ppid), int(pgid), state, cmdline)


@contextlib.contextmanager
def hypercorn(
    args: Sequence[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> Iterator[Hypercorn]:
    """Run ``hypercorn ARGS`` in ``cwd`` for the block; its process group is killed after."""
    server = Hypercorn(args, cwd, env=env, pass_fds=pass_fds)
    try:
        yield server
    finally:
        server.kill_group()


@dataclasses.dataclass(frozen=True)
class Result:
    """How a command that stopped by itself ended."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"{self.stderr}\n{self.stdout}"


def run_to_exit(
    args: Sequence[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Result:
    """Run ``hypercorn ARGS`` expecting it to exit by itself within ``timeout``."""
    with hypercorn(args, cwd, env=env) as server:
        code = server.wait(timeout)
        return Result(code, server.stdout, server.stderr)


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Poll ``predicate`` (a file, /proc) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.02)
    return True


def listening_socket(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    """A TCP socket listening on a free loopback port (to pass as ``fd://N``, or to hold a
    port in use)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.listen(16)
    return sock


# ---------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------


def client(**kwargs: Any) -> httpx.Client:
    """An httpx client that opens a new connection for every request (no keep-alive), so a
    request never races a server closing an idle connection."""
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("limits", httpx.Limits(max_keepalive_connections=0))
    return httpx.Client(**kwargs)


def get_json(url: str, http: httpx.Client | None = None, **kwargs: Any) -> dict[str, Any]:
    """GET ``url`` (200 expected) and decode the JSON body of :data:`APP`."""
    with contextlib.ExitStack() as stack:
        if http is None:
            http = stack.enter_context(client())
        response = http.get(url, **kwargs)
        assert response.status_code == 200, (response.status_code, response.text)
        body: dict[str, Any] = json.loads(response.text)
        return body


class Load:
    """A thread issuing GET requests in a loop (each on a new connection) until stopped.

    Every response of :data:`APP` (or of any application answering JSON with a ``pid``) is
    recorded as ``(status, body)``, every failure as its exception.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[int, dict[str, Any]]] = []
        self.errors: list[BaseException] = []
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        with client() as http:
            while not self._stop.is_set():
                try:
                    response = http.get(self.url)
                    result = (response.status_code, json.loads(response.text))
                except Exception as error:  # recorded; the tests assert there are none
                    with self._condition:
                        self.errors.append(error)
                        self._condition.notify_all()
                    continue
                with self._condition:
                    self.results.append(result)
                    self._condition.notify_all()

    def bodies(self) -> list[dict[str, Any]]:
        with self._condition:
            return [body for _, body in self.results]

    def pids(self) -> list[int]:
        return [int(body["pid"]) for body in self.bodies()]

    def statuses(self) -> list[int]:
        with self._condition:
            return [status for status, _ in self.results]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = TIMEOUT
    ) -> None:
        """Wait until ``predicate(bodies of the responses so far)`` holds."""
        with self._condition:
            ok = self._condition.wait_for(
                lambda: predicate([body for _, body in self.results]), timeout
            )
            assert ok, (
                f"load: condition not met within {timeout} s; last results "
                f"{self.results[-10:]}, errors {self.errors[-3:]}"
            )

    def wait_for_pids(self, count: int, timeout: float = TIMEOUT) -> None:
        """Wait until responses came from ``count`` different pids."""
        self.wait_for(lambda bodies: len({body["pid"] for body in bodies}) >= count, timeout)


# ---------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """A trustme CA and a certificate for 127.0.0.1/localhost, written as files."""

    ca: trustme.CA
    certfile: Path
    keyfile: Path
    #: The same key encrypted with :attr:`password`.
    encrypted_keyfile: Path
    #: The CA's certificate (for ``--ca-certs``: it also signs client certificates).
    cafile: Path
    password: str = "correct horse"

    def client_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        """A client context trusting the CA; with ``client_cert``, presenting a client
        certificate the CA issued."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if client_cert:
            self.ca.issue_cert("client.example").configure_cert(context)
        return context


def make_tls_files(directory: Path) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tls = TLSFiles(
        ca,
        certfile=directory / "server.pem",
        keyfile=directory / "server.key",
        encrypted_keyfile=directory / "server-encrypted.key",
        cafile=directory / "ca.pem",
    )
    tls.certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    tls.keyfile.write_bytes(cert.private_key_pem.bytes())
    ca.cert_pem.write_to_path(str(tls.cafile))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    tls.encrypted_keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(tls.password.encode()),
        )
    )
    return tls


# ---------------------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------------------


def write_app(directory: Path, source: str, name: str = "app") -> Path:
    """Write ``source`` (dedented) as ``directory/<name>.py``; return the path."""
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


#: The common ASGI application (``app:app``), for any event loop (it sleeps with anyio).
#:
#: - ``GET /...``: JSON ``{"pid", "path", "root_path", "http_version", "scheme", "server",
#:   "lifespan", "loop", "loop_class"}`` (``loop``: asyncio or trio; ``loop_class``: the
#:   module of the asyncio loop's class, ``uvloop`` under uvloop);
#: - ``GET /slow?S``: streams ``started <pid>`` at once, sleeps S seconds (default 1), then
#:   ``done``; so the test knows the request is in flight when it reads the first line;
#: - ``GET /block?S``: like ``/slow`` but blocks the worker's event loop with
#:   ``time.sleep``, so that worker accepts nothing meanwhile;
#: - WebSocket: echoes text messages.
APP: Final = """
import asyncio
import json
import os
import time

import anyio
import sniffio


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["lifespan"] = "started"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    else:
        await http(scope, receive, send)


async def http(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path in ("/slow", "/block"):
        seconds = float(scope["query_string"] or 1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started = f"started {os.getpid()}\\n".encode()
        await send({"type": "http.response.body", "body": started, "more_body": True})
        if path == "/slow":
            await anyio.sleep(seconds)
        else:
            time.sleep(seconds)
        await send({"type": "http.response.body", "body": b"done\\n"})
        return
    server = scope.get("server")
    body = json.dumps(
        {
            "pid": os.getpid(),
            "path": path,
            "root_path": scope.get("root_path", ""),
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "server": list(server) if server else None,
            "lifespan": scope.get("state", {}).get("lifespan"),
            "loop": sniffio.current_async_library(),
            "loop_class": type(asyncio.get_running_loop()).__module__
            if sniffio.current_async_library() == "asyncio"
            else None,
        }
    ).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""
