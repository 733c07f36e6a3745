"""The two implementations of the driver core's Backend: asyncio (also on uvloop) and trio.

Each test is one coroutine taking a Backend, run on every loop. Concurrency inside a test
comes from the backend itself (a ``call_at`` timer sets a flag, a thread calls back), so the
tests need nothing but the interface under test.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Literal

import pytest
import trio
import uvloop

from hypercorn.asyncio.backend import AsyncioBackend
from hypercorn.driver.backend import Backend, Flag, Timer
from hypercorn.trio.backend import TrioBackend

Loop = Literal["asyncio", "uvloop", "trio"]
LOOPS: tuple[Loop, ...] = ("asyncio", "uvloop", "trio")
#: Bound of every test body.
TIMEOUT = 10.0
#: A short delay for timers that must fire, and for timeouts that must expire.
SHORT = 0.02

BackendTest = Callable[[Backend], Awaitable[None]]


def run_on(loop: Loop, test: BackendTest) -> None:
    """Run ``test(backend)`` on ``loop``, bounded by :data:`TIMEOUT`."""
    if loop == "trio":

        async def trio_main() -> None:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(TIMEOUT):
                    await test(TrioBackend(nursery))
                nursery.cancel_scope.cancel()  # the backend's timer task

        trio.run(trio_main)
        return

    event_loop = uvloop.new_event_loop() if loop == "uvloop" else asyncio.new_event_loop()

    async def asyncio_main() -> None:
        await asyncio.wait_for(test(AsyncioBackend()), TIMEOUT)

    try:
        event_loop.run_until_complete(asyncio_main())
        event_loop.run_until_complete(event_loop.shutdown_default_executor())
    finally:
        event_loop.close()


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> Loop:
    value: Loop = request.param
    return value


# ---------------------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------------------


def test_flag_set_clear_and_wait(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        flag = backend.flag()
        assert not flag.is_set()
        flag.set()
        assert flag.is_set()
        await flag.wait()  # returns at once while set
        flag.clear()
        assert not flag.is_set()
        flag.clear()  # clearing an unset flag is harmless
        backend.call_at(backend.time() + SHORT, flag.set)
        await flag.wait()  # woken by the timer
        assert flag.is_set()

    run_on(loop, test)


def test_flags_are_independent(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        first, second = backend.flag(), backend.flag()
        first.set()
        assert not second.is_set()
        assert not await backend.wait_for(second, SHORT)

    run_on(loop, test)


# ---------------------------------------------------------------------------------------
# wait_for
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("set_after", "timeout", "expected"),
    [
        pytest.param(None, SHORT, False, id="never-set"),
        pytest.param(-1.0, SHORT, True, id="already-set"),
        pytest.param(SHORT, TIMEOUT, True, id="set-while-waiting"),
        pytest.param(TIMEOUT, SHORT, False, id="set-too-late"),
    ],
)
def test_wait_for(loop: Loop, set_after: float | None, timeout: float, expected: bool) -> None:
    async def test(backend: Backend) -> None:
        flag = backend.flag()
        timer: Timer | None = None
        if set_after is not None and set_after < 0:
            flag.set()
        elif set_after is not None:
            timer = backend.call_at(backend.time() + set_after, flag.set)
        started = backend.time()
        assert await backend.wait_for(flag, timeout) is expected
        elapsed = backend.time() - started
        if expected:
            assert elapsed < TIMEOUT / 2
        else:
            assert elapsed >= timeout * 0.9  # the clocks may round a little
        if timer is not None:
            timer.cancel()

    run_on(loop, test)


# ---------------------------------------------------------------------------------------
# call_at
# ---------------------------------------------------------------------------------------


def test_call_at_runs_in_deadline_order_and_skips_cancelled(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        fired: list[tuple[str, float, float]] = []
        done = backend.flag()
        start = backend.time()

        def record(name: str, when: float, last: bool = False) -> Callable[[], None]:
            def callback() -> None:
                fired.append((name, when, backend.time()))
                if last:
                    done.set()

            return callback

        schedule = [("c", 3 * SHORT, True), ("a", SHORT, False), ("b", 2 * SHORT, False)]
        for name, delay, last in schedule:
            backend.call_at(start + delay, record(name, start + delay, last))
        backend.call_at(start + 1.5 * SHORT, record("cancelled", 0.0)).cancel()
        backend.call_at(start + 4 * SHORT, record("cancelled-later", 0.0)).cancel()

        assert await backend.wait_for(done, TIMEOUT)
        assert [name for name, _, _ in fired] == ["a", "b", "c"]
        for _, when, at in fired:
            assert at >= when - 0.001  # never early (allowing the loops' clock rounding)

    run_on(loop, test)


def test_call_at_in_the_past_runs_soon(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        done = backend.flag()
        backend.call_at(backend.time() - 1.0, done.set)
        assert await backend.wait_for(done, TIMEOUT)

    run_on(loop, test)


def test_cancel_after_firing_is_harmless(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        done = backend.flag()
        timer = backend.call_at(backend.time(), done.set)
        assert await backend.wait_for(done, TIMEOUT)
        timer.cancel()
        timer.cancel()
        again = backend.flag()
        backend.call_at(backend.time(), again.set)
        assert await backend.wait_for(again, TIMEOUT)

    run_on(loop, test)


def test_many_cancelled_timers_do_not_delay_a_live_one(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        now = backend.time()
        timers = [backend.call_at(now + 60.0 + i, lambda: None) for i in range(500)]
        for timer in timers:
            timer.cancel()
        done = backend.flag()
        backend.call_at(now + SHORT, done.set)
        assert await backend.wait_for(done, TIMEOUT)

    run_on(loop, test)


def test_earlier_timer_wakes_a_sleeping_scheduler(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        late, early = backend.flag(), backend.flag()
        backend.call_at(backend.time() + 60.0, late.set)
        await backend.wait_for(late, SHORT)  # let the scheduler sleep towards 60 s
        backend.call_at(backend.time() + SHORT, early.set)
        assert await backend.wait_for(early, TIMEOUT)
        assert not late.is_set()

    run_on(loop, test)


def test_a_failing_timer_callback_is_logged_and_later_timers_still_run(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> None:
        raise RuntimeError("boom in a timer")

    async def test(backend: Backend) -> None:
        done = backend.flag()
        now = backend.time()
        backend.call_at(now, fail)
        backend.call_at(now + SHORT, done.set)
        assert await backend.wait_for(done, TIMEOUT)

    with caplog.at_level(logging.ERROR):
        run_on(loop, test)
    assert any(
        record.exc_info is not None and "boom in a timer" in str(record.exc_info[1])
        for record in caplog.records
    )


# ---------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------


def test_run_in_thread_returns_the_result_from_another_thread(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        loop_thread = threading.get_ident()
        thread, value = await backend.run_in_thread(lambda x: (threading.get_ident(), x * 2), 21)
        assert value == 42
        assert thread != loop_thread

    run_on(loop, test)


def test_run_in_thread_raises_the_functions_error(loop: Loop) -> None:
    def fail(message: str) -> None:
        raise ValueError(message)

    async def test(backend: Backend) -> None:
        with pytest.raises(ValueError, match="from the thread"):
            await backend.run_in_thread(fail, "from the thread")

    run_on(loop, test)


def test_run_from_thread_runs_on_the_loop_and_returns(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        loop_thread = threading.get_ident()

        async def on_loop(value: int) -> tuple[int, int]:
            flag = backend.flag()  # loop objects are usable here
            backend.call_at(backend.time(), flag.set)
            await flag.wait()
            return threading.get_ident(), value + 1

        def in_thread() -> tuple[int, int]:
            result: tuple[int, int] = backend.run_from_thread(on_loop, 41)
            return result

        thread, value = await backend.run_in_thread(in_thread)
        assert (thread, value) == (loop_thread, 42)

    run_on(loop, test)


def test_run_from_thread_raises_the_coroutines_error(loop: Loop) -> None:
    async def fail() -> None:
        raise KeyError("on the loop")

    async def test(backend: Backend) -> None:
        def in_thread() -> None:
            backend.run_from_thread(fail)

        with pytest.raises(KeyError, match="on the loop"):
            await backend.run_in_thread(in_thread)

    run_on(loop, test)


def test_run_from_a_thread_the_loop_did_not_start(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        loop_thread = threading.get_ident()
        results: list[int] = []
        flag: list[Flag] = [backend.flag()]

        async def on_loop() -> int:
            flag[0].set()
            return threading.get_ident()

        thread = threading.Thread(target=lambda: results.append(backend.run_from_thread(on_loop)))
        thread.start()
        # Join in a worker thread so the loop stays free to run ``on_loop``.
        await backend.run_in_thread(thread.join, TIMEOUT)
        assert results == [loop_thread]
        assert flag[0].is_set()

    run_on(loop, test)


def test_time_is_monotonic(loop: Loop) -> None:
    async def test(backend: Backend) -> None:
        first = backend.time()
        flag = backend.flag()
        await backend.wait_for(flag, SHORT)
        second = backend.time()
        assert second >= first + SHORT * 0.9

    run_on(loop, test)
