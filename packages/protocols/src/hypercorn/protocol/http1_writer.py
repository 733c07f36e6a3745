"""Framing HTTP/1.x responses: the writing half that both HTTP/1.1 codecs share.

:class:`ResponseWriter` turns ``Response``, ``InformationalResponse``, ``Data`` and
``EndData`` into bytes for one server-side connection, validated with h11's rules (header
names are tokens; values hold no NUL, CR, LF or other whitespace than inner spaces and
tabs; one sane Content-Length; Transfer-Encoding only ``chunked``) before anything changes,
and framed as h11 frames them: the given Content-Length, else chunked for HTTP/1.1 clients,
else close-delimited; no body after HEAD, 204 or 304; ``connection: close`` added whenever
the connection will not be reused; ``101`` only after a request that asked to upgrade.

The codec that reads the requests tells the writer what each one said
(:meth:`ResponseWriter.request`) and asks it when the exchange is over
(:meth:`ResponseWriter.must_close`, :meth:`ResponseWriter.next_cycle`).
:class:`~hypercorn.protocol.http1.H11Codec` (h11 reading) and
:class:`~hypercorn.protocol.http1_httptools.HttptoolsCodec` (llhttp reading) both write
with it, so their responses are the same bytes; h11's own writer is not used, as it costs
several times more and frames the same way.
"""

from __future__ import annotations

import re
from enum import Enum
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, final

from hypercorn.protocol.events import Data, EndData, InformationalResponse, Response

if TYPE_CHECKING:
    from hypercorn.protocol.http1 import Outgoing

__all__ = ("MAX_LENGTH_DIGITS", "ResponseWriter", "tokens")

Headers = list[tuple[bytes, bytes]]

# The grammar, as h11 applies it (RFC 9110 §5.1, §5.5).
TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
FIELD_VALUE: Final = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
_NAME: Final = re.compile(TOKEN)
_VALUE: Final = re.compile(FIELD_VALUE)
DIGITS: Final = re.compile(rb"[0-9]+")
#: The longest Content-Length accepted, in digits (as h11).
MAX_LENGTH_DIGITS: Final = 20
_REASONS: Final = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
#: Field names that matter to HTTP/1.1 framing or connection handling.
SPECIAL: Final = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade")
)


def tokens(value: bytes) -> list[bytes]:
    """The non-empty, lower-cased members of a comma-separated header value."""
    return [token for token in (part.strip() for part in value.lower().split(b",")) if token]


class _Send(Enum):
    """Where the writer is in the response (h11's server states)."""

    IDLE = "IDLE"  # no request yet: only a final response (an error) may go out
    RESPONSE = "RESPONSE"  # a request arrived: 1xx or the final response
    BODY = "BODY"
    DONE = "DONE"
    SWITCHED = "SWITCHED"
    ERROR = "ERROR"


class _Framing(Enum):
    LENGTH = "LENGTH"
    CHUNKED = "CHUNKED"
    CLOSE = "CLOSE"  # close-delimited


