"""Trust the client address, scheme and host that reverse proxies report.

Behind a reverse proxy the server sees the proxy's address and scheme, not the client's.
``ProxyFixMiddleware(app, mode, trusted_hops)`` rewrites the ``client``, ``scheme`` and
``Host`` header of HTTP and WebSocket scopes from what the last ``trusted_hops`` proxies
added to the request. Only use it when every request really passes through those proxies:
a client talking to the server directly can claim anything in these headers.

Modes:

* ``"legacy"``: ``X-Forwarded-For`` (client), ``X-Forwarded-Proto`` (scheme) and
  ``X-Forwarded-Host`` (host). Each header is read on its own: all its lines are joined, split
  on ``,``, and the ``trusted_hops``-th value from the right is used; with fewer values than
  that the header is ignored.
* ``"modern"``: the RFC 7239 ``Forwarded`` header, and nothing else. Its elements (across
  all ``Forwarded`` lines, in order) are counted from the right and the ``trusted_hops``-th
  one supplies ``for=`` (client), ``proto=`` (scheme) and ``host=`` (host); parameters it
  lacks leave the scope unchanged. The reference fell back to the ``X-Forwarded-*`` headers
  when no ``Forwarded`` header was present, which let a client set its own address and
  scheme through headers the deployment never asked to trust; here a request without a
  usable ``Forwarded`` element is passed on unchanged.

Parsing (both modes):

* ``Forwarded`` is parsed as RFC 7239 says: ``;``-separated ``key=value`` pairs with
  case-insensitive keys, values as tokens or quoted strings (with ``\\`` escapes, so quoted
  ``,`` and ``;`` do not split), empty list elements skipped. A line that cannot be parsed,
  or an element that repeats a parameter, is malformed: if it is needed to reach the
  trusted element, nothing is changed. Unquoted values may use any visible character other
  than ``,;"`` (so the common ``for=[::1]:80`` without quotes is understood).
* Client nodes: an IPv4 address, an IPv6 address (``[2001:db8::1]``, or bare in
  ``X-Forwarded-For``), or an RFC 7239 obfuscated identifier (``_hidden``), each optionally
  followed by ``:port``. The client becomes ``(host, port)``, with ``0`` when no numeric
  port was given; IP addresses are written in their canonical form. ``unknown`` means the
  proxy does not know the client: the scope's ``client`` becomes ``None``. Anything else is
  ignored.
* Schemes: ``http``, ``https``, ``ws`` or ``wss`` (any case). HTTP scopes get ``http`` or
  ``https`` and WebSocket scopes ``ws`` or ``wss`` depending on whether the proxy's scheme is
  secure (the reference copied ``https`` into WebSocket scopes). Other values are ignored.
* Hosts: ``name``, ``name:port`` or ``[v6]:port``, made of the characters RFC 3986 allows in
  an authority without user information (no ``/?#@``, spaces or quotes); the first
  ``host`` header is replaced in place (further ones are dropped), or one is added.

``trusted_hops=0`` trusts nothing. The scope is copied, never changed in place: a shallow
copy with a new ``headers`` list (a deep copy, as the reference made, would also copy the
lifespan ``state`` that apps expect to share). Lifespan and other scopes pass through.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final, Literal

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
    WWWScope,
)

__all__ = ("ProxyFixMiddleware",)

_Headers = list[tuple[bytes, bytes]]

# RFC 9110 token characters (keys, and the strict form of values).
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Unquoted values, leniently: visible ASCII except the separators , ; and the quote.
_BARE_VALUE: Final = re.compile(r"[!#-+\--:<-~]+")
# A quoted string: tab, space, visible ASCII and obs-text, with backslash escapes.
_QUOTED: Final = re.compile(r'"((?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*)"')
_UNESCAPE: Final = re.compile(r"\\(.)")
_OBFUSCATED: Final = re.compile(r"_[A-Za-z0-9._-]+")
_PORT: Final = re.compile(r"[0-9]{1,5}")
# uri-host [":" port]: the characters RFC 3986 allows in an authority without userinfo.
_HOST: Final = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]+")

_SCHEMES: Final = {"http": False, "ws": False, "https": True, "wss": True}


class _Unknown:
    """The node ``unknown``: the proxy could not tell who the client is."""


_UNKNOWN: Final = _Unknown()


class ProxyFixMiddleware:
    """Rewrite ``client``, ``scheme`` and ``Host`` from trusted proxy headers (see module doc).

    ``mode`` is ``"legacy"`` (``X-Forwarded-*``) or ``"modern"`` (``Forwarded`` only);
    ``trusted_hops`` is how many proxies in front of the server are trusted (``0``: none).
    """

    def __init__(
        self,
        app: ASGIFramework,
        mode: Literal["legacy", "modern"] = "legacy",
        trusted_hops: int = 1,
    ) -> None:
        if mode not in ("legacy", "modern"):
            raise ValueError(f"mode must be 'legacy' or 'modern', got {mode!r}")
        if isinstance(trusted_hops, bool) or not isinstance(trusted_hops, int):
            raise TypeError(f"trusted_hops must be an int, got {trusted_hops!r}")
        if trusted_hops < 0:
            raise ValueError(f"trusted_hops must be 0 or more, got {trusted_hops}")
        self.app = app
        self.mode = mode
        self.trusted_hops = trusted_hops

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" or scope["type"] == "websocket":
            scope = self.fix_scope(scope)
        await self.app(scope, receive, send)

    def fix_scope(self, scope: WWWScope) -> WWWScope:
        """A copy of ``scope`` with what the trusted proxies reported applied."""
        headers: _Headers = list(scope["headers"])
        fixed = scope.copy()
        fixed["headers"] = headers
        if self.trusted_hops == 0:
            return fixed
        if self.mode == "modern":
            element = _trusted_forwarded(headers, self.trusted_hops) or {}
            client, proto, host = element.get("for"), element.get("proto"), element.get("host")
        else:
            client = _trusted_value(headers, b"x-forwarded-for", self.trusted_hops)
            proto = _trusted_value(headers, b"x-forwarded-proto", self.trusted_hops)
            host = _trusted_value(headers, b"x-forwarded-host", self.trusted_hops)

        if client is not None:
            node = _parse_node(client)
            if node is _UNKNOWN:
                fixed["client"] = None
            elif isinstance(node, tuple):
                fixed["client"] = node
        if proto is not None and (secure := _SCHEMES.get(proto.lower())) is not None:
            if fixed["type"] == "websocket":
                fixed["scheme"] = "wss" if secure else "ws"
            else:
                fixed["scheme"] = "https" if secure else "http"
        if host is not None and _HOST.fullmatch(host):
            fixed["headers"] = _replace_host(headers, host.encode("ascii"))
        return fixed


def _values(headers: _Headers, name: bytes) -> Iterable[str]:
    for header_name, value in headers:
        if header_name.lower() == name:
            yield value.decode("latin-1")


def _trusted_value(headers: _Headers, name: bytes, trusted_hops: int) -> str | None:
    """The ``trusted_hops``-th comma-separated value of header ``name``, from the right."""
    values = [part.strip() for line in _values(headers, name) for part in line.split(",")]
    if len(values) < trusted_hops:
        return None
    return values[-trusted_hops] or None


def _trusted_forwarded(headers: _Headers, trusted_hops: int) -> dict[str, str] | None:
    """The ``trusted_hops``-th ``Forwarded`` element from the right, if it can be reached."""
    remaining = trusted_hops
    for line in reversed(list(_values(headers, b"forwarded"))):
        elements = parse_forwarded(line)
        if elements is None:
            return None
        if len(elements) >= remaining:
            return elements[len(elements) - remaining]
        remaining -= len(elements)
    return None


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """Parse one ``Forwarded`` header value into its elements, or ``None`` if malformed.

    Each element is a dict of lower-cased parameter names to their (unquoted) values; empty
    elements are left out. A repeated parameter in one element makes the value malformed.
    """
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    position = _skip_ows(value, 0)
    length = len(value)
    while position < length:
        if value[position] not in ",;":
            key_match = _TOKEN.match(value, position)
            if key_match is None:
                return None
            position = key_match.end()
            if position >= length or value[position] != "=":
                return None
            position += 1
            if position < length and value[position] == '"':
                quoted = _QUOTED.match(value, position)
                if quoted is None:
                    return None
                parameter = _UNESCAPE.sub(r"\1", quoted.group(1))
                position = quoted.end()
            else:
                bare = _BARE_VALUE.match(value, position)
                if bare is None:
                    return None
                parameter = bare.group()
                position = bare.end()
            key = key_match.group().lower()
            if key in element:
                return None
            element[key] = parameter
            position = _skip_ows(value, position)
            if position >= length:
                break
        separator = value[position]
        if separator == ",":
            if element:
                elements.append(element)
            element = {}
        elif separator != ";":
            return None
        position = _skip_ows(value, position + 1)
    if element:
        elements.append(element)
    return elements


def _skip_ows(value: str, position: int) -> int:
    while position < len(value) and value[position] in " \t":
        position += 1
    return position


def _parse_node(node: str) -> tuple[str, int] | _Unknown | None:
    """A client node as ``(host, port)``, :data:`_UNKNOWN`, or ``None`` when unusable."""
    if node.lower() == "unknown":
        return _UNKNOWN
    port_text = ""
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket or rest == ":" or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    elif node.count(":") > 1:  # a bare IPv6 address carries no port
        try:
            return str(ipaddress.IPv6Address(node)), 0
        except ValueError:
            return None
    else:
        host, colon, port_text = node.partition(":")
        if colon and not port_text:
            return None
        if _OBFUSCATED.fullmatch(host) is None:
            try:
                host = str(ipaddress.IPv4Address(host))
            except ValueError:
                return None
    if not port_text:
        return host, 0
    if _PORT.fullmatch(port_text) and 0 < int(port_text) < 65536:
        return host, int(port_text)
    if _OBFUSCATED.fullmatch(port_text):
        return host, 0
    return None


def _replace_host(headers: _Headers, host: bytes) -> _Headers:
    replaced: _Headers = []
    seen = False
    for name, value in headers:
        if name.lower() == b"host":
            if not seen:
                replaced.append((name, host))
                seen = True
        else:
            replaced.append((name, value))
    if not seen:
        replaced.append((b"host", host))
    return replaced
