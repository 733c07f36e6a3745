"""The ``hypercorn`` command (also ``python -m hypercorn``).

:func:`main` turns the command line into a :class:`~hypercorn.config.Config` and hands it to
:func:`hypercorn.run.run`, whose return value is the exit code. The options are built from
one table, :data:`_GROUPS`, grouped by topic in ``--help``; argparse does the parsing.

Precedence, lowest first: the :class:`~hypercorn.config.Config` defaults, the ``-c`` file,
the flags given on the command line. A flag changes the configuration only when it is
given (every option defaults to ``argparse.SUPPRESS``), and a repeatable flag such as
``--bind`` replaces the whole list from the file once it is given at least once.

Differences from Hypercorn's command, all deliberate:

- ``--max-requests-jitter`` sets ``max_requests_jitter`` (Hypercorn stored the
  ``--max-requests`` value there), and ``--statsd-prefix`` applies only when given
  (Hypercorn always overwrote the file's prefix with ``""``).
- ``main([])`` parses an empty command line; only ``main()`` reads :data:`sys.argv`.
- ``--graceful-timeout``, ``--read-timeout``, ``--keep-alive`` and
  ``--websocket-ping-interval`` take fractions of a second; ``--umask`` reads ``022`` and
  ``0o22`` as octal (a plain number without a leading zero stays decimal).
- Mistakes on the command line or in the ``-c`` file give one line on standard error,
  ``hypercorn: error: ...``, and exit status 2 (command line) or 1 (configuration file),
  never a traceback.
- ``--cert-reqs`` warns with :class:`DeprecationWarning` and sets ``verify_mode`` directly
  (``--verify-mode`` wins when both are given). The deprecation warnings of the deprecated
  flags are shown once per run unless Python's ``-W`` options say otherwise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import math
import os
import re
import ssl
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from hypercorn.config import Config, ConfigError
from hypercorn.run import run

__all__ = ("main",)

PROG = "hypercorn"
DISTRIBUTIONS = ("hypercorn-protocols", "hypercorn-workers", "hypercorn-runner", "hypercorn-cli")
"""The distributions whose versions ``--version`` prints, lowest layer first."""
WORKER_CLASSES = ("asyncio", "uvloop", "trio")

_DEFAULTS = Config()


class _UsageError(Exception):
    """A command-line value that argparse accepted but the configuration refused."""


# -- value converters (argparse ``type=``) -------------------------------------------------


def _count(text: str) -> int:
    """A whole number, zero or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {text!r}")
    return value


