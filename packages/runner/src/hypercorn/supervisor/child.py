"""The worker process's side of the supervisor: what runs after ``spawn``.

:func:`worker_main` is the target of every worker process. It ignores SIGINT and SIGTERM
(the supervisor turns those into a graceful stop of every worker), names the process, runs
the worker entry point of the configured class, and reports to the supervisor through a
pipe (:class:`WorkerLink`): started serving, alive (once a second), ``max_requests``
reached, or failed to start with a one-line cause.

The worker's stop signal is a :class:`StopFlag`: the supervisor's event, or the supervisor
disappearing (the worker's parent changes), whichever comes first. So an orphaned worker
stops gracefully instead of serving on without supervision.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import ssl
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, final

from hypercorn.config import ConfigError
from hypercorn.logging import LogConfigError
from hypercorn.utils import LifespanFailureError, LifespanTimeoutError, NoAppError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.synchronize import Event

    from hypercorn.config import Config, Sockets
    from hypercorn.driver.serve import IsSet, Supervisor

__all__ = (
    "EXIT_STARTUP_FAILED",
    "MESSAGE_ALIVE",
    "MESSAGE_FAILED",
    "MESSAGE_RETIRE",
    "MESSAGE_SERVING",
    "WORKER_CLASSES",
    "StopFlag",
    "WorkerEntryPoint",
    "WorkerLink",
    "WorkerProcessSpec",
    "check_worker_class",
    "describe_error",
    "load_worker_function",
    "log_traceback",
    "set_process_title",
    "worker_main",
)

#: Exit code of a worker (and of the server) when a worker could not start serving.
EXIT_STARTUP_FAILED: Final = 3

# The messages a worker sends (one byte, then the payload for a failure).
MESSAGE_SERVING: Final = b"S"
MESSAGE_ALIVE: Final = b"A"
MESSAGE_RETIRE: Final = b"R"
MESSAGE_FAILED: Final = b"F"

#: worker_class -> (module, entry point, the module it needs or None, the extra providing it)
WORKER_CLASSES: Final[dict[str, tuple[str, str, str | None]]] = {
    "asyncio": ("hypercorn.asyncio.run", "asyncio_worker", None),
    "uvloop": ("hypercorn.asyncio.run", "uvloop_worker", "uvloop"),
    "trio": ("hypercorn.trio.run", "trio_worker", "trio"),
}

#: Errors that are the user's to fix: reported as their message, without a traceback.
USER_ERRORS: Final = (
    NoAppError,
    LifespanFailureError,
    LifespanTimeoutError,
    ConfigError,
    LogConfigError,
    ssl.SSLError,
    OSError,
)


def check_worker_class(worker_class: str) -> None:
    """Raise :class:`ConfigError` unless ``worker_class`` exists and its extra is installed."""
    try:
        _, _, needs = WORKER_CLASSES[worker_class]
    except KeyError:
        choices = ", ".join(WORKER_CLASSES)
        raise ConfigError(
            f"worker_class {worker_class!r} does not exist; choose one of {choices}"
        ) from None
    if needs is not None and importlib.util.find_spec(needs) is None:
        raise ConfigError(
            f"worker_class {worker_class!r} needs {needs}, which is not installed: "
            f"pip install 'hypercorn-cli[{needs}]'"
        )


class WorkerEntryPoint(Protocol):
    """A worker entry point (``hypercorn.asyncio.run.asyncio_worker`` and its siblings)."""

    def __call__(
        self,
        config: Config,
        sockets: Sockets | None = None,
        shutdown_event: IsSet | None = None,
        *,
        supervisor: Supervisor | None = None,
    ) -> None: ...


def load_worker_function(worker_class: str) -> WorkerEntryPoint:
    """The entry point of ``worker_class`` (``hypercorn.asyncio.run.asyncio_worker``, ...).

    Imported by name, so the supervisor never imports an event loop it does not run.
    """
    check_worker_class(worker_class)
    module_name, function_name, _ = WORKER_CLASSES[worker_class]
    function: WorkerEntryPoint = getattr(importlib.import_module(module_name), function_name)
    return function


def describe_error(error: BaseException) -> str:
    """One line for the user: the message of their mistake, or the exception's type and
    message for anything else."""
    if isinstance(error, OSError) and error.strerror:  # without the "[Errno N]" prefix
        text = error.strerror
        if error.filename is not None:
            text = f"{text}: {os.fsdecode(error.filename)!r}"
    elif isinstance(error, USER_ERRORS):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split()) or type(error).__name__


def set_process_title(role: str, config: Config) -> None:
    """``hypercorn: <role> [<application>]`` as the process title, if setproctitle is there."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return
    application = getattr(config, "application_path", None)
    setproctitle(f"hypercorn: {role} [{application}]" if application else f"hypercorn: {role}")


