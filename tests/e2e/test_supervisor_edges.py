"""The supervisor's harder cases, through the installed command: hung workers, restarts that
fail, orphaned workers, certificates and log files renewed on a signal, one worker stopped
on purpose, and the reloader recovering from a broken start.
"""

from __future__ import annotations

import os
import signal
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import (
    APP,
    Load,
    client,
    get_json,
    hypercorn,
    make_tls_files,
    run_to_exit,
    wait_until,
    write_app,
)


def test_a_worker_with_a_blocked_event_loop_is_killed_and_replaced(app_dir: Path) -> None:
    args = ["--worker-heartbeat-timeout", "1.5", "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        serving = server.wait_serving()
        (hung,) = serving.pids

        def block() -> None:  # the worker dies under this request: its error is expected
            try:
                with httpx.stream("GET", serving.url + "/block?60", timeout=30) as response:
                    for _ in response.iter_lines():
                        pass
            except httpx.HTTPError:
                pass

        blocker = threading.Thread(target=block, daemon=True)
        blocker.start()
        mark = server.mark()
        server.wait_for(rf"Worker pid {hung} stopped responding \(no heartbeat for 1.5 s\)")
        replacement = server.wait_serving(since=mark, exclude={hung})
        assert get_json(replacement.url)["pid"] in replacement.pids
        blocker.join(30)
        assert server.stop() == 0


@pytest.mark.timeout(90)
def test_a_restart_with_broken_code_keeps_the_running_workers(app_dir: Path) -> None:
    with hypercorn(["-w", "2", "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        serving = server.wait_serving(workers=2)
        path = app_dir / "app.py"
        good = path.read_text()
        path.write_text(good + "\nraise RuntimeError('deploy went wrong')\n")
        with Load(serving.url) as load:
            mark = server.mark()
            server.send_signal(signal.SIGHUP)
            server.wait_for(
                r"failed to start: RuntimeError: deploy went wrong; the running workers "
                r"carry on",
                since=mark,
            )
            count = len(load.results)
            load.wait_for(lambda bodies: len(bodies) > count + 5)
        assert load.errors == []
        assert set(load.pids()) <= serving.pids
        # The other new worker fails the same way (it was already starting) and goes too.
        assert wait_until(lambda: server.worker_pids() == serving.pids)

        path.write_text(good)
        mark = server.mark()
        server.send_signal(signal.SIGHUP)
        renewed = server.wait_serving(workers=2, since=mark, exclude=serving.pids)
        assert wait_until(lambda: server.worker_pids() == renewed.pids)
        assert server.stop() == 0


def test_workers_stop_when_the_supervisor_is_killed(app_dir: Path) -> None:
    with hypercorn(["-w", "2", "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        serving = server.wait_serving(workers=2)
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait(15)
        assert wait_until(lambda: not (server.group_pids() & serving.pids))


def test_sigterm_to_one_worker_replaces_it_without_losing_requests(app_dir: Path) -> None:
    with hypercorn(["-w", "2", "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        serving = server.wait_serving(workers=2)
        victim = min(serving.pids)
        with Load(serving.url) as load:
            mark = server.mark()
            os.kill(victim, signal.SIGTERM)
            server.wait_for(
                rf"\[INFO\] Worker pid {victim} exited with code 0; starting", since=mark
            )
            replacement = server.wait_serving(since=mark, exclude=serving.pids)
            load.wait_for(lambda bodies: bodies[-1]["pid"] != victim)
        assert load.errors == []
        assert set(load.statuses()) == {200}
        assert server.worker_pids() == (serving.pids - {victim}) | replacement.pids
        assert server.stop() == 0


def test_sighup_loads_renewed_certificates(app_dir: Path) -> None:
    first = make_tls_files(app_dir)
    args = ["--certfile", str(first.certfile), "--keyfile", str(first.keyfile)]
    with hypercorn([*args, "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        serving = server.wait_serving()
        url = serving.first("https")
        with client(verify=first.client_context()) as http:
            assert get_json(url, http)["scheme"] == "https"

        renewed_dir = app_dir / "renewed"
        renewed_dir.mkdir()
        renewed = make_tls_files(renewed_dir)
        first.certfile.write_bytes(renewed.certfile.read_bytes())
        first.keyfile.write_bytes(renewed.keyfile.read_bytes())
        mark = server.mark()
        server.send_signal(signal.SIGHUP)
        server.wait_serving(since=mark, exclude=serving.pids)
        assert wait_until(lambda: not (server.worker_pids() & serving.pids))
        with client(verify=renewed.client_context()) as http:
            assert get_json(url, http)["scheme"] == "https"
        with client(verify=first.client_context()) as http, pytest.raises(httpx.ConnectError):
            http.get(url)
        assert server.stop() == 0


def test_sigusr1_reopens_the_log_files_after_a_rotation(app_dir: Path) -> None:
    error_log = app_dir / "error.log"
    args = ["--error-logfile", str(error_log), "-b", "127.0.0.1:0", "app:app"]
    with hypercorn(args, app_dir) as server:
        assert wait_until(lambda: "Running on" in _read(error_log))
        error_log.rename(app_dir / "error.log.1")
        server.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: "Running on" in _read(error_log))
        assert "Restarting the workers: received SIGUSR1" in _read(error_log)
        assert server.stop() == 0
    assert "Received SIGTERM" in _read(error_log)
    assert "Received SIGTERM" not in _read(app_dir / "error.log.1")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@pytest.mark.timeout(90)
def test_the_reloader_waits_for_a_fix_after_a_broken_start(tmp_path: Path) -> None:
    path = write_app(tmp_path, APP)
    good = path.read_text()
    path.write_text("def broken(:\n")
    with hypercorn(["--reload", "-b", "127.0.0.1:0", "app:app"], tmp_path) as server:
        server.wait_for(r"failed to start: .*SyntaxError.*; waiting for a source change")
        assert server.process.poll() is None
        path.write_text(good)
        serving = server.wait_serving(timeout=30)
        assert get_json(serving.url)["pid"] in serving.pids
        assert server.stop() == 0


def test_tls_errors_do_not_reach_a_plaintext_client(app_dir: Path) -> None:
    """A plaintext request to the TLS port fails on the client side; the server serves on."""
    tls = make_tls_files(app_dir)
    args = ["--certfile", str(tls.certfile), "--keyfile", str(tls.keyfile)]
    with hypercorn([*args, "-b", "127.0.0.1:0", "app:app"], app_dir) as server:
        url = server.wait_serving().first("https")
        with client() as http, pytest.raises(httpx.HTTPError):
            http.get(url.replace("https://", "http://"))
        context = ssl.create_default_context()
        tls.ca.configure_trust(context)
        with client(verify=context) as http:
            assert get_json(url, http)["scheme"] == "https"
        assert server.stop() == 0


CHILD_PROCESS_APP = """
import multiprocessing


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        # An application that starts a process of its own at startup.
        child = multiprocessing.get_context("spawn").Process(target=print)
        child.start()
        child.join()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.mark.parametrize("daemon", [True, False])
def test_daemon_false_lets_the_application_start_processes(tmp_path: Path, daemon: bool) -> None:
    write_app(tmp_path, CHILD_PROCESS_APP)
    (tmp_path / "hypercorn.toml").write_text(f"daemon = {str(daemon).lower()}\n")
    args = ["-c", "hypercorn.toml", "-b", "127.0.0.1:0", "app:app"]
    if daemon:
        result = run_to_exit(args, tmp_path)
        assert result.code == 3
        assert "daemonic processes are not allowed to have children" in result.stderr
        return
    with hypercorn(args, tmp_path) as server:
        url = server.wait_serving().url
        with client() as http:
            assert http.get(url).text == "ok"
        assert server.stop() == 0
