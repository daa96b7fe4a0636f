"""A remote lease's worker process: executes the session's operations on the leased GPU.

Started by bitshared with one end of a socket pair (``--fd``); it reads framed
``RemoteRequest`` messages and writes framed ``RemoteReply`` messages until the daemon
closes the socket. CuPy on real GPUs (with the partition as CuPy's pool limit; the daemon
sets ``CUDA_VISIBLE_DEVICES`` and, under MPS, the MPS client variables), NumPy on simulated
ones (with the partition as the simulated pool's limit, published for the watchdog).

    python -m bitshare.daemon.workers.worker --fd 3 --backend simulated --gpu-uuid SIM-00-16384 \\
        --limit-bytes 4294967296 --registry /run/bitshare/simgpu
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from ...protocol.framing import LIMIT, FrameReader, frame
from ...protocol.v1 import bitshare_pb2 as pb
from .data_channel import DataChannel, tls_context
from .executor import Executor


class CupyDevice:
    """The partition on a real GPU: CuPy's default pool, limited to it."""

    def __init__(self, cupy: Any, limit_bytes: int) -> None:
        self.pool = cupy.get_default_memory_pool()
        self.pool.set_limit(size=limit_bytes)
        self._cupy = cupy
        self.limit_bytes = limit_bytes

    @property
    def used_bytes(self) -> int:
        return int(self.pool.used_bytes())

    def check_room(self, nbytes: int) -> None:
        if self.used_bytes + nbytes > self.limit_bytes:
            raise self._cupy.cuda.memory.OutOfMemoryError(nbytes, self.used_bytes, self.limit_bytes)

    def adopt(self, array: Any) -> Any:
        return array  # CuPy's pool already counted it, and refused what did not fit

    def reclaim(self) -> bool:
        """Give cached blocks back to the GPU: CuPy counts them against the pool's limit and
        refuses an allocation past it without freeing them first."""
        cached = int(self.pool.total_bytes()) - self.used_bytes
        if cached <= 0:
            return False
        self.pool.free_all_blocks()
        return int(self.pool.total_bytes()) - self.used_bytes < cached

    def set_limit(self, limit_bytes: int) -> None:
        if limit_bytes < self.limit_bytes:
            self.pool.free_all_blocks()  # cached blocks above the new size go back to the device
        self.pool.set_limit(size=limit_bytes)
        self.limit_bytes = limit_bytes

    def busy(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # NVML measures a real GPU's utilisation


def open_executor(backend: str, gpu_uuid: str, limit_bytes: int, registry: str, data: DataChannel | None) -> Executor:
    if backend == "nvml":
        import cupy

        return Executor(cupy, CupyDevice(cupy, limit_bytes), data, gpu_uuid)
    import numpy

    from ...simgpu import DevicePool

    return Executor(numpy, DevicePool(0, gpu_uuid, limit_bytes, Path(registry) if registry else None), data, gpu_uuid)


def serve(sock: socket.socket, executor: Executor) -> None:
    """Answer the session until the daemon closes the socket."""
    frames = FrameReader(sock)
    while True:
        received = frames.next()
        if received is None:
            return
        kind, data = received
        if kind == LIMIT:  # the daemon resized the lease: applied at once
            executor.set_limit(int.from_bytes(data, "big"))
            continue
        for reply in handle(executor, data):
            sock.sendall(frame(reply.SerializeToString()))


def handle(executor: Executor, data: bytes | bytearray) -> Iterator[pb.RemoteReply]:
    """One message: a batch (whose replies come back) or a chunk of an upload."""
    try:
        request = pb.RemoteRequest.FromString(data)
    except DecodeError:
        yield _refusal("the message is not a RemoteRequest")
        return
    which = request.WhichOneof("kind")
    if which == "batch":
        yield from executor.batch(request.batch)
    elif which == "chunk":
        try:
            executor.chunk(request.chunk)
        except ValueError as exc:
            executor.fault(exc)
    else:
        yield _refusal(f"unexpected {which or 'empty'} message in a session")


def _refusal(message: str) -> pb.RemoteReply:
    """A protocol error outside any batch: the session cannot go on."""
    return pb.RemoteReply(result=pb.RResult(error=pb.RError(type="ProtocolError", message=message)))


def open_data_channel(args: argparse.Namespace) -> DataChannel | None:
    """The session's raw channel for bulk bytes, if it gets one; else they travel on the stream."""
    try:
        if args.data_socket:
            return DataChannel.on_unix_socket(Path(args.data_socket))
        if args.bulk_fd is not None:
            tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
            handover = socket.socket(fileno=args.bulk_fd)
            return DataChannel.handed_over(handover, args.bulk_port, bytes.fromhex(args.bulk_route), tls)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"bitshare worker: no data socket: {exc}\n")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitshare-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--backend", choices=("nvml", "simulated"), required=True)
    parser.add_argument("--gpu-uuid", required=True)
    parser.add_argument("--limit-bytes", type=int, required=True)
    parser.add_argument("--registry", default="")
    parser.add_argument("--data-socket", default="", help="offer a data socket here (a client on this host)")
    parser.add_argument("--bulk-fd", type=int, help="connections the daemon's bulk port hands over come here")
    parser.add_argument("--bulk-port", type=int, default=0)
    parser.add_argument("--bulk-route", default="", help="what connections for this session send first (hex)")
    parser.add_argument("--tls-cert", default="")
    parser.add_argument("--tls-key", default="")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    data = open_data_channel(args)
    executor = open_executor(args.backend, args.gpu_uuid, args.limit_bytes, args.registry, data)
    ready = pb.RemoteReply(session=data.session_message() if data is not None else pb.RSession())
    sock.sendall(frame(ready.SerializeToString()))
    try:
        serve(sock, executor)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"bitshare worker: {exc}\n")
        return 1
    finally:
        if data is not None:
            data.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
