"""Device memory of a simulated GPU, for processes on a simulated lease.

A simulated GPU is backed by the CPU, so its device memory is NumPy buffers. A
process allocates them from :func:`device`; the pool refuses an allocation past
its limit (as CuPy's pool limit does on a real GPU) and publishes the bytes it
holds and its busy time in a small file under ``BITSHARE_SIMGPU_DIR``, where the
daemon's watchdog reads them (as NVML reports per-process memory on a real GPU).

The limit starts at the lease's partition; the in-process agent changes it live
when the lease is resized.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import struct
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

MIB = 1024 * 1024
# Bytes held, limit in bytes (0: none), busy seconds, and the writer's start time as psutil gives
# it (the reader computes the same figure for the pid: a record left under a reused pid differs).
_RECORD = struct.Struct("<QQdd")
_start_times: dict[int, float] = {}


def _my_start_time() -> float:
    """This process's start time (computed again in a forked child, which has a pid of its own)."""
    pid = os.getpid()
    if pid not in _start_times:
        _start_times.clear()
        _start_times[pid] = psutil.Process(pid).create_time()
    return _start_times[pid]


class OutOfMemoryError(MemoryError):
    """An allocation past the pool's limit (the lease's partition)."""


class DevicePool:
    """The device memory of one simulated GPU in this process."""

    def __init__(self, index: int, uuid: str, limit_bytes: int = 0, registry: Path | None = None) -> None:
        self.index = index
        self.uuid = uuid
        self._limit = limit_bytes
        self._used = 0
        self._busy_s = 0.0
        self._lock = threading.Lock()
        self._map: mmap.mmap | None = None
        self._adopted: set[int] = set()  # ids of buffers counted by adopt()
        if registry is not None:
            try:
                self._map = _open_record(registry / f"{uuid}.{os.getpid()}")
            except OSError as exc:  # the memory is still limited, just not measured by the daemon
                sys.stderr.write(f"bitshare: warning: cannot publish simulated GPU memory in {registry}: {exc}\n")
        self._publish()

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def limit_bytes(self) -> int:
        """0 means no limit."""
        return self._limit

    def set_limit(self, size: int) -> None:
        """Change the limit (bytes, 0 for none); buffers already held are kept."""
        if size < 0:
            raise ValueError(f"a pool limit is a size in bytes >= 0, got {size}")
        with self._lock:
            self._limit = size
            self._publish()

    def empty(self, shape: int | tuple[int, ...], dtype: Any = "float32") -> Any:
        """An uninitialised array in device memory, held until it is garbage-collected."""
        import numpy as np

        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if not isinstance(shape, int) else shape
        self.check_room(max(0, count) * dtype.itemsize)  # refuse before allocating anything
        return self.adopt(np.empty(shape, dtype))

    def adopt(self, array: Any) -> Any:
        """Count an array made elsewhere (by a NumPy function) as device memory, once per buffer;
        OutOfMemoryError, and nothing counted, when it does not fit under the limit."""
        root = array
        while getattr(root, "base", None) is not None and hasattr(root.base, "nbytes"):
            root = root.base
        key = id(root)
        with self._lock:
            if key in self._adopted:
                return array
            nbytes = root.nbytes
            if self._limit and self._used + nbytes > self._limit:
                raise OutOfMemoryError(
                    f"out of memory allocating {nbytes:,} bytes on simulated GPU {self.index} "
                    f"(holding {self._used:,} of a {self._limit:,}-byte limit)"
                )
            self._used += nbytes
            self._adopted.add(key)
            self._publish()
        weakref.finalize(root, self._release, key, nbytes)
        return array

    def check_room(self, nbytes: int) -> None:
        """OutOfMemoryError when ``nbytes`` more would not fit under the limit (nothing is allocated)."""
        if self._limit and self._used + nbytes > self._limit:
            raise OutOfMemoryError(
                f"out of memory allocating {nbytes:,} bytes on simulated GPU {self.index} "
                f"(holding {self._used:,} of a {self._limit:,}-byte limit)"
            )

    def _release(self, key: int, nbytes: int) -> None:
        with self._lock:
            self._adopted.discard(key)
            self._used -= nbytes
            self._publish()

    def zeros(self, shape: int | tuple[int, ...], dtype: Any = "float32") -> Any:
        array = self.empty(shape, dtype)
        array.fill(0)
        return array

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Count the time inside as the device's busy time (its utilisation)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self._busy_s += time.perf_counter() - started
                self._publish()

    def _publish(self) -> None:
        if self._map is not None:
            _RECORD.pack_into(self._map, 0, self._used, self._limit, self._busy_s, _my_start_time())


