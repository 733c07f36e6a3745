"""The common WebSocket frames, read and written without wsproto.

Almost every frame a WebSocket server sees is a whole, small, unfragmented text or binary
message, masked by the client and not compressed; almost every frame it sends is one
unmasked message. wsproto handles these like any other frame, through its general
machinery (a buffer, a header parser, a masker, a message decoder and an event object per
frame), which costs more than the rest of the server does for such a message. This module
has the two short cuts :class:`~hypercorn.protocol.ws_stream.WSStream` takes when
permessage-deflate is off:

* :class:`FrameSplitter` cuts received bytes into *simple frames*, which it parses and
  unmasks itself, and runs of everything else, which go to wsproto unchanged.
* :func:`server_frame` writes one unmasked message frame.

Why the split keeps wsproto's behaviour
=======================================

A frame is *simple* when its first byte is ``0x81`` or ``0x82`` (FIN, no RSV bit, text or
binary), it is masked, its length is in its shortest form and at most
:data:`SIMPLE_MAX_PAYLOAD`, the whole frame is in the bytes at hand, and, for text, the
payload is valid UTF-8. Such a frame is a whole message, and wsproto would turn it into
exactly one ``TextMessage``/``BytesMessage`` with that payload, but only when wsproto is
between frames and no fragmented message is open (a text or binary frame in the middle of
one is a protocol error). So the splitter takes a simple frame only then: it follows the
frames it hands to wsproto by their headers (where each one ends, and whether it opens or
ends a fragmented message), so it always knows whether wsproto is between frames. Every
byte of every other frame reaches wsproto in order, and a run of them is cut only where a
frame ends or a read ends, so each frame wsproto reads comes in the same pieces as when it
reads everything: it sees the same stream, less some whole simple messages between its
frames. Errors, close codes, pings, partial frames and fragments stay its own: a text
frame that is not UTF-8 is not simple, and wsproto rejects it (1007) with its own reason.
A frame wsproto rejects ends the WebSocket, so what the splitter guesses about the frames
after it never matters.
"""

from __future__ import annotations

from typing import Final, final

__all__ = ("SIMPLE_MAX_PAYLOAD", "FrameSplitter", "Piece", "Unparsed", "server_frame", "unmask")

#: The longest payload taken as a simple frame. Unmasking with one big-integer XOR costs
#: about twice as much per byte as wsproto's unmasking, but saves its cost per frame; the
#: two even out at some KiB.
SIMPLE_MAX_PAYLOAD: Final = 4096

_TEXT_FRAME: Final = 0x81  # FIN, no RSV bits, opcode 1.
_BINARY_FRAME: Final = 0x82  # FIN, no RSV bits, opcode 2.
_MASKED: Final = 0x80
_LENGTH_16: Final = 126  # The 7-bit length saying "a 16-bit length follows".
_LENGTH_64: Final = 127  # The 7-bit length saying "a 64-bit length follows".
_MAX_SHORT_LENGTH: Final = 125  # The longest payload the 7-bit length holds.
_OPCODE_BITS: Final = 0x0F
_FIN_BIT: Final = 0x80
_CONTROL_BIT: Final = 0x08


@final
class Unparsed:
    """Bytes for wsproto: a run of frames (or frame pieces) that are not simple."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Unparsed({self.data!r})"


#: What :meth:`FrameSplitter.split` hands back, in the order it was received: a text
#: message (``str``), a binary message (``bytes``), or bytes for wsproto (:class:`Unparsed`).
Piece = str | bytes | Unparsed


def unmask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the 4-byte masking ``key`` repeated (RFC 6455 §5.3), as one XOR of
    two big integers: exact for any length, and fast for short payloads."""
    length = len(payload)
    keys = (key * ((length >> 2) + 1))[:length]
    unmasked = int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")
    return unmasked.to_bytes(length, "big")


def server_frame(text_or_binary: str | bytes) -> bytes:
    """One unmasked, unfragmented frame (what a server sends): a text frame for a ``str``
    (UTF-8; a lone surrogate raises ``UnicodeEncodeError``), else a binary frame."""
    if isinstance(text_or_binary, str):
        first = _TEXT_FRAME
        payload = text_or_binary.encode("utf-8")
    else:
        first = _BINARY_FRAME
        payload = text_or_binary
    length = len(payload)
    if length <= _MAX_SHORT_LENGTH:
        header = bytes((first, length))
    elif length <= 0xFFFF:
        header = bytes((first, _LENGTH_16)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, _LENGTH_64)) + length.to_bytes(8, "big")
    return header + payload


