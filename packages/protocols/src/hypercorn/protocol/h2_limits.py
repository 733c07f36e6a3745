"""Defences of the HTTP/2 connection against peers that cost more than they ask for.

The h2 library parses frames correctly but spends whatever the peer makes it spend: it
answers every PING and SETTINGS frame, accepts any number of empty DATA, WINDOW_UPDATE and
PRIORITY frames, buffers a frame's whole payload before checking its length, and buffers a
header block of up to 64 CONTINUATION frames of any permitted size. This module bounds those
costs by *counting*, never by the clock, so every driver gets the same limits and tests are
deterministic.

Rules this module enforces
==========================

:class:`FrameGuard` reads the 9-byte header of every inbound frame *before* h2 parses the
bytes (it keeps only a partial frame header between calls, never a payload) and reports the
first :class:`Violation`; the connection then answers with GOAWAY and closes.

- **Preface.** The client's 24-byte connection preface must come first
  (``PROTOCOL_ERROR`` otherwise; HTTP/2 never answers it with an HTTP/1.1 400).
- **Frame size.** A frame longer than the largest frame size we advertise is refused as
  soon as its header arrives (``FRAME_SIZE_ERROR``), so an announced 16 MiB frame is never
  buffered. So is a SETTINGS acknowledgement with a payload (RFC 9113 §6.5).
- **Header blocks** (HEADERS or PUSH_PROMISE plus CONTINUATION frames): at most
  :data:`MAX_CONTINUATION_FRAMES` CONTINUATION frames, and at most ``max_header_block``
  bytes in all (the connection uses twice ``h2_max_header_list_size``, at least one maximum
  frame: an HPACK block is rarely larger than the header list it encodes). Beyond either,
  ``ENHANCE_YOUR_CALM``.
- **Control-frame floods.** Frames that ask for work without doing any -- PING, SETTINGS,
  WINDOW_UPDATE, PRIORITY, RST_STREAM, GOAWAY, PUSH_PROMISE, unknown types, and DATA frames
  that carry no data and do not end the stream -- spend a budget of
  :data:`CONTROL_FRAME_BUDGET` units: one unit per frame plus one per
  :data:`CONTROL_FRAME_BYTES_PER_UNIT` payload bytes (so a 16 KiB SETTINGS frame or a
  padding-only DATA frame costs far more than a PING). DATA for a stream the client cannot
  send on any more (it ended or reset it, or the server told :meth:`FrameGuard.
  stream_closed`) counts as unproductive too: h2 answers each with RST_STREAM. The budget
  is refilled whenever real work happens: a HEADERS frame arrives, a DATA frame carries data
  for an open stream, or the connection sends response data (:meth:`FrameGuard.progress`).
  Overspending is ``ENHANCE_YOUR_CALM``. Since each auto-reply (PING ACK, SETTINGS ACK,
  RST_STREAM) answers one counted frame, their output is bounded by the budget too.

:class:`ResetBudget` bounds *rapid reset* (CVE-2023-44487): every stream the client resets
before its response was complete, and every new stream the server refuses (too many
streams, or after GOAWAY), costs one credit; every response completed earns one back (never
above the starting :data:`RESET_BUDGET`). Running out is ``ENHANCE_YOUR_CALM``. The cap on
requests per connection (``keep_alive_max_requests``) bounds the rest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import final

from h2.errors import ErrorCodes

__all__ = (
    "CONTROL_FRAME_BUDGET",
    "CONTROL_FRAME_BYTES_PER_UNIT",
    "MAX_CONTINUATION_FRAMES",
    "PREFACE",
    "RESET_BUDGET",
    "FrameGuard",
    "ResetBudget",
    "Violation",
)

#: Units of unproductive frames allowed between two pieces of real work.
CONTROL_FRAME_BUDGET = 1000
#: An unproductive frame costs one unit plus one per this many payload bytes.
CONTROL_FRAME_BYTES_PER_UNIT = 64
#: CONTINUATION frames allowed in one header block (h2 itself stops at 64).
MAX_CONTINUATION_FRAMES = 32
#: Streams the client may reset (or have refused) beyond those it let complete: twice the
#: default stream limit, so a browser that cancels everything in flight (on navigation),
#: twice over, is not mistaken for an attack.
RESET_BUDGET = 200
#: The client connection preface (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_FRAME_HEADER = struct.Struct(">HBBBL")  # length (24 bits as 16 + 8), type, flags, stream

_DATA = 0x0
_HEADERS = 0x1
_PUSH_PROMISE = 0x5
_RST_STREAM = 0x3
_SETTINGS = 0x4
_CONTINUATION = 0x9
_END_STREAM = 0x1
_ACK = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8


@dataclass(frozen=True, slots=True)
class Violation:
    """Why the peer's bytes were refused: the GOAWAY error code and a short reason."""

    error_code: ErrorCodes
    reason: str


