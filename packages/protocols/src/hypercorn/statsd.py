"""Statsd metrics on top of :class:`hypercorn.logging.Logger`.

:class:`StatsdLogger` logs like its base class and also counts log messages, requests and
response statuses, and times requests, as statsd datagrams such as
``hypercorn.requests:1|c|@1.0``. Building the datagrams is pure (:func:`format_metric`);
sending them is left to the workers: ``hypercorn.asyncio.statsd`` and
``hypercorn.trio.statsd`` subclass :class:`StatsdLogger` and implement
:meth:`StatsdLogger._socket_send` over UDP to ``config.statsd_host``. :class:`~hypercorn.
config.Config` switches ``logger_class`` to such a subclass when ``statsd_host`` is set.

Metrics (each name gets the ``statsd_prefix``):

==================================  =========  ============================================
metric                              type       when
==================================  =========  ============================================
``hypercorn.log.critical``          counter    each ``critical`` message
``hypercorn.log.error``             counter    each ``error`` message
``hypercorn.log.warning``           counter    each ``warning`` message
``hypercorn.log.exception``         counter    each ``exception`` message
``hypercorn.request.duration``      histogram  each request, in milliseconds
``hypercorn.requests``              counter    each request
``hypercorn.request.status.<code>`` counter    each response, by status code
==================================  =========  ============================================

Any ``log`` call can also emit a metric of its own, through ``extra``:
``await config.log.log(logging.INFO, "", extra={METRIC_VAR: "jobs", VALUE_VAR: 3,
MTYPE_VAR: GAUGE_TYPE})``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypercorn.logging import Logger

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import ResponseSummary, WWWScope

__all__ = (
    "COUNTER_TYPE",
    "GAUGE_TYPE",
    "HISTOGRAM_TYPE",
    "METRIC_VAR",
    "MTYPE_VAR",
    "VALUE_VAR",
    "StatsdLogger",
    "format_metric",
)

#: Key of ``extra`` naming the metric in :meth:`StatsdLogger.log`.
METRIC_VAR = "metric"
#: Key of ``extra`` holding the metric's value.
VALUE_VAR = "value"
#: Key of ``extra`` holding the metric's type: one of the three ``*_TYPE`` values below.
MTYPE_VAR = "mtype"
GAUGE_TYPE = "gauge"
COUNTER_TYPE = "counter"
HISTOGRAM_TYPE = "histogram"


def _number(value: float) -> str:
    """A number as statsd servers parse it: never in exponent notation."""
    text = str(value)
    if "e" in text:  # only finite floats are written with an exponent
        text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text


def _metric_line(
    name: str, value: float, metric_type: str, prefix: str, sampling_rate: float | None
) -> str:
    line = f"{prefix}{name}:{_number(value)}|{metric_type}"
    if sampling_rate is not None:
        line = f"{line}|@{sampling_rate}"
    return line


def _encode(line: str, tags: str) -> bytes:
    if tags:
        line = f"{line}|#{tags}"
    return line.encode("ascii")


def format_metric(
    name: str,
    value: float,
    metric_type: str,
    *,
    prefix: str = "",
    sampling_rate: float | None = None,
    tags: str = "",
) -> bytes:
    """Encode one statsd datagram: ``<prefix><name>:<value>|<type>[|@<rate>][|#<tags>]``.

    ``metric_type`` is the wire type (``g``, ``c`` or ``ms``); ``tags`` are DogStatsD tags
    (``"env:prod,region:eu"``), appended only when non-empty. Floats are never written in
    exponent notation. The result is ASCII; a non-ASCII name raises
    :class:`UnicodeEncodeError`. :class:`StatsdLogger` sends exactly these bytes.
    """
    return _encode(_metric_line(name, value, metric_type, prefix, sampling_rate), tags)


class StatsdLogger(Logger):
    """A :class:`~hypercorn.logging.Logger` that also sends statsd metrics.

    ``prefix`` is ``config.statsd_prefix`` with a ``.`` added when it is non-empty and does
    not end with one; ``dogstatsd_tags`` is ``config.dogstatsd_tags``. Both must be ASCII
    (a :class:`ValueError` naming the option is raised otherwise, rather than failing on
    every datagram later).

    This class builds datagrams but cannot send them: subclasses implement
    :meth:`_socket_send`.

    Differences from Hypercorn, all deliberate: every counter is awaited (Hypercorn forgot
    to await two of them, so ``error`` and ``warning`` were never counted); ``access``
    accepts ``response=None`` and then counts no status; a metric passed through ``log``
    is sent when its value is 0 (Hypercorn skipped falsy values).
    """

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.dogstatsd_tags: str = config.dogstatsd_tags
        self.prefix: str = config.statsd_prefix
        if self.prefix and not self.prefix.endswith("."):
            self.prefix += "."
        for option, value in (
            ("statsd_prefix", self.prefix),
            ("dogstatsd_tags", self.dogstatsd_tags),
        ):
            if not value.isascii():
                raise ValueError(f"{option}={value!r} must be ASCII (statsd is an ASCII protocol)")

    async def critical(self, message: str, *args: Any, **kwargs: Any) -> None:
        await super().critical(message, *args, **kwargs)
        await self.increment("hypercorn.log.critical", 1)

    async def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        await super().error(message, *args, **kwargs)
        await self.increment("hypercorn.log.error", 1)

    async def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        await super().warning(message, *args, **kwargs)
        await self.increment("hypercorn.log.warning", 1)

    async def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        await super().exception(message, *args, **kwargs)
        await self.increment("hypercorn.log.exception", 1)

    async def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message`` (when non-empty) and send the metric described by ``extra``.

        The metric is sent when ``extra`` has a name under :data:`METRIC_VAR`, a value
        under :data:`VALUE_VAR` and a type under :data:`MTYPE_VAR` (:data:`GAUGE_TYPE`,
        :data:`COUNTER_TYPE` or :data:`HISTOGRAM_TYPE`; other types are ignored). A failure
        is logged as the warning ``Failed to log to statsd``, never raised.
        """
        try:
            extra = kwargs.get("extra")
            if extra is not None:
                metric = extra.get(METRIC_VAR)
                value = extra.get(VALUE_VAR)
                metric_type = extra.get(MTYPE_VAR)
                if metric and value is not None and metric_type:
                    if metric_type == GAUGE_TYPE:
                        await self.gauge(metric, value)
                    elif metric_type == COUNTER_TYPE:
                        await self.increment(metric, value)
                    elif metric_type == HISTOGRAM_TYPE:
                        await self.histogram(metric, value)
            if message:
                await super().log(level, message, *args, **kwargs)
        except Exception:
            await super().warning("Failed to log to statsd", exc_info=True)

    async def access(
        self, request: WWWScope, response: ResponseSummary | None, request_time: float
    ) -> None:
        """Log the access line, then time and count the request (and its status)."""
        await super().access(request, response, request_time)
        await self.histogram("hypercorn.request.duration", request_time * 1_000)
        await self.increment("hypercorn.requests", 1)
        if response is not None:
            await self.increment(f"hypercorn.request.status.{response['status']}", 1)

    async def gauge(self, name: str, value: float) -> None:
        """Send ``<prefix><name>:<value>|g``."""
        await self._send(_metric_line(name, value, "g", self.prefix, None))

    async def increment(self, name: str, value: float, sampling_rate: float = 1.0) -> None:
        """Send ``<prefix><name>:<value>|c|@<sampling_rate>``."""
        await self._send(_metric_line(name, value, "c", self.prefix, sampling_rate))

    async def decrement(self, name: str, value: float, sampling_rate: float = 1.0) -> None:
        """Send ``<prefix><name>:-<value>|c|@<sampling_rate>``."""
        await self._send(_metric_line(name, -value, "c", self.prefix, sampling_rate))

    async def histogram(self, name: str, value: float) -> None:
        """Send ``<prefix><name>:<value>|ms`` (a timing, in milliseconds)."""
        await self._send(_metric_line(name, value, "ms", self.prefix, None))

    async def _send(self, message: str) -> None:
        """Append the DogStatsD tags to a metric line, encode it and send it."""
        await self._socket_send(_encode(message, self.dogstatsd_tags))

    def close(self) -> None:
        """Release the transport. The workers' loggers close their UDP socket here; this
        base class has none."""

    async def _socket_send(self, message: bytes) -> None:
        """Send one datagram. The workers' subclasses implement it (UDP)."""
        raise NotImplementedError("StatsdLogger subclasses must implement _socket_send")
