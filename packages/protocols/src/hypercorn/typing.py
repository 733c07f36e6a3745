"""Type vocabulary of the server: ASGI scopes and messages, frameworks, and runtime contracts.

Everything here is for type checkers; at run time the names are plain aliases, ``TypedDict``
classes and ``Protocol`` classes, so importing this module is cheap and has no side effects.

* ASGI 3 scopes (:class:`HTTPScope`, :class:`WebsocketScope`, :class:`LifespanScope`) and one
  ``TypedDict`` per message an application can receive (:data:`ASGIReceiveEvent`) or send
  (:data:`ASGISendEvent`).
* The application shapes the server accepts: :data:`ASGIFramework`, :data:`WSGIFramework`
  and their union :data:`Framework`.
* Protocols describing the runtime services a worker provides (events, task groups, the
  per-worker context, wrapped applications). They are kept so that code written against the
  reference implementation's ``hypercorn.typing`` still imports; the sans-IO protocol layer
  of this project does not need them itself.

This module never imports :mod:`hypercorn.config` at run time (only for type checking), so
``config`` may freely import from here without creating an import cycle.

No ``from __future__ import annotations`` here on purpose: ``TypedDict`` only recognises
``NotRequired`` keys at run time (``__required_keys__``) when annotations are real objects.
"""

import sys
from collections.abc import Awaitable, Callable, Iterable
from multiprocessing.synchronize import Event as EventType
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NewType, Protocol, TypeAlias

import h2.events
import h11

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover - exercised on 3.10 only
    # typing.TypedDict on 3.10 does not understand NotRequired; the backport does.
    from typing_extensions import NotRequired, TypedDict

if TYPE_CHECKING:
    from hypercorn.config import Config, Sockets

__all__ = (
    "ASGIFramework",
    "ASGIReceiveCallable",
    "ASGIReceiveEvent",
    "ASGISendCallable",
    "ASGISendEvent",
    "ASGIVersions",
    "AppWrapper",
    "ConnectionState",
    "Event",
    "EventType",
    "Framework",
    "H2AsyncStream",
    "H2SyncStream",
    "H11SendableEvent",
    "HTTPDisconnectEvent",
    "HTTPEarlyHintEvent",
    "HTTPRequestEvent",
    "HTTPResponseBodyEvent",
    "HTTPResponseStartEvent",
    "HTTPResponseTrailersEvent",
    "HTTPScope",
    "HTTPServerPushEvent",
    "LifespanScope",
    "LifespanShutdownCompleteEvent",
    "LifespanShutdownEvent",
    "LifespanShutdownFailedEvent",
    "LifespanStartupCompleteEvent",
    "LifespanStartupEvent",
    "LifespanStartupFailedEvent",
    "LifespanState",
    "ResponseSummary",
    "Scope",
    "SingleTask",
    "TaskGroup",
    "WSGIFramework",
    "WWWScope",
    "WebsocketAcceptEvent",
    "WebsocketCloseEvent",
    "WebsocketConnectEvent",
    "WebsocketDisconnectEvent",
    "WebsocketReceiveEvent",
    "WebsocketResponseBodyEvent",
    "WebsocketResponseStartEvent",
    "WebsocketScope",
    "WebsocketSendEvent",
    "WorkerContext",
    "WorkerFunc",
)

#: The h11 events a server sends to an HTTP/1.1 client.
H11SendableEvent: TypeAlias = (
    h11.Data | h11.EndOfMessage | h11.InformationalResponse | h11.Response
)

#: A worker process entry point: ``(config, sockets, shutdown_event) -> None``.
WorkerFunc: TypeAlias = Callable[["Config", "Sockets | None", "EventType | None"], None]

#: Application state shared from the lifespan scope into every connection's scope.
LifespanState: TypeAlias = dict[str, Any]
#: A per-connection copy of :data:`LifespanState` (scope key ``state``).
ConnectionState = NewType("ConnectionState", dict[str, Any])

# Header lists in scopes and messages: (name, value) byte pairs.
_Headers: TypeAlias = Iterable[tuple[bytes, bytes]]


# ---------------------------------------------------------------------------------------
# Scopes
# ---------------------------------------------------------------------------------------


class ASGIVersions(TypedDict, total=False):
    """The ``asgi`` key of every scope."""

    spec_version: str
    version: Literal["2.0", "3.0"]


class HTTPScope(TypedDict):
    """Scope of one HTTP request (ASGI ``http`` connection scope)."""

    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: _Headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: ConnectionState
    extensions: dict[str, dict[Any, Any]]


