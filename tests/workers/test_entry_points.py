"""The worker entry points the supervisor calls, run as it runs them: in a spawned process."""

from __future__ import annotations

import asyncio
import multiprocessing
import textwrap
from pathlib import Path

import httpx
import pytest

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.backend import AsyncioBackend
from hypercorn.asyncio.run import asyncio_worker, uvloop_worker
from hypercorn.config import Config
from hypercorn.driver.worker import WorkerState
from hypercorn.trio.run import trio_worker
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope, WorkerFunc

WORKERS: dict[str, WorkerFunc] = {
    "asyncio": asyncio_worker,
    "uvloop": uvloop_worker,
    "trio": trio_worker,
}

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"from " + scope["path"].encode()})
"""


@pytest.mark.parametrize("name", sorted(WORKERS))
@pytest.mark.timeout(120)
def test_entry_point_serves_until_the_shutdown_event(name: str, tmp_path: Path) -> None:
    module = tmp_path / "entry_app.py"
    module.write_text(textwrap.dedent(APP))
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.application_path = f"{module}:app"
    config.accesslog = None
    sockets = config.create_sockets()
    port = sockets.insecure_sockets[0].getsockname()[1]
    context = multiprocessing.get_context("spawn")
    shutdown = context.Event()
    worker = context.Process(
        target=WORKERS[name],
        kwargs={"config": config, "sockets": sockets, "shutdown_event": shutdown},
    )
    worker.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/entry", timeout=30)
        assert response.status_code == 200
        assert response.text == "from /entry"
    finally:
        shutdown.set()
        worker.join(timeout=30)
        for sock in sockets.insecure_sockets:
            sock.close()
    assert worker.exitcode == 0


async def _never_called(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """An application that is never called: the budget test only builds worker states."""


@pytest.mark.parametrize(("limit", "jitter"), [(3, 0), (3, 2), (10, 5)])
def test_max_requests_budget_includes_the_jitter(limit: int, jitter: int) -> None:
    config = Config()
    config.max_requests = limit
    config.max_requests_jitter = jitter

    async def draw() -> set[int | None]:
        backend, app = AsyncioBackend(), ASGIWrapper(_never_called)
        return {WorkerState(app, config, backend).max_requests for _ in range(200)}

    budgets = {budget for budget in asyncio.run(draw()) if budget is not None}
    assert min(budgets) >= limit
    assert max(budgets) <= limit + jitter
    if jitter:
        assert len(budgets) > 1  # the jitter is actually drawn
