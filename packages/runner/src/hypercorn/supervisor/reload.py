"""The reloader: notice when the application's source files change.

The supervisor does not import the application (it would run the application's module-level
code in the supervisor, and a syntax error there would stop the server before the reloader
could help). Instead it watches the Python files under the current directory and under the
directory of the application file, if the application path names one. Directories that
hold no application code are skipped: hidden ones (``.git``), ``__pycache__``,
``node_modules``, ``site-packages`` and virtual environments.

With watchfiles installed (the ``reload`` extra) a thread waits for the kernel's change
notifications; otherwise the files' modification times are compared once a second.
Either way the supervisor asks :meth:`Reloader.changed` in its loop, and a watcher thread
wakes the loop through the ``wake`` callable it was given.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = (
    "POLL_INTERVAL",
    "PollingReloader",
    "Reloader",
    "WatchfilesReloader",
    "make_reloader",
    "python_files",
    "watch_roots",
)

#: Seconds between two scans of the polling reloader.
POLL_INTERVAL = 1.0

_SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages"})


class Reloader(Protocol):
    def start(self, wake: Callable[[], None]) -> None:
        """Begin watching; ``wake()`` may be called from another thread on a change."""

    def changed(self) -> bool:
        """Whether a watched file changed since the last call (cheap; call often)."""

    def stop(self) -> None: ...


def watch_roots(application_path: str | None, cwd: Path | None = None) -> list[Path]:
    """The directories to watch: the current one and the application file's directory."""
    base = (cwd or Path.cwd()).resolve()
    roots = [base]
    for part in (application_path or "").split(":"):
        if os.sep in part or "/" in part or part.endswith(".py"):
            directory = (base / part).resolve().parent
            if directory.is_dir() and not any(_within(directory, root) for root in roots):
                roots.append(directory)
    return roots


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _skipped(directory: os.DirEntry[str]) -> bool:
    name = directory.name
    if name.startswith(".") or name in _SKIPPED_DIRECTORIES:
        return True
    return os.path.exists(os.path.join(directory.path, "pyvenv.cfg"))


def python_files(roots: Iterable[Path]) -> Iterator[tuple[str, float]]:
    """``(path, mtime)`` of every ``*.py`` file under ``roots`` (see the module docstring)."""
    stack = [str(root) for root in roots]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not _skipped(entry):
                        stack.append(entry.path)
                elif entry.name.endswith(".py") and entry.is_file():
                    yield entry.path, entry.stat().st_mtime
            except OSError:
                continue


@final
class PollingReloader:
    """Compare modification times every :data:`POLL_INTERVAL` seconds."""

    def __init__(self, roots: list[Path], interval: float = POLL_INTERVAL) -> None:
        self._roots = roots
        self._interval = interval
        self._files: dict[str, float] = {}
        self._next_scan = 0.0

    def start(self, wake: Callable[[], None]) -> None:
        self._files = dict(python_files(self._roots))
        self._next_scan = time.monotonic() + self._interval

    def changed(self) -> bool:
        now = time.monotonic()
        if now < self._next_scan:
            return False
        self._next_scan = now + self._interval
        files = dict(python_files(self._roots))
        changed = files != self._files
        self._files = files
        return changed

    def stop(self) -> None:
        pass


@final
class WatchfilesReloader:
    """Wait for change notifications in a thread (watchfiles)."""

    def __init__(self, roots: list[Path]) -> None:
        self._roots = roots
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wake: Callable[[], None]) -> None:
        from watchfiles import PythonFilter, watch

        ready = threading.Event()

        def run() -> None:
            watcher = watch(
                *self._roots,
                watch_filter=PythonFilter(),
                stop_event=self._stop,
                yield_on_timeout=True,
                debounce=300,
                rust_timeout=500,
                raise_interrupt=False,
            )
            for changes in watcher:
                ready.set()
                if changes:
                    self._changed.set()
                    wake()

        self._thread = threading.Thread(target=run, name="hypercorn-reloader", daemon=True)
        self._thread.start()
        ready.wait(5.0)  # the first (empty) batch: the watches are in place

    def changed(self) -> bool:
        if self._changed.is_set():
            self._changed.clear()
            return True
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def make_reloader(application_path: str | None) -> Reloader:
    """watchfiles' reloader when it is installed, else the polling one."""
    roots = watch_roots(application_path)
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return PollingReloader(roots)
    return WatchfilesReloader(roots)