class WebsocketScope(TypedDict):
    """Scope of one WebSocket connection (ASGI ``websocket`` connection scope)."""

    type: Literal["websocket"]
    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: _Headers
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    subprotocols: Iterable[str]
    state: ConnectionState
    extensions: dict[str, dict[Any, Any]]


class LifespanScope(TypedDict):
    """Scope of the application's lifespan (startup and shutdown) connection."""

    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: LifespanState


WWWScope: TypeAlias = HTTPScope | WebsocketScope
Scope: TypeAlias = HTTPScope | WebsocketScope | LifespanScope


# ---------------------------------------------------------------------------------------
# HTTP messages
# ---------------------------------------------------------------------------------------


class HTTPRequestEvent(TypedDict):
    """A chunk of the request body (received by the app)."""

    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPResponseStartEvent(TypedDict):
    """Start of the response: status and headers (sent by the app)."""

    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[_Headers]
    trailers: NotRequired[bool]


class HTTPResponseBodyEvent(TypedDict):
    """A chunk of the response body (sent by the app)."""

    type: Literal["http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


class HTTPResponseTrailersEvent(TypedDict):
    """Response trailers, after the body (sent by the app; HTTP/2 and HTTP/3)."""

    type: Literal["http.response.trailers"]
    headers: _Headers
    more_trailers: NotRequired[bool]


class HTTPServerPushEvent(TypedDict):
    """Ask the server to push a resource (sent by the app; HTTP/2 and HTTP/3)."""

    type: Literal["http.response.push"]
    path: str
    headers: _Headers


class HTTPEarlyHintEvent(TypedDict):
    """Send a 103 Early Hints response with these links (sent by the app)."""

    type: Literal["http.response.early_hint"]
    links: Iterable[bytes]


class HTTPDisconnectEvent(TypedDict):
    """The client went away, or the response is complete (received by the app)."""

    type: Literal["http.disconnect"]


# ---------------------------------------------------------------------------------------
# WebSocket messages
# ---------------------------------------------------------------------------------------


class WebsocketConnectEvent(TypedDict):
    """The client asks to open the WebSocket (received by the app)."""

    type: Literal["websocket.connect"]


class WebsocketAcceptEvent(TypedDict):
    """Accept the WebSocket handshake (sent by the app)."""

    type: Literal["websocket.accept"]
    subprotocol: NotRequired[str | None]
    headers: NotRequired[_Headers]


class WebsocketReceiveEvent(TypedDict):
    """A message from the client: exactly one of ``bytes``/``text`` is set."""

    type: Literal["websocket.receive"]
    bytes: bytes | None
    text: str | None


class WebsocketSendEvent(TypedDict):
    """A message to the client: exactly one of ``bytes``/``text`` is set."""

    type: Literal["websocket.send"]
    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class WebsocketResponseStartEvent(TypedDict):
    """Reject the handshake with an HTTP response: status and headers (sent by the app)."""

    type: Literal["websocket.http.response.start"]
    status: int
    headers: NotRequired[_Headers]


class WebsocketResponseBodyEvent(TypedDict):
    """Body chunk of a handshake-rejection response (sent by the app)."""

    type: Literal["websocket.http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


class WebsocketDisconnectEvent(TypedDict):
    """The WebSocket closed, with its close code (received by the app)."""

    type: Literal["websocket.disconnect"]
    code: int


class WebsocketCloseEvent(TypedDict):
    """Close the WebSocket, or refuse the handshake before accepting (sent by the app)."""

    type: Literal["websocket.close"]
    code: NotRequired[int]
    reason: NotRequired[str | None]


# ---------------------------------------------------------------------------------------
# Lifespan messages
# ---------------------------------------------------------------------------------------


class LifespanStartupEvent(TypedDict):
    """The server is starting (received by the app)."""

    type: Literal["lifespan.startup"]


class LifespanShutdownEvent(TypedDict):
    """The server is stopping (received by the app)."""

    type: Literal["lifespan.shutdown"]


class LifespanStartupCompleteEvent(TypedDict):
    """Startup finished (sent by the app)."""

    type: Literal["lifespan.startup.complete"]


class LifespanStartupFailedEvent(TypedDict):
    """Startup failed, with a reason (sent by the app)."""

    type: Literal["lifespan.startup.failed"]
    message: str


class LifespanShutdownCompleteEvent(TypedDict):
    """Shutdown finished (sent by the app)."""

    type: Literal["lifespan.shutdown.complete"]


class LifespanShutdownFailedEvent(TypedDict):
    """Shutdown failed, with a reason (sent by the app)."""

    type: Literal["lifespan.shutdown.failed"]
    message: str


# ---------------------------------------------------------------------------------------
# Unions, callables and frameworks
# ---------------------------------------------------------------------------------------

ASGIReceiveEvent: TypeAlias = (
    HTTPRequestEvent
    | HTTPDisconnectEvent
    | WebsocketConnectEvent
    | WebsocketReceiveEvent
    | WebsocketDisconnectEvent
    | LifespanStartupEvent
    | LifespanShutdownEvent
)

ASGISendEvent: TypeAlias = (
    HTTPResponseStartEvent
    | HTTPResponseBodyEvent
    | HTTPResponseTrailersEvent
    | HTTPServerPushEvent
    | HTTPEarlyHintEvent
    | HTTPDisconnectEvent
    | WebsocketAcceptEvent
    | WebsocketSendEvent
    | WebsocketResponseStartEvent
    | WebsocketResponseBodyEvent
    | WebsocketCloseEvent
    | LifespanStartupCompleteEvent
    | LifespanStartupFailedEvent
    | LifespanShutdownCompleteEvent
    | LifespanShutdownFailedEvent
)

ASGIReceiveCallable: TypeAlias = Callable[[], Awaitable[ASGIReceiveEvent]]
ASGISendCallable: TypeAlias = Callable[[ASGISendEvent], Awaitable[None]]

#: An ASGI 3 application: ``async def app(scope, receive, send) -> None``.
ASGIFramework: TypeAlias = Callable[
    [Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]
]
#: A WSGI application: ``def app(environ, start_response) -> Iterable[bytes]``.
WSGIFramework: TypeAlias = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Framework: TypeAlias = ASGIFramework | WSGIFramework


class ResponseSummary(TypedDict):
    """Status and headers of a response, as handed to the access logger."""

    status: int
    headers: _Headers


# ---------------------------------------------------------------------------------------
# Runtime contracts of the reference implementation (kept for import compatibility)
# ---------------------------------------------------------------------------------------


class H2SyncStream(Protocol):
    """An HTTP/2 stream handler whose data/end/reset/close callbacks are synchronous."""

    scope: dict[str, Any]

    def data_received(self, data: bytes) -> None: ...

    def ended(self) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    async def handle_request(
        self,
        event: h2.events.RequestReceived,
        scheme: str,
        client: tuple[str, int],
        server: tuple[str, int],
    ) -> None: ...


class H2AsyncStream(Protocol):
    """An HTTP/2 stream handler whose data/end/reset/close callbacks are coroutines."""

    scope: dict[str, Any]

    async def data_received(self, data: bytes) -> None: ...

    async def ended(self) -> None: ...

    async def reset(self) -> None: ...

    async def close(self) -> None: ...

    async def handle_request(
        self,
        event: h2.events.RequestReceived,
        scheme: str,
        client: tuple[str, int],
        server: tuple[str, int],
    ) -> None: ...


class Event(Protocol):
    """An event-loop flag with awaitable set/clear/wait (asyncio.Event or trio.Event shaped)."""

    def __init__(self) -> None: ...

    async def clear(self) -> None: ...

    async def set(self) -> None: ...

    async def wait(self) -> None: ...

    def is_set(self) -> bool: ...


class AppWrapper(Protocol):
    """An ASGI or WSGI application adapted to one calling convention for the workers."""

    async def __call__(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None: ...


class TaskGroup(Protocol):
    """A worker's task group: runs application instances and background tasks."""

    async def spawn_app(
        self,
        app: AppWrapper,
        config: "Config",
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]: ...

    def spawn(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None: ...

    async def __aenter__(self) -> "TaskGroup": ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SingleTask(Protocol):
    """At most one running background task that can be restarted or stopped."""

    def __init__(self) -> None: ...

    async def restart(
        self, task_group: TaskGroup, action: Callable[..., Awaitable[Any]]
    ) -> None: ...

    async def stop(self) -> None: ...


class WorkerContext(Protocol):
    """Per-worker services: event/task factories, shutdown flags, request counting, clock."""

    event_class: type[Event]
    single_task_class: type[SingleTask]
    terminate: Event
    terminated: Event

    async def mark_request(self) -> None: ...

    @staticmethod
    async def sleep(wait: float) -> None: ...

    @staticmethod
    def time() -> float: ...
