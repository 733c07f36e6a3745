"""The harness of the worker tests: a real server in a background thread, on any loop.

:func:`running` binds port-0 sockets up front with :meth:`Config.create_sockets`, starts
``hypercorn.<loop>.run.worker_serve`` in a thread that owns its event loop (asyncio, uvloop
or trio), yields a :class:`Server` with the bound URLs and the captured logs, and on exit
fires the shutdown trigger and joins the thread with a timeout, so a server that hangs fails
the test instead of freezing the run.

:class:`Signal` is the one synchronisation primitive the tests share with their ASGI
applications: ``set()`` from any thread, ``await wait()`` on the server's loop (asyncio or
trio), ``wait_sync(timeout)`` from the test thread. Nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import h2.config
import h2.connection
import h2.events
import hyperframe.frame

from hypercorn.config import Config

if TYPE_CHECKING:
    import trustme

    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGIReceiveEvent,
        ASGISendCallable,
        Framework,
        Scope,
    )

WorkerClass = Literal["asyncio", "uvloop", "trio"]
WORKER_CLASSES: tuple[WorkerClass, ...] = ("asyncio", "uvloop", "trio")

#: Upper bound for anything a test waits for (a response, a log line, a datagram).
TIMEOUT = 10.0
#: How long a server may take to stop once its trigger fired (graceful_timeout is 3 s).
STOP_TIMEOUT = 15.0


# ---------------------------------------------------------------------------------------
# Cross-thread, cross-loop signal
# ---------------------------------------------------------------------------------------


class Signal:
    """A one-shot event that any thread may set and that asyncio and trio tasks can await."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._wakers: list[Callable[[], None]] = []

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait_sync(self, timeout: float = TIMEOUT) -> bool:
        """Block the calling (test) thread until set; False when ``timeout`` ran out."""
        return self._event.wait(timeout)

    async def wait(self) -> None:
        """Wait on the running asyncio (or uvloop) loop or trio run."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            await self._wait_asyncio(loop)
        else:
            await self._wait_trio()

    def _register(self, wake: Callable[[], None]) -> bool:
        with self._lock:
            if self._event.is_set():
                return False
            self._wakers.append(wake)
            return True

    def _unregister(self, wake: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._wakers.remove(wake)

    async def _wait_asyncio(self, loop: asyncio.AbstractEventLoop) -> None:
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(resolve)

        if not self._register(wake):
            return
        try:
            await future
        finally:
            self._unregister(wake)

    async def _wait_trio(self) -> None:
        import trio

        event = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        if not self._register(wake):
            return
        try:
            await event.wait()
        finally:
            self._unregister(wake)


# ---------------------------------------------------------------------------------------
# Log capture
# ---------------------------------------------------------------------------------------


class LogCapture(logging.Handler):
    """A handler keeping every record (formatted with its traceback) for assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self._condition = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._condition:
            self.records.append(record)
            self.texts.append(text)
            self._condition.notify_all()

    def messages(self) -> list[str]:
        with self._condition:
            return [record.getMessage() for record in self.records]

    def text(self) -> str:
        with self._condition:
            return "\n".join(self.texts)

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = TIMEOUT) -> bool:
        """Wait until ``predicate(messages)`` holds; False when ``timeout`` ran out."""
        with self._condition:
            return self._condition.wait_for(
                lambda: predicate([record.getMessage() for record in self.records]), timeout
            )

    def wait_for_message(self, fragment: str, timeout: float = TIMEOUT) -> str:
        """Wait for a message containing ``fragment`` and return it (AssertionError if none)."""
        found: list[str] = []

        def predicate(messages: list[str]) -> bool:
            found[:] = [message for message in messages if fragment in message]
            return bool(found)

        assert self.wait_for(predicate, timeout), (
            f"no log message containing {fragment!r} within {timeout} s; got {self.messages()}"
        )
        return found[0]


def capture_logger(name: str) -> tuple[logging.Logger, LogCapture]:
    """A private (unregistered) logger writing to a fresh :class:`LogCapture`."""
    logger = logging.Logger(name, logging.DEBUG)
    logger.propagate = False
    handler = LogCapture()
    logger.addHandler(handler)
    return logger, handler


# ---------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """A trustme CA and a server certificate for 127.0.0.1/localhost written to files."""

    ca: trustme.CA
    certfile: str
    keyfile: str

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        return context


# ---------------------------------------------------------------------------------------
# The server thread
# ---------------------------------------------------------------------------------------


