"""Signals and supervision of the installed ``hypercorn`` command.

A graceful stop finishes the request in flight; a second SIGINT stops at once; SIGHUP and
SIGUSR1 replace every worker while a steady stream of requests is answered; a worker
killed with SIGKILL is replaced.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import (
    Load,
    client,
    get_json,
    hypercorn,
    wait_until,
)


def _gone(pid: int) -> bool:
    """The process has exited and was reaped by its parent."""
    return not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize(
    ("signum", "to_group", "workers", "options"),
    [
        (signal.SIGTERM, False, 1, []),
        (signal.SIGINT, True, 1, []),  # Ctrl-C in a terminal: the whole group
        (signal.SIGTERM, True, 2, ["-k", "trio"]),  # systemd's control-group kill
        (signal.SIGINT, False, 0, []),  # one process, no supervisor
    ],
    ids=["sigterm", "sigint-group", "sigterm-group-trio", "sigint-in-process"],
)
def test_graceful_stop_finishes_the_request_in_flight(
    app_dir: Path, signum: signal.Signals, to_group: bool, workers: int, options: list[str]
) -> None:
    args = ["-w", str(workers), *options, "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving(workers=max(1, workers)).url
        with client() as http, http.stream("GET", url + "/slow?1") as response:
            lines = response.iter_lines()
            assert next(lines).startswith("started ")  # the application is inside the request
            if to_group:
                os.killpg(server.pid, signum)
            else:
                server.send_signal(signum)
            assert list(lines) == ["done"]
        assert server.wait() == 0
        assert wait_until(lambda: not server.group_pids()), "processes left behind"
        assert "Traceback" not in server.stderr


def test_graceful_timeout_cancels_a_request_that_takes_too_long(app_dir: Path) -> None:
    """``--graceful-timeout 0.5``: a request still running then is cancelled; the server
    still stops cleanly (exit code 0)."""
    args = ["--graceful-timeout", "0.5", "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        with client() as http, http.stream("GET", url + "/slow?60") as response:
            lines = response.iter_lines()
            assert next(lines).startswith("started ")
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            with pytest.raises(httpx.HTTPError):
                list(lines)
            assert server.wait() == 0
            assert time.monotonic() - started < 5
        server.wait_for(r"Cancelling 1 connection\(s\) still open after graceful_timeout=0.5")


@pytest.mark.parametrize("workers", ["1", "0"])
def test_second_sigint_stops_at_once(app_dir: Path, workers: str) -> None:
    """A second SIGINT ends the server without waiting for the request (exit code 130)."""
    args = ["-w", workers, "--graceful-timeout", "60", "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        url = server.wait_serving().url
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with client() as http, http.stream("GET", url + "/slow?60") as response:
            lines = response.iter_lines()
            assert next(lines).startswith("started ")
            server.send_signal(signal.SIGINT)
            if workers == "1":
                server.wait_for(r"Received SIGINT: stopping gracefully")
            else:  # the first SIGINT was handled once the server stops accepting
                assert wait_until(lambda: _refused(host, int(port))), server.describe()
            started = time.monotonic()
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=10) == 130
            assert time.monotonic() - started < 5
            with pytest.raises(httpx.HTTPError):
                list(lines)  # the connection went away without the rest of the response
        assert wait_until(lambda: not server.group_pids()), "processes left behind"


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except OSError:
        return True


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("signum", "workers"),
    [(signal.SIGHUP, 2), (signal.SIGUSR1, 1)],
    ids=["sighup", "sigusr1"],
)
def test_rolling_restart_under_load(app_dir: Path, signum: signal.Signals, workers: int) -> None:
    """SIGHUP / SIGUSR1: new workers replace the old ones while every request of a steady
    stream is answered."""
    args = ["-w", str(workers), "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        serving = server.wait_serving(workers=workers)
        old = serving.pids
        with Load(serving.url) as load:
            load.wait_for(lambda bodies: len(bodies) >= 5)
            mark = server.mark()
            server.send_signal(signum)
            new = server.wait_serving(workers=workers, since=mark, exclude=old).pids
            assert wait_until(lambda: all(_gone(pid) for pid in old)), server.describe()
            after = len(load.bodies())
            load.wait_for(lambda bodies: len(bodies) >= after + 5)
        assert load.errors == []
        assert set(load.statuses()) == {200}
        # The load thread is sequential: at most one response, read from an old worker
        # just before it exited, can be recorded after ``after`` was taken.
        assert set(load.pids()[after + 1 :]) <= new
        assert server.worker_pids() == new
        server.wait_for(f"Restarting the workers: received {signum.name}")
        assert server.stop() == 0


def test_killed_worker_is_replaced(app_dir: Path) -> None:
    with hypercorn(["-w", "2", "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        serving = server.wait_serving(workers=2)
        victim = get_json(serving.url)["pid"]
        mark = server.mark()
        os.kill(victim, signal.SIGKILL)
        server.wait_for(
            rf"Worker pid {victim} was killed by SIGKILL; starting a new one", since=mark
        )
        replacement = server.wait_serving(since=mark, exclude=serving.pids).pids
        assert server.process.poll() is None
        assert server.worker_pids() == (serving.pids - {victim}) | replacement
        with client() as http:
            for _ in range(5):
                get_json(serving.url, http)
        assert server.stop() == 0
