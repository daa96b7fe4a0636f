"""Remote CuPy's connection to its lease's worker: operations queue here and go in batches.

Creating and combining arrays needs no round trip: the client names every result with a
handle of its own and queues the operation. A sync point (``.get()``, ``float(x)``,
printing, ``synchronize()``, an unknown shape) sends what is queued with one request and
waits for one answer; chunks of uploads follow their operation on the same stream.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from ..address import Address
from ..client.connection import Client, connect
from ..errors import BitshareError
from ..present.printable import printable
from ..protocol.v1 import bitshare_pb2 as pb
from ..protocol.v1 import bitshare_pb2_grpc as pb_grpc
from ..protocol.wire import check_dtype, check_shape, contiguous, cupy_dtype, native
from . import errors
from .bulk import DataSocket, place_chunk, stream_chunks

RESUME_BACKOFF_S = (0.05, 1.0)  # first and longest wait between tries to reopen after a restart
CLOSE_WAIT_S = 5.0  # close(): how long the cancelled stream may take to finish
MAX_QUEUED = 4096  # operations sent without waiting once this many are queued
# ... or once at least FLUSH_MIN are queued and the oldest has waited FLUSH_AFTER_S: the worker
# starts on a model's forward while its rest is still being queued here, instead of after the
# sync that ends it (resnet50 through a simulated GPU: 0.94-0.98 of local CPU throughput with it,
# 0.85-0.89 without; fewer or sooner sends cost small-operation loops more than they gain).
FLUSH_AFTER_S = 0.005
FLUSH_MIN = 128
# Dropped arrays go ahead of the next operation once this many bytes (an array of unknown size
# counts as this many) or arrays wait: the worker holds little that is dead, and small arrays
# dropped one by one do not cost an operation each.
FREE_AHEAD_BYTES = 1 << 20
FREE_AHEAD_COUNT = 256
Op = pb.ROp


class Session:
    """The process's remote session of one lease.

    When bitshared goes away (killed, restarted) the session is opened again on the daemon
    that comes back, within the lease's TTL, with a new worker: the arrays made before are
    lost with the old worker's GPU memory. The sync that was under way, and any later
    operation on a lost array, raise :class:`errors.ArrayLost`; new arrays work as before.
    """

    def __init__(self, client: Client, lease_id: str) -> None:
        self.client = client
        self.lease_id = lease_id
        self.incarnation = 0  # the worker this session speaks to: 1 more after each reopening
        # Asked now, while the daemon answers: a reopening goes by them.
        self._ttl_s = client.info.lease_ttl_s or 30.0
        self._daemon_started = client.info.started_at.ToNanoseconds()
        self._outgoing, replies = self._open_stream(client)
        self._replies: Iterator[pb.RemoteReply] | None = replies  # None once ended
        self._handles = itertools.count(1)
        self._ops: list[pb.ROp] = []
        self._first_queued = 0.0  # when the oldest queued operation was queued
        # Appended by the garbage collector (any thread, any moment): no lock, no I/O. They go
        # ahead of a later operation (FREE_AHEAD_*), so the worker frees them in the same batch.
        self._frees: collections.deque[int] = collections.deque()
        self._freed_bytes = 0  # of the arrays in _frees (roughly: the collector may add meanwhile)
        self._lazy: dict[int, weakref.ref[Any]] = {}  # arrays whose meta the worker will tell
        self._seq = 0  # of the last synced batch sent
        self._answered = 0  # seq of the last answer read (behind _seq - 1: a sync was interrupted)
        self._lock = threading.RLock()
        self.closed = False
        self._released = False  # close() has ended the stream (closed alone: the server ended it)
        self.round_trips = 0  # syncs that waited for an answer
        self.ops_sent = 0
        self.device_used_bytes = 0
        self.device_limit_bytes = 0
        self._data: DataSocket | None = None  # raw bulk bytes, when the worker is on this host
        self._lost_below = 0  # arrays with handles below this were held by a worker that is gone
        self._lost_since: set[int] = set()  # made since, from lost arrays: never sent
        self._loss = ""  # what the next sync raises (a lost array was used), or ""
        self._why_lost = ""  # how the old worker went (a restart, or a broken connection) and when
        self._open_data_socket(self._next_reply(resume=False))

    def _open_stream(
        self, client: Client
    ) -> tuple[queue.SimpleQueue[pb.RemoteRequest | None], Iterator[pb.RemoteReply]]:
        outgoing: queue.SimpleQueue[pb.RemoteRequest | None] = queue.SimpleQueue()
        outgoing.put(pb.RemoteRequest(open=pb.RemoteOpen(lease_id=self.lease_id)))
        stub = pb_grpc.RemoteServiceStub(client.channel)
        return outgoing, stub.Session(_requests(outgoing), metadata=client.metadata)

    # ----- queueing -----------------------------------------------------------------------

    def new_handle(self) -> int:
        return next(self._handles)

    def queue(self, op: pb.ROp) -> None:
        with self._lock:
            if self._freed_bytes >= FREE_AHEAD_BYTES or len(self._frees) >= FREE_AHEAD_COUNT:
                self._queue_frees()
            if self._lost_below and self._uses_lost(op):
                self._lost_since.update(op.out)  # its results are lost as well; nothing is sent
                self._loss = self.lost_message()
                return
            if not self._ops:
                self._first_queued = time.perf_counter()
            self._ops.append(op)
            queued = len(self._ops)
            if queued >= MAX_QUEUED or (
                queued >= FLUSH_MIN and time.perf_counter() - self._first_queued > FLUSH_AFTER_S
            ):
                self._send_batch(sync=False)

    def free(self, handle: int, nbytes: int | None) -> None:
        """Called by the garbage collector: no I/O here, the handle goes ahead of a later operation
        in the same batch (the next one, for a large array)."""
        self._frees.append(handle)
        self._freed_bytes += FREE_AHEAD_BYTES if nbytes is None else nbytes

    def _queue_frees(self) -> None:
        """Queue the arrays dropped so far, in order with the work: a loop that replaces an
        array holds a few on the worker, not one per iteration until the next sync."""
        handles = []
        self._freed_bytes = 0
        while self._frees:
            handle = self._frees.popleft()  # (popleft is atomic: none is lost to a race)
            if handle < self._lost_below or handle in self._lost_since:
                self._lost_since.discard(handle)  # the worker that held it is gone
            else:
                handles.append(handle)
        if handles:
            self._ops.append(Op(kind=Op.KIND_FREE, args=[pb.RValue(handle=h) for h in handles]))

    def is_lost(self, handle: int) -> bool:
        return handle < self._lost_below or handle in self._lost_since

    def lost_message(self) -> str:
        return (
            f"remote array lost: {self._why_lost} and the arrays its worker held on the GPU "
            f"(lease {self.lease_id}) went with it"
        )

    def _uses_lost(self, op: pb.ROp) -> bool:
        values = [*op.args, *op.kwargs.values()]
        while values:
            value = values.pop()
            which = value.WhichOneof("kind")
            if which == "handle" and self.is_lost(value.handle):
                return True
            if which == "list":
                values.extend(value.list.items)
            elif which == "slice":
                values.extend((value.slice.start, value.slice.stop, value.slice.step))
        return False

    def expect_meta(self, handle: int, array: Any) -> None:
        """The worker will tell this array's shape and dtype at the next sync."""
        self._lazy[handle] = weakref.ref(array)

    def upload(self, handle: int, array: np.ndarray, meta: pb.RMeta | None = None, name: str = "") -> None:
        """Make ``handle`` an array on the worker holding ``array``'s data (over the data socket,
        or in chunks on the stream). ``meta``: what the bytes are when not ``array``'s own dtype
        and shape (a torch tensor's raw bytes)."""
        array = contiguous(native(np.asarray(array)))
        cupy_dtype(array.dtype)
        with self._lock:
            meta = meta if meta is not None else pb.RMeta(shape=array.shape, dtype=array.dtype.str)
            direct = self._data is not None
            self._queue_frees()
            self._ops.append(Op(kind=Op.KIND_UPLOAD, name=name, out=[handle], meta=meta, direct=direct))
            self._send_batch(sync=False)
            data = memoryview(array).cast("B") if array.size else memoryview(b"")
            if direct:
                self._send_data(handle, data)
                return
            for chunk in stream_chunks(handle, data):
                self._put(pb.RemoteRequest(chunk=chunk))

    def download(self, handle: int, meta: tuple[tuple[int, ...], np.dtype] | None) -> np.ndarray:
        """The array's bytes on the host (a sync point)."""
        with self._lock:
            if self.is_lost(handle):
                self.sync()  # what is queued still runs, and an error it meets comes first
                raise errors.ArrayLost(self.lost_message())
            direct = self._data is not None
            self._queue_frees()
            self._ops.append(Op(kind=Op.KIND_DOWNLOAD, args=[pb.RValue(handle=handle)], direct=direct))
            if not direct:
                buffer = np.empty(*meta) if meta is not None else None
                _, host = self.sync(download=(handle, buffer))
            else:
                self._send_batch(sync=True)
                try:
                    host = self._receive_data()  # before the answer: the worker writes the bytes first
                except errors.ProtocolError:
                    self._finish_sync()  # the answer still comes (or the stream's end): its error comes first
                    raise
                self._finish_sync()
            if host is None:  # (else the answer carried the error, raised above)
                raise errors.ProtocolError(f"the worker sent no data for array {handle} and gave no reason")
            return host

    # ----- sync points ----------------------------------------------------------------------

    def sync(self, download: tuple[int, np.ndarray | None] | None = None) -> tuple[pb.RResult, np.ndarray | None]:
        """Send everything queued and wait for the answer. ``download``: (handle, buffer or None)
        whose chunks this answer carries; returns the result and the downloaded array."""
        with self._lock:
            self._send_batch(sync=True)
            return self._finish_sync(download)

    def _finish_sync(
        self, download: tuple[int, np.ndarray | None] | None = None
    ) -> tuple[pb.RResult, np.ndarray | None]:
        """Read the answer to the synced batch just sent (and the chunks of a download before it)."""
        with self._lock:
            self.round_trips += 1
            handle, buffer = download if download is not None else (0, None)
            pieces: list[bytes] = []
            while True:
                reply = self._next_reply()
                if reply.WhichOneof("kind") == "chunk":
                    if self._answered < self._seq - 1:
                        continue  # data for an earlier sync, abandoned part way (its answer follows)
                    chunk = reply.chunk
                    if chunk.handle != handle:
                        raise errors.ProtocolError(f"the worker sent data for array {chunk.handle}, not {handle}")
                    if buffer is not None:
                        place_chunk(buffer, chunk)
                    else:
                        pieces.append(chunk.data)
                    continue
                result = reply.result
                if result.seq == self._seq:
                    self._answered = result.seq
                    break
                if result.error.type == "ProtocolError":
                    raise errors.ProtocolError(result.error.message)
                self._answered = max(self._answered, result.seq)  # the answer to an abandoned sync
            self.device_used_bytes = result.device_used_bytes
            self.device_limit_bytes = result.device_limit_bytes
            self._apply_metas(result.metas)
            loss, self._loss = self._loss, ""
            if loss:  # (the first failure in program order: the lost array was used before the worker's)
                raise errors.ArrayLost(loss)
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

    # ----- the data socket (same host) --------------------------------------------------------

    def _open_data_socket(self, first: pb.RemoteReply) -> None:
        if first.WhichOneof("kind") != "session":
            raise errors.ProtocolError("the GPU server's first reply does not describe the session")
        described = first.session
        route = self.client.route
        if described.data_port and route is not None:
            try:
                self._data = DataSocket.open_tcp(described, self.lease_id, route)
            except OSError as exc:
                self._data = None
                where = Address("tcp", host=route.host, port=described.data_port).target
                _say_once(
                    f"bitshare: the bulk data port {where} cannot be used "
                    f"({exc.strerror or exc}); array data goes on the session's stream, which is slower"
                )
            return
        self._data = DataSocket.open(described, self.lease_id)

    @property
    def bulk_path(self) -> str:
        """How array bytes travel now: "unix" or "tcp" (the data socket; "tls" when encrypted),
        or "stream" (chunks on the session's stream)."""
        if self._data is None:
            return "stream"
        return self._data.kind

    def _send_data(self, handle: int, data: memoryview) -> None:
        assert self._data is not None
        try:
            self._data.send(data)
        except OSError as exc:
            self._data = None  # (closed by its failure)
            self.sync()  # the worker's answer (or the stream's end) says what happened; raised first
            raise errors.ProtocolError(f"the upload of array {handle} failed on the data socket: {exc}") from None

    def _receive_data(self) -> np.ndarray | None:
        """A direct download: None when it did not happen (the answer says why). A read stopped
        part way closes the socket: later transfers travel in chunks on the stream."""
        data = self._data
        assert data is not None
        try:
            return data.receive()
        finally:
            if data.closed:
                self._data = None

    # ----- the stream -------------------------------------------------------------------------

    def _send_batch(self, sync: bool) -> None:
        self._queue_frees()
        ops, self._ops = self._ops, []
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

    def _next_reply(self, resume: bool = True) -> pb.RemoteReply:
        if self._replies is None:  # (ended: the session is closed)
            raise errors.LeaseLost(f"the remote session of lease {self.lease_id} is closed")
        try:
            return next(self._replies)
        except StopIteration:
            self.closed = True
            raise errors.LeaseLost(f"the GPU server ended the remote session of lease {self.lease_id}") from None
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or self._released or not resume:
                self.closed = True
                raise errors.LeaseLost(f"remote session of lease {self.lease_id}: {exc.details()}") from None
        # The daemon went away (the worker, its child, with it): reopen on the one that comes back.
        self._resume()
        raise errors.ArrayLost(self.lost_message())

    def _resume(self) -> None:
        """Open the session again for the same lease, within its TTL; LeaseLost if that fails."""
        self._end_stream()
        if self._data is not None:
            self._data.close()
            self._data = None
        went_away = time.time()
        ttl = self._ttl_s
        deadline = time.monotonic() + ttl
        wait = RESUME_BACKOFF_S[0]
        while True:
            try:
                reopened = self._reopen()
            except errors.LeaseLost:
                self.closed = True
                raise
            if reopened is not None:
                break
            if time.monotonic() + wait > deadline:
                self.closed = True
                raise errors.LeaseLost(
                    f"the remote session of lease {self.lease_id} ended: bitshared went away and did not come "
                    f"back within the lease's TTL ({ttl:g}s)"
                )
            time.sleep(wait)
            wait = min(wait * 2, RESUME_BACKOFF_S[1])
        client, outgoing, replies, first = reopened
        self.client.close()
        self.client, self._outgoing, self._replies = client, outgoing, replies
        self._why_lost = self._what_happened(went_away)
        self._lost_below = self.new_handle()  # every array made so far was held by the old worker
        self._lost_since.clear()
        self._ops, self._lazy, self._loss = [], {}, ""
        self._answered = self._seq  # the new worker owes no answers
        self.incarnation += 1
        self._open_data_socket(first)

    def _reopen(
        self,
    ) -> tuple[Client, queue.SimpleQueue[pb.RemoteRequest | None], Iterator[pb.RemoteReply], pb.RemoteReply] | None:
        """One try at opening the session on a new connection: the connection, its stream and the
        stream's first reply, or None when the daemon is not back yet. On every other outcome the
        new connection and its stream are closed here; LeaseLost when the daemon ended the session."""
        try:
            client = self.client.clone()
        except BitshareError:
            return None  # not listening yet
        outgoing, replies = self._open_stream(client)
        opened = False
        try:
            first = next(replies)
            opened = True
        except StopIteration:
            raise errors.LeaseLost(
                f"the remote session of lease {self.lease_id} ended: bitshared went away, and on its "
                "return ended the session"
            ) from None
        except grpc.RpcError as exc:
            if not _worth_retrying(exc):
                raise errors.LeaseLost(
                    f"the remote session of lease {self.lease_id} ended: bitshared went away, and on its "
                    f"return refused to open the session again: {exc.details()}"
                ) from None
            return None
        except BitshareError:
            return None
        finally:
            if not opened:
                _end_call(outgoing, replies)
                client.close()
        return client, outgoing, replies, first

    def _what_happened(self, went_away: float) -> str:
        """A restart (the daemon started again) or a connection that broke, and when."""
        try:
            started = self.client.server_info().started_at.ToNanoseconds()
        except BitshareError:
            started = 0
        if started and started != self._daemon_started:
            self._daemon_started = started
            return f"bitshared restarted at {_clock(started / 1e9)}"
        if started:
            return f"the session's connection to bitshared broke at {_clock(went_away)}"
        return f"bitshared went away at {_clock(went_away)}"

    def close(self) -> None:
        """End the stream here and wait for it, rather than leave it to the garbage collector at
        interpreter exit: there gRPC's call finaliser takes a lock that a daemon thread, frozen by
        the exit, may hold, and the program never ends (seen after an uncaught remote error)."""
        if self._released:
            return
        self._released = self.closed = True
        self._end_stream()
        if self._data is not None:
            self._data.close()
        self.client.close()

    def _end_stream(self) -> None:
        """End the session's stream, once: later calls (close() after a failed reopening, at
        exit) find none to end."""
        replies, self._replies = self._replies, None
        if replies is not None:
            _end_call(self._outgoing, replies)


