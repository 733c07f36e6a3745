"""Outgoing data of the HTTP/2 connection: per-stream send queues, scheduling, framing.

Rules this module enforces
==========================

**Headers.** :func:`copy_headers` drops what HTTP/2 forbids in a response or trailers
(RFC 9113 §8.2.2: ``connection``, ``keep-alive``, ``proxy-connection``,
``transfer-encoding``, ``upgrade``, and ``te`` other than ``trailers``) and refuses a name
that is not a lower-case token or a value holding NUL, CR or LF (``ValueError``). For
HTTP/2 it also does the rest of what h2's outbound normalisation did (the connection turns
that off, with h2's outbound validation, because this function already guarantees it):
values lose surrounding whitespace, and ``authorization``, ``proxy-authorization`` and
``cookie`` values shorter than 20 bytes are never indexed by HPACK (RFC 7541 §7.1.3).

**Send queues.** Each stream's output waits in a :class:`SendQueue`, in the order the
stream produced it: response heads, data chunks, trailers and the end of the stream. Data is
flow-controlled and leaves only as the connection and stream windows allow; a head, the
trailers and the end are not, but they never overtake data queued before them (so the end
of a stream is sent only once its data is out). :attr:`SendQueue.buffered` counts the data
bytes waiting: above :data:`BUFFER_HIGH_WATER` the application should stop sending (the
connection's ``can_send`` is false), and once the queue drains below
:data:`BUFFER_LOW_WATER` it is told it may continue (``SendReady``).

**Framing.** :class:`Sender` writes the queues onto the h2 connection when the connection
asks it to (:meth:`Sender.flush`): first the heads, trailers and ends at the front of each
queue (a final head directly followed by the end is one HEADERS frame with END_STREAM;
empty trailers are just the end), then DATA frames of at most the peer's maximum frame
size, one stream at a time as the scheduler picks, while both windows allow (the last
DATA frame carries END_STREAM when the end directly follows it). If h2 refuses
to frame a stream's output the stream is handed back (``on_failure``) to be reset; the
driver never sees the error.

**Scheduling.** Which stream sends the next DATA frame is decided by a
:class:`StreamScheduler`, a small interface so that the policy can change:
:class:`RFC7540Scheduler` follows the client's RFC 7540 priorities (dependencies and
weights, through the ``priority`` package's ``PriorityTree``); :class:`RoundRobinScheduler`
ignores them. A stream is *ready* while it has data at the front of its queue and window to
send it. Priority information about streams the connection does not know (RFC 7540 lets a
client group streams under idle "placeholder" streams) is kept for at most
``max_placeholders`` streams, the oldest forgotten first; a dependency on a stream that is
not in the tree gives the default priority (RFC 7540 §5.3.1).
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from typing import TYPE_CHECKING, Final, Protocol, final

from hpack import NeverIndexedHeaderTuple
from priority.priority import DeadlockError, PriorityError, PriorityTree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import h2.connection

    from hypercorn.protocol.context import Stream

__all__ = (
    "BUFFER_HIGH_WATER",
    "BUFFER_LOW_WATER",
    "CONNECTION_SPECIFIC",
    "LazyPriorityScheduler",
    "RFC7540Scheduler",
    "RoundRobinScheduler",
    "SendQueue",
    "Sender",
    "StreamEntry",
    "StreamScheduler",
    "copy_headers",
)

#: Buffered response bytes of one stream above which ``can_send`` is false.
BUFFER_HIGH_WATER: Final = 32768
#: Buffered response bytes below which a blocked stream gets ``SendReady``.
BUFFER_LOW_WATER: Final = 16384

#: Queue item kinds (a data chunk is a ``memoryview``; the others are ``(kind, headers)``).
INFO: Final = 0  # a 1xx head
HEAD: Final = 1  # the final response head
TRAILERS: Final = 2  # trailers (they end the stream)
END: Final = 3  # the end of the stream

Headers = list[tuple[bytes, bytes]]
Control = tuple[int, Headers]

#: Headers that are meaningful for one HTTP/1.1 connection only (RFC 9113 §8.2.2).
CONNECTION_SPECIFIC: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]")
#: Header names whose values HPACK must never index (credentials open to guessing).
_NEVER_INDEXED: Final = frozenset({b"authorization", b"proxy-authorization"})
#: A ``cookie`` value shorter than this is never indexed either (it is easy to guess).
_SHORT_COOKIE: Final = 20


def copy_headers(
    headers: Iterable[tuple[bytes, bytes]], into: Headers, *, http3: bool = False
) -> None:
    """Append ``headers`` to ``into`` without connection-specific ones; check the rest.

    HTTP/2 keeps ``te: trailers``; HTTP/3 drops ``te`` in every response (RFC 9114 §4.2).
    The HTTP/3 connection shares this function. For HTTP/2, values are stripped and
    credentials are marked never-indexed (see the module docstring).
    """
    version = "HTTP/3" if http3 else "HTTP/2"
    for name, value in headers:
        name = name.lower()
        if name in CONNECTION_SPECIFIC:
            continue
        if name == b"te" and (http3 or value.strip().lower() != b"trailers"):
            continue
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"Invalid {version} header name {name!r}")
        if _BAD_VALUE.search(value) is not None:
            raise ValueError(f"Invalid {version} header value {value!r} (NUL, CR or LF)")
        if http3:
            into.append((name, value))
            continue
        value = value.strip()
        if name in _NEVER_INDEXED or (name == b"cookie" and len(value) < _SHORT_COOKIE):
            into.append(NeverIndexedHeaderTuple(name, value))
        else:
            into.append((name, value))


@final
class SendQueue:
    """One stream's outgoing items, in order; see the module docstring."""

    __slots__ = ("_items", "buffered", "waiting")

    def __init__(self) -> None:
        self._items: deque[memoryview | Control] = deque()
        #: Data bytes queued and not yet sent.
        self.buffered = 0
        #: True once ``buffered`` went above the high-water mark, until ``SendReady``.
        self.waiting = False

    def __bool__(self) -> bool:
        return bool(self._items)

    def push_data(self, data: bytes) -> None:
        """Queue a chunk of data (empty chunks are dropped)."""
        if data:
            self._items.append(memoryview(data))
            self.buffered += len(data)
            if self.buffered > BUFFER_HIGH_WATER:
                self.waiting = True

    def push_control(self, kind: int, headers: Headers) -> None:
        """Queue a head (``INFO``/``HEAD``), ``TRAILERS`` or ``END``."""
        self._items.append((kind, headers))

    @property
    def data_first(self) -> bool:
        """True when the next item is data."""
        return bool(self._items) and isinstance(self._items[0], memoryview)

    def pop_control(self) -> Control | None:
        """The next item if it is not data (removing it), else None."""
        items = self._items
        if items and not isinstance(items[0], memoryview):
            item = items.popleft()
            assert not isinstance(item, memoryview)
            return item
        return None

    def peek_kind(self) -> int | None:
        """The kind of the next item if it is not data, else None."""
        items = self._items
        if items and not isinstance(items[0], memoryview):
            head = items[0]
            assert not isinstance(head, memoryview)
            return head[0]
        return None

    def take_data(self, limit: int) -> memoryview:
        """Up to ``limit`` bytes of the data at the front of the queue (no copy)."""
        items = self._items
        chunk = items[0]
        assert isinstance(chunk, memoryview)
        if len(chunk) <= limit:
            items.popleft()
            taken = chunk
        else:
            taken = chunk[:limit]
            items[0] = chunk[limit:]
        self.buffered -= len(taken)
        return taken

    def ready_to_resume(self) -> bool:
        """True (once) when a stream over the high-water mark has drained below the low."""
        if self.waiting and self.buffered < BUFFER_LOW_WATER:
            self.waiting = False
            return True
        return False

    def clear(self) -> None:
        """Drop everything queued."""
        self._items.clear()
        self.buffered = 0


