"""Frames between the daemon and a worker: a 4-byte big-endian length, a kind byte, the bytes.

Only the daemon writes frames other than ``CLIENT`` (the relayed session messages), so a
client cannot send the worker a control frame, such as a new partition size.
"""

from __future__ import annotations

import socket
import struct

from .sockio import read_bytes

HEADER = struct.Struct(">IB")
MAX_FRAME = 64 * 1024 * 1024
CLIENT = 0  # a session message (relayed unparsed), or the worker's reply
LIMIT = 1  # from the daemon: the lease's partition, in bytes (8 bytes, big-endian)


def frame(data: bytes, kind: int = CLIENT) -> bytes:
    return HEADER.pack(len(data), kind) + data


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next frame's kind and bytes, or None at the end of the stream."""
    try:
        header = read_bytes(sock, HEADER.size)
        if header is None:
            return None
        size, kind = HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes; at most {MAX_FRAME}")
        data = read_bytes(sock, size) if size else b""
    except EOFError:
        raise ValueError("the stream ended inside a frame") from None
    if data is None:
        raise ValueError("the stream ended inside a frame")
    return kind, data