def _seconds(text: str) -> float:
    """A duration in seconds, such as ``5`` or ``2.5``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, not {text!r}")
    return value


def _umask(text: str) -> int:
    """A umask: ``0o22`` or ``022`` is octal, a number without a leading zero is decimal."""
    digits = text.strip()
    try:
        if digits[:2].lower() == "0o":
            value = int(digits[2:], 8)
        elif len(digits) > 1 and digits.startswith("0"):
            value = int(digits, 8)
        else:
            value = int(digits, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an octal umask such as 022 or 0o22, not {text!r}"
        ) from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"a umask is from 0 to 0o777, not {text!r}")
    return value


def _verify_mode(text: str) -> ssl.VerifyMode:
    """An :class:`ssl.VerifyMode` by name, in any case (``cert_required``)."""
    try:
        return ssl.VerifyMode[text.strip().upper()]
    except KeyError:
        names = ", ".join(mode.name for mode in ssl.VerifyMode)
        raise argparse.ArgumentTypeError(
            f"unknown verify mode {text!r} (choose from {names})"
        ) from None


def _cert_reqs(text: str) -> ssl.VerifyMode:
    """The deprecated numeric form of :func:`_verify_mode` (0, 1 or 2)."""
    try:
        return ssl.VerifyMode(int(text))
    except ValueError:
        values = ", ".join(f"{int(mode)} ({mode.name})" for mode in ssl.VerifyMode)
        raise argparse.ArgumentTypeError(f"expected one of {values}, not {text!r}") from None


def _log_level(text: str) -> str:
    """A logging level name (any case) or number, kept as it was written."""
    name = text.strip().upper()
    if not name.isdigit() and not isinstance(logging.getLevelName(name), int):
        raise argparse.ArgumentTypeError(
            f"unknown level {text!r} (choose from CRITICAL, ERROR, WARNING, INFO, DEBUG)"
        )
    return text


# -- the option table -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """One command-line option and the :class:`Config` attribute it sets.

    ``spec`` reads like the help: the flags separated by ``/``, then the metavar, if any
    (``"-w/--workers N"``). ``{default}`` in ``help`` becomes the option's default.
    """

    spec: str
    attribute: str | None  # None: not a Config attribute (-c)
    help: str
    convert: Callable[[str], object] | None = None  # None: the text as it is
    action: Literal["store", "append", "store_true"] = "store"
    choices: tuple[str, ...] | None = None
    replaced_by: str | None = None  # deprecated: the dest of the option replacing this one

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(self.spec.partition(" ")[0].split("/"))

    @property
    def metavar(self) -> str | None:
        return self.spec.partition(" ")[2] or None

    @property
    def dest(self) -> str:
        """The argparse destination: the first long flag, e.g. ``error_logfile``."""
        long = next(flag for flag in self.flags if flag.startswith("--"))
        return long[2:].replace("-", "_")


def _default(attribute: str) -> str:
    """The default of a Config option, as written in a help text."""
    value = getattr(_DEFAULTS, attribute)
    if isinstance(value, list):
        return " ".join(value) or "none"
    return "none" if value is None else str(value)


_Group = tuple[str, str, tuple[_Option, ...]]

# The options, by help group. Option order within a group is the order of --help and the
# order they are applied in (a deprecated option defers to its replacement anyway).
# fmt: off
_GROUPS: tuple[_Group, ...] = (
    ("Application and workers", "What to serve, and how many processes serve it.", (
        _Option("-c/--config CONFIG", None,
                "Configuration to start from: a TOML file, 'file:PATH.py' (a Python file) "
                "or 'python:MODULE[.OBJECT]'. Flags given here override it."),
        _Option("-k/--worker-class CLASS", "worker_class",
                f"Event loop of the workers: {', '.join(WORKER_CLASSES)} (default: "
                "{default}). uvloop and trio need the extras of the same name.",
                choices=WORKER_CLASSES),
        _Option("-w/--workers N", "workers",
                "Number of worker processes; 0 serves in this process, without a "
                "supervisor (default: {default}).", _count),
        _Option("--max-requests N", "max_requests",
                "Replace a worker after it has served this many requests (default: never).",
                _count),
        _Option("--max-requests-jitter N", "max_requests_jitter",
                "Add up to this many requests, at random, to each worker's --max-requests "
                "(default: {default}).", _count),
        _Option("--worker-heartbeat-timeout SECONDS", "worker_heartbeat_timeout",
                "Kill and replace a worker whose event loop has not answered for this long; "
                "0 turns the check off (default: {default}).", _seconds),
        _Option("--root-path PATH", "root_path",
                "The ASGI root_path: the URL prefix the application is mounted under, "
                "e.g. /api."),
        _Option("--debug", "debug", "Run the asyncio and uvloop event loops in debug mode.",
                action="store_true"),
    )),
    ("Binding and sockets", (
        "ADDRESS is HOST:PORT, HOST, [IPV6]:PORT, unix:PATH or fd://N. These flags can be\n"
        "repeated; given at least once, a flag replaces the configuration file's list."), (
        _Option("-b/--bind ADDRESS", "bind",
                "Address to listen on (default: {default}). With TLS it speaks TLS.",
                action="append"),
        _Option("--insecure-bind ADDRESS", "insecure_bind",
                "Extra plaintext address to listen on while TLS is on (ignored without TLS).",
                action="append"),
        _Option("--quic-bind ADDRESS", "quic_bind",
                "UDP address to serve HTTP/3 on (needs TLS and the h3 extra).",
                action="append"),
        _Option("--server-name HOST", "server_names",
                "Host name to answer to; requests for other hosts get a 404 (default: every "
                "host).", action="append"),
        _Option("--backlog N", "backlog",
                "Connections queued by the system on each socket (default: {default}).",
                _count),
    )),
    ("TLS", "TLS is on when both --certfile and --keyfile are given.", (
        _Option("--certfile PATH", "certfile", "Certificate chain (PEM)."),
        _Option("--keyfile PATH", "keyfile", "Private key (PEM)."),
        _Option("--keyfile-password PASSWORD", "keyfile_password",
                "Password of an encrypted --keyfile."),
        _Option("--ca-certs PATH", "ca_certs",
                "CA certificates (PEM) to verify client certificates with."),
        _Option("--ciphers CIPHERS", "ciphers", "OpenSSL cipher list (default: {default})."),
        _Option("--verify-mode MODE", "verify_mode",
                "Client certificates: CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED (default: "
                "none asked for).", _verify_mode),
        _Option("--cert-reqs N", "verify_mode",
                "Deprecated: use --verify-mode. 0, 1 or 2 for CERT_NONE, CERT_OPTIONAL, "
                "CERT_REQUIRED.", _cert_reqs, replaced_by="verify_mode"),
    )),
    ("Timeouts and limits", "Durations are in seconds and may have a fraction.", (
        _Option("--keep-alive SECONDS", "keep_alive_timeout",
                "Close a connection idle for this long between requests (default: "
                "{default}).", _seconds),
        _Option("--read-timeout SECONDS", "read_timeout",
                "Close a connection when a read waits this long (default: wait forever).",
                _seconds),
        _Option("--graceful-timeout SECONDS", "graceful_timeout",
                "On shutdown, let open connections finish for this long (default: "
                "{default}).", _seconds),
        _Option("--websocket-ping-interval SECONDS", "websocket_ping_interval",
                "Ping every open WebSocket this often (default: never).", _seconds),
        _Option("--http1-parser PARSER", "http1_parser",
                "HTTP/1.1 request parser: h11, httptools (faster; the accel extra) or auto, "
                "httptools when installed (default: {default}).",
                choices=("auto", "h11", "httptools")),
    )),
    ("Logging", (
        "TARGET is a file path, or '-' for standard output (access log) or standard\n"
        "error (error log)."), (
        _Option("--access-logfile TARGET", "accesslog",
                "Where access logs go (default: nowhere)."),
        _Option("--access-logformat FORMAT", "access_log_format",
                "%%-style format of an access-log line, e.g. '%%(h)s \"%%(r)s\" %%(s)s'."),
        _Option("--error-logfile/--log-file TARGET", "errorlog",
                "Where error logs go (default: -, standard error)."),
        _Option("--log-level LEVEL", "loglevel",
                "Level of the error and access logs (default: {default}).", _log_level),
        _Option("--log-config CONFIG", "logconfig",
                "Logging configuration: 'json:PATH', 'toml:PATH' (a dictConfig document) or "
                "the path of an ini file."),
        _Option("--access-log TARGET", "accesslog", "Deprecated: use --access-logfile.",
                replaced_by="access_logfile"),
        _Option("--error-log TARGET", "errorlog", "Deprecated: use --error-logfile.",
                replaced_by="error_logfile"),
    )),
    ("Statsd", "Metrics sent over UDP to a StatsD server.", (
        _Option("--statsd-host HOST:PORT", "statsd_host",
                "HOST:PORT of the StatsD server (default: send no metrics)."),
        _Option("--statsd-prefix PREFIX", "statsd_prefix",
                "Prefix of every metric name (a '.' is added after it)."),
    )),
    ("Process", "The pid file, unix socket ownership, worker processes and the reloader.", (
        _Option("-p/--pid PATH", "pid_path",
                "Write the server's process id to this file (removed on exit)."),
        _Option("-u/--user UID", "user",
                "User id to give unix socket files to (together with --group).", _count),
        _Option("-g/--group GID", "group",
                "Group id to give unix socket files to (together with --user).", _count),
        _Option("-m/--umask UMASK", "umask",
                "Umask for creating unix socket files: 022 and 0o22 are octal.", _umask),
        _Option("-D/--daemon", "daemon",
                "Make the worker processes daemonic (the default; set daemon = false in a "
                "configuration file if the application starts processes of its own).",
                action="store_true"),
        _Option("--reload", "use_reloader",
                "Restart the workers when a Python file changes (for development; needs at "
                "least one worker).", action="store_true"),
    )),
)
# fmt: on

_OPTIONS = tuple(
    option for _, _, options in _GROUPS for option in options if option.attribute is not None
)
"""The options that set a Config attribute, in the order they are applied."""


# -- the parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports a mistake as one line, without the usage text."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see '{self.prog} --help')\n")


class _VersionAction(argparse.Action):
    """``--version``: the version of each of the four distributions, one per line."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(_versions())
        parser.exit(0)