@final
class ResponseWriter:
    """The responses of one HTTP/1.x server connection (see the module)."""

    __slots__ = (
        "_connect_pending",
        "_framing",
        "_keep_alive",
        "_left",
        "_method",
        "_send",
        "_their_version",
        "_upgrade_pending",
    )

    def __init__(self) -> None:
        # What the requests told the writer (kept across cycles, as h11 does).
        self._method: bytes | None = None
        self._their_version: bytes | None = None
        self._keep_alive = True
        self._upgrade_pending = False
        self._connect_pending = False
        self._send = _Send.IDLE
        self._framing = _Framing.LENGTH
        self._left = 0  # body bytes the Content-Length still expects

    # -----------------------------------------------------------------------------------
    # What the reader tells, and asks
    # -----------------------------------------------------------------------------------

    def request(self, method: bytes, version: bytes, *, close: bool, upgrade: bool) -> None:
        """A request head was accepted: its method, its version (``b"1.1"``...), whether a
        Connection header said ``close`` and whether it asked to upgrade."""
        self._method = method
        self._their_version = version
        if close or version < b"1.1":
            self._keep_alive = False
        if upgrade:
            self._upgrade_pending = True
        if method == b"CONNECT":
            self._connect_pending = True
        if self._send is _Send.IDLE:
            self._send = _Send.RESPONSE

    @property
    def can_send(self) -> bool:
        """False once a :meth:`send` broke the outgoing framing."""
        return self._send is not _Send.ERROR

    def must_close(self, request_complete: bool, their_error: bool) -> bool:
        """Whether this exchange is known to be the connection's last, given whether the
        request was read to its end and whether it broke HTTP."""
        send = self._send
        if send is _Send.DONE and (not self._keep_alive or their_error):
            return True
        return (
            request_complete
            and not (self._upgrade_pending or self._connect_pending)
            and (not self._keep_alive or send is _Send.ERROR)
        )

    def next_cycle(self, request_complete: bool, their_error: bool) -> bool:
        """Get ready for the next response; False (nothing changes) if the connection must
        close instead."""
        if (
            self._send is not _Send.DONE
            or not request_complete
            or self._upgrade_pending
            or self._connect_pending
            or not self._keep_alive
            or their_error
        ):
            return False
        self._send = _Send.IDLE
        self._method = None
        return True

    # -----------------------------------------------------------------------------------
    # Writing
    # -----------------------------------------------------------------------------------

    def send(self, event: Outgoing) -> bytes:
        """Serialise ``event``; ValueError if it cannot be framed safely (see
        :mod:`hypercorn.protocol.http1`)."""
        if isinstance(event, Data):
            return self._send_data(event.data)
        if isinstance(event, Response):
            return self._send_response(event.status_code, event.headers)
        if isinstance(event, EndData):
            return self._send_end()
        if isinstance(event, InformationalResponse):
            return self._send_informational(event.status_code, event.headers)
        raise TypeError(f"An HTTP/1.1 codec cannot send {type(event).__name__}")

    def _broken(self, what: str, reason: str) -> ValueError:
        self._send = _Send.ERROR
        return ValueError(f"Cannot send {what} now: {reason}")

    def _send_data(self, data: bytes) -> bytes:
        if self._send is not _Send.BODY:
            raise self._broken("Data", f"the response is not sending a body ({self._send.value})")
        framing = self._framing
        if framing is _Framing.CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing is _Framing.LENGTH:
            left = self._left - len(data)
            if left < 0:
                raise self._broken("Data", "Too much data for declared Content-Length")
            self._left = left
        return data

    def _send_end(self) -> bytes:
        if self._send is not _Send.BODY:
            raise self._broken("EndData", f"no response body under way ({self._send.value})")
        framing = self._framing
        if framing is _Framing.LENGTH and self._left:
            raise self._broken("EndData", "Too little data for declared Content-Length")
        self._send = _Send.DONE
        return b"0\r\n\r\n" if framing is _Framing.CHUNKED else b""

    def _send_informational(self, status: int, headers: Headers) -> bytes:
        items, _, _ = _checked(headers)
        send = self._send
        if send is _Send.ERROR:
            raise self._broken("InformationalResponse", "an earlier send failed")
        if status == 101 and not self._upgrade_pending:
            raise self._broken("InformationalResponse", "101 without an upgrade request")
        if send is not _Send.RESPONSE:
            raise self._broken("InformationalResponse", f"not before a response ({send.value})")
        if status == 101:
            self._send = _Send.SWITCHED
        return _head(status, items)

    def _send_response(self, status: int, headers: Headers) -> bytes:
        if not 200 <= status < 1000:
            raise ValueError(f"Cannot send this response: status {status} is not 200-999")
        items, found, length = _checked(headers)
        send = self._send
        if send is _Send.ERROR:
            raise self._broken("Response", "an earlier send failed")
        switch = self._connect_pending and 200 <= status < 300
        if not switch:
            self._upgrade_pending = self._connect_pending = False
        if send is not _Send.IDLE and send is not _Send.RESPONSE:
            raise self._broken("Response", f"a response was already sent ({send.value})")
        method = self._method
        no_body = status == 204 or status == 304 or (method == b"CONNECT" and 200 <= status < 300)
        close = not self._keep_alive
        framing = _Framing.LENGTH
        if not no_body and (found & _TE or length is None):
            # Chunked for HTTP/1.1 clients, else close-delimited; a HEAD response announces
            # what a GET would get.
            items = [item for item in items if item[1] not in _FRAMING_NAMES]
            version = self._their_version
            if version is None or version < b"1.1":
                framing = _Framing.CLOSE
                if method != b"HEAD":
                    close = True
            else:
                framing = _Framing.CHUNKED
                items.append((b"Transfer-Encoding", b"transfer-encoding", b"chunked"))
        if close:
            items = _with_close(items)
            self._keep_alive = False
        elif found & _CLOSE:
            self._keep_alive = False
        self._left = 0
        if switch:
            self._send = _Send.SWITCHED
        else:
            self._send = _Send.BODY
            if no_body or method == b"HEAD":
                framing = _Framing.LENGTH
            elif framing is _Framing.LENGTH:
                self._left = int(length or b"0")
            self._framing = framing
        return _head(status, items)


