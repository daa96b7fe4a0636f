"""A remote session driven message by message over real gRPC, to send what the interposers never would."""

from __future__ import annotations

import queue
from typing import Any

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc


class RawSession:
    """A remote session driven message by message, to send what the interposer never would."""

    def __init__(self, client: Any, lease_id: str) -> None:
        self._outgoing: queue.SimpleQueue[pb.RemoteRequest | None] = queue.SimpleQueue()
        self._outgoing.put(pb.RemoteRequest(open=pb.RemoteOpen(lease_id=lease_id)))
        stub = pb_grpc.RemoteServiceStub(client.channel)
        self.call = stub.Session(iter(self._outgoing.get, None), metadata=client.metadata, timeout=60)
        self.seq = 0

    def send(self, *requests: pb.RemoteRequest) -> None:
        for request in requests:
            self._outgoing.put(request)

    def sync(self, *ops: pb.ROp) -> list[pb.RemoteReply]:
        """Send a synced batch; the replies up to its result."""
        self.seq += 1
        self.send(pb.RemoteRequest(batch=pb.RBatch(ops=ops, sync=True, seq=self.seq)))
        replies = []
        for reply in self.call:
            replies.append(reply)
            if reply.WhichOneof("kind") == "result":
                return replies
        return replies

    def close(self) -> None:
        self._outgoing.put(None)


def results(replies: list[pb.RemoteReply]) -> list[pb.RResult]:
    return [r.result for r in replies if r.WhichOneof("kind") == "result"]
