"""``RemoteService.Session`` in the daemon: start the lease's worker and relay the stream to it.

Messages are relayed as bytes, unparsed (the worker parses and checks them), except the
first, which names the lease. The worker runs as a child of the daemon in a process of
its own, so a crash in it (a bad kernel, an illegal address) ends its lease and nothing
else. It is counted as one of the lease's processes, so the watchdog measures it and it
is ended with the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError

from ... import log
from ...errors import REFUSALS, UsageError, WrongState
from ...protocol.framing import CLIENT, HEADER, LIMIT, MAX_FRAME, frame
from ...protocol.v1 import bitshare_pb2 as pb
from ..api.auth import Identity
from ..api.service import Shared, guarded
from ..state.manager import UpdateKind
from ..state.model import Lease, LeaseState
from ..state.store import StoreError
from .bulk_port import ROUTE_BYTES, BulkPort

SERVICE = "bitshare.v1.RemoteService"
READY_TIMEOUT_S = 120.0  # importing CuPy and making a CUDA context can take a while
MIB = 1024 * 1024
COPY_BELOW = 64 * 1024  # messages smaller than this are framed by a copy, larger ones are not


class _Closed(Exception):
    """The worker's end of the socket is closed."""


class RemoteRelay:
    def __init__(self, shared: Shared, bulk: BulkPort | None = None) -> None:
        self.shared = shared
        self.bulk = bulk  # the bulk TCP port, for clients on other hosts
        self.sessions: dict[str, asyncio.subprocess.Process | None] = {}  # None: starting
        self.routes: dict[str, bytes] = {}  # each session's route on the bulk port (b"": none)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {"Session": grpc.stream_stream_rpc_method_handler(self.session)},  # bytes in, bytes out
        )

    async def session(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        identity = await self.shared.identify(context)
        first = await anext(aiter(requests), None)
        if first is None:
            return
        lease = await guarded(context, self._open(identity, first))
        try:
            worker, reader, writer, ready = await self._start(lease, context)
        except BaseException:
            self._forget(lease.id)
            raise
        log.event("remote.started", lease=lease.id, pid=worker.pid)
        ended = asyncio.ensure_future(self._follow_lease(lease.id, writer))
        # The end of the lease ends a read under way at once. Each reply is read where it is
        # yielded, not in a task of its own raced against the lease: a task and a wait per
        # message cost the sync path two turns of the event loop.
        ended.add_done_callback(lambda _ended: reader.feed_eof())
        forward = asyncio.ensure_future(self._forward(requests, writer))
        try:
            yield ready  # the session's first reply: where its data socket is, if it has one
            while True:
                try:
                    data = await _read_frame(reader)
                except _Closed:
                    data = None
                if ended.done():
                    await context.abort(grpc.StatusCode.ABORTED, ended.result())
                if data is None:
                    break
                yield data
            # The worker closed its end: the client closed the session, or the worker died.
            code = await worker.wait()
            if code != 0 and not forward.done():
                why = _describe_exit(code)
                await self._end_lease(lease.id, f"its remote worker crashed ({why})")
                await context.abort(grpc.StatusCode.ABORTED, f"the GPU worker of lease {lease.id} crashed ({why})")
        finally:
            forward.cancel()
            ended.cancel()
            writer.close()
            with contextlib.suppress(ProcessLookupError):
                worker.kill()
            await worker.wait()
            self._forget(lease.id)
            log.event("remote.ended", lease=lease.id, pid=worker.pid, code=worker.returncode)

    def _forget(self, lease_id: str) -> None:
        self.sessions.pop(lease_id, None)
        route = self.routes.pop(lease_id, b"")
        if route and self.bulk is not None:
            self.bulk.drop_route(route)

    async def _open(self, identity: Identity, data: bytes) -> Lease:
        try:
            request = pb.RemoteRequest.FromString(data)
        except DecodeError:
            raise UsageError("the first message of a session is not a RemoteRequest") from None
        if request.WhichOneof("kind") != "open" or not request.open.lease_id:
            raise UsageError("the first message of a session must name the lease (RemoteOpen)")
        lease = await self.shared.owned_lease(identity, request.open.lease_id)
        if lease.state is not LeaseState.ACTIVE:
            raise WrongState(f"lease {lease.id} is {lease.state.value}; a remote session needs an active lease")
        if len(lease.allocations) != 1:
            raise WrongState(f"lease {lease.id} has {len(lease.allocations)} GPUs; a remote session uses one")
        if lease.id in self.sessions:
            raise WrongState(f"lease {lease.id} already has a remote session")
        self.sessions[lease.id] = None  # claimed before any await: two opens at once cannot both start a worker
        return lease

    async def _start(
        self, lease: Lease, context: grpc.aio.ServicerContext
    ) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        [(index, mib)] = lease.allocations.items()
        gpu = self.shared.manager.gpu(index)
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        if self.shared.simulated:
            # A simulated GPU's worker computes on one CPU thread. With the BLAS's own threads,
            # several workers at once oversubscribe the cores and the BLAS's spinning threads
            # starve each other (four sessions ran 30x slower than one on two cores).
            env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        else:
            env["CUDA_VISIBLE_DEVICES"] = gpu.uuid
            pipe = self.shared.enforcer.mps_pipe(lease, index)
            if pipe and lease.mps_uid == os.getuid():
                env.update(CUDA_MPS_PIPE_DIRECTORY=pipe, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=f"0={mib}M")
        command = [
            sys.executable,
            "-m",
            "bitshare.daemon.workers.worker",
            "--fd",
            str(theirs.fileno()),
            "--backend",
            "simulated" if self.shared.simulated else "nvml",
            "--gpu-uuid",
            gpu.uuid,
            "--limit-bytes",
            str(mib * MIB),
            "--registry",
            self.shared.simgpu_directory,
        ]
        if context.peer().startswith("unix:") and self.shared.runtime_dir:
            # A client on this host gets a data socket for bulk bytes (the secret decides who uses it).
            directory = Path(self.shared.runtime_dir) / "remote"
            directory.mkdir(exist_ok=True)
            os.chmod(directory, 0o755)
            command += ["--data-socket", str(directory / f"{lease.id}-{secrets.token_hex(4)}.sock")]
        passed = [theirs]
        route = b""
        if not context.peer().startswith("unix:") and self.bulk is not None and self.bulk.port:
            # A client on another host: connections to the bulk port that name this route are
            # handed to the worker, which does TLS and checks the secret itself.
            handover, worker_end = socket.socketpair()
            route = secrets.token_bytes(ROUTE_BYTES)
            self.bulk.add_route(route, handover)
            passed.append(worker_end)
            command += ["--bulk-fd", str(worker_end.fileno()), "--bulk-port", str(self.bulk.port)]
            command += ["--bulk-route", route.hex()]
            if self.bulk.tls:
                command += ["--tls-cert", self.bulk.tls_cert, "--tls-key", self.bulk.tls_key]
        try:
            worker = await asyncio.create_subprocess_exec(
                *command,
                pass_fds=[end.fileno() for end in passed],
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            if route:
                self.bulk.drop_route(route)  # type: ignore[union-attr]
            raise
        finally:
            for end in passed:
                end.close()
        self.sessions[lease.id] = worker
        self.routes[lease.id] = route
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_FRAME + HEADER.size)
        try:
            ready = await asyncio.wait_for(_read_frame(reader), READY_TIMEOUT_S)
        except (asyncio.TimeoutError, _Closed):
            ready = b""
        if not _is_ready(ready):
            with contextlib.suppress(ProcessLookupError):
                worker.kill()
            code = await worker.wait()
            self._forget(lease.id)
            writer.close()
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the GPU worker of lease {lease.id} did not start ({_describe_exit(code)})",
            )
        self.shared.enforcer.adopt_worker(lease.id, worker.pid)
        return worker, reader, writer, ready

    async def _forward(self, requests: AsyncIterator[bytes], writer: asyncio.StreamWriter) -> None:
        """Client -> worker; closing the worker's input when the client ends the session."""
        try:
            async for data in requests:
                if len(data) < COPY_BELOW:
                    writer.write(frame(data))  # one send for the header and a small message
                else:
                    writer.write(HEADER.pack(len(data), CLIENT))  # (a chunk is not copied to frame it)
                    writer.write(data)
                await writer.drain()
        except (ConnectionError, grpc.RpcError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.write_eof()

    async def _follow_lease(self, lease_id: str, writer: asyncio.StreamWriter) -> str:
        """Give the worker each new partition size as the lease is resized; when the lease ends,
        return what to tell the client."""
        manager = self.shared.manager
        updates = manager.watch(lease_id)
        try:
            lease = await manager.lease(lease_id)
            while not lease.state.ended:
                update = await updates.get()
                lease = update.lease
                if update.kind is UpdateKind.RESIZED and lease.allocations:
                    [mib] = lease.allocations.values()
                    writer.write(frame((mib * MIB).to_bytes(8, "big"), LIMIT))
            return f"lease {lease_id} {lease.state.value}: {lease.end_reason}"
        finally:
            manager.unwatch(lease_id, updates)

    async def _end_lease(self, lease_id: str, reason: str) -> None:
        with contextlib.suppress(*REFUSALS, StoreError):  # unrecordable: the lease ends when it can be
            await self.shared.manager.revoke(lease_id, reason)


def _is_ready(data: bytes) -> bool:
    try:
        return pb.RemoteReply.FromString(data).WhichOneof("kind") == "session"
    except DecodeError:
        return False


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    try:
        header = await reader.readexactly(HEADER.size)
        size, _ = HEADER.unpack(header)  # the worker only sends CLIENT frames
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise _Closed from None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
