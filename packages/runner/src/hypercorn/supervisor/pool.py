"""The supervisor loop: a pool of worker processes sharing the listening sockets.

One thread, one loop. Each turn waits (up to a second) for any of: a signal (through the
:class:`~hypercorn.supervisor.signals.SignalInbox`), a message from a worker's pipe, a
worker process ending (its sentinel), or the reloader's watcher; then it acts on what
happened and brings the pool back to ``config.workers`` workers.

A worker's life: ``starting`` (spawned, not yet serving) -> ``serving`` -> ``retiring``
(asked to be replaced: max_requests, reload; still serving) -> ``stopping`` (its stop flag
is set; it finishes its requests and exits). A worker that ends in any other way than from
``stopping`` has died, and is replaced (with backoff); one that ends while ``starting``
failed to start, which ends the server unless older workers are still serving.

Retiring workers are stopped only once ``config.workers`` new ones serve, so a reload
(SIGHUP, SIGUSR1, a source change) or a max_requests recycle never leaves the sockets
without a worker accepting on them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, final

from hypercorn.config import ConfigError
from hypercorn.supervisor.child import (
    EXIT_STARTUP_FAILED,
    MESSAGE_ALIVE,
    MESSAGE_FAILED,
    MESSAGE_RETIRE,
    MESSAGE_SERVING,
    StopFlag,
    WorkerLink,
    WorkerProcessSpec,
    worker_main,
)
from hypercorn.supervisor.signals import SignalInbox, signal_name, signals_named

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from hypercorn.config import Config, Sockets
    from hypercorn.supervisor.reload import Reloader

__all__ = ("RESTART_SIGNALS", "STOP_SIGNALS", "Supervisor", "WorkerPool")

#: Signals that stop the server gracefully (a second one stops it at once).
STOP_SIGNALS: Final = frozenset(signals_named("SIGINT", "SIGTERM", "SIGBREAK"))
#: Signals that replace every worker with a fresh one (rolling restart).
RESTART_SIGNALS: Final = frozenset(signals_named("SIGHUP", "SIGUSR1"))
#: Deaths within this many seconds count towards the restart backoff.
BACKOFF_WINDOW: Final = 60.0
BACKOFF_MAX: Final = 30.0

State = Literal["starting", "serving", "retiring", "stopping"]


@dataclass(eq=False)
class Worker:
    """The supervisor's record of one worker process."""

    process: BaseProcess
    reader: Connection
    stop: StopFlag
    state: State = "starting"
    last_beat: float = field(default_factory=time.monotonic)
    failure: str | None = None
    killed: str | None = None
    served: bool = False
    #: Started to replace serving workers (a restart, a max_requests recycle): if it fails
    #: to start, those keep serving instead of the server stopping.
    replacing: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid


@final
class WorkerPool:
    """Spawning, messaging and reaping worker processes (no policy here)."""

    def __init__(self, config: Config, sockets: Sockets) -> None:
        self.config = config
        self.sockets = sockets
        self.workers: list[Worker] = []
        self._context = multiprocessing.get_context("spawn")
        # QUIC with several workers: each worker reads a UDP socket of its own in one
        # SO_REUSEPORT group, so that the kernel steers all the datagrams from one client
        # address to the same worker (a hash of the addresses). On one shared socket they
        # would go to whichever worker reads first, while a QUIC connection lives in one
        # worker. A socket in the group gets its share of datagrams whether or not anybody
        # reads it, so the supervisor closes its own once the first worker has its twin,
        # and binds a new one for each worker it starts.
        quic = sockets.quic_sockets
        self._quic_originals = [sock for sock in quic if _reuses_port(sock)]
        self._quic_addresses = [_address_of(sock) for sock in self._quic_originals]
        self._shared_quic = [sock for sock in quic if not _reuses_port(sock)]

    def spawn(self) -> Worker:
        reader, writer = self._context.Pipe(duplex=False)
        stop = StopFlag(self._context.Event(), os.getpid())
        own_quic = [_udp_socket(*address) for address in self._quic_addresses]
        sockets = self.sockets
        if own_quic:
            sockets = dataclasses.replace(sockets, quic_sockets=[*self._shared_quic, *own_quic])
        spec = WorkerProcessSpec(self.config, sockets, stop, WorkerLink(writer))
        process = self._context.Process(
            target=worker_main, args=(spec,), daemon=self.config.daemon, name="hypercorn-worker"
        )
        # A Ctrl-C reaches the whole process group: a worker must not die of it before it has
        # set its own dispositions, so it starts with SIGINT ignored (inherited through exec).
        with _sigint_ignored():
            try:
                process.start()
            except Exception as error:  # pickling the configuration failed
                reader.close()
                raise ConfigError(
                    f"the configuration cannot be sent to the worker processes ({error}); "
                    "options must be picklable (module-level classes, no open files), or "
                    "use workers = 0"
                ) from error
            finally:
                writer.close()
                for sock in own_quic:
                    sock.close()  # the worker's now; the supervisor must not hold it
        for sock in self._quic_originals:  # see __init__
            sock.close()
        self._quic_originals.clear()
        worker = Worker(process, reader, stop)
        self.workers.append(worker)
        return worker

    def waitables(self) -> list[Connection | int]:
        items: list[Connection | int] = []
        for worker in self.workers:
            if not worker.reader.closed:
                items.append(worker.reader)
            items.append(worker.process.sentinel)
        return items

    def read_messages(self, worker: Worker) -> list[bytes]:
        """Every message waiting on ``worker``'s pipe (closing it at end of file)."""
        messages = []
        with contextlib.suppress(OSError, EOFError):
            while not worker.reader.closed and worker.reader.poll():
                messages.append(worker.reader.recv_bytes())
            return messages
        worker.reader.close()
        return messages

    def kill(self, worker: Worker) -> None:
        with contextlib.suppress(OSError, ValueError):
            worker.process.kill()

    def reap(self) -> list[Worker]:
        """Remove and return the workers whose process has ended."""
        ended = [worker for worker in self.workers if worker.process.exitcode is not None]
        for worker in ended:
            for message in self.read_messages(worker):  # a failure sent just before exiting
                if message.startswith(MESSAGE_FAILED):
                    worker.failure = message[1:].decode("utf-8", "replace")
            worker.reader.close()
            worker.process.join()
            self.workers.remove(worker)
        return ended

    def close(self) -> None:
        for worker in self.workers:
            self.kill(worker)
        for worker in self.workers:
            worker.process.join(5.0)
            worker.reader.close()
        self.workers.clear()


def _reuses_port(sock: socket.socket) -> bool:
    """Whether the UDP socket ``sock`` was made for several workers (``SO_REUSEPORT``)."""
    option = getattr(socket, "SO_REUSEPORT", None)
    return option is not None and bool(sock.getsockopt(socket.SOL_SOCKET, option))


_UDPAddress = tuple[socket.AddressFamily, Any, bool]


def _address_of(sock: socket.socket) -> _UDPAddress:
    v6only = sock.family == socket.AF_INET6 and bool(
        sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    )
    return sock.family, sock.getsockname(), v6only