class StreamScheduler(Protocol):
    """Chooses which stream sends the next DATA frame."""

    def add(
        self, stream_id: int, depends_on: int = 0, weight: int = 16, exclusive: bool = False
    ) -> None:
        """A stream was opened (not ready yet); keeps known priority if it had one."""

    def prioritize(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """The client sent priority information (the stream may be unknown or idle)."""

    def remove(self, stream_id: int) -> None:
        """The stream is finished."""

    def ready(self, stream_id: int) -> None:
        """The stream has data and window to send it."""

    def idle(self, stream_id: int) -> None:
        """The stream has nothing it can send now."""

    def next(self) -> int | None:
        """The ready stream that sends next, or None if no stream is ready."""


@final
class RoundRobinScheduler:
    """Every ready stream in turn, ignoring priorities."""

    __slots__ = ("_ready",)

    def __init__(self) -> None:
        self._ready: dict[int, None] = {}

    def add(
        self, stream_id: int, depends_on: int = 0, weight: int = 16, exclusive: bool = False
    ) -> None:
        """Nothing to record until the stream is ready."""

    def prioritize(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """Priorities are ignored."""

    def remove(self, stream_id: int) -> None:
        """Forget the stream."""
        self._ready.pop(stream_id, None)

    def ready(self, stream_id: int) -> None:
        """Join the rotation (keeping its place if already in it)."""
        self._ready.setdefault(stream_id, None)

    def idle(self, stream_id: int) -> None:
        """Leave the rotation."""
        self._ready.pop(stream_id, None)

    def next(self) -> int | None:
        """The stream at the front of the rotation, which moves to the back."""
        ready = self._ready
        if not ready:
            return None
        stream_id = next(iter(ready))
        del ready[stream_id]
        ready[stream_id] = None
        return stream_id


@final
class LazyPriorityScheduler:
    """Round-robin until the client says anything about priorities, RFC 7540 from then on.

    Most clients never send RFC 7540 priorities (they are deprecated by RFC 9113), and
    keeping every stream in a :class:`RFC7540Scheduler` tree costs more than the rest of a
    small response's sending. The first priority information (a PRIORITY frame, or a
    HEADERS frame that carries one) moves every open stream, with its readiness, into a
    tree; the order is priority-driven from then on.
    """

    __slots__ = ("_ready", "_round_robin", "_tree")

    def __init__(self) -> None:
        self._round_robin = RoundRobinScheduler()
        self._ready: dict[int, bool] = {}  # open stream -> ready, while round-robin
        self._tree: RFC7540Scheduler | None = None

    def add(
        self, stream_id: int, depends_on: int = 0, weight: int = 16, exclusive: bool = False
    ) -> None:
        if self._tree is None and not (depends_on or weight != 16 or exclusive):
            self._ready.setdefault(stream_id, False)
            return
        self._prioritized().add(stream_id, depends_on, weight, exclusive)

    def prioritize(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        self._prioritized().prioritize(stream_id, depends_on, weight, exclusive)

    def remove(self, stream_id: int) -> None:
        if self._tree is not None:
            self._tree.remove(stream_id)
        elif self._ready.pop(stream_id, None) is not None:
            self._round_robin.remove(stream_id)

    def ready(self, stream_id: int) -> None:
        if self._tree is not None:
            self._tree.ready(stream_id)
        elif stream_id in self._ready:
            self._ready[stream_id] = True
            self._round_robin.ready(stream_id)

    def idle(self, stream_id: int) -> None:
        if self._tree is not None:
            self._tree.idle(stream_id)
        elif stream_id in self._ready:
            self._ready[stream_id] = False
            self._round_robin.idle(stream_id)

    def next(self) -> int | None:
        return self._round_robin.next() if self._tree is None else self._tree.next()

    def _prioritized(self) -> RFC7540Scheduler:
        tree = self._tree
        if tree is None:
            tree = self._tree = RFC7540Scheduler()
            for stream_id, ready in self._ready.items():
                tree.add(stream_id)
                if ready:
                    tree.ready(stream_id)
            self._ready.clear()
        return tree


@final
class RFC7540Scheduler:
    """RFC 7540 priorities (dependency tree and weights) via ``priority.PriorityTree``."""

    __slots__ = ("_max_placeholders", "_nodes", "_placeholders", "_tree")

    def __init__(self, max_placeholders: int = 100) -> None:
        self._tree = PriorityTree(maximum_streams=2**31)
        self._nodes: set[int] = set()  # every stream in the tree
        self._placeholders: dict[int, None] = {}  # nodes for streams not opened (oldest first)
        self._max_placeholders = max_placeholders

    def add(
        self, stream_id: int, depends_on: int = 0, weight: int = 16, exclusive: bool = False
    ) -> None:
        """Insert the stream (blocked); an idle-stream node it had keeps its position."""
        if stream_id in self._placeholders:
            del self._placeholders[stream_id]
            if depends_on or weight != 16 or exclusive:
                self._reprioritize(stream_id, depends_on, weight, exclusive)
            return
        if stream_id in self._nodes:
            return
        self._insert(stream_id, depends_on, weight, exclusive)

    def prioritize(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """Move a known stream, or remember an idle one as a placeholder."""
        if stream_id in self._nodes:
            self._reprioritize(stream_id, depends_on, weight, exclusive)
            return
        placeholders = self._placeholders
        if self._max_placeholders <= 0:
            return
        if len(placeholders) >= self._max_placeholders:
            self.remove(next(iter(placeholders)))
        if self._insert(stream_id, depends_on, weight, exclusive):
            placeholders[stream_id] = None

    def remove(self, stream_id: int) -> None:
        """Take the stream out of the tree (its dependents move to its parent)."""
        if stream_id in self._nodes:
            self._nodes.discard(stream_id)
            self._placeholders.pop(stream_id, None)
            # (Cannot fail: _nodes mirrors the tree.)
            with contextlib.suppress(PriorityError):
                self._tree.remove_stream(stream_id)

    def ready(self, stream_id: int) -> None:
        """Mark the stream schedulable."""
        if stream_id in self._nodes:
            self._tree.unblock(stream_id)

    def idle(self, stream_id: int) -> None:
        """Mark the stream not schedulable."""
        if stream_id in self._nodes:
            self._tree.block(stream_id)

    def next(self) -> int | None:
        """The next stream by priority, or None."""
        try:
            return int(self._tree.next())
        except DeadlockError:
            return None

    def _insert(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> bool:
        if depends_on and depends_on not in self._nodes:
            depends_on, weight, exclusive = 0, 16, False  # RFC 7540 §5.3.1 default priority
        try:
            self._tree.insert_stream(stream_id, depends_on, weight, exclusive)
        except PriorityError:
            return False
        self._tree.block(stream_id)
        self._nodes.add(stream_id)
        return True

    def _reprioritize(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        if depends_on and depends_on not in self._nodes:
            depends_on, weight, exclusive = 0, 16, False
        # A bad weight or a stream made to depend on itself: keep the old priority.
        with contextlib.suppress(PriorityError):
            self._tree.reprioritize(stream_id, depends_on, weight, exclusive)


@final
class StreamEntry:
    """What the connection keeps per stream: the stream, its send queue and its flags."""

    __slots__ = (
        "finished",
        "local_done",
        "pushed",
        "queue",
        "remote_done",
        "stream",
        "stream_id",
        "unacked",
    )

    def __init__(self, stream: Stream, stream_id: int, *, pushed: bool = False) -> None:
        self.stream = stream
        self.stream_id = stream_id
        self.queue = SendQueue()
        #: Flow-controlled bytes received and not acknowledged yet.
        self.unacked = 0
        #: The stream queued the end of its response.
        self.finished = False
        #: END_STREAM was sent or the stream was reset: nothing more can be sent.
        self.local_done = False
        #: The client ended or reset its side (a pushed stream starts that way).
        self.remote_done = pushed
        self.pushed = pushed


@final
class Sender:
    """Frames the streams' queued output onto an h2 connection; see the module docstring.

    ``on_end`` is called when a stream's response has been sent in full, ``on_failure`` when
    h2 refused to frame a stream's output, ``on_resume`` when a stream drained below the
    low-water mark (``SendReady``).
    """

    __slots__ = ("_conn", "_dirty", "_on_end", "_on_failure", "_on_resume", "_scheduler")

    def __init__(
        self,
        conn: h2.connection.H2Connection,
        scheduler: StreamScheduler,
        *,
        on_end: Callable[[StreamEntry], None],
        on_failure: Callable[[StreamEntry], None],
        on_resume: Callable[[int], None],
    ) -> None:
        self._conn = conn
        self._scheduler = scheduler
        self._dirty: dict[int, None] = {}  # streams with queued output (an ordered set)
        self._on_end = on_end
        self._on_failure = on_failure
        self._on_resume = on_resume

    def mark(self, stream_id: int) -> None:
        """The stream queued something."""
        self._dirty[stream_id] = None

    def forget(self, stream_id: int) -> None:
        """The stream is gone."""
        self._dirty.pop(stream_id, None)
        self._scheduler.remove(stream_id)

    def flush(self, streams: dict[int, StreamEntry]) -> bool:
        """Frame what the windows allow; True if any DATA was sent."""
        conn = self._conn
        scheduler = self._scheduler
        dirty = self._dirty
        for stream_id in list(dirty):
            entry = streams.get(stream_id)
            if entry is None or entry.local_done:
                dirty.pop(stream_id, None)
                continue
            if self._send_controls(entry):
                continue
            if entry.queue:
                # Data waits: the loop below sends it, or idles the stream if its window
                # is shut (it stays dirty, so the next flush looks at it again).
                scheduler.ready(stream_id)
            else:
                dirty.pop(stream_id, None)
                scheduler.idle(stream_id)
        sent = False
        while conn.outbound_flow_control_window > 0:
            next_id = scheduler.next()
            if next_id is None:
                break
            entry = streams.get(next_id)
            if entry is None:  # Streams leave the scheduler when they go; be safe anyway.
                scheduler.remove(next_id)
                continue
            queue = entry.queue
            window = self._window(next_id) if queue.data_first else 0
            if window <= 0:
                scheduler.idle(next_id)
                continue
            chunk = queue.take_data(min(window, conn.max_outbound_frame_size))
            # The last chunk of data, directly followed by the end of the stream, carries
            # END_STREAM itself: one DATA frame instead of two (and one h2 call).
            end = queue.peek_kind() == END
            try:
                conn.send_data(next_id, chunk, end_stream=end)
            except Exception:  # As in _send_controls: fail the stream, not the driver.
                self._on_failure(entry)
                continue
            sent = True
            if queue.ready_to_resume():
                self._on_resume(next_id)
            if end:
                queue.pop_control()
                scheduler.idle(next_id)
                dirty.pop(next_id, None)
                self._on_end(entry)
            elif not queue.data_first:
                scheduler.idle(next_id)
                if self._send_controls(entry) or not queue:
                    dirty.pop(next_id, None)
        return sent

    def _window(self, stream_id: int) -> int:
        try:
            return self._conn.local_flow_control_window(stream_id)
        except Exception:  # A stream h2 has closed has no window.
            return 0

    def _send_controls(self, entry: StreamEntry) -> bool:
        """Send the heads, trailers and end at the front of the stream's queue; True if
        that ended the stream (or failed it)."""
        queue = entry.queue
        conn = self._conn
        stream_id = entry.stream_id
        try:
            while (item := queue.pop_control()) is not None:
                kind, headers = item
                if kind == INFO:
                    conn.send_headers(stream_id, headers)
                    continue
                if kind == HEAD:
                    end = queue.peek_kind() == END
                    conn.send_headers(stream_id, headers, end_stream=end)
                    if not end:
                        continue
                elif kind == TRAILERS and headers:
                    conn.send_headers(stream_id, headers, end_stream=True)
                else:  # END, or empty trailers (h2 cannot frame an empty header block)
                    conn.end_stream(stream_id)
                self._on_end(entry)
                return True
        except Exception:  # h2 refusing to frame this stream's output: fail the stream.
            self._on_failure(entry)
            return True
        return False
