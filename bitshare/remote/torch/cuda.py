"""``torch.cuda`` in a remote program: the lease's one GPU, on the GPU server.

Questions about the device are answered by the worker (its name, capability) and the lease (its
memory is the partition). The work runs in order on one stream, as remote CuPy's does, so
streams and events order nothing beyond that; an event's time is taken on the worker when the
work queued before it has finished on the device.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ...protocol import wire
from ...protocol.v1 import bitshare_pb2 as pb
from .. import session as sessions

Op = pb.ROp
_peak = [0]  # the highest memory_allocated() seen


def _query(name: str, *args: int) -> Any:
    session = sessions.session()
    session.queue(Op(kind=Op.KIND_QUERY, name=name, args=[pb.RValue(int=a) for a in args]))
    result, _ = session.sync()
    return wire.decode(result.values[-1], lambda _h: None)


def _check(device: Any) -> int:
    """The device index a call names (None: the current one); only the lease's GPU 0 exists."""
    if device is None:
        return 0
    if isinstance(device, str):
        device = torch.device(device)
    if isinstance(device, torch.device):
        if device.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {device}")
        device = device.index or 0
    if int(device) != 0:
        raise RuntimeError(
            f"CUDA error: invalid device ordinal {device}: the lease has one GPU (bitshare's remote PyTorch)"
        )
    return 0


def is_available() -> bool:
    return True


def is_initialized() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> int:
    return 0


def set_device(device: Any) -> None:
    _check(device)


class device:
    def __init__(self, device: Any) -> None:
        self.idx = _check(device)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True)
class DeviceProperties:
    """``torch.cuda.get_device_properties``: the leased GPU, its memory the partition."""

    name: str
    major: int
    minor: int
    total_memory: int
    multi_processor_count: int
    is_integrated: bool = False
    is_multi_gpu_board: bool = False

    def __repr__(self) -> str:
        return (
            f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
            f"total_memory={self.total_memory // (1024 * 1024)}MB, multi_processor_count={self.multi_processor_count})"
        )


@functools.lru_cache(maxsize=1)
def _described() -> tuple[str, int, int, int]:
    name, major, minor, processors = _query("torch.device")
    return str(name), int(major), int(minor), int(processors)


def get_device_properties(device: Any = None) -> DeviceProperties:
    _check(device)
    name, major, minor, processors = _described()
    _, limit = mem_get_info()
    return DeviceProperties(name, major, minor, limit, processors)


def get_device_name(device: Any = None) -> str:
    _check(device)
    return _described()[0]


def get_device_capability(device: Any = None) -> tuple[int, int]:
    _check(device)
    _, major, minor, _ = _described()
    return major, minor


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return get_device_capability()[0] >= 8


def synchronize(device: Any = None) -> None:
    """Wait for everything queued: one round trip."""
    _check(device)
    sessions.session().sync()


# ----- memory -----------------------------------------------------------------------------------


def _memory() -> tuple[int, int]:
    used, limit = _query("memory")
    _peak[0] = max(_peak[0], int(used))
    return int(used), int(limit)


def memory_allocated(device: Any = None) -> int:
    _check(device)
    return _memory()[0]


def max_memory_allocated(device: Any = None) -> int:
    """The highest of memory_allocated() and the use seen at each sync (bitshare's remote PyTorch
    cannot see peaks between syncs)."""
    _check(device)
    used, _ = _memory()
    _peak[0] = max(_peak[0], used, sessions.session().device_used_bytes)
    return _peak[0]


def memory_reserved(device: Any = None) -> int:
    return memory_allocated(device)


def max_memory_reserved(device: Any = None) -> int:
    return max_memory_allocated(device)


def reset_peak_memory_stats(device: Any = None) -> None:
    _check(device)
    _peak[0] = _memory()[0]


def mem_get_info(device: Any = None) -> tuple[int, int]:
    """(free, total) of the partition."""
    _check(device)
    used, limit = _memory()
    return max(0, limit - used), limit


def empty_cache() -> None:
    _query("torch.empty_cache")


# ----- random numbers ----------------------------------------------------------------------------


def manual_seed(seed: int) -> None:
    """Seed the worker's generator (queued: no round trip)."""
    sessions.session().queue(Op(kind=Op.KIND_QUERY, name="torch.manual_seed", args=[pb.RValue(int=int(seed))]))


def manual_seed_all(seed: int) -> None:
    manual_seed(seed)


