"""Connection-level events passed between a driver and a protocol.

These are the I/O-side vocabulary: bytes arrived (:class:`RawData`), the peer went away
(:class:`Closed`), and the protocol's idleness changed (:class:`Updated`, which tells the
driver whether the keep-alive timer should run). Stream-level events (a request, a body
chunk, a response) live in :mod:`hypercorn.protocol.events`.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass

__all__ = ("Closed", "Event", "RawData", "Updated")


class Event(ABC):  # noqa: B024 - an empty marker base, as in the reference API
    """Base class of every connection-level event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RawData(Event):
    """Bytes received from (or to send to) the peer.

    ``address`` is the peer address for datagram (QUIC) sockets and ``None`` for streams.
    """

    data: bytes
    address: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Closed(Event):
    """The connection is closed: the peer hung up, or the protocol wants it closed."""


@dataclass(frozen=True, slots=True)
class Updated(Event):
    """The protocol's idleness changed.

    ``idle`` is True when no request is in progress, so the driver should run the
    keep-alive timer, and False when one has started, so the timer should stop.
    """

    idle: bool
