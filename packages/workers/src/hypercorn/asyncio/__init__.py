"""Serve an ASGI or WSGI application on asyncio (or uvloop): :func:`serve`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from hypercorn.app_wrappers import wrap_app
from hypercorn.asyncio.run import worker_serve
from hypercorn.driver.serve import warn_ignored_options

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import Framework

__all__ = ("serve",)


async def serve(
    app: Framework,
    config: Config,
    *,
    shutdown_trigger: Callable[..., Awaitable[object]] | None = None,
    mode: Literal["asgi", "wsgi"] | None = None,
) -> None:
    """Serve ``app`` with ``config`` in the running asyncio event loop.

    ``app`` is an ASGI or WSGI application (``mode`` forces one; by default a coroutine
    function is ASGI and anything else WSGI). The server stops gracefully once
    ``await shutdown_trigger()`` returns; without a trigger SIGINT and SIGTERM stop it
    (when the loop runs in the main thread). Works under uvloop too: run it in a uvloop
    loop.

    ``config.debug`` and ``config.workers`` have no effect here and give a warning; the
    other ``run()``-only options (``pid_path``, ``use_reloader``, ``daemon``) are ignored.
    """
    warn_ignored_options(config)
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, mode), config, shutdown_trigger=shutdown_trigger
    )
