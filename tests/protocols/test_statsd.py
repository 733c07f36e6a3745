"""hypercorn.statsd: the metrics StatsdLogger emits and their exact datagrams."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import pytest

from hypercorn import statsd
from hypercorn.config import Config
from hypercorn.logging import Logger
from hypercorn.statsd import (
    COUNTER_TYPE,
    GAUGE_TYPE,
    HISTOGRAM_TYPE,
    METRIC_VAR,
    MTYPE_VAR,
    VALUE_VAR,
    StatsdLogger,
    format_metric,
)
from hypercorn.typing import HTTPScope, ResponseSummary


class RecordingStatsdLogger(StatsdLogger):
    """A real transport-less subclass: keeps every datagram instead of sending it."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.sent: list[bytes] = []

    async def _socket_send(self, message: bytes) -> None:
        self.sent.append(message)


class FailingStatsdLogger(StatsdLogger):
    async def _socket_send(self, message: bytes) -> None:
        raise OSError("network is down")


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def error_logger(name: str) -> tuple[logging.Logger, ListHandler]:
    """A logger of our own, passed as ``errorlog`` so no global logger is touched."""
    logger = logging.getLogger(f"tests_statsd.{name}")
    logger.handlers = []
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, handler


def make_logger(
    name: str, prefix: str = "", tags: str = "", **options: Any
) -> tuple[RecordingStatsdLogger, ListHandler]:
    logger, handler = error_logger(name)
    config = Config()
    config.statsd_prefix = prefix
    config.dogstatsd_tags = tags
    config.errorlog = logger
    config.accesslog = None
    for option, value in options.items():
        setattr(config, option, value)
    return RecordingStatsdLogger(config), handler


SCOPE = cast(
    "HTTPScope",
    {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    },
)


def test_constants() -> None:
    assert (METRIC_VAR, VALUE_VAR, MTYPE_VAR) == ("metric", "value", "mtype")
    assert (GAUGE_TYPE, COUNTER_TYPE, HISTOGRAM_TYPE) == ("gauge", "counter", "histogram")
    assert issubclass(StatsdLogger, Logger)
    assert set(statsd.__all__) >= {"StatsdLogger", "METRIC_VAR", "format_metric"}


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("a.b", 3, "g"), {}, b"a.b:3|g"),
        (("a.b", 3, "g"), {"prefix": "app."}, b"app.a.b:3|g"),
        (("a.b", 1, "c"), {"sampling_rate": 1.0}, b"a.b:1|c|@1.0"),
        (("a.b", 1, "c"), {"sampling_rate": 0.25, "tags": "env:prod"}, b"a.b:1|c|@0.25|#env:prod"),
        (("t", 12.5, "ms"), {"tags": "a:1,b:2"}, b"t:12.5|ms|#a:1,b:2"),
        (("t", 1e-05, "ms"), {}, b"t:0.00001|ms"),
        (("t", 2.5e-9, "ms"), {}, b"t:0|ms"),
        (("t", 1e20, "g"), {}, b"t:100000000000000000000|g"),
        (("n", -4, "c"), {}, b"n:-4|c"),
    ],
)
def test_format_metric(
    args: tuple[str, float, str], kwargs: dict[str, Any], expected: bytes
) -> None:
    assert format_metric(*args, **kwargs) == expected


def test_format_metric_rejects_non_ascii_names() -> None:
    with pytest.raises(UnicodeEncodeError):
        format_metric("grüße", 1, "c")


@pytest.mark.parametrize(
    ("prefix", "tags", "expected_prefix", "suffix"),
    [
        ("", "", "", b""),
        ("app", "", "app.", b""),
        ("app.", "", "app.", b""),
        ("svc.web", "env:prod,team:x", "svc.web.", b"|#env:prod,team:x"),
        ("", "solo", "", b"|#solo"),
    ],
)
def test_metric_methods_wire_format(
    prefix: str, tags: str, expected_prefix: str, suffix: bytes
) -> None:
    log, _ = make_logger("wire", prefix=prefix, tags=tags)
    assert log.prefix == expected_prefix
    assert log.dogstatsd_tags == tags

    async def send_all() -> None:
        await log.gauge("workers", 4)
        await log.increment("hits", 1)
        await log.increment("hits", 2, sampling_rate=0.5)
        await log.decrement("slots", 3)
        await log.decrement("slots", 1, 0.1)
        await log.histogram("latency", 12.75)

    asyncio.run(send_all())
    p = expected_prefix.encode()
    assert log.sent == [
        p + b"workers:4|g" + suffix,
        p + b"hits:1|c|@1.0" + suffix,
        p + b"hits:2|c|@0.5" + suffix,
        p + b"slots:-3|c|@1.0" + suffix,
        p + b"slots:-1|c|@0.1" + suffix,
        p + b"latency:12.75|ms" + suffix,
    ]