@final
class FrameGuard:
    """Scans inbound HTTP/2 bytes frame by frame and reports the first violation.

    See the module docstring for the rules. :meth:`feed` must see every byte the peer sends,
    in order, before the bytes go to h2; once it returned a violation it returns the same
    one forever.
    """

    __slots__ = (
        "_block_bytes",
        "_block_frames",
        "_block_stream",
        "_budget",
        "_flags",
        "_length",
        "_max_continuations",
        "_max_frame_size",
        "_max_header_block",
        "_open",
        "_pad_pending",
        "_partial",
        "_preface_left",
        "_remaining",
        "_spent",
        "_stream_id",
        "_violation",
    )

    def __init__(
        self,
        *,
        max_frame_size: int,
        max_header_block: int,
        control_budget: int = CONTROL_FRAME_BUDGET,
        max_continuations: int = MAX_CONTINUATION_FRAMES,
    ) -> None:
        self._max_frame_size = max_frame_size
        self._max_header_block = max_header_block
        self._budget = control_budget
        self._max_continuations = max_continuations
        self._preface_left = PREFACE
        self._partial = bytearray()  # an incomplete frame header (< 9 bytes)
        self._remaining = 0  # payload bytes of the current frame not seen yet
        self._length = 0  # payload length of the current frame
        self._flags = 0
        self._stream_id = 0
        self._open: set[int] = set()  # streams the client may still send DATA on
        self._pad_pending = False  # a padded DATA frame waits for its pad-length byte
        self._block_stream: int | None = None  # stream of the open header block
        self._block_frames = 0
        self._block_bytes = 0
        self._spent = 0
        self._violation: Violation | None = None

    @property
    def spent(self) -> int:
        """Units of the control-frame budget spent since the last real work."""
        return self._spent

    def progress(self) -> None:
        """Real work happened (e.g. response data was sent): refill the budget."""
        self._spent = 0

    def stream_closed(self, stream_id: int) -> None:
        """The server closed (reset or refused) a stream: its DATA is no longer work."""
        self._open.discard(stream_id)

    def feed(self, data: bytes) -> Violation | None:
        """Account for ``data``; the first violation found, or None."""
        if self._violation is not None:
            return self._violation
        index = 0
        end = len(data)
        if self._preface_left:
            expected = self._preface_left
            index = min(len(expected), end)
            if data[:index] != expected[:index]:
                return self._fail(ErrorCodes.PROTOCOL_ERROR, "invalid connection preface")
            self._preface_left = expected[index:]
        while index < end:
            if self._remaining:
                if self._pad_pending:
                    self._pad_pending = False
                    payload = self._length - 1 - data[index]
                    violation = self._data_frame(payload, self._flags)
                    if violation is not None:
                        return violation
                step = min(self._remaining, end - index)
                index += step
                self._remaining -= step
                continue
            partial = self._partial
            if partial or end - index < 9:
                take = min(9 - len(partial), end - index)
                partial += data[index : index + take]
                index += take
                if len(partial) < 9:
                    break
                high, low, frame_type, flags, stream_id = _FRAME_HEADER.unpack(partial)
                partial.clear()
            else:
                high, low, frame_type, flags, stream_id = _FRAME_HEADER.unpack_from(data, index)
                index += 9
            violation = self._frame((high << 8) | low, frame_type, flags, stream_id & 0x7FFFFFFF)
            if violation is not None:
                return violation
        return None

    def _frame(self, length: int, frame_type: int, flags: int, stream_id: int) -> Violation | None:
        if length > self._max_frame_size:
            return self._fail(ErrorCodes.FRAME_SIZE_ERROR, "frame too large")
        self._remaining = length
        self._length = length
        self._flags = flags
        self._stream_id = stream_id
        if self._block_stream is not None:
            if frame_type == _CONTINUATION and stream_id == self._block_stream:
                self._block_frames += 1
                self._block_bytes += length
                if flags & _END_HEADERS:
                    self._block_stream = None
                return self._check_block()
            # Anything else inside a header block is h2's PROTOCOL_ERROR.
            self._block_stream = None
        if frame_type == _DATA:
            if flags & _PADDED and length:
                self._pad_pending = True  # decided once the pad-length byte arrives
                return None
            return self._data_frame(length, flags)
        if frame_type in (_HEADERS, _PUSH_PROMISE):
            if frame_type == _HEADERS and stream_id:
                if flags & _END_STREAM:
                    self._open.discard(stream_id)
                else:
                    self._open.add(stream_id)
            if not flags & _END_HEADERS:
                self._block_stream = stream_id
                self._block_frames = 0
                self._block_bytes = length
                violation = self._check_block()
                if violation is not None:
                    return violation
            if frame_type == _HEADERS:
                self._spent = 0
                return None
        elif frame_type == _CONTINUATION:
            return None  # A CONTINUATION outside a block: h2's PROTOCOL_ERROR.
        elif frame_type == _RST_STREAM:
            self._open.discard(stream_id)
        elif frame_type == _SETTINGS and flags & _ACK and length:
            # hyperframe reports this as PROTOCOL_ERROR; RFC 9113 §6.5 says FRAME_SIZE_ERROR.
            return self._fail(ErrorCodes.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
        return self._spend(1 + length // CONTROL_FRAME_BYTES_PER_UNIT)

    def _data_frame(self, payload: int, flags: int) -> Violation | None:
        open_streams = self._open
        stream_open = self._stream_id in open_streams
        if flags & _END_STREAM:
            open_streams.discard(self._stream_id)
            if stream_open:
                if payload > 0:
                    self._spent = 0
                return None  # Ending the stream is ordinary, with or without data.
        elif stream_open and payload > 0:
            self._spent = 0
            return None
        return self._spend(1 + self._length // CONTROL_FRAME_BYTES_PER_UNIT)

    def _check_block(self) -> Violation | None:
        if self._block_frames > self._max_continuations:
            return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
        if self._block_bytes > self._max_header_block:
            return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
        return None

    def _spend(self, units: int) -> Violation | None:
        self._spent += units
        if self._spent > self._budget:
            return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "too many control frames")
        return None

    def _fail(self, error_code: ErrorCodes, reason: str) -> Violation:
        self._violation = Violation(error_code, reason)
        return self._violation


@final
class ResetBudget:
    """Counts streams wasted by the client (reset early, or refused) against completed ones.

    :meth:`waste` spends a credit and returns False once none are left; :meth:`complete`
    earns one back, up to the starting ``budget``.
    """

    __slots__ = ("_budget", "_credit")

    def __init__(self, budget: int = RESET_BUDGET) -> None:
        self._budget = budget
        self._credit = budget

    @property
    def credit(self) -> int:
        """Credits left (negative once exhausted)."""
        return self._credit

    def waste(self) -> bool:
        """One stream was wasted; False when the budget is exhausted."""
        self._credit -= 1
        return self._credit >= 0

    def complete(self) -> None:
        """One response was completed."""
        if self._credit < self._budget:
            self._credit += 1
