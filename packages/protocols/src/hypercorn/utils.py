"""Small helpers shared by every layer, and the server's exception types.

Exceptions are defined here once and imported from here everywhere else (the reference
implementation defined ``FrameTooLargeError`` twice).

Application loading differs from the reference on purpose. There, ``load_application``
returns an ``AppWrapper`` built by ``hypercorn.app_wrappers``; but that module belongs to the
higher ``workers`` distribution, which this (``protocols``) distribution must never import.
So :func:`load_application` here only *finds* the application and decides whether it is
ASGI or WSGI, returning a :class:`LoadedApplication`; the workers wrap it
(``hypercorn.app_wrappers.wrap_app``). For the same reason ``wrap_app`` does not live here.

Nothing in this module drives an event loop: the two ``async`` helpers take the awaitables
they need (``sleep``, the shutdown trigger) from the caller.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import Framework

__all__ = (
    "FrameTooLargeError",
    "LifespanFailureError",
    "LifespanTimeoutError",
    "LoadedApplication",
    "NoAppError",
    "ShutdownError",
    "UnexpectedMessageError",
    "build_and_validate_headers",
    "check_for_updates",
    "check_multiprocess_shutdown_event",
    "files_to_watch",
    "filter_pseudo_headers",
    "is_asgi",
    "load_application",
    "parse_socket_addr",
    "raise_shutdown",
    "repr_socket_addr",
    "suppress_body",
    "valid_server_name",
    "write_pid_file",
)


# ---------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------


class ShutdownError(Exception):
    """Raised inside a worker to unwind it when shutdown has been requested."""


class NoAppError(Exception):
    """The application named by the user could not be loaded; the message says why."""


class LifespanTimeoutError(Exception):
    """The application did not finish lifespan ``stage`` (startup/shutdown) in time."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        super().__init__(
            f"Timed out waiting for the application's lifespan {stage} to complete. The "
            f"application may not implement the ASGI lifespan protocol correctly, or the "
            f"{stage}_timeout setting may be too short."
        )

    def __reduce__(self) -> tuple[type[LifespanTimeoutError], tuple[str]]:
        return (type(self), (self.stage,))


class LifespanFailureError(Exception):
    """The application reported ``lifespan.<stage>.failed`` with ``message``."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        self.message = message
        super().__init__(f"Lifespan {stage} failed: {message!r}")

    def __reduce__(self) -> tuple[type[LifespanFailureError], tuple[str, str]]:
        return (type(self), (self.stage, self.message))


class UnexpectedMessageError(Exception):
    """The application sent an ASGI message that its stream's ``state`` does not allow."""

    def __init__(self, state: Enum, message_type: str) -> None:
        self.state = state
        self.message_type = message_type
        super().__init__(f"Unexpected ASGI message {message_type!r} in state {state}")

    def __reduce__(self) -> tuple[type[UnexpectedMessageError], tuple[Enum, str]]:
        return (type(self), (self.state, self.message_type))


class FrameTooLargeError(Exception):
    """A WebSocket message grew beyond ``websocket_max_message_size``."""


# ---------------------------------------------------------------------------------------
# Headers and bodies
# ---------------------------------------------------------------------------------------


def suppress_body(method: str, status_code: int) -> bool:
    """Whether a response must not carry a body: HEAD requests, 1xx, 204 and 304."""
    return method == "HEAD" or 100 <= status_code < 200 or status_code in (204, 304)


