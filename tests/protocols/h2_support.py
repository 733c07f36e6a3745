"""Test support for the HTTP/2 connection: reading back the frames the server wrote."""

from __future__ import annotations

from hyperframe.frame import Frame


def split_frames(data: bytes) -> list[tuple[Frame, bytes]]:
    """Parse whole frames (the server only ever writes whole frames), each with its bytes."""
    frames: list[tuple[Frame, bytes]] = []
    view = memoryview(data)
    index = 0
    while index < len(data):
        frame, length = Frame.parse_frame_header(view[index : index + 9])
        frame.parse_body(view[index + 9 : index + 9 + length])
        frames.append((frame, data[index : index + 9 + length]))
        index += 9 + length
    return frames
