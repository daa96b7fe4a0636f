"""Frames between the daemon and a worker: a 4-byte big-endian length, a kind byte, the bytes.

Only the daemon writes frames other than ``CLIENT`` (the relayed session messages), so a
client cannot send the worker a control frame, such as a new partition size.
"""

from __future__ import annotations

import socket
import struct

HEADER = struct.Struct(">IB")
MAX_FRAME = 64 * 1024 * 1024
CLIENT = 0  # a session message (relayed unparsed), or the worker's reply
LIMIT = 1  # from the daemon: the lease's partition, in bytes (8 bytes, big-endian)


def frame(data: bytes, kind: int = CLIENT) -> bytes:
    return HEADER.pack(len(data), kind) + data


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next frame's kind and bytes, or None at the end of the stream."""
    header = _read_exactly(sock, HEADER.size)
    if header is None:
        return None
    size, kind = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes; at most {MAX_FRAME}")
    data = _read_exactly(sock, size)
    if data is None:
        raise ValueError("the stream ended inside a frame")
    return kind, data


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
