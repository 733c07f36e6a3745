"""The supervisor's parts on their own: signal inbox, reloaders, worker classes, errors."""

from __future__ import annotations

import os
import select
import signal
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from hypercorn.config import Config, ConfigError
from hypercorn.supervisor import child
from hypercorn.supervisor.child import (
    StopFlag,
    check_worker_class,
    describe_error,
    load_worker_function,
)
from hypercorn.supervisor.pool import State, Worker, describe_exit
from hypercorn.supervisor.reload import (
    PollingReloader,
    WatchfilesReloader,
    make_reloader,
    python_files,
    watch_roots,
)
from hypercorn.supervisor.signals import SignalInbox, signal_name, signals_named
from hypercorn.utils import LifespanFailureError, NoAppError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

# -- signals ------------------------------------------------------------------------------


def test_the_inbox_records_signals_and_wakes_the_waiter() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with SignalInbox([signal.SIGUSR1, signal.SIGUSR2]) as inbox:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
        readable, _, _ = select.select([inbox.waker], [], [], 5)
        assert readable  # the wakeup descriptor got a byte
        assert inbox.take() == [signal.SIGUSR1, signal.SIGUSR2]
        assert inbox.take() == []
    assert signal.getsignal(signal.SIGUSR1) == before


def test_the_inbox_can_be_woken_by_another_thread() -> None:
    with SignalInbox([]) as inbox:
        thread = threading.Thread(target=inbox.wake)
        thread.start()
        thread.join(5)
        readable, _, _ = select.select([inbox.waker], [], [], 5)
        assert readable
        assert inbox.waker.recv(1) == b"\0"


def test_the_inbox_installs_nothing_outside_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    seen: list[object] = []

    def use() -> None:
        with SignalInbox([signal.SIGUSR1]):
            seen.append(signal.getsignal(signal.SIGUSR1))

    thread = threading.Thread(target=use)
    thread.start()
    thread.join(5)
    assert seen == [before]


def test_signal_names() -> None:
    assert signal_name(signal.SIGTERM) == "SIGTERM"
    assert signal_name(12345) == "signal 12345"
    assert signals_named("SIGINT", "SIGNOSUCH") == [signal.SIGINT]
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


# -- worker classes and errors ------------------------------------------------------------


@pytest.mark.parametrize("name", ["asyncio", "uvloop", "trio"])
def test_the_worker_classes_load_by_name(name: str) -> None:
    check_worker_class(name)
    assert callable(load_worker_function(name))


def test_an_unknown_worker_class_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'gevent' does not exist; choose one of asyncio"):
        check_worker_class("gevent")


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = ("hypercorn.asyncio.run", "asyncio_worker", "no_such_loop_module")
    monkeypatch.setitem(child.WORKER_CLASSES, "exotic", entry)
    with pytest.raises(ConfigError, match=r"needs no_such_loop_module, which is not installed"):
        check_worker_class("exotic")


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (NoAppError("Cannot load application 'x'"), "Cannot load application 'x'"),
        (LifespanFailureError("startup", "no db"), "Lifespan startup failed: 'no db'"),
        (OSError(98, "bind '127.0.0.1:80': Address in use"), "bind '127.0.0.1:80'"),
        (ssl.SSLError("bad key"), "bad key"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
        (RuntimeError(), "RuntimeError"),
        (ValueError("two\nlines"), "ValueError: two lines"),
    ],
)
def test_errors_are_described_in_one_line(error: BaseException, line: str) -> None:
    described = describe_error(error)
    assert line in described
    assert "\n" not in described


def test_the_stop_flag_sees_the_event_and_the_request() -> None:
    import multiprocessing

    event = multiprocessing.get_context("spawn").Event()
    flag = StopFlag(event, os.getppid())
    assert not flag.is_set()
    flag.request()
    assert flag.is_set()
    flag = StopFlag(event, os.getppid())
    flag.set()
    assert flag.is_set()
    assert event.is_set()


def test_the_stop_flag_is_set_when_the_parent_is_gone() -> None:
    import multiprocessing

    flag = StopFlag(multiprocessing.get_context("spawn").Event(), parent_pid=-1)
    assert flag.is_set()


# -- the reloader -------------------------------------------------------------------------


def _tree(root: Path) -> None:
    for name in [
        "app.py",
        "pkg/mod.py",
        "pkg/data.txt",
        ".git/hook.py",
        "pkg/__pycache__/mod.cpython.py",
        "node_modules/x.py",
        "venv/lib/site.py",
        "lib/site-packages/dep.py",
    ]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    (root / "venv" / "pyvenv.cfg").write_text("home = /usr\n")


