"""The worker's PyTorch: ATen operators run by name on the lease's GPU (or the CPU, simulated).

Loaded on a session's first PyTorch operation, so a CuPy session never imports torch. What
may run is derived from ATen's own schemas: every ``aten::`` operator whose arguments the
wire can carry (tensors, numbers, strings, lists of them, dtypes, devices) and that has a
tensor among its arguments or results. Nothing else is reachable: no Python function, no
pickle, no operator that names a file (``from_file``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ...protocol.v1 import bitshare_pb2 as pb
from ...protocol.wire import MAX_DEPTH, WireError

# What the wire carries, as ATen's schemas spell the types (ScalarType, Layout and MemoryFormat
# are ints there).
_CARRIED = {
    "Tensor",
    "Optional[Tensor]",
    "List[Tensor]",
    "List[Optional[Tensor]]",
    "Optional[List[Optional[Tensor]]]",
    "int",
    "float",
    "bool",
    "complex",
    "number",
    "str",
    "Optional[int]",
    "Optional[float]",
    "Optional[bool]",
    "Optional[number]",
    "Optional[str]",
    "List[int]",
    "List[float]",
    "List[bool]",
    "Optional[List[int]]",
    "Optional[List[float]]",
    "Device",
    "Optional[Device]",
    "Optional[Generator]",  # only None travels: the default generator of the worker's device
}
_RESULTS = {"Tensor", "Optional[Tensor]", "List[Tensor]", "bool", "int", "float", "number", "complex", "List[int]"}
_REFUSED = {"from_file"}  # reads a file on the GPU server
# torch constants by kind: the type each kind's names must resolve to.
_CONSTANT_KINDS = ("dtype", "layout", "memory_format", "device")


def allowed_operators(torch: Any) -> frozenset[str]:
    """``name.overload`` of every ATen operator a remote program may run (``default`` for none)."""
    allowed = set()
    for schema in torch._C._jit_get_all_schemas():
        if not schema.name.startswith("aten::"):
            continue
        name = schema.name[len("aten::") :]
        if name in _REFUSED:
            continue
        arguments = [str(a.type) for a in schema.arguments]
        results = [str(r.type) for r in schema.returns]
        if not all(t in _CARRIED for t in arguments) or not all(t in _RESULTS for t in results):
            continue
        if not any("Tensor" in t for t in arguments + results):
            continue
        allowed.add(f"{name}.{schema.overload_name or 'default'}")
    return frozenset(allowed)


class StorageRecord:
    """One storage's bytes, counted against a simulated GPU's partition while a tensor on it is held."""

    __slots__ = ("__weakref__", "nbytes")

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


class TorchSide:
    """The session's PyTorch state: the device, the operators, and (simulated) what tensors hold."""

    def __init__(self, gpu: bool, pool: Any, limit_bytes: int) -> None:
        import torch

        self.torch = torch
        self.gpu = gpu
        self.device = torch.device("cuda", 0) if gpu else torch.device("cpu")
        self.allowed = allowed_operators(torch)
        self._operators: dict[str, Any] = {}
        self._pool = pool  # simulated: the partition's pool, which counts each storage once
        self._records: dict[int, tuple[StorageRecord, int]] = {}  # storage address -> (record, tensors held)
        self._storage_of: dict[int, int] = {}  # handle -> storage address
        if gpu:
            self.set_limit(limit_bytes)

    # ----- memory ----------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        """What torch holds beyond the partition's pool (on a GPU, torch's own allocator)."""
        return int(self.torch.cuda.memory_allocated(self.device)) if self.gpu else 0

    def set_limit(self, limit_bytes: int) -> None:
        if not self.gpu:
            return  # (the simulated pool is the device's, resized with it)
        total = self.torch.cuda.get_device_properties(self.device).total_memory
        self.torch.cuda.set_per_process_memory_fraction(min(1.0, limit_bytes / total), self.device)
        self.torch.cuda.empty_cache()

    def hold(self, handle: int, tensor: Any) -> None:
        """Count the tensor's storage against a simulated partition (once per storage);
        OutOfMemoryError when it does not fit, and nothing counted."""
        if self.gpu or self._pool is None:
            return
        self.forget(handle)
        storage = tensor.untyped_storage()
        address, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0:
            return
        record, count = self._records.get(address, (None, 0))
        if record is None:
            record = StorageRecord(nbytes)
            self._pool.adopt(record)  # raises when past the partition
        self._records[address] = (record, count + 1)
        self._storage_of[handle] = address

    def forget(self, handle: int) -> None:
        address = self._storage_of.pop(handle, None)
        if address is None:
            return
        record, count = self._records[address]
        if count > 1:
            self._records[address] = (record, count - 1)
        else:
            del self._records[address]  # the pool's count drops when the record goes

    # ----- operators -------------------------------------------------------------------

    def operator(self, name: str) -> Any:
        """The operator ``name.overload``, or None when it is not one a remote program may run."""
        found = self._operators.get(name)
        if found is not None:
            return found
        if name not in self.allowed:
            return None
        packet, overload = name.rsplit(".", 1)
        found = getattr(getattr(self.torch.ops.aten, packet), overload)
        self._operators[name] = found
        return found

    def decode(self, value: pb.RValue, tensor_of: Any, depth: int = 0) -> Any:
        """An argument of an ATen operator: handles are the worker's tensors, small host tensors
        arrive inline, torch constants by name."""
        if depth > MAX_DEPTH:
            raise WireError(f"values nested deeper than {MAX_DEPTH}")
        which = value.WhichOneof("kind")
        if which == "handle":
            return tensor_of(value.handle)
        if which in ("float", "int", "bool", "str"):
            return getattr(value, which)
        if which in (None, "none"):
            return None
        if which == "complex":
            return complex(value.complex.real, value.complex.imag)
        if which == "list":
            items = [self.decode(v, tensor_of, depth + 1) for v in value.list.items]
            return tuple(items) if value.list.tuple else items
        if which == "torch":
            return self.constant(value.torch)
        if which == "array":
            return self.inline(value.array)
        raise WireError(f"a {which} value is not an argument of an ATen operator")

    def constant(self, spelled: str) -> Any:
        kind, _, name = spelled.partition(".")
        torch = self.torch
        if kind == "device":
            if name not in ("cuda", "cpu"):
                raise WireError(f"unknown device {name!r}")
            return self.device if name == "cuda" else torch.device("cpu")
        expected = {"dtype": torch.dtype, "layout": torch.layout, "memory_format": torch.memory_format}.get(kind)
        found = getattr(torch, name, None) if expected is not None and name.isidentifier() else None
        if found is None or not isinstance(found, expected):
            raise WireError(f"unknown torch constant {spelled!r}")
        return found

    def dtype(self, spelled: str) -> Any:
        if not spelled.startswith("torch."):
            raise WireError(f"{spelled!r} is not a torch dtype")
        return self.constant("dtype." + spelled[len("torch.") :])

    def inline(self, array: pb.RHostArray) -> Any:
        """A small CPU tensor sent with the operation (a 0-d scalar tensor, an index list)."""
        dtype = self.dtype(array.dtype)
        shape = tuple(int(d) for d in array.shape)
        return self.from_bytes(np.frombuffer(array.data, np.uint8).copy(), dtype, shape, on_device=False)

    # ----- tensors in and out ----------------------------------------------------------

    def nbytes(self, meta: pb.RMeta) -> int:
        return math.prod(int(d) for d in meta.shape) * self.dtype(meta.dtype).itemsize

    def from_bytes(self, host: np.ndarray, dtype: Any, shape: tuple[int, ...], on_device: bool = True) -> Any:
        expected = math.prod(shape) * dtype.itemsize
        if host.nbytes != expected:
            raise WireError(f"{host.nbytes} bytes for a tensor of shape {list(shape)} and {dtype} ({expected} bytes)")
        flat = self.torch.from_numpy(host)
        tensor = (flat.view(dtype) if expected else self.torch.empty(0, dtype=dtype)).reshape(shape)
        return tensor.to(self.device) if on_device else tensor

    def upload(self, host: np.ndarray, meta: pb.RMeta) -> Any:
        return self.from_bytes(host, self.dtype(meta.dtype), tuple(int(d) for d in meta.shape))

    def empty_bytes(self, nbytes: int) -> Any:
        """Room on the device for a tensor's raw bytes (filled piecewise by the stager)."""
        return self.torch.empty(nbytes, dtype=self.torch.uint8, device=self.device)

    def from_device_bytes(self, flat: Any, meta: pb.RMeta) -> Any:
        """The tensor ``meta`` describes, made of the raw bytes ``flat`` holds on the device."""
        dtype, shape = self.dtype(meta.dtype), tuple(int(d) for d in meta.shape)
        if flat.numel() != math.prod(shape) * dtype.itemsize:
            raise WireError(f"{flat.numel()} bytes for a tensor of shape {list(shape)} and {dtype}")
        return flat.view(dtype).reshape(shape)

    def device_bytes(self, tensor: Any) -> Any:
        """The tensor's values in C order as a flat uint8 tensor on its device (to_host without
        the copy to the host)."""
        flat = tensor.detach().resolve_conj().resolve_neg().contiguous().reshape(-1)
        if flat.numel() and flat.stride(0) != 1:
            flat = flat.clone(memory_format=self.torch.contiguous_format)
        return flat.view(self.torch.uint8)

    def to_host(self, tensor: Any) -> np.ndarray:
        """The tensor's bytes in C order, on the host, as a flat array of bytes."""
        # (a conjugate or negative view's values are made first: its bytes are not its values)
        flat = tensor.detach().resolve_conj().resolve_neg().contiguous().cpu().reshape(-1)
        if flat.numel() == 0:
            return np.empty(0, np.uint8)
        if flat.stride(0) != 1:  # one element of stride 0 (an expanded scalar) counts as contiguous
            flat = flat.clone(memory_format=self.torch.contiguous_format)
        return flat.view(self.torch.uint8).numpy()

    def meta(self, tensor: Any) -> pb.RMeta:
        return pb.RMeta(shape=tuple(tensor.shape), dtype=str(tensor.dtype))

    def describe(self, gpu_uuid: str) -> tuple[str, int, int, int]:
        """The device as torch.cuda describes it: name, compute capability, multiprocessors."""
        if self.gpu:
            properties = self.torch.cuda.get_device_properties(self.device)
            return properties.name, properties.major, properties.minor, properties.multi_processor_count
        # A simulated GPU runs torch's CPU kernels, which have every dtype a recent GPU has.
        return f"bitshare simulated GPU {gpu_uuid} (CPU)", 8, 0, 1

    def clock(self) -> float:
        if self.gpu:
            self.torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def empty_cache(self) -> None:
        if self.gpu:
            self.torch.cuda.empty_cache()

    def seed(self, value: int) -> None:
        if self.gpu:
            self.torch.cuda.manual_seed(value)
        else:
            self.torch.manual_seed(value)
