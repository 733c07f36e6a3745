"""What the ASGI ``http`` and ``websocket`` streams have in common.

:class:`ASGIStream` is the base of :class:`~hypercorn.protocol.http_stream.HTTPStream` and
:class:`~hypercorn.protocol.ws_stream.WSStream`. It keeps what a stream is given (context,
owner, stream id, ``client``/``server`` addresses, TLS or not), the application's inbox and
the bookkeeping of how the stream ends. Each subclass adds its own state machine: the events
it takes from the wire, the messages its application may send, and how it answers.

Rules this module enforces
==========================

**Scope.** Both scopes share these fields, taken from the ``Request``: ``path`` is the part
of the request target before ``?``, percent-decoded and then decoded as UTF-8 (a path that
is not UTF-8 once decoded keeps its raw text here, and the subclass answers 400); ``raw_path``
is that same part undecoded; ``query_string`` the part after ``?``; ``root_path`` from the
configuration; ``headers`` as received; ``client``, ``server``; and the ``scheme`` (``http``
or ``https``, ``ws`` or ``wss``). A stream takes exactly one ``Request``: a second one is a
``RuntimeError`` (a bug in the connection).

**Inbox** (what ``receive()`` returns). Messages are queued only while an application runs
and has not been told that the stream is over: from ``SpawnApp`` until the disconnect message
is queued or the application finishes. An application still running when the stream ends
gets exactly one disconnect message, and nothing after it. ``ReceiveReady`` is emitted each
time the inbox goes from empty to non-empty. ``wants_data`` is false while
``max_app_queue_size`` messages wait; the connection then stops reading for this stream (the
bound is advisory: a message that still arrives is queued, never dropped). It is true
whenever incoming data would be discarded anyway.

**Sending** (``app_send``). Once the stream ended for a reason the application may not know
yet (the peer went away, a protocol error), every message is dropped silently. Otherwise a
message needs a ``str`` ``type`` (``TypeError``) that the subclass's ``_ALLOWED`` table allows
in the current ``state``; anything else raises :class:`~hypercorn.utils.UnexpectedMessageError`
naming the message type and the state. The subclass then acts on it.

**Ending.** ``StreamEnded`` is emitted at most once, when the stream's fate is settled; its
``response`` is the status and headers of the head that was sent, or None when none was.
:attr:`ASGIStream.closed` becomes true once that has happened *and* the application has
finished (or was never started). ``app_finished`` acts on its first call only: it empties
the inbox, queues nothing more, and, if the stream has not ended yet, lets the subclass
finish it (an error response, a close frame, or an abort).

**Server errors.** Responses the server generates itself (400, 403, 404, 500) carry
``content-length: 0``, plus ``connection: close`` on HTTP/1.x only (it is a
connection-specific header, forbidden on HTTP/2 and HTTP/3).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar, cast

from hypercorn.protocol.events import (
    EndData,
    ReceiveReady,
    Response,
    SpawnApp,
    StreamEnded,
)
from hypercorn.protocol.headers import split_target
from hypercorn.typing import HTTPScope, WebsocketScope
from hypercorn.utils import UnexpectedMessageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hypercorn.protocol.context import ProtocolContext, StreamOwner
    from hypercorn.protocol.events import Event, Request
    from hypercorn.protocol.h2 import H2Connection
    from hypercorn.protocol.h11 import H11Connection
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, ResponseSummary


__all__ = ("HTTP1_VERSIONS", "ASGIStream")

Headers = list[tuple[bytes, bytes]]

#: The ``http_version`` values of HTTP/1.x requests.
HTTP1_VERSIONS: Final = frozenset({"1.0", "1.1"})

_ERROR_HEADERS_H1: Final[Headers] = [(b"content-length", b"0"), (b"connection", b"close")]
_ERROR_HEADERS: Final[Headers] = [(b"content-length", b"0")]
_NOWHERE: Final[tuple[Enum, ...]] = ()

StateT = TypeVar("StateT", bound=Enum)
ScopeT = TypeVar("ScopeT", HTTPScope, WebsocketScope)


class ASGIStream(Generic[StateT, ScopeT]):
    """The part of an ASGI stream that does not depend on its scope type.

    Subclasses implement :class:`hypercorn.protocol.context.Stream` with it; this module's
    docstring states the rules kept here. ``client`` and ``server`` are ``(host, port)`` or
    None (e.g. unix sockets). A subclass sets ``_SCHEME``/``_SECURE_SCHEME`` and
    ``_ALLOWED``, sets its own fields (and the initial ``state``) in :meth:`_init_fields`,
    acts on the messages ``app_send`` let through in :meth:`_dispatch`, and finishes a
    stream whose application left before it ended in :meth:`_app_left_early`.
    """

    __slots__ = (
        "_app_done",
        "_client",
        "_context",
        "_drop_app_messages",
        "_ended",
        "_head_sent",
        "_inbox",
        "_owner",
        "_queue_size",
        "_receiving",
        "_response_headers",
        "_scheme",
        "_scope",
        "_server",
        "_status",
        "_version",
        "state",
        "stream_id",
    )

    #: The scope's ``scheme`` without and with TLS.
    _SCHEME: ClassVar[str]
    _SECURE_SCHEME: ClassVar[str]
    #: The states in which each message type is allowed; every other pairing is an error.
    _ALLOWED: ClassVar[Mapping[str, tuple[Enum, ...]]]

    #: Where the application is in answering (the subclass's state machine).
    state: StateT

    def __init__(
        self,
        context: ProtocolContext,
        owner: StreamOwner,
        stream_id: int,
        *,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
    ) -> None:
        self._context = context
        self._queue_size = context.config.max_app_queue_size
        # (Typed with the two compiled connections first: compiled, the calls to them are
        # then direct; any other StreamOwner is called as usual.)
        self._owner: H11Connection | H2Connection | StreamOwner = owner
        #: The stream's id (1 for HTTP/1.1; the HTTP/2 or HTTP/3 stream id otherwise).
        self.stream_id = stream_id
        self._scheme = self._SECURE_SCHEME if ssl else self._SCHEME
        self._client = client
        self._server = server
        self._scope: ScopeT | None = None
        self._version = "1.1"
        self._inbox: deque[ASGIReceiveEvent] = deque()
        self._receiving = False  # an application runs and has not been told the end
        self._app_done = False  # app_finished was called, or no application will run
        self._ended = False  # StreamEnded was emitted: the wire side is finished
        self._drop_app_messages = False  # ended for a reason the app may not know yet
        self._head_sent = False
        self._status = 0
        self._response_headers: Headers = []
        self._init_fields()

    def _init_fields(self) -> None:
        """Set the subclass's own fields and its initial ``state`` (end of ``__init__``)."""
        raise NotImplementedError

    # The rest of the Stream protocol, which each subclass implements. (Declared here so
    # that a connection holding an ASGIStream calls them directly when compiled.)

    def handle(self, event: Event) -> None:
        """Take an event from the wire (see the subclass)."""
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` should next run, or None."""
        raise NotImplementedError

    def handle_timer(self) -> None:
        """Act on the deadline that :meth:`next_deadline` gave."""
        raise NotImplementedError

    # -----------------------------------------------------------------------------------
    # The Stream protocol: properties
    # -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the stream's end is settled and the application has finished."""
        return self._ended and self._app_done

    @property
    def wants_data(self) -> bool:
        """True while the inbox has room, or while incoming data would be discarded."""
        if not self._receiving:
            return True
        return len(self._inbox) < self._queue_size

    @property
    def scope(self) -> ScopeT | None:
        """The scope built from the request (None before the ``Request`` event)."""
        return self._scope

    # -----------------------------------------------------------------------------------
    # The request and the inbox
    # -----------------------------------------------------------------------------------

    def _read_request(self, request: Request, scope: dict[str, Any]) -> str | None:
        """Take the (only) request: add the fields that ``http`` and ``websocket`` scopes
        share to ``scope`` (the subclass's own fields), and return the decoded path (None
        if not UTF-8). (Filled in place: one dict per scope, not two merged.)"""
        if self._scope is not None:
            raise RuntimeError(f"Stream {self.stream_id} was given a second Request")
        self._version = request.http_version
        path, raw_path, query_string = split_target(request.raw_path)
        scope["scheme"] = self._scheme
        scope["path"] = raw_path.decode("latin-1") if path is None else path
        scope["raw_path"] = raw_path
        scope["query_string"] = query_string
        scope["root_path"] = self._context.config.root_path
        scope["headers"] = request.headers
        scope["client"] = self._client
        scope["server"] = self._server
        return path

    def _spawn_app(self) -> None:
        """Ask the driver to start the application; its inbox opens."""
        assert self._scope is not None
        self._receiving = True
        self._owner.driver_event(SpawnApp(self.stream_id, self._scope))

    def _put(self, message: ASGIReceiveEvent) -> None:
        if not self._receiving:
            return  # No application, or it has been told the stream is over.
        inbox = self._inbox
        inbox.append(message)
        if len(inbox) == 1:
            self._owner.driver_event(ReceiveReady(self.stream_id))

    def _queue_disconnect(self, message: ASGIReceiveEvent) -> None:
        """Queue the disconnect ``message``; nothing is queued after it."""
        self._put(message)
        self._receiving = False

    # -----------------------------------------------------------------------------------
    # The application's side
    # -----------------------------------------------------------------------------------

    def app_receive(self) -> ASGIReceiveEvent | None:
        """The next message for the application's ``receive()``, or None if none waits."""
        inbox = self._inbox
        return inbox.popleft() if inbox else None

    def app_send(self, message: ASGISendEvent) -> None:
        """Take a message from the application's ``send()`` (see the module's table)."""
        if self._drop_app_messages:
            return
        # Read untyped and checked here (a compiled build would check the declared type
        # itself, with a less helpful message).
        message_type = cast("dict[str, object]", message).get("type")
        if not isinstance(message_type, str):
            raise TypeError(f"An ASGI message needs a str 'type', not {message_type!r}")
        if self.state not in self._ALLOWED.get(message_type, _NOWHERE):
            raise UnexpectedMessageError(self.state, message_type)
        self._dispatch(message_type, message)

    def _dispatch(self, message_type: str, message: Any) -> None:
        """Act on a message that ``app_send`` found allowed in the current state."""
        raise NotImplementedError

    def app_finished(self) -> None:
        """The application returned or raised: finish what it left unfinished."""
        if self._app_done:
            return
        self._app_done = True
        # Nobody will receive any more: free the inbox and queue nothing further.
        self._inbox.clear()
        self._receiving = False
        if not self._ended:
            self._app_left_early()

    def _app_left_early(self) -> None:
        """The application finished before the stream ended: end it (the subclass's rules)."""
        raise NotImplementedError

    # -----------------------------------------------------------------------------------
    # Helpers
    # -----------------------------------------------------------------------------------

    def _send_error_head(self, status: int, extra: Headers | None = None) -> None:
        """Send a server-generated error response (head and end) and record it as the head
        that was sent. The subclass sets its state before and ends the stream after."""
        headers = list(_ERROR_HEADERS_H1 if self._version in HTTP1_VERSIONS else _ERROR_HEADERS)
        if extra:
            headers.extend(extra)
        self._head_sent = True
        self._status = status
        self._response_headers = headers
        owner = self._owner
        owner.stream_send(Response(stream_id=self.stream_id, headers=headers, status_code=status))
        owner.stream_send(EndData(stream_id=self.stream_id))

    def _end(self) -> None:
        """Emit ``StreamEnded`` with the head that was sent, if any (once: later calls do
        nothing; none at all when the context's ``stream_ends`` is false)."""
        if self._ended:
            return
        self._ended = True
        if self._context.stream_ends:
            assert self._scope is not None
            response: ResponseSummary | None = None
            if self._head_sent:
                response = {"status": self._status, "headers": self._response_headers}
            self._owner.driver_event(StreamEnded(self.stream_id, self._scope, response))