def _versions() -> str:
    lines = []
    for name in DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{name} {version}\n")
    python = ".".join(str(part) for part in sys.version_info[:3])
    return "".join(lines) + f"Python {python}\n"


_EPILOG = f"""\
Precedence: the defaults, then the -c configuration, then the flags given here.

Examples:
  {PROG} app:app
  {PROG} -w 4 -b 0.0.0.0:443 --certfile cert.pem --keyfile key.pem app:app
  {PROG} -c hypercorn.toml --log-level debug wsgi:mysite.wsgi:application

Exit status: 0 stopped cleanly, 1 configuration or start-up error, 2 command-line
error, 3 a worker failed to start, 130/143 stopped at once by a second signal."""


def _build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Serve an ASGI or WSGI application over HTTP/1.1, HTTP/2, HTTP/3 and\n"
        "WebSockets.",
        epilog=_EPILOG,
        usage="%(prog)s [OPTIONS] APPLICATION",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="Print the versions of the hypercorn distributions and exit.",
    )
    for index, (title, description, options) in enumerate(_GROUPS):
        group = parser.add_argument_group(title, description)
        if index == 0:  # the application goes first, in the first group
            group.add_argument(
                "application",
                metavar="APPLICATION",
                help="The application, as [asgi:|wsgi:]MODULE[:EXPRESSION]: MODULE is a "
                "dotted name or a file path, EXPRESSION a name (default: app), an attribute "
                "or a call such as 'create_app()'. E.g. app:app, examples/app.py.",
            )
        for option in options:
            help_text = option.help
            if option.attribute is not None and "{default}" in help_text:
                help_text = help_text.replace("{default}", _default(option.attribute))
            kwargs: dict[str, Any] = {"dest": option.dest, "help": help_text}
            if option.action == "store_true":
                kwargs["action"] = "store_true"
            else:
                kwargs.update(action=option.action, metavar=option.metavar)
                if option.convert is not None:
                    kwargs["type"] = option.convert
                if option.choices is not None:
                    kwargs["choices"] = option.choices
            group.add_argument(*option.flags, **kwargs)
    return parser


