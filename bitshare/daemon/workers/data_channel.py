"""The worker's data socket: bulk bytes between a client on the same host and the worker, raw.

The worker listens on a Unix socket of its own; the first client to connect and send the
session's secret gets it. Uploads are read straight into the array's buffer, downloads are
written straight from it: no message framing and no extra copies.
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import struct
import time
from pathlib import Path

from ...protocol.sockio import read_bytes, read_into
from ...protocol.v1 import bitshare_pb2 as pb

ACCEPT_TIMEOUT_S = 30.0
SECRET_TIMEOUT_S = 5.0
LENGTH = struct.Struct(">I")
SECRET_BYTES = 32


class DataChannelError(ValueError):
    """The data socket is not usable (no client, a wrong secret, or bytes out of step)."""


class DataChannel:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.secret = secrets.token_bytes(SECRET_BYTES)
        path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        os.chmod(path, 0o666)  # the client may be another user; the secret decides
        self._listener.listen(1)
        self._conn: socket.socket | None = None
        self.broken = ""

    def session_message(self) -> pb.RSession:
        return pb.RSession(data_socket=str(self.path), secret=self.secret)

    def _connection(self) -> socket.socket:
        """The client's connection: connections without the session's secret are dropped, and
        the first that gives it is kept (so a stranger cannot take or spoil the socket)."""
        if self.broken:
            raise DataChannelError(self.broken)
        deadline = time.monotonic() + ACCEPT_TIMEOUT_S
        while self._conn is None:
            self._listener.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                raise DataChannelError("no client gave the session's secret on the data socket") from None
            conn.settimeout(SECRET_TIMEOUT_S)
            try:
                given = read_bytes(conn, SECRET_BYTES) or b""
            except (OSError, EOFError):
                given = b""
            if not hmac.compare_digest(given, self.secret):
                conn.close()
                continue
            conn.settimeout(None)
            self._conn = conn
            self._listener.close()
            self.path.unlink(missing_ok=True)
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

    def write(self, meta: pb.RMeta | None, data: memoryview | None) -> None:
        """A download: its meta and bytes, or an empty header when it did not happen."""
        header = meta.SerializeToString() if meta is not None else b""
        try:
            conn = self._connection()
            conn.sendall(LENGTH.pack(len(header)) + header)
            if data is not None and len(data):
                conn.sendall(data)
        except OSError as exc:
            self.broken = f"the data socket failed: {exc}"
            raise DataChannelError(self.broken) from None

    def close(self) -> None:
        for sock in (self._conn, self._listener):
            if sock is not None:
                sock.close()
        self.path.unlink(missing_ok=True)
