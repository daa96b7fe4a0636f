"""A remote session driven message by message over real gRPC, to send what the interposers never would."""

from __future__ import annotations

import queue
import socket
import ssl
from typing import Any

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc


class RawSession:
    """A remote session driven message by message, to send what the interposer never would."""

    def __init__(self, client: Any, lease_id: str) -> None:
        self.lease_id = lease_id
        self._outgoing: queue.SimpleQueue[pb.RemoteRequest | None] = queue.SimpleQueue()
        self._outgoing.put(pb.RemoteRequest(open=pb.RemoteOpen(lease_id=lease_id)))
        stub = pb_grpc.RemoteServiceStub(client.channel)
        self.call = stub.Session(iter(self._outgoing.get, None), metadata=client.metadata, timeout=60)
        self.seq = 0
        self._first: pb.RemoteReply | None = None

    @property
    def session(self) -> pb.RSession:
        """The session's first reply: how to reach its data socket (read from the stream once)."""
        if self._first is None:
            self._first = next(self.call)
            assert self._first.WhichOneof("kind") == "session", self._first
        return self._first.session

    def open_bulk(
        self, host: str, *, route: bytes | None = None, secret: bytes | None = None, tls_ca: str = ""
    ) -> socket.socket:
        """A connection to the daemon's bulk port made by hand: ``route`` (this session's by
        default), TLS checked against ``tls_ca`` when given, then ``secret`` (this session's by
        default; b"" sends none)."""
        described = self.session
        sock: socket.socket = socket.create_connection((host, described.data_port), timeout=10)
        sock.sendall(described.data_route if route is None else route)
        if tls_ca:
            sock = ssl.create_default_context(cafile=tls_ca).wrap_socket(sock, server_hostname=host)
        sock.sendall(described.secret if secret is None else secret)
        return sock

    def send(self, *requests: pb.RemoteRequest) -> None:
        for request in requests:
            self._outgoing.put(request)

    def sync(self, *ops: pb.ROp) -> list[pb.RemoteReply]:
        """Send a synced batch; the replies up to its result."""
        self.seq += 1
        self.send(pb.RemoteRequest(batch=pb.RBatch(ops=ops, sync=True, seq=self.seq)))
        replies = []
        for reply in self.call:
            if self._first is None and reply.WhichOneof("kind") == "session":
                self._first = reply
            replies.append(reply)
            if reply.WhichOneof("kind") == "result":
                return replies
        return replies

    def close(self) -> None:
        self._outgoing.put(None)


def results(replies: list[pb.RemoteReply]) -> list[pb.RResult]:
    return [r.result for r in replies if r.WhichOneof("kind") == "result"]
