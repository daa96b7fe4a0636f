"""Length-prefixed frames between the daemon and a worker (4-byte big-endian length, then the bytes)."""

from __future__ import annotations

import socket
import struct

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


def frame(data: bytes) -> bytes:
    return HEADER.pack(len(data)) + data


def read_frame(sock: socket.socket) -> bytes | None:
    """The next frame, or None at the end of the stream."""
    header = _read_exactly(sock, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes; at most {MAX_FRAME}")
    data = _read_exactly(sock, size)
    if data is None:
        raise ValueError("the stream ended inside a frame")
    return data


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            if got == 0:
                return None
            raise ValueError("the stream ended inside a frame")
        got += n
    return bytes(buffer)
