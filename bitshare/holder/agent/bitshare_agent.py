"""bitshare's in-process agent: holds a Python application to its lease's partition, live.

When CuPy, PyTorch or bitshare's simulated GPU memory is imported, the agent limits
it to the partition (CuPy: the memory pool's limit; PyTorch: the per-process memory
fraction, applied when CUDA initialises; simulated: the pool's limit). It connects
to the ``bitshare run`` that started the process, reports which libraries it
limits, and applies resizes it is sent, without restarting anything.

Standard library only; the launcher's side is ``bitshare.holder.agent_hub``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import socket
import sys
import threading
from types import ModuleType
from typing import Any, Callable

MIB = 1024 * 1024
LIBRARIES = ("cupy", "torch", "bitshare.simgpu")


def _sizes(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then tells the agent that the library is in."""

    def __init__(self, loader: Any, on_loaded: Callable[[str, ModuleType], None]) -> None:
        self._loader = loader
        self._on_loaded = on_loaded

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._on_loaded(module.__name__, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, on_loaded: Callable[[str, ModuleType], None]) -> None:
        self._on_loaded = on_loaded

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in LIBRARIES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, self._on_loaded)
                return spec
        return None


class Agent:
    def __init__(self, sizes_mib: list[int], socket_path: str) -> None:
        self.sizes_mib = sizes_mib
        self.socket_path = socket_path
        self.applied: list[str] = []
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    # ----- start-up ------------------------------------------------------------------

    def start(self) -> None:
        sys.meta_path.insert(0, _Finder(self.loaded))
        for name in LIBRARIES:
            if name in sys.modules:
                self.loaded(name, sys.modules[name])
        self._connect()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        """A forked child has no reader thread and shares the parent's socket: connect anew."""
        self._lock = threading.Lock()
        self._sock = None
        self._connect()

    def _connect(self) -> None:
        if not self.socket_path:
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket_path)
        except OSError:
            return  # the launcher is gone (a process that outlived it); limits set so far stay
        self._sock = sock
        self._send({"pid": os.getpid(), "applied": self.applied})
        threading.Thread(target=self._read, args=(sock,), name="bitshare-agent", daemon=True).start()

    # ----- limits ---------------------------------------------------------------------

    def loaded(self, name: str, module: ModuleType) -> None:
        """A library came in: limit it to the partition."""
        apply = _APPLY_ON_LOAD.get(name)
        if apply is None or name in self._modules:
            return
        try:
            applied = apply(self, module)
        except Exception as exc:
            sys.stderr.write(f"bitshare: warning: could not limit {name} to the lease: {exc}\n")
            return
        if applied:
            self._modules[name] = module
            self.applied.append(name)
            self._send({"applied": self.applied})

    def resize(self, sizes_mib: list[int]) -> None:
        """Apply a new partition size to every library limited so far, and to libraries loaded later."""
        shrink = any(new < old for new, old in zip(sizes_mib, self.sizes_mib))
        self.sizes_mib = sizes_mib
        text = ",".join(str(s) for s in sizes_mib) if len(set(sizes_mib)) > 1 else str(sizes_mib[0])
        os.environ["BITSHARE_GPU_MEMORY_MIB"] = text  # for processes started from now on
        if "CUPY_GPU_MEMORY_LIMIT" in os.environ:
            os.environ["CUPY_GPU_MEMORY_LIMIT"] = str(min(sizes_mib) * MIB)
        for name, module in list(self._modules.items()):
            try:
                _RESIZE[name](self, module, shrink)
            except Exception as exc:  # said here, in the program's own stderr: it is the one affected
                sys.stderr.write(f"bitshare: warning: could not apply the new size to {name}: {exc}\n")

    # ----- the launcher's socket -------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        sock = self._sock
        if sock is None:
            return
        data = (json.dumps(message) + "\n").encode()
        with self._lock:
            try:
                sock.sendall(data)
            except OSError:
                self._sock = None

    def _read(self, sock: socket.socket) -> None:
        with sock.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                try:
                    message = json.loads(line)
                    sizes = [int(s) for s in message.get("memory_mib", [])]
                except (ValueError, TypeError, AttributeError):
                    continue
                if sizes and all(s > 0 for s in sizes):
                    self.resize(sizes)


