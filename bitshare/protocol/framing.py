"""Frames between the daemon and a worker: a 4-byte big-endian length, a kind byte, the bytes.

Only the daemon writes frames other than ``CLIENT`` (the relayed session messages), so a
client cannot send the worker a control frame, such as a new partition size.
"""

from __future__ import annotations

import socket
import struct

from .sockio import read_into

HEADER = struct.Struct(">IB")
MAX_FRAME = 64 * 1024 * 1024
CLIENT = 0  # a session message (relayed unparsed), or the worker's reply
LIMIT = 1  # from the daemon: the lease's partition, in bytes (8 bytes, big-endian)


def frame(data: bytes, kind: int = CLIENT) -> bytes:
    return HEADER.pack(len(data), kind) + data


class FrameReader:
    """Frames from a stream socket, read in large pieces: a small frame costs no read of its own
    (its header and body, and often the next frames, come in one ``recv``), and a large one is
    read straight into its own buffer."""

    def __init__(self, sock: socket.socket, size: int = 256 * 1024) -> None:
        self._sock = sock
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0  # the bytes received and not yet taken

    def next(self) -> tuple[int, bytes | bytearray] | None:
        """The next frame's kind and bytes, or None at the end of the stream."""
        if not self._fill(HEADER.size):
            if self._start == self._end:
                return None
            raise ValueError("the stream ended inside a frame")
        size, kind = HEADER.unpack_from(self._buffer, self._start)
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes; at most {MAX_FRAME}")
        self._start += HEADER.size
        if size > len(self._buffer):
            return kind, self._take_large(size)
        if not self._fill(size):
            raise ValueError("the stream ended inside a frame")
        data = bytes(self._view[self._start : self._start + size])
        self._start += size
        return kind, data

    def _fill(self, size: int) -> bool:
        """At least ``size`` bytes received and not taken; False when the stream ends first."""
        if self._end - self._start >= size:
            return True
        if self._start == self._end:
            self._start = self._end = 0
        if self._start + size > len(self._buffer):  # room at the end for the rest of the frame
            held = self._end - self._start
            self._buffer[:held] = self._view[self._start : self._end]
            self._start, self._end = 0, held
        while self._end - self._start < size:
            got = self._sock.recv_into(self._view[self._end :])
            if got == 0:
                return False
            self._end += got
        return True

    def _take_large(self, size: int) -> bytearray:
        data = bytearray(size)
        held = min(size, self._end - self._start)
        data[:held] = self._view[self._start : self._start + held]
        self._start += held
        if self._start == self._end:
            self._start = self._end = 0
        try:
            if not read_into(self._sock, memoryview(data)[held:]):
                raise ValueError("the stream ended inside a frame")
        except EOFError:
            raise ValueError("the stream ended inside a frame") from None
        return data