def _end_call(outgoing: queue.SimpleQueue[pb.RemoteRequest | None], call: Any) -> None:
    """Cancel a stream and wait for it to finish, while gRPC's threads still run."""
    outgoing.put(None)
    call.cancel()
    deadline = time.monotonic() + CLOSE_WAIT_S
    while not call.done() and time.monotonic() < deadline:
        time.sleep(0.005)


def _worth_retrying(exc: grpc.RpcError) -> bool:
    """The daemon is not back yet, or (the connection broke, the daemon stayed) it has not yet
    ended the old session."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    return code == grpc.StatusCode.FAILED_PRECONDITION and "already has a remote session" in (exc.details() or "")


_said: set[str] = set()


def _say_once(line: str) -> None:
    """A line on stderr, once per process (a reopened session meets the same network)."""
    if line not in _said:
        _said.add(line)
        sys.stderr.write(printable(line) + "\n")
        sys.stderr.flush()


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _requests(outgoing: queue.SimpleQueue[pb.RemoteRequest | None]) -> Iterator[pb.RemoteRequest]:
    while True:
        request = outgoing.get()
        if request is None:
            return
        yield request


_current: list[Session] = []  # the process's one session, once opened
_session_lock = threading.Lock()


def current() -> Session | None:
    """The process's session if one is open (never opens one)."""
    return _current[0] if _current else None