def build_and_validate_headers(
    headers: Iterable[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    """Check headers an application gave and normalise them for the wire.

    Names are lower-cased, names and values stripped of surrounding whitespace. A pseudo
    header (name starting with ``:``) or an empty name is a ``ValueError``; a name or value
    that is not bytes-like is a ``TypeError``. (The reference called ``bytes()`` on each part,
    which turned an ``int`` into that many NUL bytes; we refuse it instead.)
    """
    validated: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if type(name) is bytes and type(value) is bytes:  # the common case, checked fast
            name_bytes = name
            value_bytes = value
        else:
            name_bytes = _to_bytes(name, "name")
            value_bytes = _to_bytes(value, "value")
        if name_bytes.startswith(b":"):
            raise ValueError(f"Pseudo headers are not valid in a response: {name_bytes!r}")
        name_bytes = name_bytes.strip().lower()
        if not name_bytes:
            raise ValueError("Header names must not be empty")
        validated.append((name_bytes, value_bytes.strip()))
    return validated


def _to_bytes(part: object, what: str) -> bytes:
    if isinstance(part, (bytes, bytearray, memoryview)):
        return bytes(part)
    raise TypeError(f"Header {what}s must be bytes, not {type(part).__name__}: {part!r}")


def filter_pseudo_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Turn HTTP/2 or HTTP/3 request headers into an HTTP/1-style list.

    Pseudo headers are dropped. The result always starts with one ``host`` header whose
    value is ``:authority`` if present, else the first ``host`` header, else ``b""``; any
    other ``host`` headers are dropped. The rest keep their order.
    """
    authority: bytes | None = None
    host: bytes | None = None
    filtered: list[tuple[bytes, bytes]] = [(b"host", b"")]
    for name, value in headers:
        if name == b":authority":
            if authority is None:
                authority = value
        elif name == b"host":
            if host is None:
                host = value
        elif not name.startswith(b":"):
            filtered.append((name, value))
    if authority is not None:
        filtered[0] = (b"host", authority)
    elif host is not None:
        filtered[0] = (b"host", host)
    return filtered


class _HasHeaders(Protocol):
    @property
    def headers(self) -> Iterable[tuple[bytes, bytes]]: ...


def valid_server_name(config: Config, request: _HasHeaders) -> bool:
    """Whether the request's ``Host`` is allowed by ``config.server_names``.

    An empty ``server_names`` allows every host. Otherwise the first ``host`` header's value
    must equal one of the names exactly (a port, if sent, is part of the value). A missing
    ``host`` header counts as the empty string. The value is decoded as latin-1, so bytes
    that are not UTF-8 simply fail to match (the reference raised on them).
    """
    if not config.server_names:
        return True
    host = ""
    for name, value in request.headers:
        if name.lower() == b"host":
            host = value.decode("latin-1")
            break
    return host in config.server_names


# ---------------------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------------------


def is_asgi(app: Any) -> bool:
    """Whether ``app`` looks like an ASGI application (anything else is taken as WSGI).

    True for a coroutine function and for an object whose ``__call__`` is one.
    """
    if inspect.iscoroutinefunction(app):
        return True
    return inspect.iscoroutinefunction(getattr(app, "__call__", None))  # noqa: B004


@dataclass(frozen=True)
class LoadedApplication:
    """An application found by :func:`load_application`, and how to call it."""

    app: Framework
    mode: Literal["asgi", "wsgi"]


_MODES: tuple[Literal["asgi"], Literal["wsgi"]] = ("asgi", "wsgi")
# Characters that never appear in a module name or file path but do in an expression.
_EXPRESSION_CHARS = frozenset("()[]{}'\"=,")


def load_application(path: str) -> LoadedApplication:
    """Import the application named by ``path`` (the CLI's positional argument).

    Grammar: ``[asgi:|wsgi:]MODULE[:EXPRESSION]``.

    ``MODULE`` is a dotted module name (``pkg.mod``) or a path relative to the current
    directory (``path/to/app.py``, ``path/to/pkg.mod``, ``path/to/package``). Its parent
    directory is put first on ``sys.path``; a ``.py`` file is imported by its stem.

    ``EXPRESSION`` (default ``app``) names the application inside the module: a name, then
    any mix of attribute access and calls, e.g. ``app``, ``obj.attr``, ``create_app()``,
    ``create_app(debug=True, name="x").asgi``. Unlike the reference, which passes this text
    to ``eval``, it is evaluated by a small safe evaluator: only names from the module,
    attribute access and calls whose arguments are Python literals are allowed.

    The mode is taken from an ``asgi:``/``wsgi:`` prefix if one is given, else from
    :func:`is_asgi`. A prefix is only recognised when a ``MODULE:EXPRESSION`` pair follows
    it (``wsgi:mod:app``); ``wsgi:app`` means module ``wsgi``, attribute ``app``, as in the
    reference.

    This returns what was found, not a wrapper: wrapping the application for the workers
    (``hypercorn.app_wrappers.wrap_app``) happens in the workers distribution, which this
    one must not import.

    Every failure the user can fix raises :class:`NoAppError` with a message naming
    ``path``: an unknown prefix, a module that cannot be found, an import inside the module
    that fails, a missing attribute, a factory call that raised, an unsupported expression,
    or a target that is not callable. Other exceptions raised while the module itself runs
    (its own bugs) propagate unchanged.
    """
    mode, module_spec, expression = _split_application_path(path)
    module = _import_application_module(path, module_spec)
    app = _SafeEvaluator(path, module, expression).evaluate()
    if not callable(app):
        raise _no_app(
            path,
            f"{expression!r} in module {module.__name__!r} is not callable "
            f"(it is {type(app).__name__!r}); expected an ASGI or WSGI application",
        )
    if mode is None:
        mode = "asgi" if is_asgi(app) else "wsgi"
    return LoadedApplication(app=app, mode=mode)


def _no_app(path: str, detail: str) -> NoAppError:
    return NoAppError(f"Cannot load application {path!r}: {detail}")


def _is_drive(text: str) -> bool:
    """Whether ``text`` starts with a Windows drive such as ``C:\\`` or ``C:/``."""
    return len(text) >= 3 and text[0].isalpha() and text[1] == ":" and text[2] in "\\/"


def _split_application_path(path: str) -> tuple[Literal["asgi", "wsgi"] | None, str, str]:
    text = path.strip()
    if not text:
        raise _no_app(path, "no module given")

    mode: Literal["asgi", "wsgi"] | None = None
    head, sep, tail = text.partition(":")
    if sep and not _is_drive(text):
        module_candidate, sep2, _ = tail.partition(":")
        if sep2 and not _EXPRESSION_CHARS.intersection(module_candidate):
            # Three parts: PREFIX:MODULE:EXPRESSION.
            for known in _MODES:
                if head == known:
                    mode = known
                    break
            else:
                raise _no_app(
                    path, f"unknown prefix {head!r}: use 'asgi:' or 'wsgi:' (or no prefix)"
                )
            text = tail

    start = 2 if _is_drive(text) else 0
    colon = text.find(":", start)
    if colon == -1:
        module_spec, expression = text, "app"
    else:
        module_spec, expression = text[:colon], text[colon + 1 :].strip()
    if not module_spec:
        raise _no_app(path, "no module given before ':'")
    if not expression:
        raise _no_app(path, "no application name given after ':'")
    return mode, module_spec, expression


def _import_application_module(path: str, module_spec: str) -> ModuleType:
    location = Path(os.path.abspath(module_spec))
    if location.is_file():
        import_name = location.stem
    elif module_spec.endswith(".py"):
        raise _no_app(path, f"file {module_spec!r} not found (looked for {str(location)!r})")
    else:
        import_name = location.name
    if not import_name or import_name.startswith(".") or ".." in import_name:
        raise _no_app(path, f"{module_spec!r} is not a module name or a file path")

    parent = str(location.parent)
    if not sys.path or sys.path[0] != parent:
        sys.path.insert(0, parent)
    importlib.invalidate_caches()

    try:
        module = importlib.import_module(import_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (import_name == missing or import_name.startswith(missing + ".")):
            raise _no_app(
                path, f"module {import_name!r} not found (looked in {parent!r} and sys.path)"
            ) from error
        raise _no_app(path, f"importing module {import_name!r} failed: {error}") from error
    except ImportError as error:
        raise _no_app(path, f"importing module {import_name!r} failed: {error}") from error

    if location.is_file():
        # A file whose stem is the name of a module imported earlier (say ``types.py``)
        # would silently resolve to that other module; say so instead.
        module_file = getattr(module, "__file__", None)
        if not (isinstance(module_file, str) and _same_file(module_file, location)):
            raise _no_app(
                path,
                f"the module name {import_name!r} is already taken by "
                f"{module_file or 'a built-in module'!r}; rename {module_spec!r}",
            )
    return module


def _same_file(first: str, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


class _SafeEvaluator:
    """Evaluates names, attribute access and calls with literal arguments; nothing else."""

    _missing = object()

    def __init__(self, path: str, module: ModuleType, expression: str) -> None:
        self.path = path
        self.module = module
        self.expression = expression

    def evaluate(self) -> object:
        try:
            tree = ast.parse(self.expression, mode="eval")
        except SyntaxError as error:
            raise self._error(f"{self.expression!r} is not a valid expression") from error
        return self._eval(tree.body)

    def _error(self, detail: str) -> NoAppError:
        return _no_app(self.path, detail)

    def _eval(self, node: ast.expr) -> object:
        if isinstance(node, ast.Name):
            value = getattr(self.module, node.id, self._missing)
            if value is self._missing:
                raise self._error(f"module {self.module.__name__!r} has no attribute {node.id!r}")
            return value
        if isinstance(node, ast.Attribute):
            owner = self._eval(node.value)
            value = getattr(owner, node.attr, self._missing)
            if value is self._missing:
                raise self._error(
                    f"{ast.unparse(node.value)!r} in module {self.module.__name__!r} "
                    f"has no attribute {node.attr!r}"
                )
            return value
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self._error(
            f"{ast.unparse(node)!r} is not supported in {self.expression!r}: only names, "
            "attribute access and calls with literal arguments are allowed"
        )

    def _call(self, node: ast.Call) -> object:
        func = self._eval(node.func)
        if not callable(func):
            raise self._error(
                f"{ast.unparse(node.func)!r} in module {self.module.__name__!r} is not "
                f"callable (it is {type(func).__name__!r})"
            )
        args = [self._literal(arg) for arg in node.args]
        kwargs: dict[str, object] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self._error(f"'**' arguments are not supported in {self.expression!r}")
            kwargs[keyword.arg] = self._literal(keyword.value)
        try:
            return func(*args, **kwargs)
        except Exception as error:
            raise self._error(
                f"calling {ast.unparse(node)!r} in module {self.module.__name__!r} raised "
                f"{type(error).__name__}: {error}"
            ) from error

    def _literal(self, node: ast.expr) -> object:
        if isinstance(node, ast.Starred):
            raise self._error(f"'*' arguments are not supported in {self.expression!r}")
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as error:
            raise self._error(
                f"argument {ast.unparse(node)!r} in {self.expression!r} is not a literal "
                "(only strings, numbers, bytes, booleans, None and containers of them)"
            ) from error


# ---------------------------------------------------------------------------------------
# Reloading, shutdown and process helpers
# ---------------------------------------------------------------------------------------


def files_to_watch() -> dict[Path, float]:
    """The modification time of the file of every imported module (for the reloader).

    Modules without a file (built-ins, namespace packages) or whose file cannot be
    stat'ed (for example inside a zip archive) are skipped.
    """
    watched: dict[Path, float] = {}
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str) or not filename:
            continue
        file_path = Path(filename)
        try:
            watched[file_path] = file_path.stat().st_mtime
        except OSError:
            continue
    return watched


def check_for_updates(files: dict[Path, float]) -> bool:
    """Whether any watched file changed since it was recorded in ``files``.

    A file counts as changed when its modification time differs from the recorded one
    (newer or older: a restore from backup can move it back) or it no longer exists.
    ``files`` is updated in place: changed files get their new time and missing files are
    dropped, so the next call reports only later changes. (The reference stopped at the
    first change and reported a deleted file again on every call.)
    """
    changed = False
    for file_path, recorded in list(files.items()):
        try:
            mtime = file_path.stat().st_mtime
        except OSError:
            del files[file_path]
            changed = True
            continue
        if mtime != recorded:
            files[file_path] = mtime
            changed = True
    return changed


async def raise_shutdown(shutdown_event: Callable[..., Awaitable[object]]) -> NoReturn:
    """Await ``shutdown_event()`` and then raise :class:`ShutdownError`."""
    await shutdown_event()
    raise ShutdownError()


class _IsSetEvent(Protocol):
    def is_set(self) -> bool: ...


async def check_multiprocess_shutdown_event(
    shutdown_event: _IsSetEvent, sleep: Callable[[float], Awaitable[object]]
) -> None:
    """Return once ``shutdown_event`` (e.g. a ``multiprocessing`` Event) is set.

    Polls every 0.1 s with the caller's ``sleep``, so it works under any event loop.
    """
    while not shutdown_event.is_set():
        await sleep(0.1)


def write_pid_file(pid_path: str | os.PathLike[str]) -> None:
    """Write this process's id (decimal, no newline) to ``pid_path``."""
    with open(pid_path, "w", encoding="ascii") as pid_file:
        pid_file.write(str(os.getpid()))


_Address = tuple[Any, ...] | str | bytes


def parse_socket_addr(family: int, address: _Address) -> tuple[str, int] | None:
    """``(host, port)`` of an IPv4 or IPv6 socket address, ``None`` for other families."""
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        return (address[0], address[1])
    return None


def repr_socket_addr(family: int, address: _Address) -> str:
    """Human-readable socket address: ``host:port``, ``[host]:port`` or ``unix:path``.

    A Linux abstract unix socket name (bytes starting with NUL) is shown as ``unix:@name``.
    """
    if family == socket.AF_INET and isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    if family == socket.AF_INET6 and isinstance(address, tuple):
        return f"[{address[0]}]:{address[1]}"
    if family == getattr(socket, "AF_UNIX", None):
        if isinstance(address, bytes):
            if address.startswith(b"\0"):
                address = b"@" + address[1:]
            address = os.fsdecode(address)
        return f"unix:{address}"
    return str(address)