def _open_record(path: Path) -> mmap.mmap:
    """A fresh record of this process's own (a stale one of an earlier process with this pid goes)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.ftruncate(fd, _RECORD.size)
        return mmap.mmap(fd, _RECORD.size)
    finally:
        os.close(fd)


_pools: dict[int, DevicePool] = {}
_pools_lock = threading.Lock()


def _forget_pools_after_fork() -> None:
    """A forked child opens pools (and registry records) of its own, under its own pid."""
    _pools.clear()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _lease_list(name: str) -> list[str]:
    return [item for item in os.environ.get(name, "").split(",") if item]


def device(index: int = 0) -> DevicePool:
    """The pool of the lease's GPU ``index`` (0-based within the lease), limited to its partition."""
    with _pools_lock:
        pool = _pools.get(index)
        if pool is not None:
            return pool
        uuids = _lease_list("BITSHARE_GPU_UUIDS")
        if not uuids or os.environ.get("BITSHARE_SIMULATED") != "1":
            raise RuntimeError("bitshare.simgpu needs a simulated lease: run the program with `bitshare run`")
        if not 0 <= index < len(uuids):
            raise ValueError(f"the lease has {len(uuids)} GPU(s); there is no GPU {index}")
        sizes = _lease_list("BITSHARE_GPU_MEMORY_MIB")
        limit_mib = int(sizes[index] if len(sizes) > 1 else sizes[0]) if sizes else 0
        registry = os.environ.get("BITSHARE_SIMGPU_DIR")
        pool = DevicePool(index, uuids[index], limit_mib * MIB, Path(registry) if registry else None)
        _pools[index] = pool
        return pool


def pools() -> list[DevicePool]:
    """The pools this process has opened so far."""
    with _pools_lock:
        return list(_pools.values())


@dataclass(frozen=True)
class Holding:
    """One process's use of one simulated GPU, as published in the registry."""

    pid: int
    gpu_uuid: str
    used_bytes: int
    limit_bytes: int
    busy_s: float


def read_registry(directory: Path) -> list[Holding]:
    """What every live process publishes; records of processes that are gone are removed.

    A record counts only if it is a regular file owned by the process it names and made
    after that process started: nobody can charge memory to someone else's process.
    """
    found: list[Holding] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    for entry in entries:
        uuid, _, pid_text = entry.name.rpartition(".")
        if not uuid or not pid_text.isdigit():
            continue
        pid = int(pid_text)
        started = _started(pid)
        if started is None:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            continue
        data = _read_record(entry.path, pid, started)
        if data is not None:
            used, limit, busy, _ = _RECORD.unpack(data)
            found.append(Holding(pid, uuid, used, limit, busy))
    return found


def _read_record(path: str, pid: int, started: tuple[int, float]) -> bytes | None:
    uid, start_time = started
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # never a FIFO that blocks
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != _RECORD.size or info.st_uid != uid:
            return None
        data = os.read(fd, _RECORD.size)
    finally:
        os.close(fd)
    if len(data) != _RECORD.size or abs(_RECORD.unpack(data)[3] - start_time) > 0.01:
        return None  # short, or left by an earlier process that had this pid
    return data


def _started(pid: int) -> tuple[int, float] | None:
    """(effective uid, start time) of a running process, None when there is none."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.uids().effective, process.create_time()
    except psutil.Error:
        return None
