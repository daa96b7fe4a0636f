"""``cupy.cuda`` for remote leases: the device, streams and events as sync points, the memory pool,
and CuPy's exception types. The lease's one GPU is device 0."""

from __future__ import annotations

import time
import types
from typing import Any

from ...protocol import wire
from ...protocol.v1 import bitshare_pb2 as pb
from ..session import session
from . import errors

Op = pb.ROp


def synchronize() -> None:
    """Wait until every queued operation has run on the worker (a sync point)."""
    session().sync()


class Device:
    def __init__(self, device: Any = None) -> None:
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise errors.CUDARuntimeError(
                f"cudaErrorInvalidDevice: a remote lease has one GPU, device 0 (not {self.id})"
            )

    def synchronize(self) -> None:
        synchronize()

    def use(self) -> None:
        pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def mem_info(self) -> tuple[int, int]:
        return _memory()

    # CuPy's comparisons: equal to every Device of the same id and hashable by it (libraries compare
    # arrays' devices and put them in sets); int() gives the id (array-api-compat calls
    # ``cupy.cuda.Device(x.device)``).
    def __int__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


def check_device(device: Any) -> None:
    """The Array API's ``device=``: None or the lease's one GPU, else the ValueError CuPy gives."""
    if device is not None and not (isinstance(device, Device) and device.id == 0):
        raise ValueError(f"Device not understood: a remote lease has one GPU, <CUDA Device 0>, not {device!r}")


class Stream:
    """Operations run in order on the worker, so every stream is the null stream; waiting on one is a sync."""

    null: Stream

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.ptr = 0

    def synchronize(self) -> None:
        synchronize()

    def use(self) -> Stream:
        return self

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def record(self, event: Event | None = None) -> Event:
        event = event or Event()
        event.record(self)
        return event


Stream.null = Stream(null=True)


class ExternalStream(Stream):
    """A stream made from a pointer (``cupy.cuda.ExternalStream``): on a remote lease, the null
    stream as every other, whatever the pointer."""

    def __init__(self, ptr: int, device_id: int = -1) -> None:
        super().__init__()


def get_current_stream() -> Stream:
    return Stream.null


class Event:
    """Times are taken when the worker has run everything queued before ``record`` (a sync point)."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False) -> None:
        self.at: float | None = None

    def record(self, stream: Stream | None = None) -> None:
        synchronize()
        self.at = time.perf_counter()

    def synchronize(self) -> None:
        synchronize()

    @property
    def done(self) -> bool:
        return self.at is not None


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events."""
    if start.at is None or end.at is None:
        raise errors.CUDARuntimeError("cudaErrorInvalidResourceHandle: an event that was not recorded")
    return (end.at - start.at) * 1000.0


def _memory() -> tuple[int, int]:
    """(free, total) of the partition, as cudaMemGetInfo reports it under MPS."""
    owner = session()
    owner.queue(Op(kind=Op.KIND_QUERY, name="memory"))
    result, _ = owner.sync()
    used, limit = wire.decode(result.values[-1], lambda _h: None)
    return limit - used, limit


class MemoryPool:
    """The worker's pool: its limit is the lease's partition."""

    def used_bytes(self) -> int:
        free, total = _memory()
        return total - free

    def total_bytes(self) -> int:
        return self.used_bytes()

    def free_bytes(self) -> int:
        return 0

    def get_limit(self) -> int:
        return _memory()[1]

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        pass  # the partition is the limit; the daemon changes it (resize)

    def free_all_blocks(self, stream: Any = None) -> None:
        pass  # the worker frees an array's memory when its handle is dropped


_pool = MemoryPool()


def get_default_memory_pool() -> MemoryPool:
    return _pool


runtime = types.ModuleType("cupy.cuda.runtime", "cupy.cuda.runtime for remote leases (bitshare).")
runtime.CUDARuntimeError = errors.CUDARuntimeError
runtime.getDeviceCount = lambda: 1
runtime.memGetInfo = _memory
runtime.deviceSynchronize = synchronize
runtime.getDevice = lambda: 0
runtime.setDevice = Device

memory = types.ModuleType("cupy.cuda.memory", "cupy.cuda.memory for remote leases (bitshare).")
memory.OutOfMemoryError = errors.OutOfMemoryError
memory.MemoryPool = MemoryPool

device = types.ModuleType("cupy.cuda.device", "cupy.cuda.device for remote leases (bitshare).")
device.Device = Device

compiler = types.ModuleType("cupy.cuda.compiler", "cupy.cuda.compiler for remote leases (bitshare).")
compiler.CompileException = errors.CompileException


def is_available() -> bool:
    return True