def _no_rng_state(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("torch.cuda's RNG state cannot be read or set through bitshare's remote PyTorch")


# ----- streams and events ------------------------------------------------------------------------


class Stream:
    """The one stream remote work runs on, in order."""

    def __init__(self, device: Any = None, priority: int = 0, **kwargs: Any) -> None:
        self.device = torch.device("cuda", _check(device))
        self.priority = priority

    def synchronize(self) -> None:
        synchronize()

    def query(self) -> bool:
        synchronize()
        return True

    def is_capturing(self) -> bool:
        return False  # (no CUDA graphs)

    def wait_stream(self, stream: Stream) -> None:
        return None  # one stream: already in order

    def wait_event(self, event: Event) -> None:
        return None

    def record_event(self, event: Event | None = None) -> Event:
        event = event if event is not None else Event()
        event.record(self)
        return event

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream)

    def __hash__(self) -> int:
        return 0


_STREAM = Stream()


def current_stream(device: Any = None) -> Stream:
    _check(device)
    return _STREAM


def default_stream(device: Any = None) -> Stream:
    return current_stream(device)


@contextlib.contextmanager
def stream(stream: Stream | None) -> Iterator[None]:
    yield


class Event:
    """A point in the remote work: recording it waits for the work queued so far (one round trip)
    and takes the time on the worker, after the device has finished that work."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
        if interprocess:
            raise NotImplementedError("interprocess CUDA events are not supported by bitshare's remote PyTorch")
        self.enable_timing = enable_timing
        self._at: float | None = None

    def record(self, stream: Stream | None = None) -> None:
        self._at = float(_query("clock"))

    def synchronize(self) -> None:
        if self._at is None:
            return
        synchronize()

    def query(self) -> bool:
        return True

    def wait(self, stream: Stream | None = None) -> None:
        return None

    def elapsed_time(self, end: Event) -> float:
        """Milliseconds between this event and ``end`` on the worker."""
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self._at is None or end._at is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return (end._at - self._at) * 1000.0


# ----- what a remote GPU does not have ------------------------------------------------------------


class CUDAGraph:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("CUDA graphs (torch.cuda.CUDAGraph) are not supported by bitshare's remote PyTorch")


def graph(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("CUDA graphs (torch.cuda.graph) are not supported by bitshare's remote PyTorch")


def make_graphed_callables(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(
        "CUDA graphs (torch.cuda.make_graphed_callables) are not supported by bitshare's remote PyTorch"
    )


SURFACE: dict[str, Any] = {
    "is_available": is_available,
    "is_initialized": is_initialized,
    "_lazy_init": lambda: None,
    "init": lambda: None,
    "device_count": device_count,
    "current_device": current_device,
    "set_device": set_device,
    "device": device,
    "get_device_properties": get_device_properties,
    "get_device_name": get_device_name,
    "get_device_capability": get_device_capability,
    "is_bf16_supported": is_bf16_supported,
    "synchronize": synchronize,
    "memory_allocated": memory_allocated,
    "max_memory_allocated": max_memory_allocated,
    "memory_reserved": memory_reserved,
    "max_memory_reserved": max_memory_reserved,
    "reset_peak_memory_stats": reset_peak_memory_stats,
    "mem_get_info": mem_get_info,
    "empty_cache": empty_cache,
    "manual_seed": manual_seed,
    "manual_seed_all": manual_seed_all,
    "get_rng_state": _no_rng_state,
    "set_rng_state": _no_rng_state,
    "get_rng_state_all": _no_rng_state,
    "set_rng_state_all": _no_rng_state,
    "Stream": Stream,
    "Event": Event,
    "current_stream": current_stream,
    "default_stream": default_stream,
    "stream": stream,
    "CUDAGraph": CUDAGraph,
    "graph": graph,
    "make_graphed_callables": make_graphed_callables,
}

# torch.accelerator, which optimizers and recent PyTorch ask rather than torch.cuda.
ACCELERATOR: dict[str, Any] = {
    "is_available": is_available,
    "device_count": device_count,
    "current_accelerator": lambda check_available=False: torch.device("cuda"),
    "current_device_index": current_device,
    "current_device_idx": current_device,
    "set_device_index": set_device,
    "set_device_idx": set_device,
    "current_stream": current_stream,
    "set_stream": lambda stream: None,
    "synchronize": synchronize,
    "get_device_capability": lambda device=None: {"major": get_device_capability(device)[0]},
    "empty_cache": empty_cache,
    "memory_allocated": memory_allocated,
    "max_memory_allocated": max_memory_allocated,
    "memory_reserved": memory_reserved,
    "max_memory_reserved": max_memory_reserved,
    "reset_peak_memory_stats": reset_peak_memory_stats,
}
