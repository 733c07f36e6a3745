"""A worker's life from start to finish, written once for every event loop.

:func:`run_worker` is what ``hypercorn.asyncio.run.worker_serve`` and
``hypercorn.trio.run.worker_serve`` both call. The event loop's part is a :class:`Runtime`:
a :class:`~hypercorn.driver.backend.Backend`, a way to start background tasks, a sleep, and
``listen`` (accept connections on one socket and run each through a
:class:`~hypercorn.driver.connection.ConnectionDriver`). The sequence is:

1. make the sockets (``config.create_sockets()`` unless sockets were given) and the TLS
   context, so that a port in use or a bad certificate fails before the application starts
   (connections arriving meanwhile wait in the listen backlog);
2. run the lifespan scope in a background task and wait for its startup (a failed startup
   raises :class:`~hypercorn.utils.LifespanFailureError`, so the worker exits with the
   application's message before it serves);
3. serve every socket: TLS on the secure sockets, plaintext on the others; log
   ``Running on <url> (CTRL + C to quit)`` for each and report the URLs to ``started``
   (trio's ``task_status``);
4. refresh the ``date`` header once a second and wait for the shutdown trigger or for
   ``max_requests`` (under a :class:`Supervisor`, reaching ``max_requests`` asks the
   supervisor for a replacement instead, and the worker serves on until the supervisor
   fires the trigger: no gap in accepting connections);
5. shut down gracefully: close the listeners, ask every connection to finish
   (:meth:`~hypercorn.driver.worker.WorkerState.shutdown`: idle connections close at once,
   HTTP/2 sends GOAWAY), wait for the connections up to ``graceful_timeout``, cancel those
   left, then run the lifespan shutdown.

The listening sockets are closed when the worker stops, whoever created them (as the
reference implementation's asyncio worker did; closing a socket twice is harmless).
``quic_bind`` sockets serve HTTP/3 (:mod:`hypercorn.driver.quic`); a QUIC socket closes
once its last connection has ended.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Protocol, final

from hypercorn.driver.lifespan import Lifespan
from hypercorn.driver.quic import load_quic
from hypercorn.driver.worker import WorkerState
from hypercorn.protocol.http1 import select_codec
from hypercorn.statsd import StatsdLogger
from hypercorn.utils import check_multiprocess_shutdown_event, repr_socket_addr

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup as _BaseExceptionGroup
else:  # pragma: no cover - exercised on 3.10 only
    from exceptiongroup import (
        BaseExceptionGroup as _BaseExceptionGroup,
    )

if TYPE_CHECKING:
    import socket
    import ssl

    from hypercorn.config import Config, Sockets
    from hypercorn.driver.backend import Backend, Flag
    from hypercorn.typing import AppWrapper, LifespanState

__all__ = (
    "ACCEPT_CAPACITY_ERRNOS",
    "ACCEPT_RETRY_DELAY",
    "Cancellable",
    "ConnectionTasks",
    "IgnoredOptionWarning",
    "Listener",
    "Runtime",
    "Supervisor",
    "bind_url",
    "event_trigger",
    "run_worker",
    "single_exception",
    "statsd_address",
    "warn_ignored_options",
    "worker_errors",
)

#: ``accept()`` errors meaning "out of resources" (file descriptors, memory): the workers
#: log them, wait :data:`ACCEPT_RETRY_DELAY` seconds and accept again.
ACCEPT_CAPACITY_ERRNOS = frozenset(
    code
    for code in (getattr(errno, name, None) for name in ("EMFILE", "ENFILE", "ENOMEM", "ENOBUFS"))
    if code is not None
)
ACCEPT_RETRY_DELAY = 0.1

#: An awaitable shutdown trigger: the worker shuts down once ``await trigger()`` returns.
ShutdownTrigger = Callable[[], Awaitable[object]]


class IsSet(Protocol):
    """What a worker process polls to know it must stop (a multiprocessing Event)."""

    def is_set(self) -> bool: ...


def event_trigger(
    event: IsSet | None, sleep: Callable[[float], Awaitable[object]]
) -> ShutdownTrigger | None:
    """The shutdown trigger of a worker process: returns once ``event.is_set()`` (polled
    every 0.1 s with the event loop's ``sleep``); None without an event."""
    if event is None:
        return None

    async def trigger() -> None:
        await check_multiprocess_shutdown_event(event, sleep)

    return trigger


class IgnoredOptionWarning(UserWarning):
    """``serve()`` was given a Config option that only ``hypercorn.run`` honours."""


def warn_ignored_options(config: Config) -> None:
    """Warn about the options ``serve()`` ignores (``debug``, ``workers != 1``)."""
    if config.debug:
        warnings.warn(
            "config.debug has no effect with serve(); enable debug mode on your event loop",
            IgnoredOptionWarning,
            stacklevel=3,
        )
    if config.workers != 1:
        warnings.warn(
            f"config.workers={config.workers!r} has no effect with serve(), which runs one "
            "worker in the current event loop; use hypercorn.run.run() for several",
            IgnoredOptionWarning,
            stacklevel=3,
        )


class Cancellable(Protocol):
    """Something that can be cancelled: an asyncio Task, a trio CancelScope."""

    def cancel(self) -> object: ...


class Listener(Protocol):
    """One listening socket being served."""

    def close(self) -> None:
        """Stop accepting connections and close the socket (connections carry on)."""


class Supervisor(Protocol):
    """The process supervisor (``hypercorn.run``) as a worker process sees it.

    The worker calls these from its event loop; each must return at once.
    """

    def serving(self, urls: list[str]) -> None:
        """Every socket listens (the worker has started)."""

    def alive(self) -> None:
        """The event loop is responsive: called about once a second while serving."""

    def retire(self) -> None:
        """``max_requests`` is reached: start a replacement, then fire the shutdown trigger."""


class Runtime(Protocol):
    """What :func:`run_worker` needs from an event loop beyond its :class:`Backend`."""

    @property
    def backend(self) -> Backend: ...

    def spawn(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        """Start ``function(*args)`` as a background task of the worker.

        Background tasks are cancelled when :func:`run_worker` returns; an exception in one
        stops the worker.
        """

    async def sleep(self, seconds: float) -> None: ...

    async def listen(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        worker: WorkerState,
        connections: ConnectionTasks,
    ) -> Listener:
        """Start accepting connections on ``sock`` (TLS with ``ssl_context`` if given).

        Each connection runs as a task registered in ``connections`` for its lifetime.
        """

    async def listen_quic(
        self, sock: socket.socket, worker: WorkerState, connections: ConnectionTasks
    ) -> Listener:
        """Start serving HTTP/3 on the UDP socket ``sock`` (a
        :class:`~hypercorn.driver.quic.QuicListener`, registered in ``connections`` until
        its last QUIC connection ends)."""


@final
class ConnectionTasks:
    """The connection tasks of a worker: awaited, then cancelled, at shutdown."""

    __slots__ = ("_tasks", "idle")

    def __init__(self, backend: Backend) -> None:
        self._tasks: set[Cancellable] = set()
        #: Set while no connection task runs.
        self.idle: Flag = backend.flag()
        self.idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: Cancellable) -> None:
        self._tasks.add(task)
        self.idle.clear()

    def discard(self, task: Cancellable) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self.idle.set()

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def bind_url(sock: socket.socket, *, secure: bool) -> str:
    """The URL a listening socket serves, e.g. ``http://127.0.0.1:8000``."""
    scheme = "https" if secure else "http"
    return f"{scheme}://{repr_socket_addr(sock.family, sock.getsockname())}"


def single_exception(group: BaseException) -> BaseException | None:
    """The one exception inside (nested) single-member exception groups, or None.

    Task groups and nurseries wrap what a worker raises (a failed lifespan startup, a
    socket error) in an exception group; the workers re-raise the error itself when it is
    alone, so callers can catch ``LifespanFailureError`` or ``OSError`` as such.
    """
    error = group
    while isinstance(error, _BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        error = error.exceptions[0]
    return None if error is group else error


@contextlib.contextmanager
def worker_errors(config: Config) -> Iterator[None]:
    """Wrap a worker's run: a lone error out of its task group is raised as itself (see
    :func:`single_exception`), and the statsd logger's socket is closed whatever happens
    (the logger is cached on ``config`` and may outlive the event loop)."""
    try:
        yield
    except BaseException as group:
        error = single_exception(group)
        if error is None:
            raise
        raise error from None
    finally:
        if issubclass(config.logger_class, StatsdLogger):
            with contextlib.suppress(Exception):  # a logger that cannot be built has no socket
                log = config.log
                if isinstance(log, StatsdLogger):
                    log.close()


async def run_worker(
    app: AppWrapper,
    config: Config,
    runtime: Runtime,
    *,
    sockets: Sockets | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    started: Callable[[list[str]], object] | None = None,
    supervisor: Supervisor | None = None,
) -> None:
    """Serve ``app`` until ``shutdown_trigger()`` returns or ``max_requests`` is reached.

    See the module docstring for the sequence. ``started(urls)`` is called once every
    socket listens, with their URLs (``http://127.0.0.1:8000``). Without a trigger only
    ``max_requests`` (or cancellation) stops the worker. With a ``supervisor`` (and a
    trigger) the worker reports to it and leaves its retirement to it.
    """
    backend = runtime.backend
    lifespan_state: LifespanState = {}
    worker = WorkerState(app, config, backend, lifespan_state=lifespan_state)
    lifespan = Lifespan(app, config, backend, lifespan_state)
    connections = ConnectionTasks(backend)
    listeners: list[Listener] = []
    quic_serving: list[socket.socket] = []
    owned = sockets is None
    if sockets is None:
        sockets = config.create_sockets()
    try:
        # Configuration errors (a certificate that does not load) fail before the app starts.
        ssl_context = config.create_ssl_context() if sockets.secure_sockets else None
        select_codec(config)  # an http1_parser that cannot be used
        if sockets.quic_sockets:
            load_quic(worker, None)  # aioquic, TLS and the QUIC certificate load, or fail now
        runtime.spawn(lifespan.run)
        await lifespan.startup()
        # What start-up made (the application and its modules, the lifespan state) lives as
        # long as the worker: move it out of the garbage collector's way, so the collections
        # that the objects of each request set off do not walk it again and again (about
        # 8 % of the CPU of a small HTTP/1.1 request). Cycles made later are collected, and
        # everything is handed back to the collector when the worker stops.
        gc.collect()
        gc.freeze()

        binds: list[str] = []
        roles = [(sock, ssl_context) for sock in sockets.secure_sockets]
        roles += [(sock, None) for sock in sockets.insecure_sockets]
        for sock, context in roles:
            url = bind_url(sock, secure=context is not None)
            listeners.append(await runtime.listen(sock, context, worker, connections))
            binds.append(url)
            await config.log.info("Running on %s (CTRL + C to quit)", url)
        for sock in sockets.quic_sockets:
            url = bind_url(sock, secure=True)
            listeners.append(await runtime.listen_quic(sock, worker, connections))
            quic_serving.append(sock)  # closed by its listener, after its last connection
            binds.append(url)
            await config.log.info("Running on %s over HTTP/3 (QUIC)", url)
        if started is not None:
            started(binds)
        if supervisor is not None:
            supervisor.serving(binds)

        runtime.spawn(_tick_date, worker, runtime.sleep, supervisor)
        stop = backend.flag()
        if supervisor is not None and shutdown_trigger is not None:
            runtime.spawn(_retire_when_done, supervisor, worker.max_requests_reached.wait)
        else:
            runtime.spawn(_set_when_done, stop, worker.max_requests_reached.wait)
        if shutdown_trigger is not None:
            runtime.spawn(_set_when_done, stop, shutdown_trigger)
        await stop.wait()
    except BaseException:
        gc.unfreeze()  # (a failure after start-up: no graceful shutdown to wait for)
        raise
    finally:
        for listener in listeners:
            listener.close()
        if owned:  # those not handed to a listener, or left by an error
            for sock in [
                *sockets.secure_sockets,
                *sockets.insecure_sockets,
                *(sock for sock in sockets.quic_sockets if sock not in quic_serving),
            ]:
                sock.close()

    try:
        await _graceful_shutdown(worker, connections, lifespan)
    finally:
        gc.unfreeze()  # (serve() may run inside a longer-lived program)


async def _graceful_shutdown(
    worker: WorkerState, connections: ConnectionTasks, lifespan: Lifespan
) -> None:
    """Finish the open connections (up to ``graceful_timeout``), then lifespan shutdown."""
    backend = worker.backend
    config = worker.config
    worker.shutdown()
    if not await backend.wait_for(connections.idle, config.graceful_timeout):
        await config.log.info(
            "Cancelling %d connection(s) still open after graceful_timeout=%ss",
            len(connections),
            config.graceful_timeout,
        )
        connections.cancel_all()
        # Cancelled tasks unwind at once unless an application ignores cancellation.
        if not await backend.wait_for(connections.idle, config.graceful_timeout):
            await config.log.warning(
                "%d connection(s) ignored cancellation; shutting down without them",
                len(connections),
            )
    await lifespan.shutdown()


async def _tick_date(
    worker: WorkerState, sleep: Callable[[float], Awaitable[None]], supervisor: Supervisor | None
) -> None:
    """Refresh the ``date`` header just after each wall-clock second begins; the same beat
    tells the supervisor (if any) that the event loop is responsive."""
    while True:
        await sleep(1.0 - time.time() % 1.0 + 0.001)
        worker.tick()
        if supervisor is not None:
            supervisor.alive()


async def _set_when_done(flag: Flag, wait: ShutdownTrigger) -> None:
    await wait()
    flag.set()


async def _retire_when_done(supervisor: Supervisor, wait: ShutdownTrigger) -> None:
    await wait()
    supervisor.retire()


def statsd_address(statsd_host: str | None) -> tuple[str, int]:
    """``config.statsd_host`` (``host:port``, ``[v6]:port``) as an address tuple."""
    host, sep, port = (statsd_host or "").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"statsd_host must be 'host:port', not {statsd_host!r}")
    return host.strip("[]"), int(port)