@final
class StopFlag:
    """A worker's stop signal: the supervisor's event is set, the worker received SIGTERM,
    or the supervisor is gone.

    It has the ``is_set()`` of a multiprocessing Event, which is all the workers poll.
    """

    __slots__ = ("_event", "_parent", "_requested")

    def __init__(self, event: Event, parent_pid: int) -> None:
        self._event = event
        self._parent = parent_pid
        self._requested = False

    def is_set(self) -> bool:
        return self._requested or self._event.is_set() or os.getppid() != self._parent

    def set(self) -> None:
        """Ask the worker to stop (from the supervisor)."""
        self._event.set()

    def request(self, *_: object) -> None:
        """Ask this worker to stop (from inside it: a signal handler)."""
        self._requested = True


@final
class WorkerLink:
    """What a worker process tells its supervisor (:class:`hypercorn.driver.serve.Supervisor`).

    Writes are a few bytes on a pipe the supervisor always drains; if the supervisor is
    gone, they are dropped (the :class:`StopFlag` stops the worker).
    """

    __slots__ = ("_writer", "started")

    def __init__(self, writer: Connection) -> None:
        self._writer = writer
        #: True once the worker reported that it serves.
        self.started = False

    def serving(self, urls: list[str]) -> None:
        self.started = True
        self._send(MESSAGE_SERVING)

    def alive(self) -> None:
        self._send(MESSAGE_ALIVE)

    def retire(self) -> None:
        self._send(MESSAGE_RETIRE)

    def failed(self, message: str) -> None:
        self._send(MESSAGE_FAILED + message.encode("utf-8", "replace"))

    def _send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):
            self._writer.send_bytes(message)


@dataclass(frozen=True)
class WorkerProcessSpec:
    """Everything a worker process is started with (pickled by ``spawn``)."""

    config: Config
    sockets: Sockets
    stop: StopFlag
    link: WorkerLink


def worker_main(spec: WorkerProcessSpec) -> None:
    """The body of a worker process (the target of ``Process``).

    SIGINT is ignored: a Ctrl-C reaches every process of the terminal's process group, and
    the supervisor stops the workers gracefully itself. SIGTERM stops this worker
    gracefully (systemd sends it to every process of the service; ``kill PID`` restarts one
    worker without losing requests).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, spec.stop.request)
    config = spec.config
    set_process_title("worker", config)
    try:
        worker = load_worker_function(config.worker_class)
        worker(config, spec.sockets, spec.stop, supervisor=spec.link)
    except BaseException as error:
        if isinstance(error, SystemExit) and not error.code:
            raise
        message = describe_error(error)
        if not isinstance(error, USER_ERRORS):
            log_traceback(config, error)
        if spec.link.started:
            sys.exit(1)
        spec.link.failed(message)
        sys.exit(EXIT_STARTUP_FAILED)


def log_traceback(config: Config, error: BaseException) -> None:
    """The traceback of an unexpected error, on the error log (or stderr without one).

    The frames of the server and of importlib before the first frame of other code are
    left out: for an error raised while the application module is imported, the traceback
    starts in the application.
    """
    trimmed = error.__traceback__
    while trimmed is not None and trimmed.tb_next is not None:
        filename = trimmed.tb_frame.f_code.co_filename
        if not (filename.startswith(_SERVER_DIRECTORIES) or filename.startswith("<frozen")):
            break
        trimmed = trimmed.tb_next
    error = error.with_traceback(trimmed)
    try:
        logger = getattr(config.log, "error_logger", None)
    except Exception:
        logger = None
    if logger is not None:
        logger.error("Error in worker pid %d:", os.getpid(), exc_info=error)
    else:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)


def _package_directory(module: str) -> str:
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec is not None and spec.origin else ""
    return os.path.dirname(origin) + os.sep


# Where the server's own code lives: each distribution is a separate portion of the
# namespace, so each portion's directory counts; and importlib's.
_SERVER_DIRECTORIES = tuple(
    {_package_directory(name) for name in ("hypercorn.config", "hypercorn.app_wrappers")}
    | {os.path.dirname(os.path.abspath(__file__ + "/..")) + os.sep}
    | {os.path.dirname(importlib.__file__ or "") + os.sep}
)
