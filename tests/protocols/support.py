"""Test support for the sans-IO protocol layer: real, tiny peers of our own interfaces."""

from __future__ import annotations

from hypercorn.config import Config
from hypercorn.protocol.context import ProtocolContext
from hypercorn.protocol.events import DriverEvent, Event

DATE = b"Tue, 24 Nov 2026 00:00:00 GMT"


def make_context(config: Config | None = None, *, now: float = 1000.0) -> ProtocolContext:
    """A context with a fixed clock and date, for deterministic output."""
    return ProtocolContext(config or Config(), now=now, date=DATE)


class RecordingOwner:
    """A StreamOwner that records what a stream hands to its connection and driver."""

    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.driver: list[DriverEvent] = []

    def stream_send(self, event: Event) -> None:
        self.sent.append(event)

    def driver_event(self, event: DriverEvent) -> None:
        self.driver.append(event)

    def take_sent(self) -> list[Event]:
        sent, self.sent = self.sent, []
        return sent

    def take_driver(self) -> list[DriverEvent]:
        driver, self.driver = self.driver, []
        return driver
