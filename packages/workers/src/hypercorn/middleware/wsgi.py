"""Serve a WSGI application as an ASGI application, on asyncio or on trio.

``AsyncioWSGIMiddleware(wsgi_app)`` and ``TrioWSGIMiddleware(wsgi_app)`` are ASGI 3
applications, for mounting a WSGI app beside ASGI ones (for example in a
:class:`~hypercorn.middleware.DispatcherMiddleware`) or for running it under any ASGI server.
Both delegate to :class:`hypercorn.app_wrappers.WSGIWrapper`, the wrapper the workers use
for WSGI apps, so the environ, streaming, ``close()`` and error handling are the same as when
the server serves the app directly; see that class for the details and for how they differ
from the reference implementation. In short:

* the application runs in a worker thread (asyncio: the loop's default executor; trio:
  ``trio.to_thread.run_sync``) and each response message is sent from that thread through
  the event loop (``asyncio.run_coroutine_threadsafe`` / ``trio.from_thread.run``), so a
  streamed response is not buffered;
* a request body larger than ``max_body_size`` (default :data:`MAX_BODY_SIZE`, 64 KiB, the
  reference's default; the server's own ``wsgi_max_body_size`` defaults to 16 MiB) gets an
  empty ``413`` and the application is not called (the reference sent ``400``);
* WebSocket scopes are refused with ``websocket.close`` and lifespan scopes return at once.

:class:`InvalidPathError` is the same class as :class:`hypercorn.app_wrappers.InvalidPathError`
(the reference defined a second one here).

``TrioWSGIMiddleware`` imports trio when it handles its first scope, so this module (and
:mod:`hypercorn.middleware`) imports without trio installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Final, TypeVar

from hypercorn.app_wrappers import InvalidPathError, WSGIWrapper
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WSGIFramework

__all__ = (
    "MAX_BODY_SIZE",
    "AsyncioWSGIMiddleware",
    "InvalidPathError",
    "TrioWSGIMiddleware",
    "WSGICallable",
)

#: Default limit on a request body passed to the WSGI application, in bytes (64 KiB).
MAX_BODY_SIZE: Final = 2**16

#: A WSGI application, ``app(environ, start_response) -> Iterable[bytes]``.
WSGICallable = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_T = TypeVar("_T")


class _WSGIMiddleware:
    """Holds the :class:`~hypercorn.app_wrappers.WSGIWrapper`; subclasses pick the loop."""

    def __init__(self, wsgi_app: WSGIFramework, max_body_size: int = MAX_BODY_SIZE) -> None:
        #: The wrapped application (a :class:`~hypercorn.app_wrappers.WSGIWrapper`).
        self.wsgi_app = WSGIWrapper(wsgi_app, max_body_size)
        self.max_body_size = max_body_size

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        raise NotImplementedError


class AsyncioWSGIMiddleware(_WSGIMiddleware):
    """A WSGI application as an ASGI application on asyncio (or uvloop); see module doc."""

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        loop = asyncio.get_running_loop()

        def call_soon(function: Callable[..., Awaitable[_T]], *args: Any) -> _T:
            # Called from the worker thread: run on the loop and wait for the result.
            return asyncio.run_coroutine_threadsafe(_await(function, *args), loop).result()

        await self.wsgi_app(scope, receive, send, partial(loop.run_in_executor, None), call_soon)


async def _await(function: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    return await function(*args)


class TrioWSGIMiddleware(_WSGIMiddleware):
    """A WSGI application as an ASGI application on trio; see module doc."""

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        import trio

        await self.wsgi_app(scope, receive, send, trio.to_thread.run_sync, trio.from_thread.run)
