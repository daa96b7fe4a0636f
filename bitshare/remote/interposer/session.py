"""The interposer's connection to its lease's worker: operations queue here and go in batches.

Creating and combining arrays needs no round trip: the client names every result with a
handle of its own and queues the operation. A sync point (``.get()``, ``float(x)``,
printing, ``synchronize()``, an unknown shape) sends what is queued with one request and
waits for one answer; chunks of uploads follow their operation on the same stream.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from ...client import Client, connect
from ...errors import BitshareError
from ...v1 import bitshare_pb2 as pb
from ...v1 import bitshare_pb2_grpc as pb_grpc
from ..wire import check_dtype, check_shape
from . import errors

CHUNK = 4 * 1024 * 1024
MAX_QUEUED = 4096  # operations sent without waiting once this many are queued
Op = pb.ROp


class Session:
    def __init__(self, client: Client, lease_id: str) -> None:
        self.client = client
        self.lease_id = lease_id
        self._outgoing: queue.SimpleQueue[pb.RemoteRequest | None] = queue.SimpleQueue()
        stub = pb_grpc.RemoteServiceStub(client.channel)
        self._replies: Iterator[pb.RemoteReply] = stub.Session(self._requests(), metadata=client.metadata)
        self._outgoing.put(pb.RemoteRequest(open=pb.RemoteOpen(lease_id=lease_id)))
        self._handles = itertools.count(1)
        self._ops: list[pb.ROp] = []
        self._frees: list[int] = []  # appended by the garbage collector, sent with the next batch
        self._lazy: dict[int, weakref.ref[Any]] = {}  # arrays whose meta the worker will tell
        self._seq = 0
        self._lock = threading.RLock()
        self.closed = False
        self.round_trips = 0  # syncs that waited for an answer
        self.ops_sent = 0
        self.device_used_bytes = 0
        self.device_limit_bytes = 0

    # ----- queueing -----------------------------------------------------------------------

    def new_handle(self) -> int:
        return next(self._handles)

    def queue(self, op: pb.ROp) -> None:
        with self._lock:
            self._ops.append(op)
            if len(self._ops) >= MAX_QUEUED:
                self._send_batch(sync=False)

    def free(self, handle: int) -> None:
        """Called by the garbage collector: no I/O here, the handle goes with the next batch."""
        self._frees.append(handle)

    def expect_meta(self, handle: int, array: Any) -> None:
        """The worker will tell this array's shape and dtype at the next sync."""
        self._lazy[handle] = weakref.ref(array)

    def upload(self, handle: int, array: np.ndarray) -> None:
        """Make ``handle`` an array on the worker holding ``array``'s data (sent in chunks)."""
        array = np.ascontiguousarray(array)
        check_dtype(array.dtype.str)
        with self._lock:
            meta = pb.RMeta(shape=array.shape, dtype=array.dtype.str)
            self._ops.append(Op(kind=Op.KIND_UPLOAD, out=[handle], meta=meta))
            self._send_batch(sync=False)
            data = memoryview(array.reshape(-1).view(np.uint8))
            for offset in range(0, len(data), CHUNK):
                chunk = pb.RChunk(handle=handle, offset=offset, data=data[offset : offset + CHUNK].tobytes())
                self._put(pb.RemoteRequest(chunk=chunk))

    # ----- sync points ----------------------------------------------------------------------

    def sync(self, download: tuple[int, np.ndarray | None] | None = None) -> tuple[pb.RResult, np.ndarray | None]:
        """Send everything queued and wait for the answer. ``download``: (handle, buffer or None)
        whose chunks this answer carries; returns the result and the downloaded array."""
        with self._lock:
            self._send_batch(sync=True)
            self.round_trips += 1
            handle, buffer = download if download is not None else (0, None)
            pieces: list[bytes] = []
            while True:
                reply = self._next_reply()
                if reply.WhichOneof("kind") == "chunk":
                    chunk = reply.chunk
                    if chunk.handle != handle:
                        raise errors.ProtocolError(f"the worker sent data for array {chunk.handle}, not {handle}")
                    if buffer is not None:
                        target = memoryview(buffer.reshape(-1).view(np.uint8))
                        target[chunk.offset : chunk.offset + len(chunk.data)] = chunk.data
                    else:
                        pieces.append(chunk.data)
                    continue
                result = reply.result
                if result.seq == self._seq:
                    break
                if result.error.type == "ProtocolError":
                    raise errors.ProtocolError(result.error.message)
            self.device_used_bytes = result.device_used_bytes
            self.device_limit_bytes = result.device_limit_bytes
            self._apply_metas(result.metas)
            if result.HasField("error"):
                raise errors.from_remote(result.error)
            if download is not None and buffer is None:
                meta = result.metas[handle]
                buffer = np.frombuffer(b"".join(pieces), dtype=check_dtype(meta.dtype)).reshape(check_shape(meta.shape))
            return result, buffer

    def _apply_metas(self, metas: Any) -> None:
        for handle, meta in metas.items():
            ref = self._lazy.pop(handle, None)
            array = ref() if ref is not None else None
            if array is not None:
                array._set_meta(tuple(meta.shape), np.dtype(meta.dtype))

    # ----- the stream -------------------------------------------------------------------------

    def _send_batch(self, sync: bool) -> None:
        ops, self._ops = self._ops, []
        frees, self._frees = self._frees, []
        if frees:
            ops.append(Op(kind=Op.KIND_FREE, args=[pb.RValue(handle=h) for h in frees]))
        if not ops and not sync:
            return
        if sync:
            self._seq += 1
        self.ops_sent += len(ops)
        self._put(pb.RemoteRequest(batch=pb.RBatch(ops=ops, sync=sync, seq=self._seq if sync else 0)))

    def _put(self, request: pb.RemoteRequest) -> None:
        if self.closed:
            raise errors.LeaseLost(f"the remote session of lease {self.lease_id} is closed")
        self._outgoing.put(request)

    def _requests(self) -> Iterator[pb.RemoteRequest]:
        while True:
            request = self._outgoing.get()
            if request is None:
                return
            yield request

    def _next_reply(self) -> pb.RemoteReply:
        try:
            return next(self._replies)
        except StopIteration:
            self.closed = True
            raise errors.LeaseLost(f"the GPU server ended the remote session of lease {self.lease_id}") from None
        except grpc.RpcError as exc:
            self.closed = True
            raise errors.LeaseLost(f"remote session of lease {self.lease_id}: {exc.details()}") from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._outgoing.put(None)
            self.client.close()


_current: list[Session] = []  # the process's one session, once opened
_session_lock = threading.Lock()


def session() -> Session:
    """The process's session, opened on first use from the environment ``bitshare run`` set."""
    with _session_lock:
        if not _current or _current[0].closed:
            server, lease_id = os.environ.get("BITSHARE_SERVER"), os.environ.get("BITSHARE_LEASE_ID")
            if not server or not lease_id:
                raise RuntimeError(
                    "bitshare's CuPy runs arrays on a GPU server: start the program with `bitshare run --remote`"
                )
            try:
                client = connect(server, os.environ.get("BITSHARE_TOKEN", ""), os.environ.get("BITSHARE_TLS_CA", ""))
            except BitshareError as exc:
                raise errors.LeaseLost(f"cannot reach the GPU server {server}: {exc}") from None
            _current[:] = [Session(client, lease_id)]
            atexit.register(_current[0].close)
        return _current[0]
