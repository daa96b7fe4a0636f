"""Reading exactly so many bytes from a stream socket (framing, data sockets): one helper for all."""

from __future__ import annotations

import socket

# A bulk TCP connection whose peer stops acknowledging (a cut link, a host gone) fails within
# about this long, in either direction, instead of hanging a transfer until the kernel gives up.
BULK_DEAD_AFTER_S = 30


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


def tune_bulk_tcp(sock: socket.socket) -> None:
    """A TCP socket for raw bulk bytes: small writes (a download's header) go at once, and a
    dead peer is noticed (keepalives while idle, a limit on unacknowledged data while sending)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, BULK_DEAD_AFTER_S * 1000)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, BULK_DEAD_AFTER_S // 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, BULK_DEAD_AFTER_S // 6)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
