"""ASGI middleware shipped with the server.

* :class:`DispatcherMiddleware` (:class:`AsyncioDispatcherMiddleware`) and
  :class:`TrioDispatcherMiddleware`: mount several applications under path prefixes.
* :class:`HTTPToHTTPSRedirectMiddleware`: redirect ``http``/``ws`` to ``https``/``wss``.
* :class:`ProxyFixMiddleware`: trust the client, scheme and host reported by proxies.
* :class:`AsyncioWSGIMiddleware` and :class:`TrioWSGIMiddleware`: a WSGI application as an
  ASGI one.

Every middleware is an ASGI 3 application, ``await middleware(scope, receive, send)``.
Nothing here imports trio until a trio flavour is used, so the package imports without it.
"""

from hypercorn.middleware.dispatcher import (
    AsyncioDispatcherMiddleware,
    DispatcherMiddleware,
    TrioDispatcherMiddleware,
)
from hypercorn.middleware.http_to_https import HTTPToHTTPSRedirectMiddleware
from hypercorn.middleware.proxy_fix import ProxyFixMiddleware
from hypercorn.middleware.wsgi import AsyncioWSGIMiddleware, TrioWSGIMiddleware

__all__ = (
    "AsyncioDispatcherMiddleware",
    "AsyncioWSGIMiddleware",
    "DispatcherMiddleware",
    "HTTPToHTTPSRedirectMiddleware",
    "ProxyFixMiddleware",
    "TrioDispatcherMiddleware",
    "TrioWSGIMiddleware",
)
