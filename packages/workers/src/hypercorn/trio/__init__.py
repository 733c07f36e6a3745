"""Serve an ASGI or WSGI application on trio: :func:`serve`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import trio
from hypercorn.app_wrappers import wrap_app
from hypercorn.driver.serve import warn_ignored_options
from hypercorn.trio.run import worker_serve

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import Framework

__all__ = ("serve",)


async def serve(
    app: Framework,
    config: Config,
    *,
    shutdown_trigger: Callable[..., Awaitable[object]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    mode: Literal["asgi", "wsgi"] | None = None,
) -> None:
    """Serve ``app`` with ``config`` in the running trio loop.

    ``app`` is an ASGI or WSGI application (``mode`` forces one; by default a coroutine
    function is ASGI and anything else WSGI; WSGI applications run in threads). Start it
    with ``urls = await nursery.start(serve, app, config)`` to get the URLs it listens on
    (``["http://127.0.0.1:PORT"]``, useful with port 0). The server stops gracefully once
    ``await shutdown_trigger()`` returns; without a trigger SIGINT and SIGTERM stop it
    (when trio runs in the main thread).

    ``config.debug`` and ``config.workers`` have no effect here and give a warning; the
    other ``run()``-only options (``pid_path``, ``use_reloader``, ``daemon``) are ignored.
    """
    warn_ignored_options(config)
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, mode),
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )
