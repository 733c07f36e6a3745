"""Mount several ASGI applications under URL path prefixes.

``AsyncioDispatcherMiddleware({"/api": api_app, "/": site_app})`` is one ASGI application
that hands each request to the first mount whose prefix matches, and fans the lifespan
protocol out to every mount. :class:`TrioDispatcherMiddleware` is the same for trio (trio is
imported only when its lifespan runs, so this module imports without trio installed);
:data:`DispatcherMiddleware` is the asyncio flavour under its historical name.

Routing rules (HTTP and WebSocket scopes):

* Mounts are tried in the mapping's insertion order and the first match wins, as in the
  reference implementation; list longer prefixes before shorter ones that contain them.
* Prefixes match on whole path segments: ``/api`` matches ``/api`` and ``/api/users`` but
  not ``/apiary`` (the reference used a plain ``startswith``, which sent ``/apiary`` to the
  ``/api`` mount). A trailing ``/`` on a prefix is ignored, and ``""`` or ``"/"`` is a
  catch-all mount. A prefix must otherwise start with ``/`` (:class:`ValueError`).
* The mount gets a shallow copy of the scope with ``root_path`` extended by the prefix and
  ``path``/``raw_path`` left as the full request path, which is the ASGI meaning of
  ``root_path`` (frameworks strip it themselves; a WSGI app sees the prefix in
  ``SCRIPT_NAME``). When the incoming ``path`` already starts with the incoming
  ``root_path`` (a dispatcher nested in another one, or a server ``root_path``), prefixes are
  matched against the part of the path below that ``root_path``.
* No match: an HTTP request gets an empty ``404`` with ``content-length: 0``; a WebSocket is
  refused with ``websocket.close`` (the reference sent HTTP response messages on the
  WebSocket scope, which a server must reject).

Lifespan rules (each mount runs its own lifespan concurrently, with its own queue of at most
:data:`MAX_QUEUE_SIZE` messages; every message from the server is copied to every mount
that is still running; all mounts share the scope's ``state`` dict):

* ``lifespan.startup.complete`` is sent once every mount has settled its startup. A mount
  that reported ``lifespan.startup.failed`` makes the whole startup fail: the dispatcher
  sends ``lifespan.startup.failed`` whose message names each failing mount and carries its
  message (the reference dropped these messages, so a failed startup went unnoticed).
* A mount that does not take part in lifespan (it returns, or raises, before settling its
  startup, as the ASGI spec allows) counts as settled and does not hold the others up; if
  no mount takes part, startup still completes.
* Shutdown works the same way: ``lifespan.shutdown.complete`` once every mount that started
  has reported its shutdown or returned, ``lifespan.shutdown.failed`` (with the mounts'
  messages) if one reported a failure or raised after its startup.
* The lifespan call returns once shutdown has been passed on and every mount has returned.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Final

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    LifespanScope,
    Scope,
    WWWScope,
)

__all__ = (
    "MAX_QUEUE_SIZE",
    "AsyncioDispatcherMiddleware",
    "DispatcherMiddleware",
    "TrioDispatcherMiddleware",
)

#: Bound of each mount's lifespan message queue.
MAX_QUEUE_SIZE: Final = 10


class _Lifespan(enum.Enum):
    """Where one mount is in its lifespan."""

    #: Running, startup not settled yet.
    STARTING = enum.auto()
    #: Reported ``lifespan.startup.complete``.
    STARTED = enum.auto()
    #: Reported ``lifespan.startup.failed``.
    STARTUP_FAILED = enum.auto()
    #: Returned or raised before settling its startup: takes no part in lifespan.
    UNSUPPORTED = enum.auto()
    #: Reported ``lifespan.shutdown.complete``, or returned after starting.
    STOPPED = enum.auto()
    #: Reported ``lifespan.shutdown.failed``, or raised after starting.
    SHUTDOWN_FAILED = enum.auto()


_STARTUP_SETTLED: Final = frozenset(_Lifespan) - {_Lifespan.STARTING}
_SHUTDOWN_SETTLED: Final = _STARTUP_SETTLED - {_Lifespan.STARTED}
_STARTED_ONCE: Final = frozenset({_Lifespan.STARTED, _Lifespan.STOPPED, _Lifespan.SHUTDOWN_FAILED})


class _LifespanFanOut:
    """The bookkeeping of one lifespan run over every mount (the same for both flavours).

    It records what each mount reported and sends the combined result to the server exactly
    once per phase, when the server has asked for that phase and every mount has settled it.
    """

    def __init__(self, prefixes: list[str], send: ASGISendCallable) -> None:
        self.states = dict.fromkeys(prefixes, _Lifespan.STARTING)
        self.messages: dict[str, str] = {}
        self._send = send
        self._startup_requested = False
        self._startup_reported = False
        self._shutdown_requested = False
        self._shutdown_reported = False

    async def request(self, message: ASGIReceiveEvent) -> None:
        """The server sent ``message``; note when it asks for startup or shutdown."""
        if message["type"] == "lifespan.startup":
            self._startup_requested = True
        elif message["type"] == "lifespan.shutdown":
            self._shutdown_requested = True
        await self.report()

    def record_sent(self, prefix: str, message: ASGISendEvent) -> None:
        """The mount at ``prefix`` sent ``message`` (its ``send`` callable); call report()."""
        state = self.states[prefix]
        kind = message["type"]
        if kind == "lifespan.startup.complete" and state is _Lifespan.STARTING:
            self.states[prefix] = _Lifespan.STARTED
        elif kind == "lifespan.startup.failed" and state is _Lifespan.STARTING:
            self.states[prefix] = _Lifespan.STARTUP_FAILED
            self.messages[prefix] = str(message.get("message", ""))
        elif kind == "lifespan.shutdown.complete" and state is _Lifespan.STARTED:
            self.states[prefix] = _Lifespan.STOPPED
        elif kind == "lifespan.shutdown.failed" and state is _Lifespan.STARTED:
            self.states[prefix] = _Lifespan.SHUTDOWN_FAILED
            self.messages[prefix] = str(message.get("message", ""))
        else:
            raise RuntimeError(
                f"the application mounted at {prefix!r} sent {kind!r} during lifespan while "
                f"in state {state.name}; expected lifespan.startup.complete/failed, then "
                "lifespan.shutdown.complete/failed"
            )

    def record_exit(self, prefix: str, error: Exception | None) -> None:
        """The mount at ``prefix`` returned (``error`` None) or raised ``error``."""
        state = self.states[prefix]
        if state is _Lifespan.STARTING:
            self.states[prefix] = _Lifespan.UNSUPPORTED
        elif state is _Lifespan.STARTED:
            if error is None:
                self.states[prefix] = _Lifespan.STOPPED
            else:
                self.states[prefix] = _Lifespan.SHUTDOWN_FAILED
                self.messages[prefix] = f"{type(error).__name__}: {error}"

    async def report(self) -> None:
        """Send the combined result of a phase once the server asked and every mount settled."""
        states = self.states.values()
        if (
            self._startup_requested
            and not self._startup_reported
            and all(state in _STARTUP_SETTLED for state in states)
        ):
            self._startup_reported = True
            failure = self._failure(_Lifespan.STARTUP_FAILED)
            if failure is None:
                await self._send({"type": "lifespan.startup.complete"})
            else:
                await self._send({"type": "lifespan.startup.failed", "message": failure})
        if (
            self._startup_reported
            and self._shutdown_requested
            and not self._shutdown_reported
            and all(state in _SHUTDOWN_SETTLED for state in states)
        ):
            self._shutdown_reported = True
            failure = self._failure(_Lifespan.SHUTDOWN_FAILED)
            if failure is None:
                await self._send({"type": "lifespan.shutdown.complete"})
            else:
                await self._send({"type": "lifespan.shutdown.failed", "message": failure})

    def _failure(self, failed: _Lifespan) -> str | None:
        parts = [
            f"{prefix or '/'}: {self.messages[prefix]}"
            for prefix, state in self.states.items()
            if state is failed
        ]
        return "; ".join(parts) if parts else None


class _Mailbox:
    """A mount's bounded lifespan queue: ``put`` for the dispatcher, ``get`` for the mount."""

    def __init__(
        self,
        put: Callable[[ASGIReceiveEvent], Awaitable[None]],
        get: Callable[[], Awaitable[ASGIReceiveEvent]],
    ) -> None:
        self.put = put
        self.get = get
        self.running = True