# ----- per library -------------------------------------------------------------------
# CuPy reads CUPY_GPU_MEMORY_LIMIT (set by the launcher) when it creates each device's
# pool, so loading it needs no CUDA call here; a resize sets each device's pool limit.


def _cupy_loaded(agent: Agent, cupy: ModuleType) -> bool:
    if os.environ.get("BITSHARE_REMOTE") == "1":
        return False  # bitshare's remote CuPy: the lease's worker holds the memory, not this process
    os.environ.setdefault("CUPY_GPU_MEMORY_LIMIT", str(min(agent.sizes_mib) * MIB))
    return True


def _cupy_resize(agent: Agent, cupy: ModuleType, shrink: bool) -> None:
    pool = cupy.get_default_memory_pool()
    for index, mib in enumerate(agent.sizes_mib):
        with cupy.cuda.Device(index):
            if shrink:
                pool.free_all_blocks()  # cached blocks above the new limit go back to the device
            pool.set_limit(size=mib * MIB)


# PyTorch: the fraction is set when CUDA initialises (torch.cuda's queue of lazy calls),
# so importing torch does not start CUDA; a resize after that sets it at once.


def _torch_fractions(agent: Agent, torch: ModuleType) -> None:
    """Set each leased GPU's fraction; never raise (an exception here would break torch's CUDA start-up)."""
    try:
        count = min(len(agent.sizes_mib), torch.cuda.device_count())
        for index in range(count):
            # The device guard restores the current device; the total is cudaMemGetInfo's, as
            # PyTorch's allocator computes the fraction against it (the partition, under MPS).
            with torch.cuda.device(index):
                total = torch.cuda.mem_get_info(index)[1]
                torch.cuda.set_per_process_memory_fraction(min(1.0, agent.sizes_mib[index] * MIB / total), index)
    except Exception as exc:
        sys.stderr.write(f"bitshare: warning: could not limit PyTorch to the lease: {exc}\n")


def _torch_loaded(agent: Agent, torch: ModuleType) -> bool:
    cuda = getattr(torch, "cuda", None)
    lazy_call = getattr(cuda, "_lazy_call", None)
    if cuda is None or lazy_call is None or os.environ.get("BITSHARE_SIMULATED") == "1":
        return False
    if os.environ.get("BITSHARE_REMOTE") == "1":
        return False  # bitshare's remote PyTorch: the lease's worker holds the memory, not this process
    if cuda.is_initialized():
        _torch_fractions(agent, torch)
    else:
        lazy_call(lambda: _torch_fractions(agent, torch))
    return True


def _torch_resize(agent: Agent, torch: ModuleType, shrink: bool) -> None:
    if torch.cuda.is_initialized():
        _torch_fractions(agent, torch)
        if shrink:
            torch.cuda.empty_cache()


# bitshare's simulated GPU memory reads BITSHARE_GPU_MEMORY_MIB when a pool opens.


def _simgpu_loaded(agent: Agent, simgpu: ModuleType) -> bool:
    return os.environ.get("BITSHARE_SIMULATED") == "1"


def _simgpu_resize(agent: Agent, simgpu: ModuleType, shrink: bool) -> None:
    for pool in simgpu.pools():
        pool.set_limit(agent.sizes_mib[pool.index] * MIB)


_APPLY_ON_LOAD: dict[str, Callable[[Agent, ModuleType], bool]] = {
    "cupy": _cupy_loaded,
    "torch": _torch_loaded,
    "bitshare.simgpu": _simgpu_loaded,
}
_RESIZE: dict[str, Callable[[Agent, ModuleType, bool], None]] = {
    "cupy": _cupy_resize,
    "torch": _torch_resize,
    "bitshare.simgpu": _simgpu_resize,
}

_agent: Agent | None = None


def start() -> Agent | None:
    """Start the agent when this process runs on a lease (once per process)."""
    global _agent
    if _agent is not None or not os.environ.get("BITSHARE_LEASE_ID") or os.environ.get("BITSHARE_AGENT") == "0":
        return _agent
    sizes = _sizes(os.environ.get("BITSHARE_GPU_MEMORY_MIB", ""))
    count = len([u for u in os.environ.get("BITSHARE_GPU_UUIDS", "").split(",") if u])
    if not sizes:
        return None
    if len(sizes) == 1 and count > 1:
        sizes = sizes * count
    _agent = Agent(sizes, os.environ.get("BITSHARE_AGENT_SOCKET", ""))
    _agent.start()
    return _agent