# Bits of what _checked found among the headers.
_CL: Final = 1  # a content-length
_TE: Final = 2  # a transfer-encoding
_CLOSE: Final = 4  # "close" in a connection header
_HOST: Final = 8
_FRAMING_NAMES: Final = frozenset((b"content-length", b"transfer-encoding"))

#: (raw name, lower-cased name, value)
_Item = tuple[bytes, bytes, bytes]


def _checked(headers: Headers) -> tuple[list[_Item], int, bytes | None]:
    """Validate response headers with h11's rules (ValueError before anything changes) and
    normalise the framing ones; return them, what was found (bits above) and the
    Content-Length."""
    items: list[_Item] = []
    found = 0
    length: bytes | None = None
    safe = _SAFE_FIELDS
    for field in headers:
        try:
            lowered = safe.get(field)
        except TypeError:  # not hashable (a bytearray, say): checked below
            lowered = None
        if lowered is not None:  # seen and found valid before (and not one of _SPECIAL)
            items.append((field[0], lowered, field[1]))
            continue
        name, value = field
        if name == b"content-length" and value.isdigit() and len(value) <= MAX_LENGTH_DIGITS:
            # The usual framing header, as the stream writes it: valid as it stands.
            if length is None:
                length = value
                found |= _CL
                items.append((name, name, value))
            elif length != value:
                raise ValueError(f"Cannot send this response: bad Content-Length {value!r}")
            continue
        if _NAME.fullmatch(name) is None:
            raise ValueError(f"Cannot send this response: invalid header name {name!r}")
        if _VALUE.fullmatch(value) is None:
            raise ValueError(f"Cannot send this response: invalid header value {value!r}")
        lowered = name.lower()
        if lowered not in SPECIAL:
            if type(name) is bytes and type(value) is bytes:
                if len(safe) >= _SAFE_FIELDS_MAX:
                    safe.clear()
                safe[name, value] = lowered
        elif lowered == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            value = lengths.pop()
            if (
                lengths
                or DIGITS.fullmatch(value) is None
                or len(value) > MAX_LENGTH_DIGITS
                or (length is not None and length != value)
            ):
                raise ValueError(f"Cannot send this response: bad Content-Length {value!r}")
            if length is not None:
                continue  # an equal repeat
            length = value
            found |= _CL
        elif lowered == b"transfer-encoding":
            value = value.lower()
            if found & _TE or value != b"chunked":
                raise ValueError("Cannot send this response: only one Transfer-Encoding: chunked")
            found |= _TE
        elif lowered == b"connection":
            if b"close" in tokens(value):
                found |= _CLOSE
        elif lowered == b"host":
            found |= _HOST
        items.append((name, lowered, value))
    if found & _HOST:  # h11 writes Host first
        items.sort(key=lambda item: item[1] != b"host")
    return items, found, length


#: Response fields already validated, to their lower-cased names: most responses repeat
#: the same few (content-type, server, date for a second...). Bounded; fields that affect
#: framing or keep-alive are never kept here.
_SAFE_FIELDS: Final[dict[tuple[bytes, bytes], bytes]] = {}
_SAFE_FIELDS_MAX: Final = 512


def _with_close(items: list[_Item]) -> list[_Item]:
    """The headers with their Connection tokens rewritten to include close, not keep-alive
    (one lower-case token per header, sorted, at the end, as h11 writes them)."""
    found = {b"close"}
    kept = []
    for item in items:
        if item[1] == b"connection":
            found.update(tokens(item[2]))
        else:
            kept.append(item)
    found.discard(b"keep-alive")
    kept.extend((b"Connection", b"connection", token) for token in sorted(found))
    return kept


def _head(status: int, items: list[_Item]) -> bytes:
    parts = [b"HTTP/1.1 %d %b" % (status, _REASONS.get(status, b""))]
    parts.extend(raw + b": " + value for raw, _, value in items)
    parts.append(b"\r\n")
    return b"\r\n".join(parts)