def session() -> Session:
    """The process's session, opened on first use from the environment ``bitshare run`` set."""
    with _session_lock:
        if not _current or _current[0].closed:
            server, lease_id = os.environ.get("BITSHARE_SERVER"), os.environ.get("BITSHARE_LEASE_ID")
            if not server or not lease_id:
                raise RuntimeError(
                    "bitshare's remote GPU access runs arrays on a GPU server: "
                    "start the program with `bitshare run --remote`"
                )
            try:
                client = connect(
                    server,
                    os.environ.get("BITSHARE_TOKEN", ""),
                    os.environ.get("BITSHARE_TLS_CA", ""),
                    allow_insecure_tcp=os.environ.get("BITSHARE_ALLOW_INSECURE_TCP") == "1",
                )
            except BitshareError as exc:
                raise errors.LeaseLost(f"cannot reach the GPU server {server}: {exc}") from None
            if _current:
                _current[0].close()  # ended by the server: its connection goes now, not at exit
            _current[:] = [Session(client, lease_id)]
            atexit.register(_current[0].close)
            _end_in_one_line()
        return _current[0]


def _end_in_one_line() -> None:
    """An uncaught LeaseLost or ArrayLost ends the program with its one line: the place in the
    program where bitshared went away, or the lease ended, says nothing about why."""
    previous = sys.excepthook
    if getattr(previous, "bitshare", False):
        return

    def hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        if issubclass(kind, (errors.LeaseLost, errors.ArrayLost)):
            sys.stderr.write(f"bitshare: {printable(str(value))}\n")  # it may quote the daemon
            sys.stderr.flush()
        else:
            previous(kind, value, traceback)

    hook.bitshare = True  # type: ignore[attr-defined]
    sys.excepthook = hook