def _udp_socket(family: socket.AddressFamily, address: Any, v6only: bool) -> socket.socket:
    """A UDP socket bound to ``address`` in its ``SO_REUSEPORT`` group, for one worker."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(address)
        sock.setblocking(False)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        return f"was killed by {signal_name(-exitcode)}"
    return f"exited with code {exitcode}"


@final
class Supervisor:
    """Run ``config.workers`` worker processes until a stop signal (see the module doc)."""

    def __init__(
        self,
        config: Config,
        sockets: Sockets,
        *,
        info: Callable[[str], None],
        error: Callable[[str], None],
        reopen_logs: Callable[[], None] = lambda: None,
        reloader: Reloader | None = None,
    ) -> None:
        self.config = config
        self.pool = WorkerPool(config, sockets)
        self.info = info
        self.error = error
        self.reopen_logs = reopen_logs
        self.reloader = reloader
        self.size = config.workers
        self.exit_code = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.paused = False  # reload mode: wait for a change after a failed start
        self.respawn_at = 0.0
        self.deaths: list[float] = []

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Start the workers and supervise them until they have all stopped."""
        signums = STOP_SIGNALS | RESTART_SIGNALS
        with SignalInbox(signums) as inbox:
            if self.reloader is not None:
                self.reloader.start(inbox.wake)
            try:
                self.info(
                    f"Supervisor pid {os.getpid()} starting {self.size} "
                    f"{self.config.worker_class} worker(s)"
                )
                while True:
                    self._fill()
                    if self.stopping and not self.pool.workers:
                        return self.exit_code
                    ready = multiprocessing.connection.wait(
                        [inbox.waker, *self.pool.waitables()], timeout=self._timeout()
                    )
                    # The workers' news first: a restart must know who serves already.
                    for worker in list(self.pool.workers):
                        if worker.reader in ready:
                            self._on_messages(worker)
                    for signum in inbox.take():
                        forced = self._on_signal(signum)
                        if forced is not None:
                            return forced
                    for worker in self.pool.reap():
                        self._on_exit(worker)
                    self._check_heartbeats()
                    self._check_stop_deadline()
                    if self.reloader is not None and not self.stopping and self.reloader.changed():
                        self.restart("source files changed")
            finally:
                if self.reloader is not None:
                    self.reloader.stop()
                self.pool.close()

    def _timeout(self) -> float:
        if self.respawn_at and not self.stopping:
            return min(1.0, max(0.0, self.respawn_at - time.monotonic()))
        return 1.0

    # -- events ---------------------------------------------------------------------------

    def _on_signal(self, signum: int) -> int | None:
        """Act on a signal; return an exit code to stop at once."""
        name = signal_name(signum)
        if signum in STOP_SIGNALS:
            if self.stopping:
                self.info(f"Received {name} again: stopping the workers at once")
                return 128 + signum
            self.info(f"Received {name}: stopping gracefully ({name} again stops at once)")
            self.stop(0)
        elif signum in RESTART_SIGNALS and not self.stopping:
            self.reopen_logs()  # after a log rotation; the new workers open theirs anew
            self.restart(f"received {name}")
        return None

    def _on_messages(self, worker: Worker) -> None:
        for message in self.pool.read_messages(worker):
            kind = message[:1]
            if kind == MESSAGE_ALIVE:
                worker.last_beat = time.monotonic()
            elif kind == MESSAGE_SERVING and not worker.served:
                worker.served = True
                worker.last_beat = time.monotonic()
                if worker.state == "starting":
                    worker.state = "serving"
                    self._retire_replaced()
            elif kind == MESSAGE_RETIRE and worker.state == "serving":
                self.info(f"Worker pid {worker.pid} served its max_requests: replacing it")
                worker.state = "retiring"
            elif kind == MESSAGE_FAILED:
                worker.failure = message[1:].decode("utf-8", "replace")

    def _on_exit(self, worker: Worker) -> None:
        code = worker.process.exitcode
        how = describe_exit(code)
        if worker.state == "stopping":
            if code and worker.served:
                self.info(f"Worker pid {worker.pid} {how} while stopping")
            return
        if self.stopping:
            return
        if worker.state == "starting":
            self._on_start_failure(worker, how, code)
            return
        # It served, and nobody asked it to stop: it died.
        cause = worker.killed or how
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < BACKOFF_WINDOW] + [now]
        delay = (
            0.0 if len(self.deaths) <= 1 else min(0.5 * 2 ** (len(self.deaths) - 2), BACKOFF_MAX)
        )
        self.respawn_at = now + delay
        later = f" in {delay:g} s" if delay else ""
        # Exit code 0 is a worker stopped on purpose (kill -TERM PID restarts one worker).
        report = self.info if code == 0 and worker.killed is None else self.error
        report(f"Worker pid {worker.pid} {cause}; starting a new one{later}")

    def _on_start_failure(self, worker: Worker, how: str, code: int | None) -> None:
        cause = worker.failure or f"the worker {how} before it served"
        message = f"Worker pid {worker.pid} failed to start: {cause}"
        if worker.replacing:
            # A restart went wrong: keep the workers that serve, drop the new ones. (Their
            # failures may arrive together: the others were already reaped.)
            self.error(f"{message}; the running workers carry on")
            for other in self.pool.workers:
                if other.state == "starting":
                    self._stop_worker(other)
                elif other.state == "retiring":
                    other.state = "serving" if other.served else "starting"
            return
        if self.reloader is not None:
            if self.paused:
                return  # another worker of the same start failed with it
            self.error(f"{message}; waiting for a source change")
            self.paused = True
            for other in self.pool.workers:
                if other.state == "starting":
                    self._stop_worker(other)
            return
        self.error(message)
        self.stop(code if code and code > 0 else EXIT_STARTUP_FAILED)

    # -- actions --------------------------------------------------------------------------

    def stop(self, exit_code: int) -> None:
        """Stop every worker gracefully; the loop ends once they have all exited."""
        if self.stopping:
            return
        self.stopping = True
        self.exit_code = exit_code
        config = self.config
        # A worker waits graceful_timeout for its connections, as long again for the
        # cancelled ones, then runs the lifespan shutdown.
        budget = 2 * float(config.graceful_timeout) + float(config.shutdown_timeout) + 5.0
        self.stop_deadline = time.monotonic() + budget
        for worker in self.pool.workers:
            self._stop_worker(worker)

    def restart(self, reason: str) -> None:
        """Replace every worker with a new one; the old ones serve until the new ones do."""
        self.info(f"Restarting the workers: {reason}")
        self.paused = False
        for worker in self.pool.workers:
            if worker.state == "starting" and worker.replacing:
                self._stop_worker(worker)  # a replacement of an earlier restart: superseded
            elif worker.state in ("starting", "serving"):
                # Still starting (its report may be on the way) or serving: it serves on
                # until the new workers do.
                worker.state = "retiring"
        if not any(worker.state == "retiring" for worker in self.pool.workers):
            self.respawn_at = 0.0

    def _stop_worker(self, worker: Worker) -> None:
        worker.state = "stopping"
        worker.stop.set()

    def _fill(self) -> None:
        if self.stopping or self.paused or time.monotonic() < self.respawn_at:
            return
        self.respawn_at = 0.0
        workers = self.pool.workers
        active = sum(worker.state in ("starting", "serving") for worker in workers)
        replacing = any(worker.state == "retiring" for worker in workers)
        for _ in range(self.size - active):
            worker = self.pool.spawn()
            worker.replacing = replacing
            self.info(f"Started worker pid {worker.pid}")

    def _retire_replaced(self) -> None:
        serving = sum(worker.state == "serving" for worker in self.pool.workers)
        if serving < self.size:
            return
        for worker in self.pool.workers:
            if worker.state == "retiring":
                self._stop_worker(worker)

    def _check_heartbeats(self) -> None:
        limit = self.config.worker_heartbeat_timeout
        if not limit:
            return
        now = time.monotonic()
        for worker in self.pool.workers:
            if worker.state not in ("serving", "retiring") or not worker.served or worker.killed:
                continue
            if now - worker.last_beat > limit:
                worker.killed = f"stopped responding (no heartbeat for {limit:g} s) and was killed"
                self.pool.kill(worker)

    def _check_stop_deadline(self) -> None:
        if not self.stopping or time.monotonic() < self.stop_deadline:
            return
        for worker in self.pool.workers:
            if worker.killed is None:
                worker.killed = "did not stop in time and was killed"
                self.error(f"Worker pid {worker.pid} did not stop in time; killing it")
                self.pool.kill(worker)
