"""ProxyFixMiddleware: legacy X-Forwarded-* and modern RFC 7239 Forwarded, trusted hops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.middleware.proxy_fix import parse_forwarded
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

PROXY = ("10.0.0.1", 4000)
Headers = list[tuple[bytes, bytes]]
# What the app saw: (client, scheme, host header values).
Seen = tuple[tuple[str, int] | None, str, list[bytes]]
UNCHANGED: Seen = (PROXY, "http", [b"internal:8000"])


def make_scope(kind: str, headers: Headers) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"internal:8000"), *headers],
        "client": PROXY,
        "server": ("10.0.0.2", 8000),
        "state": {"shared": object()},
        "extensions": {},
    }
    if kind == "http":
        scope["method"] = "GET"
    else:
        scope["subprotocols"] = []
    return scope


def seen_by_app(
    mode: Any, trusted_hops: int, scope: dict[str, Any]
) -> tuple[dict[str, Any], Seen]:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append(scope)

    async def receive() -> ASGIReceiveEvent:
        raise AssertionError("not called")

    async def send(message: ASGISendEvent) -> None:
        raise AssertionError("not called")

    middleware = ProxyFixMiddleware(app, mode=mode, trusted_hops=trusted_hops)
    asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    fixed: dict[str, Any] = dict(seen[0])
    hosts = [value for name, value in fixed["headers"] if name == b"host"]
    return fixed, (fixed["client"], fixed["scheme"], hosts)


def xff(value: str) -> tuple[bytes, bytes]:
    return (b"x-forwarded-for", value.encode())


def fwd(value: str) -> tuple[bytes, bytes]:
    return (b"forwarded", value.encode("latin-1"))


LEGACY: list[tuple[Headers, int, Seen]] = [
    ([xff("203.0.113.7")], 1, (("203.0.113.7", 0), "http", [b"internal:8000"])),
    ([xff("198.51.100.1, 203.0.113.7")], 1, (("203.0.113.7", 0), "http", [b"internal:8000"])),
    ([xff("198.51.100.1, 203.0.113.7")], 2, (("198.51.100.1", 0), "http", [b"internal:8000"])),
    ([xff("198.51.100.1, 203.0.113.7")], 3, UNCHANGED),
    ([xff("198.51.100.1, 203.0.113.7")], 0, UNCHANGED),
    # Several header lines are one list, in order.
    (
        [xff("192.0.2.1"), xff("192.0.2.2, 192.0.2.3")],
        2,
        (("192.0.2.2", 0), "http", [b"internal:8000"]),
    ),
    (
        [xff("192.0.2.1"), xff("192.0.2.2, 192.0.2.3")],
        3,
        (("192.0.2.1", 0), "http", [b"internal:8000"]),
    ),
    # Header names in any case.
    ([(b"X-Forwarded-For", b"192.0.2.5")], 1, (("192.0.2.5", 0), "http", [b"internal:8000"])),
    # Nodes: ports, IPv6 with or without brackets, unknown, junk.
    ([xff("203.0.113.7:8080")], 1, (("203.0.113.7", 8080), "http", [b"internal:8000"])),
    ([xff("[2001:DB8::1]:4711")], 1, (("2001:db8::1", 4711), "http", [b"internal:8000"])),
    ([xff("2001:db8::1")], 1, (("2001:db8::1", 0), "http", [b"internal:8000"])),
    ([xff("unknown")], 1, (None, "http", [b"internal:8000"])),
    ([xff("not-an-address")], 1, UNCHANGED),
    ([xff("203.0.113.7:99999")], 1, UNCHANGED),
    ([xff("203.0.113.7:")], 1, UNCHANGED),
    ([xff("[2001:db8::1]:")], 1, UNCHANGED),
    ([xff("[nonsense]")], 1, UNCHANGED),
    ([xff("")], 1, UNCHANGED),
    # Scheme and host.
    ([(b"x-forwarded-proto", b"https")], 1, (PROXY, "https", [b"internal:8000"])),
    ([(b"x-forwarded-proto", b"HTTPS")], 1, (PROXY, "https", [b"internal:8000"])),
    ([(b"x-forwarded-proto", b"http, https")], 2, (PROXY, "http", [b"internal:8000"])),
    ([(b"x-forwarded-proto", b"ftp")], 1, UNCHANGED),
    ([(b"x-forwarded-host", b"example.com")], 1, (PROXY, "http", [b"example.com"])),
    ([(b"x-forwarded-host", b"[::1]:8443")], 1, (PROXY, "http", [b"[::1]:8443"])),
    ([(b"x-forwarded-host", b"a.test, b.test:81")], 1, (PROXY, "http", [b"b.test:81"])),
    ([(b"x-forwarded-host", b"bad host")], 1, UNCHANGED),
    ([(b"x-forwarded-host", b"evil.test/path")], 1, UNCHANGED),
    # All three at once.
    (
        [xff("203.0.113.9"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"w.test")],
        1,
        (("203.0.113.9", 0), "https", [b"w.test"]),
    ),
    # Legacy mode ignores Forwarded.
    ([fwd("for=192.0.2.60;proto=https;host=f.test")], 1, UNCHANGED),
]


@pytest.mark.parametrize(("headers", "hops", "expected"), LEGACY)
def test_legacy_mode(headers: Headers, hops: int, expected: Seen) -> None:
    assert seen_by_app("legacy", hops, make_scope("http", headers))[1] == expected


MODERN: list[tuple[Headers, int, Seen]] = [
    (
        [fwd("for=192.0.2.60;proto=https;host=example.com")],
        1,
        (("192.0.2.60", 0), "https", [b"example.com"]),
    ),
    # Keys are case-insensitive; values may be quoted; OWS around separators.
    (
        [fwd('For="192.0.2.60:8080" ; PROTO=https ;Host="example.com:8443"')],
        1,
        (("192.0.2.60", 8080), "https", [b"example.com:8443"]),
    ),
    (
        [fwd('for="[2001:db8:cafe::17]:4711"')],
        1,
        (("2001:db8:cafe::17", 4711), "http", [b"internal:8000"]),
    ),
    (
        [fwd('for="[2001:db8:cafe::17]"')],
        1,
        (("2001:db8:cafe::17", 0), "http", [b"internal:8000"]),
    ),
    # Unquoted brackets and colons are accepted (a common proxy misconfiguration).
    ([fwd("for=[::1]:80")], 1, (("::1", 80), "http", [b"internal:8000"])),
    # Obfuscated identifiers and unknown.
    ([fwd("for=_hidden")], 1, (("_hidden", 0), "http", [b"internal:8000"])),
    ([fwd('for="_hidden:_port"')], 1, (("_hidden", 0), "http", [b"internal:8000"])),
    ([fwd("for=unknown")], 1, (None, "http", [b"internal:8000"])),
    ([fwd("for=UNKNOWN")], 1, (None, "http", [b"internal:8000"])),
    # Hops count elements from the right, across header lines.
    (
        [fwd("for=192.0.2.43, for=198.51.100.17")],
        1,
        (("198.51.100.17", 0), "http", [b"internal:8000"]),
    ),
    (
        [fwd("for=192.0.2.43, for=198.51.100.17")],
        2,
        (("192.0.2.43", 0), "http", [b"internal:8000"]),
    ),
    ([fwd("for=192.0.2.43, for=198.51.100.17")], 3, UNCHANGED),
    ([fwd("for=192.0.2.43, for=198.51.100.17")], 0, UNCHANGED),
    (
        [fwd("for=192.0.2.1"), fwd("for=192.0.2.2;proto=https")],
        1,
        (("192.0.2.2", 0), "https", [b"internal:8000"]),
    ),
    (
        [fwd("for=192.0.2.1"), fwd("for=192.0.2.2;proto=https")],
        2,
        (("192.0.2.1", 0), "http", [b"internal:8000"]),
    ),
    # Quoted commas and semicolons do not split; empty elements do not count.
    (
        [fwd('for=192.0.2.1;by="a,b;c", for=192.0.2.2')],
        2,
        (("192.0.2.1", 0), "http", [b"internal:8000"]),
    ),
    ([fwd(", for=192.0.2.1 ,, ")], 1, (("192.0.2.1", 0), "http", [b"internal:8000"])),
    # Parameters the trusted element lacks leave the scope alone.
    ([fwd("proto=https")], 1, (PROXY, "https", [b"internal:8000"])),
    ([fwd("by=10.0.0.1")], 1, UNCHANGED),
    # Malformed: nothing is trusted if the trusted element cannot be reached.
    ([fwd("for=192.0.2.1;for=192.0.2.2")], 1, UNCHANGED),
    ([fwd('for="192.0.2.1')], 1, UNCHANGED),
    ([fwd("for")], 1, UNCHANGED),
    ([fwd("=192.0.2.1")], 1, UNCHANGED),
    ([fwd("for=192.0.2.1 proto=https")], 1, UNCHANGED),
    ([fwd('for=192.0.2.1;proto="https')], 1, UNCHANGED),
    # ... but a malformed line to the left of the trusted elements does not matter.
    (
        [fwd('for="broken'), fwd("for=192.0.2.9")],
        1,
        (("192.0.2.9", 0), "http", [b"internal:8000"]),
    ),
    ([fwd('for="broken'), fwd("for=192.0.2.9")], 2, UNCHANGED),
    # Invalid values are ignored one by one.
    ([fwd("for=not-an-ip;proto=gopher;host=https")], 1, (PROXY, "http", [b"https"])),
    ([fwd('for=192.0.2.1;host="bad host"')], 1, (("192.0.2.1", 0), "http", [b"internal:8000"])),
    # No fallback to X-Forwarded-* in modern mode.
    (
        [xff("203.0.113.7"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"x.test")],
        1,
        UNCHANGED,
    ),
    ([xff("203.0.113.7"), fwd("proto=https")], 1, (PROXY, "https", [b"internal:8000"])),
    ([xff("203.0.113.7"), fwd('for="broken')], 1, UNCHANGED),
]


@pytest.mark.parametrize(("headers", "hops", "expected"), MODERN)
def test_modern_mode(headers: Headers, hops: int, expected: Seen) -> None:
    assert seen_by_app("modern", hops, make_scope("http", headers))[1] == expected


@pytest.mark.parametrize(
    ("mode", "header", "scheme"),
    [
        ("legacy", (b"x-forwarded-proto", b"https"), "wss"),
        ("legacy", (b"x-forwarded-proto", b"http"), "ws"),
        ("legacy", (b"x-forwarded-proto", b"wss"), "wss"),
        ("modern", (b"forwarded", b"proto=https"), "wss"),
        ("modern", (b"forwarded", b"proto=ws"), "ws"),
    ],
)
def test_websocket_scopes_get_websocket_schemes(
    mode: str, header: tuple[bytes, bytes], scheme: str
) -> None:
    assert seen_by_app(mode, 1, make_scope("websocket", [header]))[1][1] == scheme


def test_http_scope_gets_an_http_scheme_from_a_websocket_proto() -> None:
    headers = [(b"x-forwarded-proto", b"wss")]
    assert seen_by_app("legacy", 1, make_scope("http", headers))[1][1] == "https"


def test_host_header_is_replaced_in_place_or_added() -> None:
    scope = make_scope("http", [(b"accept", b"*/*"), (b"host", b"second"), xff("192.0.2.1")])
    scope["headers"].append((b"x-forwarded-host", b"new.test"))
    fixed, _ = seen_by_app("legacy", 1, scope)
    assert fixed["headers"] == [
        (b"host", b"new.test"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"192.0.2.1"),
        (b"x-forwarded-host", b"new.test"),
    ]
    scope = make_scope("http", [fwd("host=new.test")])
    scope["headers"] = scope["headers"][1:]
    fixed, _ = seen_by_app("modern", 1, scope)
    assert fixed["headers"] == [(b"forwarded", b"host=new.test"), (b"host", b"new.test")]


def test_scope_is_copied_not_mutated() -> None:
    scope = make_scope(
        "http",
        [xff("192.0.2.1"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"n.test")],
    )
    headers = scope["headers"]
    before = (dict(scope), list(headers))
    fixed, _ = seen_by_app("legacy", 1, scope)
    assert (dict(scope), list(headers)) == before
    assert scope["headers"] is headers
    assert fixed is not scope
    assert fixed["headers"] is not headers
    # A shallow copy: the lifespan state is still shared, not duplicated.
    assert fixed["state"] is scope["state"]


def test_headers_given_as_any_iterable() -> None:
    scope = make_scope("http", [])
    scope["headers"] = iter([(b"host", b"internal:8000"), xff("192.0.2.1")])
    assert seen_by_app("legacy", 1, scope)[1] == (("192.0.2.1", 0), "http", [b"internal:8000"])


def test_lifespan_passes_through_untouched() -> None:
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    seen: list[Scope] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        seen.append(scope)

    async def receive() -> ASGIReceiveEvent:
        return {"type": "lifespan.startup"}

    async def send(message: ASGISendEvent) -> None:
        pass

    asyncio.run(ProxyFixMiddleware(app)(scope, receive, send))  # type: ignore[arg-type]
    assert seen == [scope]
    assert seen[0] is scope


def test_defaults_and_validation() -> None:
    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        pass

    middleware = ProxyFixMiddleware(app)
    assert (middleware.app, middleware.mode, middleware.trusted_hops) == (app, "legacy", 1)
    with pytest.raises(ValueError, match="mode"):
        ProxyFixMiddleware(app, mode="rfc7239")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trusted_hops"):
        ProxyFixMiddleware(app, trusted_hops=-1)
    with pytest.raises(TypeError, match="trusted_hops"):
        ProxyFixMiddleware(app, trusted_hops=True)
    with pytest.raises(TypeError, match="trusted_hops"):
        ProxyFixMiddleware(app, trusted_hops="1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=192.0.2.60", [{"for": "192.0.2.60"}]),
        ("for=a;by=b, for=c", [{"for": "a", "by": "b"}, {"for": "c"}]),
        ('host="a\\"b";proto=https', [{"host": 'a"b', "proto": "https"}]),
        ('by="x\\\\y"', [{"by": "x\\y"}]),
        ('For="[::1]:80";HOST=h', [{"for": "[::1]:80", "host": "h"}]),
        ("for=a;;for2=b", [{"for": "a", "for2": "b"}]),
        (";", []),
        ("", []),
        (" , , ", []),
        ("for=a,", [{"for": "a"}]),
        ("ext-param=tok_en;for=a", [{"ext-param": "tok_en", "for": "a"}]),
        ("for=a;for=b", None),
        ("for=a;FOR=b", None),
        ('for="unterminated', None),
        ('for="bad\x01control"', None),
        ("for=a b", None),
        ("for =a", None),
        ("fo r=a", None),
        ("for=", None),
        ('for=a"b', None),
        ("(for)=a", None),
    ],
)
def test_parse_forwarded(value: str, expected: list[dict[str, str]] | None) -> None:
    assert parse_forwarded(value) == expected