# -- configuration --------------------------------------------------------------------------


def _load_config(config_path: str | None) -> Config:
    """The configuration to start from: the defaults, or what ``-c`` names.

    ``python:MODULE`` or ``python:MODULE.OBJECT`` uses :meth:`Config.from_object`,
    ``file:PATH`` :meth:`Config.from_pyfile`, anything else is a TOML file for
    :meth:`Config.from_toml`. Their errors (:class:`ConfigError` and whatever a Python
    configuration raises) propagate.
    """
    if config_path is None:
        return Config()
    prefix, _, name = config_path.partition(":")
    if prefix in ("python", "file") and not name:
        what = "module" if prefix == "python" else "file"
        raise ConfigError(f"-c {config_path}: expected a {what} name after {prefix!r}")
    if prefix == "python":
        return Config.from_object(name)
    if prefix == "file":
        return Config.from_pyfile(name)
    return Config.from_toml(config_path)


def _config_error(config_path: str, error: Exception) -> str:
    """One line saying why the ``-c`` configuration could not be loaded."""
    if isinstance(error, ConfigError):
        message = str(error)
        prefix, _, rest = config_path.partition(":")
        named = rest if prefix in ("python", "file") else config_path
        if named not in message:
            message = f"{message} (in -c {config_path})"
    else:  # raised by the code of a Python configuration
        message = f"error in configuration {config_path!r}: {type(error).__name__}: {error}"
        frames = traceback.extract_tb(error.__traceback__)
        if frames and not isinstance(error, SyntaxError):  # a SyntaxError names its line
            message += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return " ".join(message.split())


def _warn_deprecated(flag: str, replacement: str) -> None:
    warnings.warn(
        f"{flag} is deprecated, use {replacement} instead", DeprecationWarning, stacklevel=2
    )


def _apply(config: Config, args: argparse.Namespace) -> None:
    """Set every option given on the command line on ``config``.

    A deprecated flag warns, and applies only when the flag that replaces it is not given.
    """
    given = vars(args)
    for option in _OPTIONS:
        if option.dest not in given:
            continue
        if option.replaced_by is not None:
            replacement = next(o for o in _OPTIONS if o.dest == option.replaced_by)
            _warn_deprecated(option.flags[0], replacement.flags[0])
            if replacement.dest in given:
                continue
        assert option.attribute is not None
        try:
            setattr(config, option.attribute, given[option.dest])
        except ConfigError as error:
            raise _UsageError(f"argument {'/'.join(option.flags)}: {error}") from error


def main(sys_args: list[str] | None = None) -> int:
    """Run the ``hypercorn`` command with ``sys_args`` (default: ``sys.argv[1:]``).

    Returns the exit status: 2 for a command-line mistake, 1 when the ``-c`` configuration
    cannot be loaded, 0 after ``--help`` or ``--version``, otherwise what
    :func:`hypercorn.run.run` returns.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if sys_args is None else sys_args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0  # --help, --version: 0

    # As with ``python -m``, modules in the current directory can be imported (a
    # ``python:settings`` configuration; the application's path is resolved there anyway).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    config_path: str | None = getattr(args, "config", None)
    try:
        config = _load_config(config_path)
    except Exception as error:
        assert config_path is not None  # the defaults always load
        return _fail(1, _config_error(config_path, error))
    config.application_path = args.application

    with warnings.catch_warnings():
        if not sys.warnoptions:
            # Python hides DeprecationWarning outside __main__; a user of the command
            # should still learn that a flag is deprecated.
            warnings.filterwarnings(
                "default", category=DeprecationWarning, module=re.escape(__name__)
            )
        try:
            _apply(config, args)
        except _UsageError as error:
            return _fail(2, f"{error} (see '{PROG} --help')")
    return run(config)


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
