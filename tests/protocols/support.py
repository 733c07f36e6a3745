"""Test support for the sans-IO protocol layer: real, tiny peers of our own interfaces."""

from __future__ import annotations

from typing import Any, Protocol

from hypercorn.config import Config
from hypercorn.protocol import events as events_module
from hypercorn.protocol.context import ProtocolContext, Stream
from hypercorn.protocol.events import DriverEvent, Event
from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent

Headers = list[tuple[bytes, bytes]]

#: True when the state machines are the compiled build (mypyc), which checks declared
#: types at run time: a few tests that hand over deliberately mistyped values differ.
COMPILED = not events_module.__file__.endswith(".py")

DATE = b"Tue, 24 Nov 2026 00:00:00 GMT"
#: The peer and local addresses the connections and streams under test are given.
CLIENT = ("127.0.0.1", 51000)
SERVER = ("127.0.0.1", 8000)


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


def drain(stream: Stream) -> list[Any]:
    """Every message waiting in the stream's inbox, in order (the inbox is left empty)."""
    messages: list[Any] = []
    while (message := stream.app_receive()) is not None:
        messages.append(message)
    return messages


def wants_data(stream: Stream) -> bool:
    """``stream.wants_data``, read through a call so that mypy does not narrow it."""
    return stream.wants_data


# ---------------------------------------------------------------------------------------
# The application's side of a multiplexed connection (HTTP/2, HTTP/3)
# ---------------------------------------------------------------------------------------


class AppFacing(Protocol):
    """The calls an application makes into a connection (H2Connection, H3Connection)."""

    def app_receive(self, stream_id: int) -> ASGIReceiveEvent | None: ...

    def app_send(self, stream_id: int, message: ASGISendEvent) -> None: ...

    def app_finished(self, stream_id: int) -> None: ...


def receive_all(connection: AppFacing, stream_id: int) -> list[dict[str, Any]]:
    """Every message waiting for the stream's application."""
    messages: list[dict[str, Any]] = []
    while (message := connection.app_receive(stream_id)) is not None:
        messages.append(dict(message))
    return messages


def respond(
    connection: AppFacing,
    stream_id: int,
    body: bytes = b"",
    *,
    status: int = 200,
    headers: Headers | None = None,
    finish: bool = True,
) -> None:
    """Play the stream's application: a whole response, then (``finish``) return."""
    connection.app_send(
        stream_id, {"type": "http.response.start", "status": status, "headers": headers or []}
    )
    connection.app_send(stream_id, {"type": "http.response.body", "body": body})
    if finish:
        connection.app_finished(stream_id)


def body_of(messages: list[dict[str, Any]]) -> bytes:
    """The request body in ``messages`` (from :func:`receive_all`)."""
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
