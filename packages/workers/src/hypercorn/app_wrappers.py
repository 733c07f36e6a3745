"""ASGI and WSGI applications adapted to the one calling convention the workers use.

A worker runs every application through an :class:`~hypercorn.typing.AppWrapper`::

    await wrapper(scope, receive, send, sync_spawn, call_soon)

``receive`` and ``send`` are the ASGI callables of one connection. The other two are the
driver's thread hooks, and they are all a wrapper may use to leave the event loop:

* ``await sync_spawn(func, *args)`` runs ``func(*args)`` in a worker thread and returns its
  result (asyncio: ``loop.run_in_executor``; trio: ``trio.to_thread.run_sync``);
* ``call_soon(async_func, *args)``, called *from that thread*, runs ``async_func(*args)`` on
  the event loop, blocks the thread until it finishes and returns its result (asyncio:
  ``asyncio.run_coroutine_threadsafe(...).result()``; trio: ``trio.from_thread.run``).

This module imports no event loop library (an import contract checks it), so the same
wrappers serve asyncio, uvloop and trio workers.

:func:`wrap_app` and :func:`load_application` live here rather than in
:mod:`hypercorn.utils`, where the reference implementation had them: utils belongs to the
lower ``hypercorn-protocols`` distribution, which may not depend on the wrappers. So
``hypercorn.utils.load_application`` only finds an application and says whether it is ASGI or
WSGI, and :func:`load_application` here wraps what it found.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from functools import partial
from io import BytesIO
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from hypercorn.utils import is_asgi
from hypercorn.utils import load_application as _find_application

if TYPE_CHECKING:
    from hypercorn.typing import (
        AppWrapper,
        ASGIFramework,
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        Framework,
        HTTPResponseBodyEvent,
        HTTPResponseStartEvent,
        HTTPScope,
        Scope,
        WSGIFramework,
    )

__all__ = (
    "ASGIWrapper",
    "InvalidPathError",
    "WSGIWrapper",
    "load_application",
    "wrap_app",
)

_ExcInfo = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)
_Transmit = Callable[[list["ASGISendEvent"]], object]
_HTTP1_VERSIONS = frozenset({"1.0", "1.1"})


class InvalidPathError(Exception):
    """The request path is not under the configured ``root_path`` (answered with 404)."""


class ASGIWrapper:
    """Runs an ASGI application as it is: the thread hooks are not needed and ignored."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None:
        await self.app(scope, receive, send)


