"""Array bytes between a remote program and its worker: raw over the session's data socket,
or chunks on the session's stream where there is none.

The data socket is a Unix socket the worker listens on when it is on this host, else a TCP
connection to the daemon's bulk port (TLS where the daemon's TCP is), handed to the worker;
either is opened with the session's secret. It carries raw bytes with no way to find the next
message's start: whatever stops a read part way closes it, and later transfers travel in
chunks on the stream.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator

import numpy as np
from google.protobuf.message import DecodeError

from .. import paths
from ..client.connection import peer_uid
from ..client.transport import Route
from ..protocol.sockio import read_bytes, read_into, tune_bulk_tcp
from ..protocol.v1 import bitshare_pb2 as pb
from ..protocol.wire import check_dtype, check_shape
from . import errors

CHUNK = 4 * 1024 * 1024
BULK_CONNECT_TIMEOUT_S = 5.0  # to connect to the bulk port and finish its TLS handshake
_LENGTH = struct.Struct(">I")  # a download's size prefix: its RMeta's length, 0 when none follows


def stream_chunks(handle: int, data: memoryview) -> Iterator[pb.RChunk]:
    """An upload's bytes as the stream carries them, CHUNK at a time."""
    for offset in range(0, len(data), CHUNK):
        yield pb.RChunk(handle=handle, offset=offset, data=data[offset : offset + CHUNK].tobytes())


def place_chunk(buffer: np.ndarray, chunk: pb.RChunk) -> None:
    """Copy a download's chunk into its place in ``buffer``."""
    target = memoryview(buffer.reshape(-1).view(np.uint8))
    target[chunk.offset : chunk.offset + len(chunk.data)] = chunk.data


class DataSocket:
    """The raw byte channel to a worker on this host. Once it fails it is closed for good."""

    def __init__(self, sock: socket.socket, lease_id: str) -> None:
        self._sock: socket.socket | None = sock
        self._lease_id = lease_id
        self.kind = "unix" if sock.family == socket.AF_UNIX else "tls" if isinstance(sock, ssl.SSLSocket) else "tcp"

    @classmethod
    def open(cls, described: pb.RSession, lease_id: str) -> DataSocket | None:
        """The data socket the worker offers, or None when it offers none, it cannot be reached
        from here, or it is served by a process no daemon of ours runs (chunks on the stream
        still work). The secret goes only to a socket the kernel says a trusted user serves:
        whoever else listens at that path could use it to read the arrays' bytes."""
        if not described.data_socket:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(described.data_socket)
            if peer_uid(sock) not in paths.daemon_uids():
                sock.close()
                return None
            sock.sendall(described.secret)
        except OSError:
            sock.close()
            return None
        return cls(sock, lease_id)

    @classmethod
    def open_tcp(cls, described: pb.RSession, lease_id: str, route: Route) -> DataSocket:
        """The daemon's bulk port on the host this client dialed, for this session: the route,
        then TLS (checked as the gRPC channel's is), then the secret. OSError says why not:
        the secret never goes in plaintext where the gRPC channel is TLS."""
        if route.tls and not described.data_tls:
            raise OSError("the daemon offers plaintext bulk data where its gRPC is TLS: refused")
        if described.data_tls and not route.tls:
            raise OSError("the bulk port is TLS, and this client has no TLS roots for it")
        sock = socket.create_connection((route.host, described.data_port), timeout=BULK_CONNECT_TIMEOUT_S)
        try:
            tune_bulk_tcp(sock)
            sock.sendall(described.data_route)
            if described.data_tls:
                context = ssl.create_default_context(cadata=route.root_certificates.decode("ascii"))
                sock = context.wrap_socket(sock, server_hostname=route.host)
            sock.sendall(described.secret)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock, lease_id)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def send(self, data: memoryview) -> None:
        """An upload's bytes; OSError (the socket is then closed) when they could not all go."""
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except OSError:
            self.close()
            raise

    def receive(self) -> np.ndarray | None:
        """A download's array: None when the worker sent none (its answer says why)."""
        assert self._sock is not None
        complete = False
        try:
            (size,) = _LENGTH.unpack(_required(read_bytes(self._sock, _LENGTH.size)))
            if size == 0:
                complete = True
                return None
            meta = pb.RMeta.FromString(_required(read_bytes(self._sock, size)))
            try:
                host = np.empty(check_shape(meta.shape), check_dtype(meta.dtype))
            except ValueError as exc:
                raise errors.ProtocolError(f"the worker sent an array this client cannot take: {exc}") from None
            if host.size and not read_into(self._sock, memoryview(host).cast("B")):
                raise EOFError("the worker closed the data socket")
            complete = True
            return host
        except (OSError, EOFError, DecodeError) as exc:
            # The worker, or the daemon with it, may be gone: the stream tells which.
            raise errors.ProtocolError(f"the data socket of lease {self._lease_id} failed: {exc}") from None
        finally:
            if not complete:  # (bad data or Ctrl-C part way: the next message's start is unknown)
                self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _required(data: bytes | None) -> bytes:
    if data is None:
        raise EOFError("the worker closed the data socket")
    return data
