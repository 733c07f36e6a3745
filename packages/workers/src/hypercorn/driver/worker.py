"""What the connections of one worker share: the application, the clock, the counters."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, final

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.logging import Logger
from hypercorn.protocol import ProtocolContext, http_date

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.driver.backend import Backend
    from hypercorn.driver.connection import ConnectionDriver
    from hypercorn.protocol.events import StreamEnded
    from hypercorn.typing import AppWrapper, ASGIFramework, LifespanState

__all__ = ("WorkerState",)


@final
class WorkerState:
    """The state one worker's connections share.

    It owns the :class:`~hypercorn.protocol.ProtocolContext` (whose ``date`` the worker
    refreshes once a second with :meth:`tick`), counts requests towards ``max_requests``,
    and begins the graceful shutdown of every open connection.
    """

    __slots__ = (
        "app",
        "asgi",
        "backend",
        "config",
        "connections",
        "context",
        "logs_access",
        "max_requests",
        "max_requests_reached",
        "requests",
        "terminating",
    )

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        backend: Backend,
        *,
        lifespan_state: LifespanState | None = None,
    ) -> None:
        self.app = app
        #: The ASGI application itself when ``app`` only wraps one (ASGIWrapper): the
        #: driver then calls it directly, one coroutine less per request.
        self.asgi: ASGIFramework | None = app.app if type(app) is ASGIWrapper else None
        self.config = config
        self.backend = backend
        self.context = ProtocolContext(config, lifespan_state=lifespan_state, now=backend.time())
        self.tick()
        #: False when :meth:`log_access` would do nothing (the plain Logger with the access
        #: log off): the driver then skips it for every stream.
        self.logs_access = _logs_access(config.log)
        self.context.stream_ends = self.logs_access
        #: The open connections (for graceful shutdown).
        self.connections: set[ConnectionDriver] = set()
        #: True once the worker stops taking new requests.
        self.terminating = False
        self.requests = 0
        #: The request budget of this worker (``max_requests`` plus its jitter), or None;
        #: the driver counts ``requests`` and sets ``max_requests_reached``.
        self.max_requests: int | None = None
        if config.max_requests is not None:
            jitter = random.randint(0, max(config.max_requests_jitter, 0))
            self.max_requests = config.max_requests + jitter
        #: Set when the worker served its ``max_requests``.
        self.max_requests_reached = backend.flag()

    def tick(self) -> None:
        """Refresh the ``date`` header from the wall clock (call about once a second)."""
        self.context.set_date(http_date(time.time()))

    def shutdown(self) -> None:
        """Stop taking new requests: every connection begins its graceful shutdown."""
        self.terminating = True
        for connection in list(self.connections):
            connection.shutdown()

    async def log_access(self, ended: StreamEnded, request_time: float) -> None:
        """Write the access log line (and statsd metrics) for a finished stream."""
        await self.config.log.access(ended.scope, ended.response, request_time)


def _logs_access(log: Logger) -> bool:
    """Whether ``log.access`` can do anything: a subclass may override it (statsd does),
    and the plain Logger logs when it has an access logger."""
    if type(log).access is not Logger.access:
        return True
    return log.access_logger is not None
