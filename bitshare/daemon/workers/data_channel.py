"""The worker's data socket: bulk bytes between a client and the worker, raw.

A client on the daemon's host connects to a Unix socket of the worker's own; a client on
another host connects to the daemon's bulk TCP port, which hands the connection over to this
worker (then a TLS handshake, when the daemon's TCP is TLS). Either way the first connection
that sends the session's secret gets the channel. Uploads are read straight into the array's
buffer, downloads are written straight from it: no message framing and no extra copies.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import socket
import ssl
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

from ...protocol.sockio import read_bytes, read_into, tune_bulk_tcp
from ...protocol.v1 import bitshare_pb2 as pb

ACCEPT_TIMEOUT_S = 30.0
SECRET_TIMEOUT_S = 5.0
LENGTH = struct.Struct(">I")
SECRET_BYTES = 32
MAX_CHECKING = 8  # connections in their handshake or secret at once; more are closed at once


class DataChannelError(ValueError):
    """The data socket is not usable (no client, a wrong secret, or bytes out of step)."""


class _UnixDoor:
    """Connections to a Unix socket of the worker's own (a client on this host)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        os.chmod(path, 0o666)  # the client may be another user; the secret decides
        self._listener.listen(1)
        self.closed = False

    def describe(self, session: pb.RSession) -> None:
        session.data_socket = str(self.path)

    def next(self, timeout: float) -> socket.socket:
        self._listener.settimeout(timeout)
        conn, _ = self._listener.accept()
        return conn

    def secure(self, conn: socket.socket) -> socket.socket:
        return conn

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes an accept() waiting in another thread
        self._listener.close()
        self.path.unlink(missing_ok=True)


class _HandedOverDoor:
    """Connections the daemon's bulk TCP port hands over (a client on another host), made TLS
    here when the daemon's TCP is."""

    def __init__(self, handover: socket.socket, port: int, route: bytes, tls: ssl.SSLContext | None) -> None:
        self._handover, self._port, self._route, self._tls = handover, port, route, tls
        self.closed = False

    def describe(self, session: pb.RSession) -> None:
        session.data_port, session.data_route, session.data_tls = self._port, self._route, self._tls is not None

    def next(self, timeout: float) -> socket.socket:
        self._handover.settimeout(timeout)
        _, fds, _, _ = socket.recv_fds(self._handover, 1, 1)
        if not fds:
            raise EOFError("the daemon's bulk port is closed")
        conn = socket.socket(fileno=fds[0])
        tune_bulk_tcp(conn)
        return conn

    def secure(self, conn: socket.socket) -> socket.socket:
        """``conn`` after the TLS handshake, when the daemon's TCP is TLS (its timeout applies)."""
        return conn if self._tls is None else self._tls.wrap_socket(conn, server_side=True)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._handover.shutdown(socket.SHUT_RDWR)
        self._handover.close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The server side of the bulk port's TLS: the daemon's certificate, TLS 1.2 at least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class DataChannel:
    def __init__(self, door: _UnixDoor | _HandedOverDoor) -> None:
        self._door = door
        self.secret = secrets.token_bytes(SECRET_BYTES)
        self._conn: socket.socket | None = None
        self._admitted = threading.Event()
        self._lock = threading.Lock()  # who gets the channel: one connection, and none once closing
        self._checking = threading.BoundedSemaphore(MAX_CHECKING)
        self._closing = False
        self.broken = ""
        # Admitted as it comes, not at the first transfer: a TLS client waits for the handshake.
        threading.Thread(target=self._admit, name="data-channel", daemon=True).start()

    @classmethod
    def on_unix_socket(cls, path: Path) -> DataChannel:
        return cls(_UnixDoor(path))

    @classmethod
    def handed_over(cls, handover: socket.socket, port: int, route: bytes, tls: ssl.SSLContext | None) -> DataChannel:
        return cls(_HandedOverDoor(handover, port, route, tls))

    def session_message(self) -> pb.RSession:
        session = pb.RSession(secret=self.secret)
        self._door.describe(session)
        return session

    def _admit(self) -> None:
        """Keep the first connection that gives the session's secret; drop the others (so a
        stranger cannot take or spoil the channel), then let nobody else in. Each is checked in
        a thread of its own: a stranger who knows the route (it goes before TLS) and then stalls
        does not hold up the client's handshake."""
        while not self._closing:
            try:
                conn = self._door.next(ACCEPT_TIMEOUT_S)
            except TimeoutError:
                continue
            except EOFError:  # the daemon's end of the handover is closed: nobody comes any more
                return
            except OSError:  # gone before it was taken, or the door closed
                if self._door.closed:
                    return
                continue
            if not self._checking.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._check, args=(conn,), name="data-channel-check", daemon=True).start()

    def _check(self, conn: socket.socket) -> None:
        """Admit ``conn`` if it makes its handshake and gives the secret in time, and nobody was
        admitted first."""
        try:
            conn.settimeout(SECRET_TIMEOUT_S)
            try:
                conn = self._door.secure(conn)
                given = read_bytes(conn, SECRET_BYTES) or b""
            except (OSError, EOFError):  # a failed handshake (not TLS, gone), or no secret in time
                given = b""
            with self._lock:
                if not hmac.compare_digest(given, self.secret) or self._conn is not None or self._closing:
                    conn.close()
                    return
                conn.settimeout(None)
                self._conn = conn
                self._door.close()
                self._admitted.set()
        finally:
            self._checking.release()

    def _connection(self) -> socket.socket:
        """The client's connection, once it has given the secret."""
        if self.broken:
            raise DataChannelError(self.broken)
        if not self._admitted.wait(ACCEPT_TIMEOUT_S) or self._conn is None:
            raise DataChannelError("no client gave the session's secret on the data socket")
        return self._conn

    def read_into(self, buffer: memoryview) -> None:
        try:
            if not read_into(self._connection(), buffer):
                raise EOFError("the client closed the data socket")
        except (OSError, EOFError) as exc:
            self.broken = f"the data socket failed: {exc}"
            raise DataChannelError(self.broken) from None

    def drain(self, nbytes: int) -> None:
        """Read and drop ``nbytes`` (an upload that was refused): the stream stays in step."""
        scratch = memoryview(bytearray(min(nbytes, 1 << 20) or 1))
        left = nbytes
        while left:
            step = min(left, len(scratch))
            self.read_into(scratch[:step])
            left -= step

    def write(self, meta: pb.RMeta | None, data: memoryview | Iterable[memoryview] | None) -> None:
        """A download: its meta and bytes (or the pieces they come in), or an empty header when
        it did not happen."""
        header = meta.SerializeToString() if meta is not None else b""
        try:
            conn = self._connection()
            conn.sendall(LENGTH.pack(len(header)) + header)
            for piece in [data] if isinstance(data, memoryview) else data or ():
                if len(piece):
                    conn.sendall(piece)
        except OSError as exc:
            self.broken = f"the data socket failed: {exc}"
            raise DataChannelError(self.broken) from None

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._door.close()
        if self._conn is not None:
            self._conn.close()
