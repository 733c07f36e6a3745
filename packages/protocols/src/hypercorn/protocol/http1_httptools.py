"""The HTTP/1.x codec on llhttp, through httptools: :class:`HttptoolsCodec`.

It keeps the contract of :mod:`hypercorn.protocol.http1` and, on purpose, the outcomes of
:class:`~hypercorn.protocol.http1.H11Codec`: for any bytes, split anywhere, both codecs give
the same events or the same error status, and they frame responses to the same bytes. The
test suite runs every HTTP/1.1 test, a fuzzer and a differential fuzzer over both.

This is the only module that imports httptools (the ``accel`` extra of hypercorn-protocols);
it needs httptools 0.6.3 or newer, whose llhttp 9 is strict by default (older releases
bundle a lenient llhttp 8 with a known request smuggling flaw) and refuses to import with an
older one.

Reading
=======

The codec keeps the received bytes and finds the end of each request head as h11 does: the
first empty line (``LF CRLF`` or ``LF LF``). Only the head goes to llhttp; the body is
framed here (a Content-Length is counted, a chunked body decoded to h11's rules). It has to
be: the codec must know where each request ends, because pipelined bytes wait unparsed for
the next cycle and the bytes after an upgrade go back to the connection, and llhttp's
callbacks do not tell where in the input they are.

A head that does not end in ``CRLF CRLF``, or that llhttp refuses (bare LF, obs-fold, a
method llhttp does not know, ``Content-Length: 2, 2``, ...), is read again by the careful
reader below: the request-line and field grammar of RFC 9112 with h11's exact choices. So
where llhttp is stricter than h11, h11's answer stands. Where llhttp is more lenient, the
codec checks after it:

- the request line must have exactly one space on each side of the target (llhttp allows
  runs of spaces);
- the whitespace llhttp leaves at the end of a field value is removed;
- ``Content-Length`` has at most 20 digits; ``Transfer-Encoding`` appears once and is
  exactly ``chunked`` (any case), else 501;
- ``Host`` appears once on HTTP/1.1 and never twice;
- versions llhttp accepts besides 1.0 and 1.1 (0.9, 2.0) get 505, after the checks above.

Writing
=======

Responses are framed by the :class:`~hypercorn.protocol.http1_writer.ResponseWriter` that
H11Codec uses too.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import TYPE_CHECKING, Final, final

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from hypercorn.protocol.events import (
    Body,
    EndBody,
    Request,
    Trailers,
)
from hypercorn.protocol.http1 import NEED_DATA, PAUSED, STREAM_ID, CodecEvent, ParseError
from hypercorn.protocol.http1_writer import (
    DIGITS,
    FIELD_VALUE,
    MAX_LENGTH_DIGITS,
    SPECIAL,
    TOKEN,
    ResponseWriter,
    tokens,
)

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.protocol.http1 import Outgoing
    from hypercorn.typing import ConnectionState

if not hasattr(HttpRequestParser, "set_dangerous_leniencies"):  # pragma: no cover
    # The leniency switches came with llhttp 9 in httptools 0.6.3.
    raise ImportError(
        "hypercorn's httptools codec needs httptools 0.6.3 or newer", name="httptools"
    )

__all__ = ("HttptoolsCodec",)

Headers = list[tuple[bytes, bytes]]

# The grammar, as h11 applies it (RFC 9110 §5.1, §5.5; RFC 9112 §3, §5, §7.1).
_FIELD_LINE: Final = re.compile(rb"(" + TOKEN + rb"):[ \t]*(" + FIELD_VALUE + rb")[ \t]*")
_REQUEST_LINE: Final = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_CHUNK_SIZE_LINE: Final = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_EMPTY_LINE: Final = re.compile(rb"\n\r?\n")

_VERSIONS: Final = {b"1.1": "1.1", b"1.0": "1.0"}
_METHODS: Final = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT")
}


class _Read(Enum):
    """Where the reader is in the request."""

    HEAD = "HEAD"
    LENGTH = "LENGTH"  # a Content-Length body
    CHUNK_SIZE = "CHUNK_SIZE"
    CHUNK_DATA = "CHUNK_DATA"
    CHUNK_END = "CHUNK_END"  # the CRLF after a chunk's data
    TRAILERS = "TRAILERS"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


_HEAD: Final = _Read.HEAD
_LENGTH: Final = _Read.LENGTH
_CHUNK_SIZE: Final = _Read.CHUNK_SIZE
_CHUNK_DATA: Final = _Read.CHUNK_DATA
_CHUNK_END: Final = _Read.CHUNK_END
_TRAILERS: Final = _Read.TRAILERS
_COMPLETE: Final = _Read.COMPLETE
_FAILED: Final = _Read.FAILED


class _Fields:
    """The fields of one head (or trailer section), checked and normalised as h11 does.

    It is also llhttp's callback object for a request head (``on_url``, ``on_header``,
    ``on_headers_complete``); it holds no reference to the codec or the parser.
    """

    __slots__ = (
        "close",
        "complete",
        "error",
        "hosts",
        "items",
        "length",
        "raw",
        "te",
        "upgrade",
        "url",
    )

    def __init__(self, raw: bool) -> None:
        self.raw = raw
        self.reset()

    def reset(self) -> None:
        self.url: bytes | None = None
        self.complete = False
        self.items: Headers = []
        self.error: ParseError | None = None
        self.hosts = 0
        self.length: bytes | None = None  # the Content-Length, normalised
        self.te = False
        self.close = False  # "close" is a token of Connection
        self.upgrade = False  # Upgrade names a protocol

    # llhttp's callbacks

    def on_url(self, url: bytes) -> None:
        self.url = url if self.url is None else self.url + url

    def on_header(self, name: bytes, value: bytes) -> None:
        # add(), inlined for the common field (this runs for every field of every request).
        value = value.strip(b" \t")
        lowered = name.lower()
        if lowered in SPECIAL:
            self._special(name, lowered, value)
        else:
            self.items.append((name if self.raw else lowered, value))

    def on_headers_complete(self) -> None:
        self.complete = True

    def add(self, name: bytes, value: bytes) -> None:
        """One field (its value without surrounding whitespace)."""
        lowered = name.lower()
        if lowered in SPECIAL:
            self._special(name, lowered, value)
        else:
            self.items.append((name if self.raw else lowered, value))

    def _special(self, name: bytes, lowered: bytes, value: bytes) -> None:
        """A field that matters to HTTP itself (see http1_writer.SPECIAL)."""
        if lowered == b"host":
            self.hosts += 1
        elif lowered == b"content-length":
            value = self._content_length(value)
            if not value:
                return  # a repeat, or an error
        elif lowered == b"transfer-encoding":
            value = value.lower()
            if self.te:
                self._fail(501, "multiple Transfer-Encoding headers")
            elif value != b"chunked":
                self._fail(501, "only Transfer-Encoding: chunked is supported")
            self.te = True
        elif lowered == b"connection":
            if b"close" in value.lower() and b"close" in tokens(value):
                self.close = True
        elif tokens(value):  # upgrade
            self.upgrade = True
        self.items.append((name if self.raw else lowered, value))

    def _content_length(self, value: bytes) -> bytes:
        lengths = {length.strip() for length in value.split(b",")}
        if len(lengths) != 1:
            self._fail(400, "conflicting Content-Length headers")
            return b""
        value = lengths.pop()
        if DIGITS.fullmatch(value) is None or len(value) > MAX_LENGTH_DIGITS:
            self._fail(400, "bad Content-Length")
            return b""
        if self.length is None:
            self.length = value
            return value
        if self.length != value:
            self._fail(400, "conflicting Content-Length headers")
        return b""

    def _fail(self, status: int, reason: str) -> None:
        if self.error is None:
            self.error = ParseError(status, reason)


def _lines(block: bytes) -> list[bytes]:
    """The lines of a head or trailer section that ends with its empty line."""
    lines = block.split(b"\n")
    del lines[-2:]  # the empty line
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _field_lines(lines: list[bytes]) -> list[tuple[bytes, bytes]] | None:
    """Split field lines into names and values (None if one is malformed), unfolding
    obs-fold continuation lines into the line before with one space (RFC 9112 §5.2)."""
    unfolded: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not unfolded:
                return None  # a continuation with nothing to continue
            unfolded[-1] += b" " + line.lstrip(b" \t")
        else:
            unfolded.append(line)
    fields = []
    for line in unfolded:
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            return None
        fields.append((match[1], match[2]))
    return fields


@final
class HttptoolsCodec:
    """:class:`~hypercorn.protocol.http1.HTTP1Codec` on llhttp (see the module).

    ``config`` supplies ``h11_max_incomplete_size`` (a request head, chunk-size line or
    trailer section that does not fit is a 431 ``ParseError``) and ``h11_pass_raw_headers``;
    ``state`` is put on every ``Request`` it makes.
    """

    __slots__ = (
        "_buf",
        "_error",
        "_fields",
        "_max_incomplete",
        "_pending_end",
        "_pos",
        "_raw_headers",
        "_read",
        "_remaining",
        "_scan",
        "_state",
        "_their_error",
        "_writer",
    )

    def __init__(self, config: Config, state: ConnectionState) -> None:
        self._max_incomplete = config.h11_max_incomplete_size
        self._raw_headers = config.h11_pass_raw_headers
        self._state = state
        self._fields = _Fields(self._raw_headers)
        # Received bytes: the unparsed ones are _buf[_pos:]; _scan is where the search for
        # the end of a head (or trailer section) resumes, so a slow client costs O(n).
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._scan = 0
        self._read = _HEAD
        self._remaining = 0  # body bytes left: of the Content-Length, or of this chunk
        self._pending_end = False  # Trailers were returned; EndBody comes next
        self._error: ParseError | None = None
        self._their_error = False  # the request broke HTTP (h11's client ERROR state)
        self._writer = ResponseWriter()

    # -----------------------------------------------------------------------------------
    # State
    # -----------------------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        """False once a :meth:`send` broke the outgoing framing."""
        return self._writer.can_send

    @property
    def must_close(self) -> bool:
        """True once this exchange is known to be the connection's last."""
        return self._writer.must_close(self._read is _COMPLETE, self._their_error)

    @property
    def buffered(self) -> int:
        """The number of received bytes not parsed yet."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer (never ``b""``)."""
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = data  # the common case: no copy
            self._pos = 0
            self._scan = 0
            return
        if isinstance(buf, bytes):
            buf = bytearray(memoryview(buf)[pos:])
        elif pos:
            del buf[:pos]
        buf += data
        self._buf = buf
        self._pos = 0
        self._scan -= pos

    def start_next_cycle(self) -> bool:
        """Get ready for the next request; False (nothing changes) if the connection must
        close instead."""
        if not self._writer.next_cycle(self._read is _COMPLETE, self._their_error):
            return False
        self._read = _HEAD
        self._pending_end = False
        if self._pos >= len(self._buf):
            # All read: an idle keep-alive connection keeps no bytes.
            self._buf = b""
            self._pos = 0
        self._scan = self._pos
        return True

    def take_trailing_data(self) -> bytes:
        """The received bytes after the request (after a protocol switch)."""
        return bytes(self._buf[self._pos :])

    # -----------------------------------------------------------------------------------
    # Reading
    # -----------------------------------------------------------------------------------

    def next_event(self) -> CodecEvent:
        """The next request event (see :mod:`hypercorn.protocol.http1`)."""
        read = self._read
        if read is _HEAD:
            return self._read_head()
        if read is _LENGTH:
            return self._read_length()
        if read is _COMPLETE:
            if self._pending_end:
                self._pending_end = False
                return EndBody(stream_id=STREAM_ID)
            return PAUSED
        if read is _FAILED:
            assert self._error is not None
            return self._error
        return self._read_chunked()

    def _fail(self, status: int, reason: str, *, their_error: bool = True) -> ParseError:
        self._read = _FAILED
        self._their_error = their_error
        self._error = ParseError(status, reason)
        return self._error

    def _need_data(self) -> CodecEvent:
        """Nothing complete: more bytes are needed, unless too many wait already."""
        if len(self._buf) - self._pos > self._max_incomplete:
            return self._fail(431, "the request head or a chunk header is too large")
        return NEED_DATA

    def _find_empty_line(self) -> int:
        """Where the head (or trailer section) at the read position ends; -1 if it does
        not end in the bytes received so far."""
        buf = self._buf
        pos = self._pos
        match = _EMPTY_LINE.search(buf, max(pos, self._scan))
        if match is None:
            self._scan = max(pos, len(buf) - 2)
            return -1
        return match.end()

    def _read_head(self) -> CodecEvent:
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if pos == size:
            return NEED_DATA
        if buf[pos] < 0x21:
            # Empty lines, whitespace or a control byte (TLS on a plain port) where a method
            # should start: refused at once, as h11 does.
            return self._fail(400, "invalid request line")
        end = self._find_empty_line()
        if end < 0:
            return self._need_data()
        if end - pos <= 4 or not buf.startswith(b"\r\n\r\n", end - 4):
            return self._read_head_carefully(end)
        fields = self._fields
        fields.reset()
        # A parser per head: llhttp only ever sees one complete head, so no parser state
        # is carried between requests (and an idle connection holds none; making one is
        # cheaper than the memory it would keep).
        parser = HttpRequestParser(fields)
        try:
            parser.feed_data(buf if pos == 0 and end == size else buf[pos:end])
        except HttpParserUpgrade:
            pass  # llhttp stops at an upgrade; the head is complete
        except HttpParserError:
            return self._read_head_carefully(end)
        url = fields.url
        if not fields.complete or url is None:
            return self._read_head_carefully(end)
        # llhttp allows runs of spaces in the request line; h11 exactly one.
        method = parser.get_method()
        at = pos + len(method)
        if not (buf.startswith(method, pos) and buf[at] == 0x20 and buf.startswith(url, at + 1)):
            return self._read_head_carefully(end)
        at += 1 + len(url)
        if buf.startswith(b" HTTP/1.1\r\n", at):
            version = b"1.1"
        elif buf.startswith(b" HTTP/1.0\r\n", at):
            version = b"1.0"
        else:
            return self._read_head_carefully(end)
        return self._request(method, url, version, fields, end)

    def _read_head_carefully(self, end: int) -> CodecEvent:
        """Read the head with h11's grammar (llhttp refused it or did not see all of it)."""
        lines = _lines(bytes(self._buf[self._pos : end]))
        match = _REQUEST_LINE.fullmatch(lines[0])
        if match is None:
            return self._fail(400, f"invalid request line: {lines[0]!r}")
        field_lines = _field_lines(lines[1:])
        if field_lines is None:
            return self._fail(400, "invalid header line")
        fields = self._fields
        fields.reset()
        for name, value in field_lines:
            fields.add(name, value)
        return self._request(match[1], match[2], match[3], fields, end)

    def _request(
        self, method: bytes, target: bytes, version: bytes, fields: _Fields, end: int
    ) -> CodecEvent:
        """A request head in h11's grammar: check what h11 checks, then what H11Codec adds."""
        if fields.error is not None:
            return self._fail(fields.error.status_hint, fields.error.reason)
        if fields.hosts > 1:
            return self._fail(400, "more than one Host header")
        if fields.hosts == 0 and version == b"1.1":
            return self._fail(400, "missing Host header")
        # h11 has accepted the request: what it says about the exchange counts from here.
        self._pos = end
        self._writer.request(method, version, close=fields.close, upgrade=fields.upgrade)
        http_version = _VERSIONS.get(version)
        if http_version is None:
            return self._fail(
                505, f"HTTP version {version.decode('ascii')} is not supported", their_error=False
            )
        length = fields.length
        if fields.te:
            if length is not None:
                # RFC 9112 §6.1: refused rather than read as chunked (request smuggling).
                return self._fail(
                    400, "both Content-Length and Transfer-Encoding were sent", their_error=False
                )
            self._read = _CHUNK_SIZE
        else:
            self._read = _LENGTH
            self._remaining = 0 if length is None else int(length)
        name = _METHODS.get(method)
        return Request(
            stream_id=STREAM_ID,
            headers=fields.items,
            http_version=http_version,
            method=name if name is not None else method.decode("ascii").upper(),
            raw_path=target,
            state=self._state,
        )

    def _take(self, count: int) -> bytes:
        """Up to ``count`` unparsed bytes (at least one is there)."""
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if count >= size - pos:
            self._buf = b""
            self._pos = 0
            self._scan = 0
            if pos == 0 and isinstance(buf, bytes):
                return buf
            return bytes(buf[pos:])
        self._pos = pos + count
        return bytes(buf[pos : pos + count])

    def _read_length(self) -> CodecEvent:
        remaining = self._remaining
        if not remaining:
            self._read = _COMPLETE
            return EndBody(stream_id=STREAM_ID)
        if self._pos == len(self._buf):
            return NEED_DATA
        data = self._take(remaining)
        self._remaining = remaining - len(data)
        return Body(stream_id=STREAM_ID, data=data)

    def _read_chunked(self) -> CodecEvent:
        """One step of a chunked body, with h11's steps: each call returns at most one
        chunk's data (as much of it as arrived)."""
        if self._read is _CHUNK_END:
            # The CRLF after a chunk's data, checked as it arrives.
            buf = self._buf
            pos = self._pos
            available = len(buf) - pos
            if not available:
                return NEED_DATA
            expected = b"\r\n"[2 - self._remaining :]
            got = bytes(buf[pos : pos + len(expected)])
            if not expected.startswith(got):
                return self._fail(400, f"malformed chunk footer: {got!r}")
            self._pos = pos + len(got)
            self._remaining -= len(got)
            if self._remaining:
                return NEED_DATA
            self._read = _CHUNK_SIZE
        if self._read is _CHUNK_SIZE:
            buf = self._buf
            pos = self._pos
            end = buf.find(b"\r\n", max(pos, self._scan))
            if end < 0:
                self._scan = max(pos, len(buf) - 1)
                return self._need_data()
            line = bytes(buf[pos : end + 2])
            match = _CHUNK_SIZE_LINE.fullmatch(line)
            if match is None:
                return self._fail(400, f"invalid chunk header: {line!r}")
            self._pos = end + 2
            size = int(match[1], 16)
            if not size:
                self._read = _TRAILERS
                self._scan = self._pos
            else:
                self._read = _CHUNK_DATA
                self._remaining = size
        if self._read is _CHUNK_DATA:
            if self._pos == len(self._buf):
                return NEED_DATA
            data = self._take(self._remaining)
            self._remaining -= len(data)
            if not self._remaining:
                self._read = _CHUNK_END
                self._remaining = 2
            return Body(stream_id=STREAM_ID, data=data)
        return self._read_trailers()

    def _read_trailers(self) -> CodecEvent:
        buf = self._buf
        pos = self._pos
        if pos == len(buf):
            return NEED_DATA
        if buf[pos] == 0x0A:
            self._pos = pos + 1
        elif buf.startswith(b"\r\n", pos):
            self._pos = pos + 2
        else:
            end = self._find_empty_line()
            if end < 0:
                return self._need_data()
            field_lines = _field_lines(_lines(bytes(buf[pos:end])))
            if field_lines is None:
                return self._fail(400, "invalid trailer line")
            trailers = _Fields(self._raw_headers)
            for name, value in field_lines:
                trailers.add(name, value)
            if trailers.error is not None:
                return self._fail(trailers.error.status_hint, trailers.error.reason)
            self._pos = end
            if trailers.items:
                self._read = _COMPLETE
                self._pending_end = True
                return Trailers(stream_id=STREAM_ID, headers=trailers.items)
        self._read = _COMPLETE
        return EndBody(stream_id=STREAM_ID)

    # -----------------------------------------------------------------------------------
    # Writing
    # -----------------------------------------------------------------------------------

    def send(self, event: Outgoing) -> bytes:
        """Serialise ``event`` (the shared :class:`~hypercorn.protocol.http1_writer.
        ResponseWriter`); ValueError if it cannot be framed safely."""
        return self._writer.send(event)
