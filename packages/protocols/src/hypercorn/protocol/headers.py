"""Small parsers for request targets and header values, shared by the streams and connections."""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = ("header_items", "header_tokens", "split_target")

#: ``%`` as a byte value: ``int in bytes`` is a plain search, where ``bytes in bytes`` first
#: tries the needle as an int (CPython 3.11 makes and drops a TypeError for that each time).
_PERCENT: Final = ord("%")


def split_target(target: bytes) -> tuple[str | None, bytes, bytes]:
    """Split a request target into the ASGI ``path``, ``raw_path`` and ``query_string``.

    ``path`` is percent-decoded, then decoded as UTF-8; it is None when that fails (the
    caller answers 400).
    """
    raw_path, _, query_string = target.partition(b"?")
    decoded = unquote_to_bytes(raw_path) if _PERCENT in raw_path else raw_path
    try:
        path: str | None = decoded.decode("utf-8")
    except UnicodeDecodeError:
        path = None
    return path, raw_path, query_string


def header_tokens(value: bytes) -> list[bytes]:
    """The lower-cased tokens of a comma-separated header value, parameters dropped."""
    return [token.partition(b";")[0].strip().lower() for token in value.split(b",")]


def header_items(value: bytes) -> list[str]:
    """The non-empty items of a comma-separated header value, as text (parameters kept)."""
    return [item for item in (part.strip() for part in value.decode("latin-1").split(",")) if item]
