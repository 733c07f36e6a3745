"""The WebSocket opening handshake, over HTTP/1.1 (RFC 6455) and HTTP/2 (RFC 8441).

Our own code, on purpose: wsproto's public API covers frames but not a handshake that can
run over HTTP/2, so the request is validated and the accepting response built here. Only
``permessage-deflate`` negotiation (RFC 7692) is delegated, to wsproto's public
``PerMessageDeflate.accept``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, final

from wsproto.extensions import PerMessageDeflate

from hypercorn.protocol.headers import header_items, header_tokens

if TYPE_CHECKING:
    from collections.abc import Iterable

    from wsproto.extensions import Extension

__all__ = ("WEBSOCKET_GUID", "WEBSOCKET_VERSION", "Handshake", "accept_token")

Headers = list[tuple[bytes, bytes]]

#: The only WebSocket protocol version (``sec-websocket-version``), RFC 6455.
WEBSOCKET_VERSION = b"13"
#: The GUID RFC 6455 §1.3 appends to the client's key to make the accept token.
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_HTTP1 = frozenset({"1.0", "1.1"})
_EXTENDED_CONNECT = frozenset({"2", "3"})


@final
class Handshake:
    """The client's opening handshake: parsed once, validated, and answered on accept.

    ``headers`` are the request's (names in any case), ``http_version`` is ``"1.0"``,
    ``"1.1"``, ``"2"`` or ``"3"`` and ``method`` the request method. :attr:`subprotocols`
    and :attr:`extensions` are what the client offered, in its order.
    """

    __slots__ = (
        "_connection_tokens",
        "_keys",
        "_upgrade_tokens",
        "_versions",
        "extensions",
        "http_version",
        "method",
        "subprotocols",
    )

    def __init__(
        self, headers: Iterable[tuple[bytes, bytes]], http_version: str, method: str
    ) -> None:
        self.http_version = http_version
        self.method = method
        #: The subprotocols the client offered (``sec-websocket-protocol``).
        self.subprotocols: list[str] = []
        #: The extension offers (``sec-websocket-extensions``), one string per offer.
        self.extensions: list[str] = []
        self._connection_tokens: list[bytes] = []
        self._upgrade_tokens: list[bytes] = []
        self._keys: list[bytes] = []
        self._versions: list[bytes] = []
        for raw_name, value in headers:
            name = raw_name.lower()
            if name == b"connection":
                self._connection_tokens.extend(header_tokens(value))
            elif name == b"upgrade":
                self._upgrade_tokens.extend(header_tokens(value))
            elif name == b"sec-websocket-key":
                self._keys.append(value.strip())
            elif name == b"sec-websocket-version":
                self._versions.append(value.strip())
            elif name == b"sec-websocket-protocol":
                self.subprotocols.extend(header_items(value))
            elif name == b"sec-websocket-extensions":
                self.extensions.extend(header_items(value))

    def problem(self) -> str | None:
        """Why the handshake is invalid (RFC 6455 §4.2.1, RFC 8441 §5), or None if valid."""
        version = self.http_version
        if version in _HTTP1:
            if version == "1.0":
                return "a WebSocket needs HTTP/1.1 or later"
            if self.method != "GET":
                return f"the method must be GET, not {self.method}"
            if b"websocket" not in self._upgrade_tokens:
                return "the Upgrade header has no 'websocket' token"
            if b"upgrade" not in self._connection_tokens:
                return "the Connection header has no 'upgrade' token"
        elif version in _EXTENDED_CONNECT:
            if self.method != "CONNECT":
                return f"the method must be CONNECT, not {self.method}"
        else:
            return f"WebSockets are not offered over HTTP/{version}"
        if not self.version_ok():
            return "sec-websocket-version must be given once, as 13"
        if version in _HTTP1:
            if len(self._keys) != 1:
                return "sec-websocket-key must be given once"
            try:
                key = base64.b64decode(self._keys[0], validate=True)
            except (binascii.Error, ValueError):
                return "sec-websocket-key is not base64"
            if len(key) != 16:
                return "sec-websocket-key must encode 16 bytes"
        return None

    def is_valid(self) -> bool:
        """True when :meth:`problem` finds nothing wrong."""
        return self.problem() is None

    def version_ok(self) -> bool:
        """True when the client asked for WebSocket version 13, once."""
        return self._versions == [WEBSOCKET_VERSION]

    def accept(
        self, subprotocol: str | None, additional_headers: Headers
    ) -> tuple[int, Headers, list[Extension]]:
        """The accepting response's status and headers, and the negotiated extensions.

        ``subprotocol`` must be one the client offered (ValueError otherwise);
        ``additional_headers`` (validated, lower-case names) come last and may not name
        ``sec-websocket-protocol``. Only valid handshakes may be accepted.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"Subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {self.subprotocols!r})"
            )
        for name, _ in additional_headers:
            if name == b"sec-websocket-protocol":
                raise ValueError(
                    "websocket.accept headers may not set sec-websocket-protocol; "
                    "use the 'subprotocol' key"
                )
        if self.http_version in _HTTP1:
            status = 101
            headers: Headers = [
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", accept_token(self._keys[0])),
            ]
        else:
            status = 200
            headers = []
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
        extensions: list[Extension] = []
        negotiated = _negotiate_deflate(self.extensions)
        if negotiated is not None:
            extension, value = negotiated
            extensions.append(extension)
            headers.append((b"sec-websocket-extensions", value.encode("latin-1")))
        headers.extend(additional_headers)
        return status, headers, extensions


def accept_token(key: bytes) -> bytes:
    """The ``sec-websocket-accept`` value for a ``sec-websocket-key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1(key + WEBSOCKET_GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest)


def _negotiate_deflate(offers: list[str]) -> tuple[PerMessageDeflate, str] | None:
    """Accept the first permessage-deflate offer we support (RFC 7692), if any.

    Quoted parameter values are unquoted first (RFC 7692 allows them); an offer whose
    parameters wsproto cannot honour (bad numbers, window bits out of 9-15) is declined.
    """
    for offer in offers:
        name, _, params = offer.partition(";")
        if name.strip().lower() != PerMessageDeflate.name:
            continue
        cleaned = PerMessageDeflate.name
        for param in params.split(";"):
            param = param.strip().replace('"', "")
            if param:
                cleaned += "; " + param
        extension = PerMessageDeflate()
        try:
            response = extension.accept(cleaned)
        except ValueError:
            continue
        if response is None or response is False:
            continue
        if isinstance(response, str) and response:
            return extension, f"{extension.name}; {response}"
        return extension, extension.name
    return None