def _header_size(second: int) -> int:
    """The size of a frame header, from its second byte."""
    length = second & 0x7F
    extended = 2 if length == _LENGTH_16 else 8 if length == _LENGTH_64 else 0
    return 2 + extended + (4 if second & _MASKED else 0)


@final
class FrameSplitter:
    """Splits the bytes of a WebSocket without permessage-deflate into simple messages and
    bytes for wsproto (see the module's docstring for why that changes nothing)."""

    __slots__ = ("_fragmented", "_header", "_left")

    def __init__(self) -> None:
        #: The start of the header of the frame wsproto is reading, while incomplete.
        self._header = b""
        #: The bytes of the frame wsproto is reading that are still to come.
        self._left = 0
        #: A fragmented message is open: its frames (and those between them) are wsproto's.
        self._fragmented = False

    def split(self, data: bytes) -> list[Piece]:
        """The messages of the simple frames in ``data`` and the bytes between them, in
        order; a frame cut off at the end of ``data`` goes to wsproto."""
        pieces: list[Piece] = []
        end = len(data)
        pos = 0
        run = -1  # Where the current run of bytes for wsproto began, or -1.
        while pos < end:
            if not (self._left or self._header or self._fragmented):
                piece, stop = self._simple_frame(data, pos, end)
                if piece is not None:
                    if run >= 0:
                        pieces.append(Unparsed(data[run:pos]))
                        run = -1
                    pieces.append(piece)
                    pos = stop
                    continue
            if run < 0:
                run = pos
            pos = self._follow(data, pos, end)
        if run >= 0:
            pieces.append(Unparsed(data[run:end]))
        return pieces

    @staticmethod
    def _simple_frame(data: bytes, pos: int, end: int) -> tuple[str | bytes | None, int]:
        """The message of the simple frame at ``pos`` and where the frame ends, or None."""
        first = data[pos]
        if (first != _TEXT_FRAME and first != _BINARY_FRAME) or end - pos < 2:
            return None, pos
        length = data[pos + 1] ^ _MASKED  # The 7-bit length, if the mask bit is set.
        start = pos + 6
        if length > _MAX_SHORT_LENGTH:
            if length != _LENGTH_16 or end - pos < 4:
                return None, pos  # Unmasked, a 64-bit length, or a header cut off.
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            if not _MAX_SHORT_LENGTH < length <= SIMPLE_MAX_PAYLOAD:
                return None, pos  # Too long, or not in its shortest form.
            start = pos + 8
        stop = start + length
        if stop > end:
            return None, pos
        payload = unmask(data[start:stop], data[start - 4 : start])
        if first == _BINARY_FRAME:
            return payload, stop
        try:
            return payload.decode("utf-8"), stop
        except UnicodeDecodeError:
            return None, pos  # wsproto fails the WebSocket with 1007 and its reason.

    def _follow(self, data: bytes, pos: int, end: int) -> int:
        """Step through the frame wsproto is reading (or begins to read at ``pos``, a frame
        boundary) as far as ``data`` goes; where the step ended."""
        if self._left:
            step = min(self._left, end - pos)
            self._left -= step
            return pos + step
        known = len(self._header)
        header = self._header + data[pos : pos + 14]  # 14 bytes: the longest header.
        if len(header) < 2 or len(header) < _header_size(header[1]):
            self._header = header  # All of data[pos:]; the header needs more.
            return end
        size = _header_size(header[1])
        length = header[1] & 0x7F
        if length == _LENGTH_16:
            length = int.from_bytes(header[2:4], "big")
        elif length == _LENGTH_64:
            length = int.from_bytes(header[2:10], "big")
        self._header = b""
        self._left = length
        first = header[0]
        if not first & _CONTROL_BIT:  # A data frame: does it open, go on or end a message?
            self._fragmented = not first & _FIN_BIT
        return pos + size - known