def test_only_application_sources_are_watched(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = {Path(path).relative_to(tmp_path).as_posix() for path, _ in python_files([tmp_path])}
    assert found == {"app.py", "pkg/mod.py"}


def test_the_roots_include_the_application_files_directory(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert watch_roots("app:app", cwd=tmp_path / "srv") == [tmp_path / "srv"]
    assert watch_roots("srv/app.py:app", cwd=tmp_path) == [tmp_path]
    roots = watch_roots("../elsewhere/app.py:create()", cwd=tmp_path / "srv")
    assert roots == [tmp_path / "srv", elsewhere]


def test_the_polling_reloader_sees_changes_new_and_deleted_files(tmp_path: Path) -> None:
    _tree(tmp_path)
    reloader = PollingReloader([tmp_path], interval=0.0)
    reloader.start(lambda: None)
    assert not reloader.changed()
    app = tmp_path / "app.py"
    stat = app.stat()
    os.utime(app, (stat.st_atime, stat.st_mtime + 10))
    assert reloader.changed()
    assert not reloader.changed()
    (tmp_path / "pkg" / "new.py").write_text("")
    assert reloader.changed()
    (tmp_path / "pkg" / "mod.py").unlink()
    assert reloader.changed()
    (tmp_path / "pkg" / "data.txt").write_text("not python")
    assert not reloader.changed()


def test_the_polling_reloader_scans_at_most_once_an_interval(tmp_path: Path) -> None:
    _tree(tmp_path)
    reloader = PollingReloader([tmp_path], interval=3600.0)
    reloader.start(lambda: None)
    (tmp_path / "new.py").write_text("")
    assert not reloader.changed()  # the next scan is an hour away


def test_the_watchfiles_reloader_wakes_the_supervisor(tmp_path: Path) -> None:
    _tree(tmp_path)
    woken = threading.Event()
    reloader = WatchfilesReloader([tmp_path])
    reloader.start(woken.set)
    try:
        assert not reloader.changed()
        (tmp_path / "pkg" / "mod.py").write_text("x = 2\n")
        assert woken.wait(20)
        assert reloader.changed()
        assert not reloader.changed()
    finally:
        reloader.stop()


def test_watchfiles_is_preferred_when_installed() -> None:
    assert isinstance(make_reloader("app:app"), WatchfilesReloader)


def test_run_rejects_the_reloader_without_workers(capsys: pytest.CaptureFixture[str]) -> None:
    from hypercorn.run import run

    config = Config()
    config.application_path = "app:app"
    config.use_reloader = True
    config.workers = 0
    config.errorlog = None
    assert run(config) == 1
    assert "use_reloader needs worker processes" in capsys.readouterr().err


# -- the supervisor's decisions -----------------------------------------------------------


class _EndedProcess:
    """Stands in for a worker process that has exited (only what the supervisor reads)."""

    sentinel = -1

    def __init__(self, pid: int, exitcode: int | None) -> None:
        self.pid = pid
        self.exitcode = exitcode


class _Flag:
    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        self.stopped = True


def _worker(
    pid: int,
    state: State,
    exitcode: int | None = None,
    *,
    served: bool = False,
    replacing: bool = False,
    failure: str | None = None,
) -> Worker:
    return Worker(
        cast("BaseProcess", _EndedProcess(pid, exitcode)),
        cast("Connection", None),
        cast("StopFlag", _Flag()),
        state=state,
        served=served,
        replacing=replacing,
        failure=failure,
    )


def test_new_workers_failing_together_during_a_restart_keep_the_old_ones() -> None:
    from hypercorn.config import Sockets
    from hypercorn.supervisor.pool import Supervisor

    lines: list[str] = []
    supervisor = Supervisor(Config(), Sockets([], [], []), info=lines.append, error=lines.append)
    old = _worker(1, "retiring", served=True)
    first = _worker(2, "starting", exitcode=3, replacing=True, failure="broken")
    second = _worker(3, "starting", exitcode=3, replacing=True, failure="broken")
    # Both new workers exited in the same turn: reaped together, then reported one by one.
    supervisor.pool.workers = [old]
    supervisor._on_exit(first)
    supervisor._on_exit(second)
    assert not supervisor.stopping
    assert old.state == "serving"
    assert lines == [
        "Worker pid 2 failed to start: broken; the running workers carry on",
        "Worker pid 3 failed to start: broken; the running workers carry on",
    ]


def test_a_worker_failing_at_the_first_start_stops_the_server() -> None:
    from hypercorn.config import Sockets
    from hypercorn.supervisor.pool import Supervisor

    lines: list[str] = []
    supervisor = Supervisor(Config(), Sockets([], [], []), info=lines.append, error=lines.append)
    other = _worker(2, "starting")
    supervisor.pool.workers = [other]
    supervisor._on_exit(_worker(1, "starting", exitcode=3, failure="no module 'x'"))
    assert supervisor.stopping
    assert supervisor.exit_code == 3
    assert other.state == "stopping"
    assert cast("_Flag", other.stop).stopped
    assert lines == ["Worker pid 1 failed to start: no module 'x'"]


def test_a_restart_keeps_workers_whose_serving_report_is_still_on_the_way() -> None:
    from hypercorn.config import Sockets
    from hypercorn.supervisor.pool import Supervisor

    lines: list[str] = []
    supervisor = Supervisor(Config(), Sockets([], [], []), info=lines.append, error=lines.append)
    # It logged "Running on", but its report had not been read when SIGHUP arrived.
    early = _worker(1, "starting")
    supervisor.pool.workers = [early]
    supervisor.restart("received SIGHUP")
    assert _state(early) == "retiring"
    assert not cast("_Flag", early.stop).stopped
    supervisor._on_exit(_worker(2, "starting", exitcode=3, replacing=True, failure="broken"))
    assert not supervisor.stopping
    assert _state(early) == "starting"  # back as it was: it has not reported serving yet


def _state(worker: Worker) -> str:
    return worker.state