@pytest.mark.parametrize(
    ("method", "metric", "level"),
    [
        ("critical", b"hypercorn.log.critical:1|c|@1.0", logging.CRITICAL),
        ("error", b"hypercorn.log.error:1|c|@1.0", logging.ERROR),
        ("warning", b"hypercorn.log.warning:1|c|@1.0", logging.WARNING),
        ("exception", b"hypercorn.log.exception:1|c|@1.0", logging.ERROR),
        ("info", None, logging.INFO),
        ("debug", None, logging.DEBUG),
    ],
)
def test_log_methods_log_and_count(method: str, metric: bytes | None, level: int) -> None:
    log, handler = make_logger(f"count_{method}", loglevel="DEBUG")
    asyncio.run(getattr(log, method)("message %s", 1))
    assert [(r.levelno, r.getMessage()) for r in handler.records] == [(level, "message 1")]
    assert log.sent == ([] if metric is None else [metric])


def test_counters_use_prefix_and_tags() -> None:
    log, _ = make_logger("count_tagged", prefix="web", tags="env:ci")
    asyncio.run(log.error("x"))
    assert log.sent == [b"web.hypercorn.log.error:1|c|@1.0|#env:ci"]


def test_counters_are_sent_when_the_error_log_is_off() -> None:
    log, _ = make_logger("count_off")
    log.error_logger = None
    asyncio.run(log.warning("x"))
    assert log.sent == [b"hypercorn.log.warning:1|c|@1.0"]


def test_access_sends_duration_requests_and_status(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    log, _ = make_logger("access", prefix="p", accesslog=str(access))
    summary: ResponseSummary = {"status": 404, "headers": []}
    asyncio.run(log.access(SCOPE, summary, 0.0125))
    assert log.sent == [
        b"p.hypercorn.request.duration:12.5|ms",
        b"p.hypercorn.requests:1|c|@1.0",
        b"p.hypercorn.request.status.404:1|c|@1.0",
    ]
    assert '"GET / 1.1" 404 -' in access.read_text(encoding="utf-8")


def test_access_without_response_counts_no_status() -> None:
    log, _ = make_logger("access_none")
    asyncio.run(log.access(SCOPE, None, 2.0))
    assert log.sent == [b"hypercorn.request.duration:2000.0|ms", b"hypercorn.requests:1|c|@1.0"]


@pytest.mark.parametrize(
    ("mtype", "value", "datagram"),
    [
        (GAUGE_TYPE, 7, b"jobs:7|g"),
        (GAUGE_TYPE, 0, b"jobs:0|g"),
        (COUNTER_TYPE, 2, b"jobs:2|c|@1.0"),
        (HISTOGRAM_TYPE, 3.5, b"jobs:3.5|ms"),
    ],
)
def test_log_extra_sends_a_metric(mtype: str, value: float, datagram: bytes) -> None:
    log, handler = make_logger("extra")
    extra = {METRIC_VAR: "jobs", VALUE_VAR: value, MTYPE_VAR: mtype}
    asyncio.run(log.log(logging.INFO, "queue %s", "size", extra=extra))
    assert log.sent == [datagram]
    (record,) = handler.records
    assert record.getMessage() == "queue size"
    assert record.__dict__[METRIC_VAR] == "jobs"


@pytest.mark.parametrize(
    "extra",
    [
        None,
        {METRIC_VAR: "jobs", VALUE_VAR: 1},
        {METRIC_VAR: "jobs", MTYPE_VAR: GAUGE_TYPE},
        {METRIC_VAR: "", VALUE_VAR: 1, MTYPE_VAR: GAUGE_TYPE},
        {METRIC_VAR: "jobs", VALUE_VAR: 1, MTYPE_VAR: "set"},
    ],
)
def test_log_without_a_complete_metric_sends_nothing(extra: dict[str, Any] | None) -> None:
    log, handler = make_logger("extra_none")
    asyncio.run(log.log(logging.WARNING, "plain", extra=extra))
    assert log.sent == []
    assert [r.getMessage() for r in handler.records] == ["plain"]


def test_log_with_empty_message_only_sends_the_metric() -> None:
    log, handler = make_logger("extra_empty")
    extra = {METRIC_VAR: "m", VALUE_VAR: 1, MTYPE_VAR: COUNTER_TYPE}
    asyncio.run(log.log(logging.INFO, "", extra=extra))
    assert log.sent == [b"m:1|c|@1.0"]
    assert handler.records == []


def test_log_failure_becomes_a_warning() -> None:
    logger, handler = error_logger("failing")
    config = Config()
    config.errorlog = logger
    log = FailingStatsdLogger(config)
    extra = {METRIC_VAR: "m", VALUE_VAR: 1, MTYPE_VAR: GAUGE_TYPE}
    asyncio.run(log.log(logging.INFO, "hello", extra=extra))
    (record,) = handler.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "Failed to log to statsd"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], OSError)


def test_base_class_cannot_send() -> None:
    logger, _ = error_logger("base")
    config = Config()
    config.errorlog = logger
    log = StatsdLogger(config)
    with pytest.raises(NotImplementedError):
        asyncio.run(log.increment("x", 1))


@pytest.mark.parametrize(
    ("option", "value"), [("statsd_prefix", "grüße"), ("dogstatsd_tags", "é")]
)
def test_non_ascii_options_are_rejected(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{option}="):
        make_logger("ascii", **{option: value})
