"""Reading exactly so many bytes from a stream socket (framing, data sockets): one helper for all."""

from __future__ import annotations

import socket


def read_into(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``. False when the peer had closed before the first byte;
    EOFError when it closes part way."""
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            if got == 0 and len(view):
                return False
            raise EOFError(f"the peer closed the socket after {got} of {len(view)} bytes")
        got += n
    return True


def read_bytes(sock: socket.socket, size: int) -> bytes | None:
    """``size`` bytes, or None when the peer had closed before the first."""
    buffer = bytearray(size)
    return bytes(buffer) if read_into(sock, memoryview(buffer)) else None
