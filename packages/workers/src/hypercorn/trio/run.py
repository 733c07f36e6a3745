"""The trio worker: :func:`worker_serve` and the entry point the runner calls.

Shutdown: with a ``shutdown_event`` (a multiprocessing Event from the runner) the worker
stops once it is set (polled every 0.1 s). Without one, and without a ``shutdown_trigger``,
SIGINT *and SIGTERM* start the graceful shutdown (``trio.open_signal_receiver``, while the
worker runs in the main thread). The reference implementation handled neither: Ctrl-C
raised KeyboardInterrupt and SIGTERM killed the process without a graceful shutdown.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, final

import trio
from hypercorn.app_wrappers import load_application
from hypercorn.driver.serve import event_trigger, run_worker, worker_errors
from hypercorn.trio.backend import TrioBackend
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import listen

if TYPE_CHECKING:
    import socket
    import ssl

    from hypercorn.config import Config, Sockets
    from hypercorn.driver.backend import Backend
    from hypercorn.driver.serve import ConnectionTasks, Listener, Supervisor
    from hypercorn.driver.worker import WorkerState
    from hypercorn.typing import AppWrapper, EventType

__all__ = ("trio_worker", "worker_serve")

ShutdownTrigger = Callable[..., Awaitable[object]]


async def worker_serve(
    app: AppWrapper,
    config: Config,
    *,
    sockets: Sockets | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    supervisor: Supervisor | None = None,
) -> None:
    """Serve ``app`` in the running trio loop until the shutdown trigger fires.

    ``sockets`` default to ``config.create_sockets()``. Once every socket listens,
    ``task_status.started(urls)`` reports their URLs (``http://127.0.0.1:PORT``), so
    ``await nursery.start(worker_serve, ...)`` learns the ports of ``:0`` binds. Without a
    trigger, SIGINT and SIGTERM trigger the graceful shutdown (in the main thread). A
    failed lifespan startup raises :class:`~hypercorn.utils.LifespanFailureError`.
    """
    config.set_statsd_logger_class(StatsdLogger)
    with contextlib.ExitStack() as stack:
        if shutdown_trigger is None:
            shutdown_trigger = _signal_trigger(stack)
        with worker_errors(config):
            async with trio.open_nursery() as nursery:
                runtime = _Runtime(TrioBackend(nursery), nursery)
                await run_worker(
                    app,
                    config,
                    runtime,
                    sockets=sockets,
                    shutdown_trigger=shutdown_trigger,
                    started=task_status.started,
                    supervisor=supervisor,
                )
                nursery.cancel_scope.cancel()  # the background tasks


@final
class _Runtime:
    """The trio side of :class:`hypercorn.driver.serve.Runtime`."""

    def __init__(self, backend: TrioBackend, nursery: trio.Nursery) -> None:
        self._backend = backend
        self._nursery = nursery

    @property
    def backend(self) -> Backend:
        return self._backend

    def spawn(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        self._nursery.start_soon(function, *args)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def listen(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        worker: WorkerState,
        connections: ConnectionTasks,
    ) -> Listener:
        return await listen(self._nursery, sock, ssl_context, worker, connections)

    async def listen_quic(
        self, sock: socket.socket, worker: WorkerState, connections: ConnectionTasks
    ) -> Listener:
        from hypercorn.trio.udp_server import listen_quic

        return await listen_quic(self._nursery, sock, worker, connections)


def _signal_trigger(stack: contextlib.ExitStack) -> ShutdownTrigger | None:
    """Receive SIGINT and SIGTERM (until ``stack`` closes) as the shutdown trigger."""
    signals = [signal.SIGINT, signal.SIGTERM]
    try:
        receiver = stack.enter_context(trio.open_signal_receiver(*signals))
    except (RuntimeError, ValueError):  # not the main thread: no signal handling here
        return None

    async def trigger() -> None:
        async for _ in receiver:
            return

    return trigger


# ---------------------------------------------------------------------------------------
# Worker entry point (hypercorn.run)
# ---------------------------------------------------------------------------------------


def trio_worker(
    config: Config,
    sockets: Sockets | None = None,
    shutdown_event: EventType | None = None,
    *,
    supervisor: Supervisor | None = None,
) -> None:
    """Run one trio worker: load ``config.application_path`` and serve it.

    ``supervisor`` is how a worker process of ``hypercorn.run`` reports to its supervisor
    (see :class:`hypercorn.driver.serve.Supervisor`).
    """
    app = load_application(config.application_path, config.wsgi_max_body_size)
    trigger = event_trigger(shutdown_event, trio.sleep)
    serve: Any = partial(
        worker_serve,
        app,
        config,
        sockets=sockets,
        shutdown_trigger=trigger,
        supervisor=supervisor,
    )
    trio.run(serve)
