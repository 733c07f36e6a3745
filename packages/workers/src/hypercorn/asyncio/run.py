"""The asyncio worker: :func:`worker_serve` and the entry points the runner calls.

:func:`asyncio_worker` and :func:`uvloop_worker` run one worker process (or, with
``workers = 0``, the whole server in-process). uvloop is only a loop factory: the driver is
the same.

Shutdown: with a ``shutdown_event`` (a multiprocessing Event from the runner) the worker
stops once it is set (polled every 0.1 s). Without one, and without a ``shutdown_trigger``,
SIGINT, SIGTERM and (on Windows) SIGBREAK start the graceful shutdown; the handlers that
were there before are put back when the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, final

from hypercorn.app_wrappers import load_application
from hypercorn.asyncio.backend import AsyncioBackend, TaskGroup
from hypercorn.asyncio.statsd import StatsdLogger
from hypercorn.asyncio.tcp_server import listen
from hypercorn.driver.serve import event_trigger, run_worker, worker_errors

if sys.version_info >= (3, 11):
    from asyncio import Runner
else:  # pragma: no cover - the backport is a dependency on 3.10
    from taskgroup import Runner

if TYPE_CHECKING:
    import socket

    from hypercorn.config import Config, Sockets
    from hypercorn.driver.backend import Backend
    from hypercorn.driver.serve import ConnectionTasks, Listener, Supervisor
    from hypercorn.driver.worker import WorkerState
    from hypercorn.typing import AppWrapper, EventType

__all__ = ("asyncio_worker", "uvloop_worker", "worker_serve")

ShutdownTrigger = Callable[..., Awaitable[object]]


async def worker_serve(
    app: AppWrapper,
    config: Config,
    *,
    sockets: Sockets | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    supervisor: Supervisor | None = None,
) -> None:
    """Serve ``app`` in the running asyncio loop until the shutdown trigger fires.

    ``sockets`` default to ``config.create_sockets()``. Without ``shutdown_trigger``,
    SIGINT/SIGTERM/SIGBREAK trigger the graceful shutdown (when the loop runs in the main
    thread). A failed lifespan startup raises :class:`~hypercorn.utils.LifespanFailureError`.
    """
    config.set_statsd_logger_class(StatsdLogger)
    with contextlib.ExitStack() as stack:
        if shutdown_trigger is None:
            shutdown_trigger = stack.enter_context(_signal_trigger())
        with worker_errors(config):
            await _serve(app, config, sockets, shutdown_trigger, supervisor)


async def _serve(
    app: AppWrapper,
    config: Config,
    sockets: Sockets | None,
    trigger: ShutdownTrigger,
    supervisor: Supervisor | None,
) -> None:
    async with TaskGroup() as group:
        runtime = _Runtime(AsyncioBackend(), group)
        try:
            await run_worker(
                app,
                config,
                runtime,
                sockets=sockets,
                shutdown_trigger=trigger,
                supervisor=supervisor,
            )
        finally:
            runtime.cancel_background()


@final
class _Runtime:
    """The asyncio side of :class:`hypercorn.driver.serve.Runtime`."""

    def __init__(self, backend: AsyncioBackend, group: Any) -> None:
        self._backend = backend
        self._group = group
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def backend(self) -> Backend:
        return self._backend

    def spawn(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        task = self._group.create_task(function(*args))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def listen(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        worker: WorkerState,
        connections: ConnectionTasks,
    ) -> Listener:
        return await listen(sock, ssl_context, worker, connections, self._group.create_task)

    async def listen_quic(
        self, sock: socket.socket, worker: WorkerState, connections: ConnectionTasks
    ) -> Listener:
        from hypercorn.asyncio.udp_server import listen_quic

        return await listen_quic(sock, worker, connections, self._group.create_task)

    def cancel_background(self) -> None:
        for task in list(self._background):
            task.cancel()


@contextlib.contextmanager
def _signal_trigger() -> Iterator[ShutdownTrigger]:
    """Install SIGINT/SIGTERM/SIGBREAK handlers that trigger the shutdown; restore after."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[tuple[int, Any, bool]] = []

    def handle_signal(*_: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(signum, stop.set)
        except NotImplementedError:  # Windows event loops
            try:
                signal.signal(signum, handle_signal)
            except ValueError:  # not the main thread
                continue
            installed.append((signum, previous, False))
        except (RuntimeError, ValueError):  # not the main thread: no signal handling here
            continue
        else:
            installed.append((signum, previous, True))
    try:
        yield stop.wait
    finally:
        for signum, previous, on_loop in reversed(installed):
            if on_loop:
                loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)


# ---------------------------------------------------------------------------------------
# Worker entry points (hypercorn.run)
# ---------------------------------------------------------------------------------------


def asyncio_worker(
    config: Config,
    sockets: Sockets | None = None,
    shutdown_event: EventType | None = None,
    *,
    supervisor: Supervisor | None = None,
) -> None:
    """Run one asyncio worker: load ``config.application_path`` and serve it.

    ``supervisor`` is how a worker process of ``hypercorn.run`` reports to its supervisor
    (see :class:`hypercorn.driver.serve.Supervisor`).
    """
    _run_worker(config, sockets, shutdown_event, supervisor, None)


def uvloop_worker(
    config: Config,
    sockets: Sockets | None = None,
    shutdown_event: EventType | None = None,
    *,
    supervisor: Supervisor | None = None,
) -> None:
    """Run one worker on a uvloop event loop (the ``uvloop`` extra)."""
    try:
        import uvloop
    except ImportError as error:
        raise ImportError(
            "uvloop is not installed: pip install 'hypercorn-workers[uvloop]'"
        ) from error
    _run_worker(config, sockets, shutdown_event, supervisor, uvloop.new_event_loop)


def _run_worker(
    config: Config,
    sockets: Sockets | None,
    shutdown_event: EventType | None,
    supervisor: Supervisor | None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    app = load_application(config.application_path, config.wsgi_max_body_size)
    trigger = event_trigger(shutdown_event, asyncio.sleep)
    with Runner(debug=config.debug, loop_factory=loop_factory) as runner:
        runner.get_loop().set_exception_handler(_exception_handler)
        serving = worker_serve(
            app, config, sockets=sockets, shutdown_trigger=trigger, supervisor=supervisor
        )
        runner.run(serving)


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's handler: failed TLS handshakes are the client's business, not logged."""
    if isinstance(context.get("exception"), ssl.SSLError):
        return
    loop.default_exception_handler(context)
