"""ASGI lifespan, written once for every event loop.

Rules (ASGI lifespan spec, and what users of a production server expect):

- The application gets the scope ``{"type": "lifespan", "asgi": {...}, "state": state}``;
  ``state`` is the dict every request scope later gets a shallow copy of.
- An application that raises *before it first calls* ``receive()``, or that returns without
  answering ``lifespan.startup``, does not take part in lifespan (every WSGI application,
  many small ASGI ones): that is logged at info level and the server runs without it.
- ``lifespan.startup.failed``, or an exception once the application has received
  ``lifespan.startup``, is a failed startup: :meth:`Lifespan.startup` raises
  :class:`~hypercorn.utils.LifespanFailureError` with the application's message, and the
  worker stops with a non-zero status. ``lifespan.shutdown.failed`` likewise at shutdown.
- ``startup_timeout`` / ``shutdown_timeout`` bound the waits
  (:class:`~hypercorn.utils.LifespanTimeoutError` names the stage and the option).
- A message of a type lifespan does not know raises
  :class:`~hypercorn.utils.UnexpectedMessageError` in the application's ``send``.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any, final

from hypercorn.utils import LifespanFailureError, LifespanTimeoutError, UnexpectedMessageError

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.driver.backend import Backend
    from hypercorn.typing import (
        AppWrapper,
        ASGIReceiveEvent,
        ASGISendEvent,
        LifespanScope,
        LifespanState,
    )

__all__ = ("Lifespan", "LifespanPhase")


class LifespanPhase(Enum):
    """Where the lifespan conversation is."""

    #: Nothing sent to the application yet.
    IDLE = "idle"
    #: ``lifespan.startup`` sent, no answer yet.
    STARTING = "starting"
    #: Startup completed; the server is serving.
    STARTED = "started"
    #: ``lifespan.shutdown`` sent, no answer yet.
    STOPPING = "stopping"
    #: Shutdown completed, or the application left the conversation.
    DONE = "done"


@final
class Lifespan:
    """Runs the application's lifespan scope and tells the worker how it went."""

    def __init__(
        self, app: AppWrapper, config: Config, backend: Backend, state: LifespanState
    ) -> None:
        self._app = app
        self._config = config
        self._backend = backend
        self._scope: LifespanScope = {
            "type": "lifespan",
            "asgi": {"spec_version": "2.0", "version": "3.0"},
            "state": state,
        }
        self.phase = LifespanPhase.IDLE
        #: False once the application showed it does not take part in lifespan.
        self.supported = True
        self._received_any = False
        self._failure: str | None = None
        self._inbox: deque[ASGIReceiveEvent] = deque()
        self._inbox_flag = backend.flag()
        self._answered = backend.flag()  # set when the pending stage is answered or moot

    async def run(self) -> None:
        """The lifespan task: run it in the worker's task group before :meth:`startup`."""
        try:
            await self._app(
                self._scope,
                self._receive,
                self._send,
                self._backend.run_in_thread,
                self._backend.run_from_thread,
            )
        except Exception as error:
            if not self._received_any:
                self.supported = False
                await self._config.log.info(
                    "ASGI 'lifespan' protocol appears unsupported (the application raised "
                    f"{type(error).__name__} before receiving a lifespan message)"
                )
            elif self.phase in (LifespanPhase.STARTING, LifespanPhase.STOPPING):
                self._failure = f"{type(error).__name__}: {error}"
                await self._config.log.exception("Error in ASGI lifespan")
        else:
            if self.phase in (LifespanPhase.IDLE, LifespanPhase.STARTING):
                self.supported = False
        finally:
            self._answered.set()
            if self.phase is not LifespanPhase.STARTED:
                self.phase = LifespanPhase.DONE

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer (see the module rules)."""
        await self._stage("startup", self._config.startup_timeout, LifespanPhase.STARTING)
        if self.phase is LifespanPhase.STARTING:
            self.phase = LifespanPhase.STARTED

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (see the module rules)."""
        if self.phase is not LifespanPhase.STARTED:
            return
        await self._stage("shutdown", self._config.shutdown_timeout, LifespanPhase.STOPPING)
        self.phase = LifespanPhase.DONE

    async def _stage(self, stage: str, timeout: float, phase: LifespanPhase) -> None:
        if self.phase is LifespanPhase.DONE:
            return
        self.phase = phase
        self._answered.clear()
        message: ASGIReceiveEvent = (
            {"type": "lifespan.startup"} if stage == "startup" else {"type": "lifespan.shutdown"}
        )
        self._inbox.append(message)
        self._inbox_flag.set()
        if not await self._backend.wait_for(self._answered, timeout):
            raise LifespanTimeoutError(stage)
        if self._failure is not None:
            raise LifespanFailureError(stage, self._failure)

    async def _receive(self) -> ASGIReceiveEvent:
        while not self._inbox:
            self._inbox_flag.clear()
            await self._inbox_flag.wait()
        self._received_any = True
        return self._inbox.popleft()

    async def _send(self, message: ASGISendEvent) -> None:
        kind: Any = message.get("type")
        expected = {
            LifespanPhase.STARTING: "lifespan.startup.",
            LifespanPhase.STOPPING: "lifespan.shutdown.",
        }.get(self.phase)
        if expected is None or not isinstance(kind, str) or not kind.startswith(expected):
            raise UnexpectedMessageError(self.phase, str(kind))
        outcome = kind[len(expected) :]
        if outcome == "failed":
            self._failure = str(message.get("message", "")) or "(no message)"
        elif outcome != "complete":
            raise UnexpectedMessageError(self.phase, kind)
        self._answered.set()