class WSGIWrapper:
    """Runs a WSGI (PEP 3333) application in the driver's worker threads.

    For an ``http`` scope the wrapper reads the request body on the event loop, builds the
    environ (:func:`_build_environ`), calls the application in a worker thread
    (``sync_spawn``) and sends each piece of the response from that thread back through
    ``call_soon``, so every ``send`` is awaited before the application produces more: a
    streaming iterable is sent chunk by chunk, never buffered, and a slow client slows the
    application down instead of filling memory. The response head goes out with the first
    non-empty body chunk (or at the end), so an application may still replace it with
    ``start_response(..., exc_info)`` until then. A ``websocket`` scope is refused with
    ``websocket.close``; a ``lifespan`` scope returns at once, so lifespan counts as
    unsupported and the app is served without it; any other scope type is a ``ValueError``.

    An exception from the application is re-raised to the driver, which answers 500 if the
    response has not started and aborts the response otherwise.

    Differences from the reference implementation, each on purpose:

    * **413 for a body over** ``max_body_size`` (the reference sent 400), with
      ``content-length: 0`` (and ``connection: close`` on HTTP/1.x, as the rest of the body
      is never read). The application is not called. Reading stops at the limit: a
      ``Content-Length`` above it is refused before any body is read, and a body without one
      is refused as soon as it grows past the limit, so at most ``max_body_size`` bytes are
      ever held. A client that disconnects before its body is complete gets no response and
      the application is not called (the reference called it with the partial body).
    * **The environ follows PEP 3333** more closely: ``SERVER_PORT`` and ``REMOTE_PORT`` are
      strings (the reference left ``SERVER_PORT`` an int and had no ``REMOTE_PORT``);
      ``PATH_INFO`` and ``SCRIPT_NAME`` are the percent-decoded path bytes decoded as
      latin-1; ``QUERY_STRING`` is decoded as latin-1 (the reference's ASCII decode failed on
      other bytes); ``wsgi.errors`` is ``sys.stderr`` (the reference used stdout);
      ``CONTENT_LENGTH`` is the length of the body in ``wsgi.input`` whenever there is a body,
      also for chunked or HTTP/2 requests that sent no ``Content-Length`` (frameworks read
      that many bytes), and ``wsgi.input_terminated`` is true.
    * **root_path is matched per path segment**: with ``root_path="/app"`` the path
      ``/application`` is not under it (404; the reference matched any string prefix). A
      trailing ``/`` on ``root_path`` is not part of ``SCRIPT_NAME``.
    * **Headers**: a request header whose name contains ``_`` is dropped, since it would be
      indistinguishable from the ``-`` spelling in the environ (the trick behind header
      spoofing through proxies); repeated ``cookie`` headers (HTTP/2 sends one per cookie)
      are joined with ``"; "``, others with ``","``.
    * **start_response returns write()** (PEP 3333 requires it; the reference returned
      None); ``write`` sends its chunk at once and returns once it was sent.
    * **exc_info follows PEP 3333**: a second ``start_response`` call replaces the status
      and headers when it passes ``exc_info`` and the head is not sent yet, re-raises
      ``exc_info`` when the head was sent, and is a ``RuntimeError`` without ``exc_info``
      (the reference ignored ``exc_info`` and accepted any second call).
    * **An empty body still gets a response**: an application that returns an empty
      iterable gets the status and headers it gave ``start_response`` (the reference sent
      no response head, which became a 500).
    * **close() is always called** on the returned iterable: after the last chunk, when the
      application or a ``send`` raises, and when the worker cancels the request (a client
      that went away): iteration stops at the next chunk and ``close()`` runs in the thread.
    * **Chunks are checked**: a ``str`` (or any non-bytes) chunk is a ``TypeError`` naming
      the type; ``bytearray``/``memoryview`` chunks are accepted as bytes.
    """

    def __init__(self, app: WSGIFramework, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None:
        if scope["type"] == "http":
            await self.handle_http(scope, receive, send, sync_spawn, call_soon)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close"})
        elif scope["type"] == "lifespan":
            return
        else:
            raise ValueError(f"Unknown ASGI scope type {scope['type']!r} for a WSGI application")

    async def handle_http(
        self,
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None:
        """Serve one HTTP request: read the body, run the application, send its response."""
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        try:
            environ = _build_environ(scope, body)
        except InvalidPathError:
            await _send_all(send, _empty_response(404, close=False, scope=scope))
            return

        response = _WSGIResponse(partial(call_soon, _send_all, send))
        try:
            remaining = await sync_spawn(self._run, environ, response)
        except BaseException:
            # Cancelled (or failed) while the thread may still be running (asyncio cannot
            # stop a thread): make it stop at the next chunk and close the iterable.
            response.abandoned = True
            raise
        await _send_all(send, remaining)

    def run_app(self, environ: dict[str, Any], send: Callable[[ASGISendEvent], object]) -> None:
        """Run the application in the calling thread, handing each message to ``send``.

        ``send`` is synchronous and must not return before the message was sent (for example
        ``functools.partial(call_soon, asgi_send)``). Kept for compatibility; the wrapper
        itself batches messages to cross threads fewer times.
        """

        def transmit(messages: list[ASGISendEvent]) -> None:
            for message in messages:
                send(message)

        transmit(self._run(environ, _WSGIResponse(transmit)))

    def _run(self, environ: dict[str, Any], response: _WSGIResponse) -> list[ASGISendEvent]:
        """In the worker thread: run the app, stream what it yields, return the rest to send."""
        result = self.app(environ, response.start_response)
        try:
            if type(result) is list or type(result) is tuple:
                # The whole body is known: the loop sends it, no thread hop per chunk.
                return response.complete(result)
            for chunk in result:
                response.write(chunk)
            return response.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    async def _read_body(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> bytes | None:
        """The request body, or None if a response was sent instead or the client left."""
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    continue
                if declared > self.max_body_size:
                    await _send_all(send, _empty_response(413, close=True, scope=scope))
                    return None

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # http.disconnect: nobody to answer.
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                await _send_all(send, _empty_response(413, close=True, scope=scope))
                return None
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _ResponseAbandonedError(Exception):
    """Raised in the worker thread to stop the application once the request was cancelled."""


class _WSGIResponse:
    """The thread side of one WSGI response: ``start_response``, ``write`` and the end."""

    __slots__ = ("_transmit", "abandoned", "headers", "headers_sent", "status")

    def __init__(self, transmit: _Transmit) -> None:
        self._transmit = transmit
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_sent = False
        self.abandoned = False

    def start_response(
        self,
        status: str,
        headers: Iterable[tuple[str, str]],
        exc_info: _ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None and exc_info[1] is not None:
            if self.headers_sent:
                # PEP 3333: too late to change the response; let the error propagate.
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise RuntimeError(
                "start_response() was already called; call it again only with exc_info, "
                "e.g. start_response(status, headers, sys.exc_info()), to replace the "
                "response after an error"
            )
        self.status = _parse_status(status)
        self.headers = _encode_headers(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """Send one body chunk now (the ``write`` callable of PEP 3333)."""
        if self.abandoned:
            raise _ResponseAbandonedError("the request was cancelled")
        chunk = _as_bytes(data)
        if not chunk:
            return
        messages: list[ASGISendEvent] = []
        if not self.headers_sent:
            messages.append(self._start())
        messages.append(_body(chunk, more_body=True))
        self._transmit(messages)

    def complete(self, chunks: Iterable[object]) -> list[ASGISendEvent]:
        """The messages for a whole body given at once; the last chunk ends the response."""
        body = [chunk for chunk in map(_as_bytes, chunks) if chunk]
        if not body:
            return self.finish()
        messages: list[ASGISendEvent] = []
        if not self.headers_sent:
            messages.append(self._start())
        messages.extend(_body(chunk, more_body=True) for chunk in body[:-1])
        messages.append(_body(body[-1], more_body=False))
        return messages

    def finish(self) -> list[ASGISendEvent]:
        """The messages that end the response (its head too if no chunk was sent)."""
        messages: list[ASGISendEvent] = []
        if not self.headers_sent:
            messages.append(self._start())
        messages.append(_body(b"", more_body=False))
        return messages

    def _start(self) -> HTTPResponseStartEvent:
        if self.status is None:
            raise RuntimeError(
                "The WSGI application did not call start_response() before returning or "
                "writing its body"
            )
        self.headers_sent = True
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}


def _parse_status(status: str) -> int:
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be a str such as '200 OK', not {status!r}")
    code = status.split(" ", 1)[0]
    if len(code) != 3 or not code.isdigit() or code[0] == "0":
        raise ValueError(f"WSGI status must look like '200 OK', not {status!r}")
    return int(code)


def _encode_headers(headers: Iterable[tuple[object, object]]) -> list[tuple[bytes, bytes]]:
    encoded: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"WSGI response headers must be (str, str) pairs, not {(name, value)!r}"
            )
        encoded.append((name.encode("latin-1").lower(), value.encode("latin-1")))
    return encoded


def _as_bytes(chunk: object) -> bytes:
    if type(chunk) is bytes:
        return chunk
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(
        f"A WSGI application must produce bytes, not {type(chunk).__name__}: {chunk!r:.60}"
    )


def _body(chunk: bytes, *, more_body: bool) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": chunk, "more_body": more_body}


def _empty_response(status: int, *, close: bool, scope: HTTPScope) -> list[ASGISendEvent]:
    headers = [(b"content-length", b"0")]
    if close and scope["http_version"] in _HTTP1_VERSIONS:
        headers.append((b"connection", b"close"))
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        _body(b"", more_body=False),
    ]


async def _send_all(send: ASGISendCallable, messages: list[ASGISendEvent]) -> None:
    for message in messages:
        await send(message)


def _build_environ(scope: HTTPScope, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ of an ``http`` scope whose whole body is ``body``.

    Raises :class:`InvalidPathError` when the path is not under ``root_path``.
    """
    script_name, path_info = _split_path(scope)
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    server_name, server_port = server if server is not None else ("localhost", None)
    if server_port is None:
        server_port = 443 if scheme == "https" else 80

    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])

    has_content_length = False
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name == "content-length":
            has_content_length = True
            continue  # Replaced below by the length of the body actually read.
        if "_" in name:
            continue
        if name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ","
            value = environ[key] + separator + value
        environ[key] = value
    if has_content_length or body:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _split_path(scope: HTTPScope) -> tuple[str, str]:
    """``(SCRIPT_NAME, PATH_INFO)``: percent-decoded path bytes as latin-1 (PEP 3333)."""
    path = scope["path"].encode("utf-8", "surrogateescape")
    root = scope.get("root_path", "").encode("utf-8", "surrogateescape").rstrip(b"/")
    if root:
        if path == root:
            path = b""
        elif path.startswith(root + b"/"):
            path = path[len(root) :]
        else:
            raise InvalidPathError(
                f"path {scope['path']!r} is not under root_path {scope.get('root_path')!r}"
            )
    return root.decode("latin-1"), (path or b"/").decode("latin-1")


def wrap_app(
    app: Framework,
    wsgi_max_body_size: int,
    mode: Literal["asgi", "wsgi"] | None = None,
) -> AppWrapper:
    """Wrap ``app`` for the workers: :class:`ASGIWrapper` or :class:`WSGIWrapper`.

    With ``mode=None`` :func:`hypercorn.utils.is_asgi` decides (a coroutine function, or an
    object whose ``__call__`` is one, is ASGI; anything else is taken as WSGI).
    ``wsgi_max_body_size`` is the largest request body passed to a WSGI application.

    In the reference implementation this function is ``hypercorn.utils.wrap_app`` (and its
    ``mode`` had no default); it lives here because ``hypercorn.utils`` may not import the
    wrappers (see the module docstring).
    """
    if mode is None:
        mode = "asgi" if is_asgi(app) else "wsgi"
    if mode == "asgi":
        return ASGIWrapper(cast("ASGIFramework", app))
    if mode == "wsgi":
        return WSGIWrapper(cast("WSGIFramework", app), wsgi_max_body_size)
    raise ValueError(f"mode must be 'asgi', 'wsgi' or None, not {mode!r}")


def load_application(path: str, wsgi_max_body_size: int) -> AppWrapper:
    """Import the application named by ``path`` and wrap it (see :func:`wrap_app`).

    ``path`` follows the grammar of :func:`hypercorn.utils.load_application`
    (``[asgi:|wsgi:]module[:expression]``), which finds the application and its mode and
    raises :class:`~hypercorn.utils.NoAppError` when it cannot. In the reference
    implementation this function is ``hypercorn.utils.load_application``; here utils only
    finds the application and this function, in the workers distribution, wraps it.
    """
    loaded = _find_application(path)
    return wrap_app(loaded.app, wsgi_max_body_size, loaded.mode)