class Server:
    """One worker running ``app`` in a background thread (see :func:`running`)."""

    def __init__(
        self,
        app: Framework,
        config: Config,
        worker_class: WorkerClass,
        *,
        mode: Literal["asgi", "wsgi"] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.worker_class = worker_class
        self.mode = mode
        config.bind = ["127.0.0.1:0"]
        if tls is not None:
            config.certfile = tls.certfile
            config.keyfile = tls.keyfile
            config.insecure_bind = ["127.0.0.1:0"]
        access_logger, self.access_log = capture_logger(f"test.access.{id(self)}")
        error_logger, self.error_log = capture_logger(f"test.error.{id(self)}")
        config.accesslog = access_logger
        config.errorlog = error_logger

        self.sockets = config.create_sockets()
        #: ``http(s)://127.0.0.1:PORT`` for every TCP listener: TLS ones first.
        self.urls: list[str] = []
        #: ``(host, port)`` for every TCP listener, in the order of :attr:`urls`.
        self.addresses: list[tuple[str, int]] = []
        for scheme, socks in (
            ("https", self.sockets.secure_sockets),
            ("http", self.sockets.insecure_sockets),
        ):
            for sock in socks:
                host, port = sock.getsockname()[:2]
                self.urls.append(f"{scheme}://{host}:{port}")
                self.addresses.append((host, port))

        #: Fired by :meth:`stop`: the server's ``shutdown_trigger`` waits for it.
        self.stop_signal = Signal()
        #: Set when the server thread returned (or raised).
        self.finished = threading.Event()
        #: What ``worker_serve`` raised, if anything.
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"hypercorn-{worker_class}", daemon=True
        )

    # -- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def address(self) -> tuple[str, int]:
        return self.addresses[0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def _first(self, scheme: str) -> int:
        for index, url in enumerate(self.urls):
            if url.startswith(f"{scheme}://"):
                return index
        raise AssertionError(f"no {scheme} listener in {self.urls}")

    @property
    def http_url(self) -> str:
        return self.urls[self._first("http")]

    @property
    def https_url(self) -> str:
        return self.urls[self._first("https")]

    @property
    def http_address(self) -> tuple[str, int]:
        return self.addresses[self._first("http")]

    @property
    def https_address(self) -> tuple[str, int]:
        return self.addresses[self._first("https")]

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Fire the shutdown trigger (the server then shuts down gracefully)."""
        self.stop_signal.set()

    def wait_finished(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait for ``worker_serve`` to return; AssertionError if it is still running."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(
                f"the {self.worker_class} server was still running {timeout} s later"
            )

    def join(self, timeout: float = STOP_TIMEOUT) -> None:
        """:meth:`wait_finished`, then re-raise what the server raised, if anything."""
        self.wait_finished(timeout)
        if self.error is not None:
            raise self.error

    def assert_no_errors(self) -> None:
        """AssertionError listing every error-log record at ERROR level or above."""
        errors = [
            text
            for record, text in zip(self.error_log.records, self.error_log.texts, strict=True)
            if record.levelno >= logging.ERROR
        ]
        assert errors == [], "\n".join(errors)

    def close_sockets(self) -> None:
        for sock in (
            *self.sockets.secure_sockets,
            *self.sockets.insecure_sockets,
            *self.sockets.quic_sockets,
        ):
            sock.close()
        # Whatever the server leaked (an unclosed transport or socket, a coroutine never
        # awaited) warns now, so the warning fails this test rather than a later one.
        gc.collect()

    def _run(self) -> None:
        try:
            from hypercorn.app_wrappers import wrap_app

            wrapped = wrap_app(self.app, self.config.wsgi_max_body_size, self.mode)
            if self.worker_class == "trio":
                import trio

                from hypercorn.trio.run import worker_serve as trio_worker_serve

                async def main_trio() -> None:
                    await trio_worker_serve(
                        wrapped,
                        self.config,
                        sockets=self.sockets,
                        shutdown_trigger=self.stop_signal.wait,
                    )

                trio.run(main_trio)
            else:
                from hypercorn.asyncio.run import worker_serve as asyncio_worker_serve

                async def main_asyncio() -> None:
                    await asyncio_worker_serve(
                        wrapped,
                        self.config,
                        sockets=self.sockets,
                        shutdown_trigger=self.stop_signal.wait,
                    )

                if self.worker_class == "asyncio":
                    asyncio.run(main_asyncio())
                else:
                    run_uvloop(main_asyncio)
        except BaseException as error:
            self.error = error
        finally:
            self.finished.set()


def run_uvloop(main: Callable[[], Any]) -> None:
    """Run ``main()`` to completion on a new uvloop loop (3.10 has no asyncio.Runner)."""
    import uvloop

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:  # pragma: no cover - 3.10 only
        loop = uvloop.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def run_bounded(backend: str, main: Callable[[], Awaitable[None]], limit: float = 5.0) -> None:
    """Run ``main()`` on ``backend`` (asyncio, uvloop or trio), failing after ``limit`` s."""
    if backend == "trio":
        import trio

        async def bounded_trio() -> None:
            with trio.fail_after(limit):
                await main()

        trio.run(bounded_trio)
        return

    async def bounded_asyncio() -> None:
        await asyncio.wait_for(main(), limit)

    if backend == "uvloop":
        run_uvloop(bounded_asyncio)
    else:
        asyncio.run(bounded_asyncio())


@contextlib.contextmanager
def running(
    app: Framework,
    config: Config | None = None,
    worker_class: WorkerClass = "asyncio",
    *,
    mode: Literal["asgi", "wsgi"] | None = None,
    tls: TLSFiles | None = None,
    stop_timeout: float = STOP_TIMEOUT,
    expect_errors: bool = False,
) -> Iterator[Server]:
    """Serve ``app`` on 127.0.0.1 (random ports) for the duration of the block.

    On exit the shutdown trigger fires and the server must return within ``stop_timeout``
    seconds; whatever ``worker_serve`` raised is re-raised (after an exception in the block
    itself, that one wins). Unless ``expect_errors``, the error log must then hold nothing
    at ERROR level or above: a server that copes with a client's or an application's
    misbehaviour by logging its own failure fails the test.
    """
    server = Server(
        app, config if config is not None else Config(), worker_class, mode=mode, tls=tls
    )
    try:
        server.start()
        try:
            yield server
        except BaseException:
            server.stop()
            with contextlib.suppress(BaseException):
                server.wait_finished(stop_timeout)
            raise
        server.stop()
        server.join(stop_timeout)
        if not expect_errors:
            server.assert_no_errors()
    finally:
        server.close_sockets()


def start(
    app: Framework,
    config: Config | None = None,
    worker_class: WorkerClass = "asyncio",
    *,
    mode: Literal["asgi", "wsgi"] | None = None,
    tls: TLSFiles | None = None,
) -> Server:
    """A started :class:`Server` the test stops itself (then call ``close_sockets``)."""
    server = Server(
        app, config if config is not None else Config(), worker_class, mode=mode, tls=tls
    )
    server.start()
    return server


# ---------------------------------------------------------------------------------------
# Small ASGI helpers and clients
# ---------------------------------------------------------------------------------------


async def read_body(receive: ASGIReceiveCallable) -> bytes:
    """The whole request body (stops at ``http.disconnect`` too)."""
    body = bytearray()
    while True:
        message: ASGIReceiveEvent = await receive()
        if message["type"] == "http.request":
            body += message["body"]
            if not message["more_body"]:
                return bytes(body)
        elif message["type"] == "http.disconnect":
            return bytes(body)


async def respond(
    send: ASGISendCallable,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete response with a ``content-length``."""
    all_headers = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def echo_app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Echo the request body; describe the request in ``x-*`` headers. Lifespan: accepted."""
    if scope["type"] == "lifespan":
        await lifespan_accept(receive, send)
        return
    assert scope["type"] == "http"
    body = await read_body(receive)
    client = scope["client"]
    await respond(
        send,
        200,
        body,
        [
            (b"x-method", scope["method"].encode()),
            (b"x-path", scope["path"].encode()),
            (b"x-query", scope["query_string"]),
            (b"x-http-version", scope["http_version"].encode()),
            (b"x-scheme", scope["scheme"].encode()),
            (b"x-client-port", str(client[1] if client else "").encode()),
        ],
    )


async def lifespan_accept(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Answer startup and shutdown with ``complete``."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def connect(address: tuple[str, int], timeout: float = TIMEOUT) -> socket.socket:
    """A blocking TCP client socket with ``timeout`` on every operation (and no Nagle delay,
    which would otherwise stall small HTTP/2 frames behind the peer's delayed ACKs)."""
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_until_eof(sock: socket.socket, limit: int = 1 << 24) -> bytes:
    """Everything the peer sends until it closes (a reset counts as the end too)."""
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read until ``marker`` was received (AssertionError on EOF first)."""
    data = bytearray()
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}; got {bytes(data)!r}"
        data += chunk
    return bytes(data)


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (for things with no event)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.01)


class H2Client:
    """A minimal HTTP/2 client on a blocking socket (h2c prior knowledge, or TLS with h2)."""

    def __init__(
        self,
        sock: socket.socket,
        authority: str,
        scheme: str = "http",
        *,
        initiate: bool = True,
    ) -> None:
        self.sock = sock
        self.authority = authority
        self.scheme = scheme
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if initiate:
            self.conn.initiate_connection()
            self.flush()
        self.events: list[h2.events.Event] = []
        self.headers: dict[int, list[tuple[bytes, bytes]]] = {}
        self.data: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        #: The first GOAWAY, as h2 reported it.
        self.goaway: h2.events.ConnectionTerminated | None = None
        #: Every GOAWAY as ``(error_code, last_stream_id)``.
        self.goaways: list[tuple[int, int]] = []
        self._buffer = bytearray()
        self.closed = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
        end_stream: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        all_headers = [
            (":method", method),
            (":scheme", self.scheme),
            (":authority", self.authority),
            (":path", path),
            *(headers or []),
        ]
        self.conn.send_headers(stream_id, all_headers, end_stream=end_stream and body is None)
        self.flush()
        if body is not None:
            self.send_body(stream_id, body, end_stream=end_stream)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, *, end_stream: bool = True) -> None:
        """Send ``body`` within the peer's flow-control windows and frame size."""
        offset = 0
        while offset < len(body):
            room = min(
                self.conn.local_flow_control_window(stream_id),
                self.conn.max_outbound_frame_size,
                len(body) - offset,
            )
            if room <= 0:
                assert not self.closed, f"connection closed; events so far: {self.events}"
                self.receive_once()  # wait for WINDOW_UPDATE
                continue
            self.conn.send_data(stream_id, body[offset : offset + room])
            offset += room
            self.flush()
        if end_stream:
            self.conn.end_stream(stream_id)
            self.flush()

    def receive_once(self) -> None:
        """Read once from the socket and process what arrived."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Process bytes from the server (the socket is read by :meth:`receive_once`).

        Frames go to h2 one at a time until a GOAWAY arrives. h2 closes its connection state
        on GOAWAY, although RFC 9113 §6.8 lets the server finish the streams it already
        took; frames after it are therefore decoded here, with h2's own HPACK decoder.
        """
        self._buffer += data
        while len(self._buffer) >= 9:
            end = 9 + int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < end:
                break
            frame = bytes(self._buffer[:end])
            del self._buffer[:end]
            if self.goaway is None:
                for event in self.conn.receive_data(frame):
                    self._event(event)
            else:
                self._frame_after_goaway(frame)
        if self.goaway is None:
            self.flush()

    def _event(self, event: h2.events.Event) -> None:
        self.events.append(event)
        if isinstance(event, h2.events.ResponseReceived):
            assert event.stream_id is not None
            assert event.headers is not None
            self.headers[event.stream_id] = [
                (bytes(name), bytes(value)) for name, value in event.headers
            ]
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None
            assert event.data is not None
            self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            self.ended.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            self.reset[event.stream_id] = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
            self.goaways.append((int(event.error_code or 0), event.last_stream_id or 0))

    def _frame_after_goaway(self, raw: bytes) -> None:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9 : 9 + length]))
        stream_id = frame.stream_id
        if isinstance(frame, hyperframe.frame.HeadersFrame):
            decoded = self.conn.decoder.decode(frame.data, raw=True)
            self.headers[stream_id] = [(bytes(name), bytes(value)) for name, value in decoded]
        elif isinstance(frame, hyperframe.frame.DataFrame):
            self.data.setdefault(stream_id, bytearray()).extend(frame.data)
        elif isinstance(frame, hyperframe.frame.RstStreamFrame):
            self.reset[stream_id] = frame.error_code
        elif isinstance(frame, hyperframe.frame.GoAwayFrame):
            self.goaways.append((frame.error_code, frame.last_stream_id))
        if "END_STREAM" in frame.flags and isinstance(
            frame, hyperframe.frame.HeadersFrame | hyperframe.frame.DataFrame
        ):
            self.ended.add(stream_id)

    def receive_until(self, predicate: Callable[[], bool]) -> None:
        """Read until ``predicate()`` holds (AssertionError if the connection ends first)."""
        while not predicate():
            assert not self.closed, f"connection closed; events so far: {self.events}"
            self.receive_once()

    def status(self, stream_id: int) -> int:
        return int(dict(self.headers[stream_id])[b":status"])

    def response(self, stream_id: int) -> tuple[int, bytes]:
        self.receive_until(lambda: stream_id in self.ended or stream_id in self.reset)
        assert stream_id not in self.reset, f"stream {stream_id} reset: {self.reset[stream_id]}"
        return self.status(stream_id), bytes(self.data.get(stream_id, b""))