def _normalise_prefix(prefix: str) -> str:
    stripped = prefix.rstrip("/")
    if stripped and not stripped.startswith("/"):
        raise ValueError(f"a mount prefix must start with '/', got {prefix!r}")
    return stripped


def _is_under(path: str, prefix: str) -> bool:
    """True when ``path`` is ``prefix`` or below it, on a path-segment boundary."""
    return prefix == "" or path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


class _DispatcherMiddleware:
    """Routing and the lifespan fan-out; subclasses supply the event-loop primitives."""

    def __init__(self, mounts: Mapping[str, ASGIFramework]) -> None:
        #: The mounts as given, prefix -> application.
        self.mounts: dict[str, ASGIFramework] = dict(mounts)
        self._routes = [(_normalise_prefix(prefix), app) for prefix, app in self.mounts.items()]
        #: Per-mount lifespan queues of the most recent lifespan run (kept for compatibility).
        self.app_queues: dict[str, _Mailbox] = {}
        #: Which mounts reported ``lifespan.startup.complete`` in the most recent run.
        self.startup_complete: dict[str, bool] = {}
        #: Which mounts reported ``lifespan.shutdown.complete`` in the most recent run.
        self.shutdown_complete: dict[str, bool] = {}
        self._fan_out: _LifespanFanOut | None = None

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._handle_lifespan(scope, receive, send)
        elif scope["type"] == "http" or scope["type"] == "websocket":
            await self._dispatch(scope, receive, send)
        else:
            raise ValueError(f"unknown ASGI scope type {scope['type']!r}")

    def _match(self, scope: WWWScope) -> tuple[str, ASGIFramework] | None:
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and _is_under(path, root_path):
            path = path[len(root_path) :]
        for prefix, app in self._routes:
            if _is_under(path, prefix):
                return prefix, app
        return None

    async def _dispatch(
        self, scope: WWWScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        match = self._match(scope)
        if match is not None:
            prefix, app = match
            mount_scope = scope.copy()
            mount_scope["root_path"] = scope.get("root_path", "") + prefix
            await app(mount_scope, receive, send)
        elif scope["type"] == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await send({"type": "websocket.close", "code": 1000, "reason": None})

    async def send(self, path: str, send: ASGISendCallable, message: ASGISendEvent) -> None:
        """Record a lifespan ``message`` from the mount at ``path`` (``send`` is unused).

        Kept for compatibility with the reference, whose mounts sent through this method;
        the combined result goes to the ``send`` of the running lifespan.
        """
        if self._fan_out is None:
            raise RuntimeError("no lifespan is running")
        await self._mount_sent(self._fan_out, path, message)

    async def _mount_sent(
        self, fan_out: _LifespanFanOut, prefix: str, message: ASGISendEvent
    ) -> None:
        fan_out.record_sent(prefix, message)
        self._update_flags(fan_out, prefix)
        await fan_out.report()

    async def _mount_exited(
        self, fan_out: _LifespanFanOut, prefix: str, error: Exception | None
    ) -> None:
        fan_out.record_exit(prefix, error)
        self._update_flags(fan_out, prefix)
        await fan_out.report()

    def _update_flags(self, fan_out: _LifespanFanOut, prefix: str) -> None:
        state = fan_out.states[prefix]
        self.startup_complete[prefix] = state in _STARTED_ONCE
        self.shutdown_complete[prefix] = state is _Lifespan.STOPPED

    async def _handle_lifespan(
        self, scope: LifespanScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        fan_out = _LifespanFanOut(list(self.mounts), send)
        self._fan_out = fan_out
        self.app_queues = {prefix: self._mailbox() for prefix in self.mounts}
        self.startup_complete = dict.fromkeys(self.mounts, False)
        self.shutdown_complete = dict.fromkeys(self.mounts, False)
        mailboxes = self.app_queues

        async def run_mount(prefix: str, app: ASGIFramework) -> None:
            mailbox = mailboxes[prefix]
            error: Exception | None = None
            try:
                await app(scope.copy(), mailbox.get, partial(self._mount_sent, fan_out, prefix))
            except Exception as exc:  # a mount's failure is reported, never propagated
                error = exc
            finally:
                mailbox.running = False
            await self._mount_exited(fan_out, prefix, error)

        async def pump() -> None:
            while True:
                message = await receive()
                await fan_out.request(message)
                for mailbox in mailboxes.values():
                    if mailbox.running:
                        await mailbox.put(message)
                if message["type"] == "lifespan.shutdown":
                    return

        await self._run_all(
            [pump, *(partial(run_mount, prefix, app) for prefix, app in self.mounts.items())]
        )

    def _mailbox(self) -> _Mailbox:
        raise NotImplementedError

    async def _run_all(self, functions: list[Callable[[], Awaitable[None]]]) -> None:
        """Run every function concurrently until all return; an exception cancels the rest."""
        raise NotImplementedError


class AsyncioDispatcherMiddleware(_DispatcherMiddleware):
    """Dispatch to mounted ASGI apps; the lifespan fan-out runs on asyncio (see module doc)."""

    def _mailbox(self) -> _Mailbox:
        queue: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue(MAX_QUEUE_SIZE)
        return _Mailbox(queue.put, queue.get)

    async def _run_all(self, functions: list[Callable[[], Awaitable[None]]]) -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_as_coroutine(function)) for function in functions]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            pending = [task for task in tasks if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                task.result()


async def _as_coroutine(function: Callable[[], Awaitable[None]]) -> None:
    await function()


class TrioDispatcherMiddleware(_DispatcherMiddleware):
    """Dispatch to mounted ASGI apps; the lifespan fan-out runs on trio (see module doc).

    trio is imported when the lifespan starts, not when this module is imported.
    """

    def _mailbox(self) -> _Mailbox:
        import trio

        sender: trio.MemorySendChannel[ASGIReceiveEvent]
        receiver: trio.MemoryReceiveChannel[ASGIReceiveEvent]
        sender, receiver = trio.open_memory_channel(MAX_QUEUE_SIZE)
        return _Mailbox(sender.send, receiver.receive)

    async def _run_all(self, functions: list[Callable[[], Awaitable[None]]]) -> None:
        import trio

        async with trio.open_nursery() as nursery:
            for function in functions:
                nursery.start_soon(_as_coroutine, function)


#: The asyncio flavour under the name older releases used.
DispatcherMiddleware = AsyncioDispatcherMiddleware
