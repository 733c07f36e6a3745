"""``run(config)``: serve ``config.application_path`` as a supervised group of processes.

Usage::

    from hypercorn.config import Config
    from hypercorn.run import run

    if __name__ == "__main__":  # worker processes are spawned: they re-import this module
        config = Config.from_toml("hypercorn.toml")
        config.application_path = "myapp:app"
        raise SystemExit(run(config))

What happens, in order:

1. The options are checked in this process: the worker class exists and its extra is
   installed, the logs can be opened, the listening sockets are created (a port in use or
   a permission problem shows here), the TLS certificate, key and password load, and the
   pid file is written. A problem is reported as one line and ``run`` returns 1.
2. ``workers = 0``: one worker runs in this process. SIGINT and SIGTERM stop it gracefully;
   a second one stops it at once. SIGHUP and SIGUSR1 are ignored (there is no worker to
   replace). ``max_requests`` ends it (exit code 0).
3. ``workers >= 1``: a :class:`~hypercorn.supervisor.Supervisor` spawns that many worker
   processes, which share the sockets, and supervises them (see :mod:`hypercorn.supervisor`
   for signals, restarts, reloads and the heartbeat).

``run`` returns the process exit code rather than raising: 0 after a clean stop, 1 for a
problem found before any worker started, 3 when a worker could not start serving (the
application could not be imported, its lifespan startup failed), and 128 + the signal
number after a second SIGINT or SIGTERM forced the stop. Messages go to the error log
(``config.errorlog``); with the error log off they go to standard error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, final

from hypercorn.config import ConfigError
from hypercorn.supervisor import Supervisor, make_reloader
from hypercorn.supervisor.child import (
    EXIT_STARTUP_FAILED,
    USER_ERRORS,
    check_worker_class,
    describe_error,
    load_worker_function,
    log_traceback,
    set_process_title,
)
from hypercorn.supervisor.signals import signals_named
from hypercorn.utils import write_pid_file

if TYPE_CHECKING:
    import logging
    from types import FrameType

    from hypercorn.config import Config, Sockets

__all__ = ("EXIT_ERROR", "EXIT_OK", "EXIT_STARTUP_FAILED", "run")

#: A clean stop.
EXIT_OK: Final = 0
#: A problem found before any worker started (options, sockets, certificates, pid file).
EXIT_ERROR: Final = 1


def run(config: Config) -> int:
    """Serve ``config.application_path`` until stopped; return the exit code.

    See the module docstring for the sequence and the exit codes.
    """
    report = _Reporter(config)
    try:
        _check(config)
        sockets = config.create_sockets()
    except USER_ERRORS as error:
        report.error(describe_error(error))
        return EXIT_ERROR

    pid_path = config.pid_path
    try:
        if config.ssl_enabled:
            config.create_ssl_context()  # each worker loads its own; this finds mistakes early
        if pid_path is not None:
            try:
                write_pid_file(pid_path)
            except OSError as error:
                pid_path = None  # not ours to remove
                raise ConfigError(
                    f"pid_path: cannot write {config.pid_path!r}: {error.strerror}"
                ) from error
        if config.workers == 0:
            set_process_title("worker", config)
            return _run_in_process(config, sockets, report)
        set_process_title("supervisor", config)
        reloader = make_reloader(config.application_path) if config.use_reloader else None
        supervisor = Supervisor(
            config,
            sockets,
            info=report.info,
            error=report.error,
            reopen_logs=report.reopen,
            reloader=reloader,
        )
        return supervisor.run()
    except USER_ERRORS as error:
        report.error(describe_error(error))
        return EXIT_ERROR
    finally:
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets]:
            sock.close()
        if pid_path is not None:
            _remove_pid_file(pid_path)


def _check(config: Config) -> None:
    if not getattr(config, "application_path", None):
        raise ConfigError("application_path is not set: say which application to serve")
    check_worker_class(config.worker_class)
    if config.workers < 0:
        raise ConfigError(f"workers must be a whole number >= 0, not {config.workers!r}")
    if config.use_reloader and config.workers == 0:
        raise ConfigError(
            "use_reloader needs worker processes (workers >= 1): the reloader restarts them"
        )
    config.log  # noqa: B018 - opens the log files, so that a bad path is reported now


def _remove_pid_file(pid_path: str) -> None:
    # Only our own: a newer server may have replaced it.
    with contextlib.suppress(OSError, ValueError):
        with open(pid_path, encoding="ascii") as pid_file:
            if int(pid_file.read().strip()) != os.getpid():
                return
        os.unlink(pid_path)


@final
class _Reporter:
    """The supervisor's lines: to the error log, or standard error when it is off."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def _logger(self) -> logging.Logger | None:
        try:
            logger: logging.Logger | None = getattr(self._config.log, "error_logger", None)
        except Exception:  # the log cannot be built: that is what gets reported
            return None
        return logger

    def info(self, message: str) -> None:
        logger = self._logger()
        if logger is not None:
            logger.info(message)

    def error(self, message: str) -> None:
        logger = self._logger()
        if logger is not None:
            logger.error(message)
        else:
            print(f"hypercorn: error: {message}", file=sys.stderr, flush=True)

    def reopen(self) -> None:
        """Reopen the log files (after a rotation): a new logger replaces the handlers of
        the ``hypercorn.error`` and ``hypercorn.access`` loggers, closing the old files."""
        try:
            self._config.logger_class(self._config)
        except Exception as error:
            self.error(f"cannot reopen the log files: {describe_error(error)}")


# ---------------------------------------------------------------------------------------
# workers = 0: one worker in this process
# ---------------------------------------------------------------------------------------


@final
class _InProcess:
    """Stop flag and supervisor of the in-process worker.

    The first SIGINT or SIGTERM asks for a graceful stop (the worker polls :meth:`is_set`);
    a second one ends the process at once with 128 + the signal number.
    """

    def __init__(self, pid_path: str | None) -> None:
        self.stop_requested = False
        self.started = False
        self._pid_path = pid_path

    def is_set(self) -> bool:
        return self.stop_requested

    def handle_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:
            if self._pid_path is not None:
                _remove_pid_file(self._pid_path)
            os._exit(128 + signum)
        self.stop_requested = True

    # The hypercorn.driver.serve.Supervisor interface.
    def serving(self, urls: list[str]) -> None:
        self.started = True

    def alive(self) -> None:
        pass

    def retire(self) -> None:
        self.stop_requested = True  # max_requests ends a single-process server


def _run_in_process(config: Config, sockets: Sockets, report: _Reporter) -> int:
    worker = load_worker_function(config.worker_class)
    state = _InProcess(config.pid_path)
    stop_signals = signals_named("SIGINT", "SIGTERM", "SIGBREAK")
    # There are no workers to replace: SIGHUP and SIGUSR1 must not end the server.
    restart_signals = signals_named("SIGHUP", "SIGUSR1")
    try:
        with (
            _signal_handlers(stop_signals, state.handle_signal),
            _signal_handlers(restart_signals, signal.SIG_IGN),
        ):
            worker(config, sockets, state, supervisor=state)
    except Exception as error:
        report.error(describe_error(error))
        if not isinstance(error, USER_ERRORS):
            log_traceback(config, error)
        return EXIT_ERROR if state.started else EXIT_STARTUP_FAILED
    return EXIT_OK


@contextlib.contextmanager
def _signal_handlers(
    signums: list[int], handler: Callable[[int, FrameType | None], object] | signal.Handlers
) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # no signals outside the main thread; the caller stops the worker otherwise
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
