"""Redirect plain ``http``/``ws`` requests to their TLS equivalent.

``HTTPToHTTPSRedirectMiddleware(app, host)`` answers every HTTP request whose scope scheme is
``http`` with a ``307 Temporary Redirect`` (the method and body are kept by the client) to
the same URL on ``https``, and every WebSocket whose scheme is ``ws`` with a redirect to
``wss``. Secure requests and lifespan go to ``app`` unchanged.

Choices, where the reference implementation left room:

* ``host`` is the authority (``name`` or ``name:port``) to redirect to. When it is ``None``
  the request's ``Host`` header is used. A request without one, or with a value that cannot
  be a URL authority (contains ``/``, ``?``, ``#``, ``@``, ``\\`` or whitespace), gets an empty
  ``400`` response instead of the reference's :class:`ValueError` (which turned a client's
  bad request into a server error). An explicit ``host`` is used as given.
* The redirect path is ``raw_path`` (the percent-encoded path the client sent) followed by
  ``?query_string`` when there is one. ``root_path`` is put in front only when ``raw_path``
  does not already start with it, so a proxy that strips the mount prefix still gets it back
  while a path that already carries it (ASGI's meaning of ``root_path``, and the case under
  :class:`~hypercorn.middleware.DispatcherMiddleware`) is not doubled as it was in the
  reference. Without ``raw_path`` the decoded ``path`` is percent-encoded again.
* WebSockets: when the server offers the ``websocket.http.response`` extension the redirect
  is sent as a denial response (``websocket.http.response.start``/``.body``). The target
  scheme is ``wss`` for HTTP/1.1 and ``https`` for WebSockets over HTTP/2 and HTTP/3, which
  are opened with an ``https`` request (RFC 8441, RFC 9220); the reference used ``https``
  for HTTP/2 only. Without the extension the handshake is refused with ``websocket.close``
  (the server answers it with a 403).
"""

from __future__ import annotations

from urllib.parse import quote

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
    WebsocketScope,
    WWWScope,
)

__all__ = ("HTTPToHTTPSRedirectMiddleware",)

_NOT_IN_AUTHORITY = frozenset("/?#@\\ \t\r\n")


class HTTPToHTTPSRedirectMiddleware:
    """Send ``http``/``ws`` requests to ``https``/``wss`` on ``host`` (see module doc).

    ``host`` is required (as in the reference) but may be ``None`` to reuse the request's
    ``Host`` header.
    """

    def __init__(self, app: ASGIFramework, host: str | None) -> None:
        self.app = app
        self.host = host

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" and scope["scheme"] == "http":
            await self._redirect_http(scope, send)
        elif scope["type"] == "websocket" and scope["scheme"] == "ws":
            await self._redirect_websocket(scope, send)
        else:
            await self.app(scope, receive, send)

    async def _redirect_http(self, scope: HTTPScope, send: ASGISendCallable) -> None:
        location = self._location("https", scope)
        if location is None:
            status, headers = 400, [(b"content-length", b"0")]
        else:
            status = 307
            headers = [(b"location", location), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _redirect_websocket(self, scope: WebsocketScope, send: ASGISendCallable) -> None:
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1000, "reason": None})
            return
        scheme = "https" if scope.get("http_version") in {"2", "3"} else "wss"
        location = self._location(scheme, scope)
        if location is None:
            status, headers = 400, [(b"content-length", b"0")]
        else:
            status = 307
            headers = [(b"location", location), (b"content-length", b"0")]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"", "more_body": False})

    def _location(self, scheme: str, scope: WWWScope) -> bytes | None:
        """The redirect target, or ``None`` when no usable host is known."""
        host = self.host
        if host is None:
            host = _host_header(scope)
            if host is None:
                return None
        raw_path = scope.get("raw_path")
        if raw_path:
            path = raw_path.decode("latin-1")
        else:
            path = quote(scope["path"], safe="/%!$&'()*+,;=:@~")
        root_path = quote((scope.get("root_path") or "").rstrip("/"), safe="/%!$&'()*+,;=:@~")
        if root_path and not _starts_with_segment(path, root_path):
            path = root_path + path
        url = f"{scheme}://{host}{path}"
        query = scope.get("query_string") or b""
        if query:
            url += "?" + query.decode("latin-1")
        return url.encode("latin-1")


def _host_header(scope: WWWScope) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"host":
            host = value.decode("latin-1").strip()
            if not host or any(char in _NOT_IN_AUTHORITY for char in host):
                return None
            return host
    return None


def _starts_with_segment(path: str, prefix: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")
