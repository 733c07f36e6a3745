"""hypercorn.logging: log targets, logging configuration files, access-log atoms."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from hypercorn.config import Config
from hypercorn.logging import AccessLogAtoms, LogConfigError, Logger, _create_logger
from hypercorn.typing import HTTPScope, ResponseSummary, WWWScope

HANDLER_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(?P<pid>\d+)\] \[(?P<level>[A-Z]+)\] "
    r"(?P<message>.*)$"
)
CLF_TIME = r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo what a test did to the process-wide logging state, closing new handlers."""
    manager = logging.Logger.manager
    loggers = [logging.root] + [
        logger for logger in manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    saved = {
        logger.name: (
            logger,
            list(logger.handlers),
            logger.level,
            logger.propagate,
            logger.disabled,
        )
        for logger in loggers
    }
    yield
    every = [logging.root] + [
        logger for logger in manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in every:
        before = saved.get(logger.name)
        old_handlers = before[1] if before is not None else []
        for handler in list(logger.handlers):
            if handler not in old_handlers:
                logger.removeHandler(handler)
                handler.close()
        if before is None:
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
        else:
            _, handlers, level, propagate, disabled = before
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def make_config(**options: Any) -> Config:
    config = Config()
    for name, value in options.items():
        setattr(config, name, value)
    return config


class ListHandler(logging.Handler):
    """Keeps the formatted messages it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def list_logger(name: str) -> tuple[logging.Logger, ListHandler]:
    logger = logging.getLogger(name)
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, handler


def basic(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


BASE_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "https",
    "path": "/a b/ü",
    "raw_path": b"/a%20b/%C3%BC",
    "query_string": b"x=1&y=2",
    "root_path": "",
    "headers": [
        (b"Host", b"example.com"),
        (b"User-Agent", b"curl/8"),
        (b"Referer", b"https://ref.example/"),
        (b"X-Multi", b"1"),
        (b"x-multi", b"2"),
        (b"authorization", basic(b"alice:secret")),
    ],
    "client": ("192.0.2.1", 4321),
    "server": ("198.51.100.7", 443),
    "state": {},
    "extensions": {},
}
RESPONSE: ResponseSummary = {
    "status": 201,
    "headers": [(b"content-length", b"12"), (b"Content-Type", b"text/plain")],
}


def scope(**changes: Any) -> HTTPScope:
    values = {**BASE_SCOPE, **changes}
    return cast("HTTPScope", {key: value for key, value in values.items() if value is not ...})


def websocket_scope(**changes: Any) -> WWWScope:
    values = {**BASE_SCOPE, "type": "websocket", "subprotocols": [], **changes}
    del values["method"]
    return cast("WWWScope", {key: value for key, value in values.items() if value is not ...})


def response(
    status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> ResponseSummary:
    return {"status": status, "headers": headers or []}


# --------------------------------------------------------------------------------------
# _create_logger
# --------------------------------------------------------------------------------------


def test_create_logger_returns_a_logger_target_unchanged() -> None:
    target = logging.getLogger("tests_logging.given")
    target.setLevel(logging.ERROR)
    result = _create_logger("hypercorn.error", target, "DEBUG", io.StringIO())
    assert result is target
    assert target.level == logging.ERROR
    assert target.handlers == []


@pytest.mark.parametrize("target", [None, ""])
def test_create_logger_with_no_target_is_off(target: str | None) -> None:
    assert _create_logger("hypercorn.error", target, "INFO", io.StringIO()) is None


def test_create_logger_dash_writes_to_the_default_stream() -> None:
    stream = io.StringIO()
    logger = _create_logger("tests_logging.stream", "-", "info", stream, propagate=False)
    assert logger is not None
    assert logger.name == "tests_logging.stream"
    assert logger.level == logging.INFO
    assert logger.propagate is False
    logger.debug("hidden")
    logger.info("shown %s", 1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    match = HANDLER_LINE.match(lines[0])
    assert match is not None
    assert match["pid"] == str(os.getpid())
    assert match["level"] == "INFO"
    assert match["message"] == "shown 1"


def test_create_logger_path_appends_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_text("existing\n", encoding="utf-8")
    logger = _create_logger("tests_logging.file", str(path), "WARNING", io.StringIO())
    assert logger is not None
    assert logger.propagate is True
    logger.info("hidden")
    logger.warning("grüße")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "existing"
    assert len(lines) == 2
    match = HANDLER_LINE.match(lines[1])
    assert match is not None
    assert (match["level"], match["message"]) == ("WARNING", "grüße")


def test_create_logger_level_none_keeps_the_level() -> None:
    logging.getLogger("tests_logging.level").setLevel(logging.ERROR)
    logger = _create_logger("tests_logging.level", "-", None, io.StringIO())
    assert logger is not None
    assert logger.level == logging.ERROR


def test_create_logger_twice_replaces_and_closes_its_own_handler(tmp_path: Path) -> None:
    first_path, second_path = tmp_path / "first.log", tmp_path / "second.log"
    logger = _create_logger("tests_logging.twice", str(first_path), "INFO", io.StringIO())
    assert logger is not None
    (first_handler,) = logger.handlers
    assert isinstance(first_handler, logging.FileHandler)
    again = _create_logger("tests_logging.twice", str(second_path), "INFO", io.StringIO())
    assert again is logger
    assert len(logger.handlers) == 1
    assert first_handler not in logger.handlers
    assert first_handler.stream is None  # closed
    logger.info("once")
    assert first_path.read_text(encoding="utf-8") == ""
    assert second_path.read_text(encoding="utf-8").count("once") == 1


def test_create_logger_detaches_but_does_not_close_foreign_handlers(tmp_path: Path) -> None:
    foreign = logging.FileHandler(tmp_path / "foreign.log", encoding="utf-8")
    try:
        logging.getLogger("tests_logging.foreign").addHandler(foreign)
        logger = _create_logger("tests_logging.foreign", "-", "INFO", io.StringIO())
        assert logger is not None
        assert foreign not in logger.handlers
        assert foreign.stream is not None
    finally:
        foreign.close()


@pytest.mark.parametrize(
    ("level", "expected"),
    [("debug", logging.DEBUG), ("Warning", logging.WARNING), ("CRITICAL", 50), ("15", 15)],
)
def test_create_logger_level_names(level: str, expected: int) -> None:
    logger = _create_logger("tests_logging.levels", "-", level, io.StringIO())
    assert logger is not None
    assert logger.level == expected


def test_create_logger_rejects_an_unknown_level() -> None:
    with pytest.raises(LogConfigError, match=r"loglevel='LOUD'"):
        _create_logger("tests_logging.levels", "-", "LOUD", io.StringIO())


# --------------------------------------------------------------------------------------
# Logger targets and methods
# --------------------------------------------------------------------------------------


def test_logger_defaults_log_errors_to_stderr_and_no_access(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = Logger(Config())
    assert log.access_logger is None
    assert log.error_logger is logging.getLogger("hypercorn.error")
    assert log.error_logger.propagate is True
    assert log.error_logger.level == logging.INFO
    asyncio.run(log.access(scope(), RESPONSE, 0.1))
    asyncio.run(log.info("started %s", "ok"))
    captured = capsys.readouterr()
    assert captured.out == ""
    match = HANDLER_LINE.match(captured.err.rstrip("\n"))
    assert match is not None
    assert match["message"] == "started ok"


def test_logger_dash_targets_use_stdout_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = Logger(make_config(accesslog="-", errorlog="-"))
    assert log.access_logger is logging.getLogger("hypercorn.access")
    assert log.access_logger.propagate is False
    asyncio.run(log.access(scope(), RESPONSE, 0.1))
    asyncio.run(log.warning("careful"))
    captured = capsys.readouterr()
    assert '"POST /a b/ü 1.1" 201 12' in captured.out
    assert "careful" not in captured.out
    assert "[WARNING] careful" in captured.err
    assert "POST" not in captured.err


def test_logger_file_targets(tmp_path: Path) -> None:
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    log = Logger(make_config(accesslog=str(access), errorlog=str(errors), loglevel="debug"))
    asyncio.run(log.access(scope(), RESPONSE, 0.25))
    asyncio.run(log.debug("dbg"))
    access_lines = access.read_text(encoding="utf-8").splitlines()
    error_lines = errors.read_text(encoding="utf-8").splitlines()
    assert len(access_lines) == 1
    assert access_lines[0].endswith('"POST /a b/ü 1.1" 201 12 "https://ref.example/" "curl/8"')
    assert len(error_lines) == 1
    assert error_lines[0].endswith("[DEBUG] dbg")


def test_logger_uses_given_loggers_as_they_are() -> None:
    access, access_records = list_logger("tests_logging.my_access")
    errors, error_records = list_logger("tests_logging.my_errors")
    log = Logger(make_config(accesslog=access, errorlog=errors, loglevel="ERROR"))
    assert log.access_logger is access
    assert log.error_logger is errors
    assert errors.level == logging.DEBUG  # loglevel is not applied to a given logger
    asyncio.run(log.access(scope(), RESPONSE, 0.0))
    asyncio.run(log.debug("detail"))
    assert len(access_records.messages) == 1
    assert access_records.messages[0].startswith("192.0.2.1:4321 - - [")
    assert error_records.messages == ["detail"]


@pytest.mark.parametrize(
    ("method", "level"),
    [
        ("critical", "CRITICAL"),
        ("error", "ERROR"),
        ("warning", "WARNING"),
        ("info", "INFO"),
        ("debug", "DEBUG"),
        ("exception", "ERROR"),
    ],
)
def test_logger_methods_log_at_their_level(tmp_path: Path, method: str, level: str) -> None:
    path = tmp_path / "error.log"
    log = Logger(make_config(errorlog=str(path), loglevel="DEBUG"))
    asyncio.run(getattr(log, method)("value %s", 7))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(f"[{level}] value 7")
    # exception() outside an except block: the stdlib adds "NoneType: None".
    assert len(lines) == (2 if method == "exception" else 1)


def test_logger_log_takes_a_numeric_level(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    log = Logger(make_config(errorlog=str(path), loglevel="INFO"))
    asyncio.run(log.log(logging.DEBUG, "hidden"))
    asyncio.run(log.log(logging.ERROR, "shown %d", 3, extra={"custom": 1}))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert line.endswith("[ERROR] shown 3")


def test_logger_exception_includes_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    log = Logger(make_config(errorlog=str(path)))

    async def fail() -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            await log.exception("request failed")

    asyncio.run(fail())
    text = path.read_text(encoding="utf-8")
    assert "[ERROR] request failed" in text
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom" in text


def test_logger_methods_do_nothing_when_logs_are_off(capsys: pytest.CaptureFixture[str]) -> None:
    log = Logger(make_config(accesslog=None, errorlog=None))
    assert log.access_logger is None
    assert log.error_logger is None

    async def everything() -> None:
        await log.access(scope(), RESPONSE, 1.0)
        await log.critical("x")
        await log.error("x")
        await log.warning("x")
        await log.info("x")
        await log.debug("x")
        await log.exception("x")
        await log.log(logging.ERROR, "x")

    asyncio.run(everything())
    assert capsys.readouterr() == ("", "")


def test_logger_handlers_and_delegation(tmp_path: Path) -> None:
    log = Logger(make_config(errorlog=str(tmp_path / "e.log"), loglevel="WARNING"))
    assert log.handlers is logging.getLogger("hypercorn.error").handlers
    assert len(log.handlers) == 1
    assert log.level == logging.WARNING  # delegated to the error logger
    log.setLevel(logging.ERROR)
    assert logging.getLogger("hypercorn.error").level == logging.ERROR
    with pytest.raises(AttributeError):
        _ = log.no_such_attribute


def test_logger_handlers_is_empty_when_the_error_log_is_off() -> None:
    log = Logger(make_config(errorlog=None))
    assert log.handlers == []
    with pytest.raises(AttributeError, match="errorlog is None"):
        log.setLevel(logging.DEBUG)


def test_logger_copy_does_not_recurse(tmp_path: Path) -> None:
    log = Logger(make_config(errorlog=str(tmp_path / "e.log")))
    duplicate = copy.copy(log)
    assert duplicate.error_logger is log.error_logger


def test_several_loggers_for_one_target_write_each_line_once(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    first = Logger(make_config(errorlog=str(path)))
    (first_handler,) = logging.getLogger("hypercorn.error").handlers
    second = Logger(make_config(errorlog=str(path)))
    assert isinstance(first_handler, logging.FileHandler)
    assert first_handler.stream is None  # the replaced file handler was closed
    asyncio.run(first.info("one"))
    asyncio.run(second.info("two"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.rsplit("] ", 1)[1] for line in lines] == ["one", "two"]


def test_access_default_format_line(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    config = make_config(accesslog=str(path))
    assert config.access_log_format == (
        '%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    )
    asyncio.run(Logger(config).access(scope(), RESPONSE, 0.5))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    match = HANDLER_LINE.match(line)
    assert match is not None
    assert match["level"] == "INFO"
    assert re.fullmatch(
        rf'192\.0\.2\.1:4321 - - {CLF_TIME} "POST /a b/ü 1\.1" 201 12 '
        r'"https://ref\.example/" "curl/8"',
        match["message"],
    )


def test_access_custom_format_and_no_response(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    config = make_config(accesslog=str(path), access_log_format="%(m)s %(U)s -> %(s)s %(st)s")
    asyncio.run(Logger(config).access(scope(), None, 0.5))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert line.endswith("[INFO] POST /a b/ü -> - -")


class CountingLogger(Logger):
    """Overrides the atoms() hook: adds an atom and counts calls."""

    calls = 0

    def atoms(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> Mapping[str, str]:
        CountingLogger.calls += 1
        atoms = AccessLogAtoms(request, response, request_time)
        atoms["tenant"] = "acme"
        return atoms


def test_access_uses_the_atoms_override(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    config = make_config(accesslog=str(path), access_log_format="%(tenant)s %(s)s")
    CountingLogger.calls = 0
    asyncio.run(CountingLogger(config).access(scope(), RESPONSE, 0.5))
    assert path.read_text(encoding="utf-8").splitlines()[0].endswith("[INFO] acme 201")
    assert CountingLogger.calls == 1


def test_access_computes_nothing_below_info(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    config = make_config(accesslog=str(path), loglevel="WARNING")
    CountingLogger.calls = 0
    asyncio.run(CountingLogger(config).access(scope(), RESPONSE, 0.5))
    assert CountingLogger.calls == 0
    assert path.read_text(encoding="utf-8") == ""


# --------------------------------------------------------------------------------------
# logconfig / logconfig_dict
# --------------------------------------------------------------------------------------


def dict_config(path: Path, tag: str) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": f"{tag} %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(path),
                "formatter": "plain",
                "encoding": "utf-8",
            }
        },
        "loggers": {
            "hypercorn.error": {"level": "DEBUG", "handlers": ["file"], "propagate": False}
        },
    }


INI_CONFIG = """\
[loggers]
keys=root,error

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_error]
level=DEBUG
handlers=file
qualname=hypercorn.error
propagate=0

[handler_file]
class=FileHandler
formatter=plain
args=(r'%(here)s/ini.log', 'a', 'utf-8')

[formatter_plain]
format=INI %(levelname)s %(message)s
"""

TOML_CONFIG = """\
version = 1

[formatters.plain]
format = "TOML %(levelname)s %(message)s"

[handlers.file]
class = "logging.FileHandler"
filename = {filename}
formatter = "plain"
encoding = "utf-8"

[loggers."hypercorn.error"]
level = "DEBUG"
handlers = ["file"]
propagate = false
"""


def write_logconfig(tmp_path: Path, kind: str) -> tuple[str, Path]:
    """Write a logging configuration of ``kind``; return the logconfig value and log path."""
    if kind == "ini":
        config_path = tmp_path / "logging.ini"
        config_path.write_text(INI_CONFIG, encoding="utf-8")
        return str(config_path), tmp_path / "ini.log"
    log_path = tmp_path / f"{kind}.log"
    if kind == "json":
        config_path = tmp_path / "logging.json"
        config_path.write_text(json.dumps(dict_config(log_path, "JSON")), encoding="utf-8")
    else:
        config_path = tmp_path / "logging.toml"
        text = TOML_CONFIG.format(filename=json.dumps(str(log_path)))
        config_path.write_text(text, encoding="utf-8")
    return f"{kind}:{config_path}", log_path


@pytest.mark.parametrize("kind", ["ini", "json", "toml"])
def test_logconfig_files_configure_the_error_logger(tmp_path: Path, kind: str) -> None:
    logconfig, log_path = write_logconfig(tmp_path, kind)
    # loglevel INFO would hide DEBUG: seeing it proves the file's configuration applied.
    log = Logger(make_config(logconfig=logconfig, loglevel="INFO"))
    asyncio.run(log.debug("configured"))
    assert log_path.read_text(encoding="utf-8") == f"{kind.upper()} DEBUG configured\n"


def test_logconfig_ini_leaves_other_loggers_enabled(tmp_path: Path) -> None:
    bystander = logging.getLogger("tests_logging.bystander")
    logconfig, _ = write_logconfig(tmp_path, "ini")
    Logger(make_config(logconfig=logconfig))
    assert bystander.disabled is False


def test_logconfig_dict_configures_the_error_logger(tmp_path: Path) -> None:
    log_path = tmp_path / "dict.log"
    log = Logger(make_config(logconfig_dict=dict_config(log_path, "DICT")))
    asyncio.run(log.debug("configured"))
    assert log_path.read_text(encoding="utf-8") == "DICT DEBUG configured\n"


def test_logconfig_wins_over_logconfig_dict(tmp_path: Path) -> None:
    logconfig, log_path = write_logconfig(tmp_path, "json")
    ignored = tmp_path / "ignored.log"
    log = Logger(make_config(logconfig=logconfig, logconfig_dict=dict_config(ignored, "DICT")))
    asyncio.run(log.info("x"))
    assert log_path.read_text(encoding="utf-8") == "JSON INFO x\n"
    assert not ignored.exists()


@pytest.mark.parametrize(("disable", "expected"), [(None, False), (False, False), (True, True)])
def test_dict_configs_keep_existing_loggers_unless_told(
    tmp_path: Path, disable: bool | None, expected: bool
) -> None:
    bystander = logging.getLogger("tests_logging.bystander")
    settings = dict_config(tmp_path / "dict.log", "DICT")
    if disable is not None:
        settings["disable_existing_loggers"] = disable
    Logger(make_config(logconfig_dict=settings))
    assert bystander.disabled is expected


@pytest.mark.parametrize(
    ("kind", "content", "reason"),
    [
        ("json", None, "no such file"),
        ("toml", None, "no such file"),
        ("ini", None, "no such file"),
        ("json", "{not json", "cannot read the JSON file"),
        ("json", "[1, 2]", "must be an object"),
        ("json", '{"handlers": {}}', "invalid logging configuration"),
        ("toml", "a = = 1", "cannot read the TOML file"),
        ("toml", 'version = 1\n[handlers.x]\nclass = "no.such.Handler"\n', "invalid logging"),
        ("ini", "", "invalid ini logging configuration"),
        ("ini", "[loggers]\nkeys=root\n", "invalid ini logging configuration"),
    ],
)
def test_logconfig_errors_name_the_option_and_the_file(
    tmp_path: Path, kind: str, content: str | None, reason: str
) -> None:
    path = tmp_path / f"config.{kind}"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    logconfig = str(path) if kind == "ini" else f"{kind}:{path}"
    with pytest.raises(LogConfigError) as info:
        Logger(make_config(logconfig=logconfig))
    message = str(info.value)
    assert message.startswith(f"logconfig={logconfig!r}")
    assert reason in message
    assert repr(str(path)) in message


def test_logconfig_dict_errors_name_the_option() -> None:
    with pytest.raises(LogConfigError, match=r"^logconfig_dict is invalid"):
        Logger(make_config(logconfig_dict={"version": 99}))


def test_unopenable_log_file_names_the_option(tmp_path: Path) -> None:
    target = str(tmp_path / "missing-dir" / "access.log")
    with pytest.raises(LogConfigError, match=r"^accesslog=") as info:
        Logger(make_config(accesslog=target))
    assert isinstance(info.value.__cause__, OSError)


def test_bad_access_log_format_is_reported() -> None:
    with pytest.raises(LogConfigError, match=r"^access_log_format="):
        Logger(make_config(access_log_format="%(h)s %(r"))


def test_bad_loglevel_is_reported() -> None:
    with pytest.raises(LogConfigError, match=r"^loglevel="):
        Logger(make_config(loglevel="CHATTY"))


# --------------------------------------------------------------------------------------
# AccessLogAtoms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "192.0.2.1:4321"),
        ("l", "-"),
        ("u", "alice"),
        ("r", "POST /a b/ü 1.1"),
        ("R", "POST /a b/ü?x=1&y=2 1.1"),
        ("s", "201"),
        ("st", "Created"),
        ("S", "https"),
        ("m", "POST"),
        ("U", "/a b/ü"),
        ("Uq", "/a b/ü?x=1&y=2"),
        ("q", "x=1&y=2"),
        ("H", "1.1"),
        ("b", "12"),
        ("B", "12"),
        ("f", "https://ref.example/"),
        ("a", "curl/8"),
        ("T", "1"),
        ("D", "1500000"),
        ("L", "1.500000"),
        ("p", "<{pid}>"),  # the test's own pid, filled in below (ids must be stable)
        ("{host}i", "example.com"),
        ("{Host}i", "example.com"),
        ("{USER-AGENT}i", "curl/8"),
        ("{x-multi}i", "1, 2"),
        ("{content-type}o", "text/plain"),
        ("{Content-Length}o", "12"),
        ("{absent}i", "-"),
        ("{absent}o", "-"),
        ("{hypercorn_tests_surely_unset}e", "-"),
        ("zz", "-"),
        ("", "-"),
        ("{", "-"),
    ],
)
def test_atoms_table(atom: str, expected: str) -> None:
    atoms = AccessLogAtoms(scope(), RESPONSE, 1.5)
    assert atoms[atom] == expected.replace("{pid}", str(os.getpid()))


def test_atoms_time_is_clf_local_time() -> None:
    assert re.fullmatch(CLF_TIME, AccessLogAtoms(scope(), RESPONSE, 0.0)["t"])


def test_atoms_is_a_dict_of_strings() -> None:
    atoms = AccessLogAtoms(scope(), RESPONSE, 2.0)
    assert isinstance(atoms, dict)
    assert all(isinstance(value, str) for value in atoms.values())
    assert "{host}i" in atoms


def test_atoms_environment_lookup_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERCORN_TESTS_ATOM", "from-env")
    atoms = AccessLogAtoms(scope(), RESPONSE, 0.0)
    assert atoms["{hypercorn_tests_atom}e"] == "from-env"
    assert atoms["{Hypercorn_Tests_Atom}e"] == "from-env"
    assert "%(h)s %({hypercorn_tests_atom}e)s" % atoms == "192.0.2.1:4321 from-env"  # noqa: UP031


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (("192.0.2.1", 80), "192.0.2.1:80"),
        (("2001:db8::1", 443), "[2001:db8::1]:443"),
        (("/run/app.sock",), "/run/app.sock"),
        (None, "-"),
        (["10.0.0.1", 1234], "10.0.0.1:1234"),
    ],
)
def test_atoms_remote_address(client: Any, expected: str) -> None:
    assert AccessLogAtoms(scope(client=client), RESPONSE, 0.0)["h"] == expected


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, "-"),
        (basic(b"alice:secret"), "alice"),
        (b"basic " + base64.b64encode(b"bob:"), "bob"),
        (basic(b"carol:pa:ss"), "carol"),
        (basic("jürgen:x".encode()), "jürgen"),
        (basic(b"no-colon"), "-"),
        (basic(b":only-password"), "-"),
        (basic(b"\xff\xfe:x"), "-"),
        (basic(b"eve\nforged:x"), "eve\\x0aforged"),
        (b"Basic !!!notbase64", "-"),
        (b"Bearer abc.def", "-"),
        (b"Basic", "-"),
    ],
)
def test_atoms_user_from_basic_authorization(authorization: bytes | None, expected: str) -> None:
    headers = [] if authorization is None else [(b"Authorization", authorization)]
    assert AccessLogAtoms(scope(headers=headers), RESPONSE, 0.0)["u"] == expected


@pytest.mark.parametrize(
    ("summary", "b", "B"),
    [
        (response(200, [(b"content-length", b"12")]), "12", "12"),
        (response(200, [(b"content-length", b"0")]), "-", "0"),
        (response(200, []), "-", "-"),
        (None, "-", "-"),
    ],
)
def test_atoms_response_size(summary: ResponseSummary | None, b: str, B: str) -> None:
    atoms = AccessLogAtoms(scope(), summary, 0.0)
    assert (atoms["b"], atoms["B"]) == (b, B)


@pytest.mark.parametrize(
    ("summary", "s", "st"),
    [
        (response(404), "404", "Not Found"),
        (response(101), "101", "Switching Protocols"),
        (response(599), "599", "<???599???>"),
        (None, "-", "-"),
    ],
)
def test_atoms_status(summary: ResponseSummary | None, s: str, st: str) -> None:
    atoms = AccessLogAtoms(scope(), summary, 0.0)
    assert (atoms["s"], atoms["st"]) == (s, st)
    assert atoms["{content-length}o"] == ("12" if summary is RESPONSE else "-")


def test_atoms_without_query_string() -> None:
    atoms = AccessLogAtoms(scope(query_string=b""), RESPONSE, 0.0)
    assert (atoms["q"], atoms["Uq"], atoms["R"]) == ("", "/a b/ü", "POST /a b/ü 1.1")


def test_atoms_without_optional_headers() -> None:
    atoms = AccessLogAtoms(scope(headers=[]), RESPONSE, 0.0)
    assert (atoms["f"], atoms["a"], atoms["u"]) == ("-", "-", "-")


@pytest.mark.parametrize(
    ("changes", "m", "H", "r"),
    [
        ({"http_version": "1.1", "scheme": "wss"}, "GET", "1.1", "GET /ws 1.1"),
        ({"http_version": "2"}, "GET", "2", "GET /ws 2"),
        ({"http_version": ...}, "GET", "ws", "GET /ws ws"),
    ],
)
def test_atoms_websocket(changes: dict[str, Any], m: str, H: str, r: str) -> None:
    request = websocket_scope(path="/ws", query_string=b"", **changes)
    atoms = AccessLogAtoms(request, response(101), 0.0)
    assert (atoms["m"], atoms["H"], atoms["r"]) == (m, H, r)


@pytest.mark.parametrize(("version", "expected"), [("2", "GET / 2"), ("3", "GET / 3")])
def test_atoms_http_versions(version: str, expected: str) -> None:
    request = scope(http_version=version, method="GET", path="/", query_string=b"")
    assert AccessLogAtoms(request, RESPONSE, 0.0)["r"] == expected


@pytest.mark.parametrize(
    ("request_time", "T", "D", "L"),
    [
        (0.0, "0", "0", "0.000000"),
        (0.000123, "0", "123", "0.000123"),
        (2.75, "2", "2750000", "2.750000"),
    ],
)
def test_atoms_request_time(request_time: float, T: str, D: str, L: str) -> None:
    atoms = AccessLogAtoms(scope(), RESPONSE, request_time)
    assert (atoms["T"], atoms["D"], atoms["L"]) == (T, D, L)


def test_atoms_escape_control_characters_from_the_request() -> None:
    request = scope(
        path="/a\nb",
        query_string=b"q=\r\x1b",
        headers=[(b"user-agent", b"evil\x7f"), (b"x-bin", b"\xff")],
    )
    atoms = AccessLogAtoms(request, RESPONSE, 0.0)
    assert atoms["U"] == "/a\\x0ab"
    assert atoms["q"] == "q=\\x0d\\x1b"
    assert atoms["a"] == "evil\\x7f"
    assert atoms["{x-bin}i"] == "\xff"  # latin-1, printable


def test_atoms_undecodable_query_string() -> None:
    assert AccessLogAtoms(scope(query_string=b"a=\xff"), RESPONSE, 0.0)["q"] == "a=\\xff"
