"""Error and access logging for the server.

Two standard-library loggers do the work: ``hypercorn.error`` (server messages; on stderr by
default) and ``hypercorn.access`` (one line per request; off by default). :class:`Logger`
builds them from a :class:`~hypercorn.config.Config` and exposes the awaitable methods the
workers call. The methods are ``async def`` only to keep Hypercorn's public signatures: they
call the standard-library logger synchronously and never touch an event loop.

:class:`AccessLogAtoms` is the mapping the ``access_log_format`` string is applied to with
``%``-formatting, e.g. ``'%(h)s "%(r)s" %(s)s'``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import sys
import time
import weakref
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from logging.config import dictConfig, fileConfig
from typing import IO, TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import ResponseSummary, WWWScope

__all__ = ("AccessLogAtoms", "LogConfigError", "Logger")

#: Line format of the handlers :func:`_create_logger` installs.
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
#: Date format of those handlers.
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"

# Handlers this module created. Only these are closed when a later ``_create_logger`` call
# replaces them; handlers somebody else attached are dropped from the logger but left open.
_OWN_HANDLERS: weakref.WeakSet[logging.Handler] = weakref.WeakSet()


class LogConfigError(ValueError):
    """A logging option (``logconfig``, ``logconfig_dict``, ``accesslog``, ``errorlog``,
    ``loglevel`` or ``access_log_format``) cannot be applied.

    The message names the option and, for files, the path. The underlying error, if any, is
    chained as ``__cause__``.
    """


def _level_number(level: str) -> int:
    """The numeric level for a level name such as ``"info"`` (or a number like ``"20"``)."""
    name = level.strip().upper()
    if name.isdigit():
        return int(name)
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise LogConfigError(
            f"loglevel={level!r} is not a logging level; "
            "use one of CRITICAL, ERROR, WARNING, INFO, DEBUG"
        )
    return number


def _create_logger(
    name: str,
    target: logging.Logger | str | os.PathLike[str] | None,
    level: str | None,
    sys_default: IO[str],
    *,
    propagate: bool = True,
) -> logging.Logger | None:
    """Return the standard-library logger ``name`` configured to write to ``target``.

    ``target`` is one of:

    - a :class:`logging.Logger`: returned unchanged (its handlers, level and propagation are
      the caller's business);
    - ``None`` (or any falsy value): logging is off, ``None`` is returned;
    - ``"-"``: a stream handler on ``sys_default`` (stdout or stderr);
    - any other string (or path): a UTF-8 file handler appending to that file.

    The logger's handler list is *replaced* by the new handler, so creating several
    :class:`Logger` objects for the same target in one process never duplicates lines.
    Handlers replaced this way that this function created earlier are closed (so their files
    are released); handlers attached by somebody else are only detached. ``level`` (a level
    name, any case) is set on the logger when given.
    """
    if isinstance(target, logging.Logger):
        return target
    if not target:
        return None
    level_number = None if level is None else _level_number(level)

    handler: logging.Handler
    if target == "-":
        handler = logging.StreamHandler(sys_default)
    else:
        handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    _OWN_HANDLERS.add(handler)

    logger = logging.getLogger(name)
    replaced = list(logger.handlers)
    for old in replaced:
        logger.removeHandler(old)
    logger.addHandler(handler)
    for old in replaced:
        if old in _OWN_HANDLERS:
            old.close()
    logger.propagate = propagate
    if level_number is not None:
        logger.setLevel(level_number)
    return logger


def _load_logconfig(logconfig: str | os.PathLike[str]) -> None:
    """Apply a ``logconfig`` value: ``json:PATH``, ``toml:PATH`` or an ini file path."""
    value = os.fspath(logconfig)
    kind, _, rest = value.partition(":")
    if kind in ("json", "toml") and rest:
        path = rest
    else:
        kind, path = "ini", value

    def failure(reason: str) -> LogConfigError:
        return LogConfigError(f"logconfig={value!r}: {reason} (file {path!r})")

    if not os.path.isfile(path):
        raise failure("no such file")
    if kind == "ini":
        defaults = {"__file__": path, "here": os.path.dirname(path)}
        try:
            fileConfig(path, defaults=defaults, disable_existing_loggers=False)
        except Exception as error:  # fileConfig reports a bad file in many ways
            raise failure(f"invalid ini logging configuration: {error!r}") from error
        return

    loaded: object
    try:
        if kind == "json":
            with open(path, encoding="utf-8") as json_file:
                loaded = json.load(json_file)
        else:
            with open(path, "rb") as toml_file:
                loaded = tomllib.load(toml_file)
    except (OSError, ValueError) as error:  # ValueError covers decoding and syntax errors
        raise failure(f"cannot read the {kind.upper()} file: {error}") from error
    if not isinstance(loaded, dict):
        raise failure(f"the {kind.upper()} document must be an object at the top level")
    try:
        _apply_dict_config(loaded)
    except Exception as error:  # dictConfig raises ValueError, TypeError, ImportError...
        raise failure(f"invalid logging configuration: {error}") from error


def _apply_dict_config(config: Mapping[str, Any]) -> None:
    """``dictConfig`` that keeps existing loggers enabled unless told otherwise.

    ``dictConfig`` disables every existing logger the dictionary does not name when
    ``disable_existing_loggers`` is absent, which silently mutes ``hypercorn.error`` and
    ``hypercorn.access``; like the ini path (``fileConfig(..., disable_existing_loggers=
    False)``), the default here is ``False``. An explicit value in the dictionary wins.
    """
    settings = dict(config)
    settings.setdefault("disable_existing_loggers", False)
    dictConfig(settings)


class _AnyAtom(dict[str, str]):
    """A mapping that has every key; used to check ``access_log_format`` syntax once."""

    def __init__(self) -> None:
        super().__init__(h="-")

    def __missing__(self, key: str) -> str:
        return "-"


class Logger:
    """The server's logger: error messages and access lines.

    Built from ``config`` (:attr:`Config.log` does it lazily, with ``config.logger_class``):

    - ``error_logger`` is the ``hypercorn.error`` logger writing to ``config.errorlog``
      (``"-"``, the default, is stderr) or ``None`` when ``errorlog`` is ``None``;
    - ``access_logger`` is ``hypercorn.access`` (not propagated to the root logger) writing
      to ``config.accesslog`` (``"-"`` is stdout) or ``None`` (the default: no access log);
    - both get the ``config.loglevel`` level when this class creates them (a
      :class:`logging.Logger` passed as target is used untouched);
    - then ``config.logconfig`` is applied: ``json:PATH`` and ``toml:PATH`` go through
      :func:`logging.config.dictConfig`, anything else is an ini file for
      :func:`logging.config.fileConfig` (with the defaults ``__file__`` and ``here``, the
      file's directory, and ``disable_existing_loggers=False``). When ``logconfig`` is
      ``None``, ``config.logconfig_dict`` (if set) goes to ``dictConfig``. For dictionaries
      ``disable_existing_loggers`` defaults to ``False`` too, so the server's loggers are not
      muted by a configuration that does not mention them.

    Problems with these options raise :class:`LogConfigError` naming the option (and the
    file).

    The logging methods are coroutines for compatibility with Hypercorn; they log
    synchronously and do nothing when the logger they use is ``None``. Attributes not
    defined here are looked up on ``error_logger`` (``log.setLevel(...)``, ``log.level``);
    :attr:`handlers` is explicit so that it is ``[]``, not an error, when the error log is
    off.
    """

    def __init__(self, config: Config) -> None:
        self.access_log_format: str = config.access_log_format
        try:
            self.access_log_format % _AnyAtom()
        except ValueError as error:
            raise LogConfigError(
                f"access_log_format={self.access_log_format!r} is not a valid %-format: {error}"
            ) from error
        except TypeError:
            pass  # e.g. "%(s)d": fine for an atoms() override that returns numbers

        self.access_logger = self._make_logger(
            "accesslog", "hypercorn.access", config.accesslog, config, sys.stdout, False
        )
        self.error_logger = self._make_logger(
            "errorlog", "hypercorn.error", config.errorlog, config, sys.stderr, True
        )

        if config.logconfig is not None:
            _load_logconfig(config.logconfig)
        elif config.logconfig_dict is not None:
            try:
                _apply_dict_config(config.logconfig_dict)
            except Exception as error:
                raise LogConfigError(f"logconfig_dict is invalid: {error}") from error

    @staticmethod
    def _make_logger(
        option: str,
        name: str,
        target: logging.Logger | str | None,
        config: Config,
        stream: IO[str],
        propagate: bool,
    ) -> logging.Logger | None:
        try:
            return _create_logger(name, target, config.loglevel, stream, propagate=propagate)
        except OSError as error:
            raise LogConfigError(f"{option}={target!r}: cannot open the file: {error}") from error

    async def access(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        """Log one access line: ``access_log_format % self.atoms(...)`` at INFO level.

        ``request_time`` is the request's duration in seconds. Nothing is computed when the
        access log is off or below INFO.
        """
        logger = self.access_logger
        if logger is not None and logger.isEnabledFor(logging.INFO):
            logger.info(self.access_log_format, self.atoms(request, response, request_time))

    async def critical(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at CRITICAL level on the error log."""
        if self.error_logger is not None:
            self.error_logger.critical(message, *args, **kwargs)

    async def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at ERROR level on the error log."""
        if self.error_logger is not None:
            self.error_logger.error(message, *args, **kwargs)

    async def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at WARNING level on the error log."""
        if self.error_logger is not None:
            self.error_logger.warning(message, *args, **kwargs)

    async def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at INFO level on the error log."""
        if self.error_logger is not None:
            self.error_logger.info(message, *args, **kwargs)

    async def debug(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at DEBUG level on the error log."""
        if self.error_logger is not None:
            self.error_logger.debug(message, *args, **kwargs)

    async def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at ERROR level with the exception being handled."""
        if self.error_logger is not None:
            self.error_logger.exception(message, *args, **kwargs)

    async def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at the numeric ``level`` on the error log."""
        if self.error_logger is not None:
            self.error_logger.log(level, message, *args, **kwargs)

    def atoms(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> Mapping[str, str]:
        """Return the mapping ``access_log_format`` is applied to.

        Override this to add or change atoms; the default is :class:`AccessLogAtoms`. The
        mapping must not be empty (the logging module only treats a non-empty mapping as
        named arguments).
        """
        return AccessLogAtoms(request, response, request_time)

    @property
    def handlers(self) -> list[logging.Handler]:
        """The error logger's handlers, or ``[]`` when the error log is off."""
        if self.error_logger is None:
            return []
        return self.error_logger.handlers

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not found normally. Reading error_logger through __dict__
        # avoids recursing when the object is not initialised (copy, unpickling).
        error_logger = self.__dict__.get("error_logger")
        if error_logger is None or name.startswith("__"):
            reason = " (the error log is off: errorlog is None)" if error_logger is None else ""
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}{reason}"
            )
        return getattr(error_logger, name)


# C0 control characters and DEL, which could forge or break log lines when they come from
# the request (a percent-decoded path may contain a newline).
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


def _clean(value: str) -> str:
    """``value`` with control characters written as ``\\xNN``."""
    if value.isprintable():
        return value
    return value.translate(_CONTROL_ESCAPES)


def _header_atoms(headers: Iterable[tuple[bytes, bytes]], suffix: str) -> dict[str, str]:
    """``{name}<suffix>`` atoms for headers; repeated headers are joined with ``", "``."""
    atoms: dict[str, str] = {}
    for raw_name, raw_value in headers:
        key = f"{{{raw_name.decode('latin-1').lower()}}}{suffix}"
        value = _clean(raw_value.decode("latin-1"))
        previous = atoms.get(key)
        atoms[key] = value if previous is None else f"{previous}, {value}"
    return atoms


def _remote_addr(client: Any) -> str:
    if not client:  # None: e.g. a unix socket
        return "-"
    if len(client) == 1:  # a unix socket path, as some servers report it
        return str(client[0])
    host, port = client[0], client[1]
    if ":" in str(host):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _basic_auth_user(authorization: str | None) -> str:
    """The user name of an ``Authorization: Basic`` credential, or ``"-"``."""
    if authorization is None:
        return "-"
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "-"
    user, colon, _password = decoded.partition(":")
    if not colon or not user:
        return "-"
    return _clean(user)


class AccessLogAtoms(dict[str, str]):
    """The values an ``access_log_format`` string can use, as ``%(<atom>)s``.

    ====================  ===================================================================
    atom                  value
    ====================  ===================================================================
    ``h``                 remote address ``host:port`` (``[host]:port`` for IPv6); the path
                          for a 1-tuple client (unix socket); ``-`` when the client is None
    ``l``                 ``-`` (identd, never known)
    ``u``                 user name of an ``Authorization: Basic`` request header, else ``-``
    ``t``                 time of logging, ``[%d/%b/%Y:%H:%M:%S %z]`` in local time
    ``r``                 ``METHOD path http_version``, e.g. ``GET /a 1.1`` (no query)
    ``R``                 the same with ``?query`` when there is one
    ``s``                 response status code (``-`` without a response)
    ``st``                status phrase, e.g. ``OK``; ``<???CODE???>`` for unknown codes
    ``S``                 scheme (``http``, ``https``, ``ws``, ``wss``)
    ``m``                 method (``GET`` for WebSocket requests)
    ``U``                 path; ``Uq`` path with ``?query``; ``q`` the query string
    ``H``                 HTTP version of the scope (``1.1``, ``2``, ``3``; ``ws`` if absent)
    ``b``                 response ``content-length``; ``-`` when it is absent or 0
    ``B``                 response ``content-length``, ``0`` included; ``-`` when absent
    ``f``                 ``referer`` request header; ``a`` ``user-agent`` request header
    ``T``                 request time in whole seconds; ``D`` in whole microseconds;
                          ``L`` in seconds with six decimals
    ``p``                 process id as ``<pid>``
    ``{name}i``           request header ``name``; ``{name}o`` response header ``name``;
                          ``{name}e`` environment variable ``name``
    ====================  ===================================================================

    Every value is a string, and any atom without a value gives ``-``. Names in braces are
    case-insensitive (stored lower-cased); repeated headers are joined with ``", "``.

    Notes on choices:

    - ``u``: the server has no authentication layer, so the only place a user name exists
      is the ``Authorization: Basic`` header; its user part is shown (the password never
      is). Hypercorn documents ``u`` but always renders ``-``.
    - ``b``/``B``: only the ``content-length`` header is known here, not the bytes sent.
      Following the Common Log Format, ``b`` shows ``-`` for an empty body and ``B`` shows
      ``0``; both show ``-`` when the size is unknown (no ``content-length``, e.g. a
      streamed response). Hypercorn renders both as the header value or ``-``.
    - Request-derived values (path, query, headers, user) have control characters written
      as ``\\xNN`` so that a request cannot forge extra log lines.
    - ``{name}e`` atoms are looked up in :data:`os.environ` when asked for, rather than
      copying the environment into every mapping, so they do not appear when iterating.
    """

    def __init__(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        super().__init__()
        self.update(_header_atoms(request["headers"], "i"))
        if response is not None:
            self.update(_header_atoms(response.get("headers", ()), "o"))

        method = request["method"] if request["type"] == "http" else "GET"
        version = str(request.get("http_version", "ws"))
        path = _clean(request["path"])
        query = _clean(request["query_string"].decode("utf-8", "backslashreplace"))
        path_with_query = f"{path}?{query}" if query else path

        if response is None:
            status = phrase = "-"
        else:
            status = str(response["status"])
            try:
                phrase = HTTPStatus(response["status"]).phrase
            except ValueError:
                phrase = f"<???{status}???>"

        length = self.get("{content-length}o", "-")
        self.update(
            {
                "h": _remote_addr(request.get("client")),
                "l": "-",
                "u": _basic_auth_user(self.get("{authorization}i")),
                "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
                "r": f"{method} {path} {version}",
                "R": f"{method} {path_with_query} {version}",
                "s": status,
                "st": phrase,
                "S": request["scheme"],
                "m": method,
                "U": path,
                "Uq": path_with_query,
                "q": query,
                "H": version,
                "b": "-" if length.strip() == "0" else length,
                "B": length,
                "f": self.get("{referer}i", "-"),
                "a": self.get("{user-agent}i", "-"),
                "T": str(int(request_time)),
                "D": str(int(request_time * 1_000_000)),
                "L": f"{request_time:.6f}",
                "p": f"<{os.getpid()}>",
            }
        )

    def __missing__(self, key: str) -> str:
        if not key.startswith("{"):
            return "-"
        lowered = key.lower()
        if lowered != key and lowered in self:
            return self[lowered]
        if lowered.endswith("}e"):
            wanted = lowered[1:-2]
            for name, value in os.environ.items():
                if name.lower() == wanted:
                    return value
        return "-"
