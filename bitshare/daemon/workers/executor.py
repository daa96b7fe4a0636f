"""The worker's side of a remote session: the arrays it holds and how operations on them run.

``xp`` is CuPy on real GPUs and NumPy on simulated ones; ``device`` holds the lease's
partition (CuPy's pool limit, or the simulated GPU's pool) and is asked before anything
is allocated for an upload. Operations run in order. The first failure since the last
sync is kept and reported at the sync, and the operations after it are skipped (frees
still happen), so the client raises at the line that synchronises. A pool that keeps freed
blocks cached and counts them against its limit (CuPy's) gives them back when an operation
does not fit, and the operation runs once more: only live arrays count against the partition.
PyTorch's tensors live beside the arrays, under the same handles; their operators (``KIND_ATEN``)
run through :class:`torch_ops.TorchSide`, made at the session's first one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...protocol import catalog
from ...protocol.v1 import bitshare_pb2 as pb
from ...protocol.wire import WireError, check_dtype, check_shape, cupy_dtype, decode, encode, meta_pb, nbytes_of
from . import results, staging
from .data_channel import DataChannel
from .faults import KernelsNeedAGpu, RemoteFault, error_type
from .surface import Surface
from .torch_ops import TorchSide

CHUNK = 4 * 1024 * 1024
MAX_HANDLES = 1_000_000
Op = pb.ROp
# Operations that only make new arrays (nothing changed in place): safe to run again.
_REPEATABLE = (Op.KIND_CALL, Op.KIND_METHOD, Op.KIND_GETITEM, Op.KIND_LAUNCH)


class Device(Protocol):
    """The partition's memory, as the worker's backend keeps it."""

    def check_room(self, nbytes: int) -> None: ...
    def adopt(self, array: Any) -> Any: ...
    def busy(self) -> contextlib.AbstractContextManager[None]: ...
    def set_limit(self, limit_bytes: int) -> None: ...
    @property
    def used_bytes(self) -> int: ...
    @property
    def limit_bytes(self) -> int: ...


@dataclass
class _Upload:
    host: np.ndarray  # filled chunk by chunk, then placed on the device
    received: int = 0
    tensor: pb.RMeta | None = None  # a torch tensor's dtype and shape (host holds its raw bytes)


class Executor:
    def __init__(self, xp: Any, device: Device, data: DataChannel | None = None, gpu_uuid: str = "") -> None:
        self.xp = xp
        self.gpu_uuid = gpu_uuid
        self.device = device
        self.data = data  # bulk bytes of direct uploads and downloads (same-host clients)
        self.arrays: dict[int, Any] = {}
        self._uploads: dict[int, _Upload] = {}
        self._kernels: dict[str, Any] = {}
        self._error: pb.RError | None = None
        self._op_count = 0  # operations since the last sync
        self._values: list[pb.RValue] = []
        self._metas: dict[int, pb.RMeta] = {}
        self.gpu = xp.__name__ == "cupy"
        self._torch: TorchSide | None = None  # made at the session's first PyTorch operation
        self._stagers: dict[str, Any] = {}  # pinned buffers for piecewise GPU transfers, made at the first
        self._surface: Surface | None = None  # the library's functions, listed at the first need

    @property
    def surface(self) -> Surface:
        if self._surface is None:
            self._surface = Surface(self.gpu)
        return self._surface

    @property
    def torch(self) -> TorchSide:
        if self._torch is None:
            try:
                self._torch = TorchSide(self.gpu, None if self.gpu else self.device, self.device.limit_bytes)
            except ImportError:
                raise RemoteFault("RuntimeError", "PyTorch is not installed on the GPU server") from None
        return self._torch

    def set_limit(self, limit_bytes: int) -> None:
        """The lease was resized: the partition's new size, for CuPy's pool and torch's allocator."""
        self.device.set_limit(limit_bytes)
        if self._torch is not None:
            self._torch.set_limit(limit_bytes)

    # ----- the session's messages -----------------------------------------------------

    def batch(self, batch: pb.RBatch) -> Iterator[pb.RemoteReply]:
        """Run a batch; chunks of downloads and, at a sync, the result come back."""
        for op in batch.ops:
            index = self._op_count
            self._op_count += 1
            if self._error is not None and op.kind != Op.KIND_FREE:
                self._skip(op)
                continue
            try:
                with self.device.busy():
                    yield from self._run_reclaiming(op)
            except Exception as exc:
                self._fail(index, op, exc)
                self._skip(op)
        if batch.sync:
            yield pb.RemoteReply(result=self._result(batch.seq))

    def fault(self, exc: Exception) -> None:
        """A failure outside any operation (a bad chunk): reported at the next sync."""
        if self._error is None:
            self._error = pb.RError(type=error_type(exc), message=str(exc), op_index=self._op_count, op_name="chunk")

    def chunk(self, chunk: pb.RChunk) -> None:
        upload = self._uploads.get(chunk.handle)
        if upload is None:
            raise WireError(f"a chunk for handle {chunk.handle}, which has no upload under way")
        view = memoryview(upload.host).cast("B")
        end = chunk.offset + len(chunk.data)
        if chunk.offset != upload.received or end > len(view):
            raise WireError(
                f"a chunk of {len(chunk.data)} bytes at offset {chunk.offset} does not continue the upload "
                f"of handle {chunk.handle} ({upload.received} of {len(view)} bytes received)"
            )
        view[chunk.offset : end] = chunk.data
        upload.received = end
        if end == len(view):
            self._place(chunk.handle)

    # ----- operations -------------------------------------------------------------------

    def _run_reclaiming(self, op: pb.ROp) -> Iterator[pb.RemoteReply]:
        try:
            yield from self._run(op)
        except Exception as exc:
            repeatable = op.kind in _REPEATABLE and op.out and error_type(exc) == "OutOfMemoryError"
            if not (repeatable and self._reclaim()):
                raise
            for handle in op.out:
                self.arrays.pop(handle, None)
            yield from self._run(op)  # the cached blocks went back to the GPU: once more

    def _reclaim(self) -> bool:
        """Give the pool's cached, unused blocks back; True when there were any."""
        reclaim = getattr(self.device, "reclaim", None)  # (a pool without a cache has nothing to give)
        return bool(reclaim()) if reclaim is not None else False

    def _run(self, op: pb.ROp) -> Iterator[pb.RemoteReply]:
        kind = op.kind
        if kind == Op.KIND_FREE:
            for value in op.args:
                self.arrays.pop(value.handle, None)
                self._uploads.pop(value.handle, None)
                if self._torch is not None:
                    self._torch.forget(value.handle)
            return
        if kind == Op.KIND_ATEN:
            self._aten(op)
            return
        if kind == Op.KIND_UPLOAD:
            self._start_upload(op)
            return
        if kind == Op.KIND_DOWNLOAD:
            yield from self._download(op)
            return
        if kind == Op.KIND_QUERY:
            self._values.append(self._query(op))
            return
        if kind == Op.KIND_KERNEL:
            self._define_kernel(op)
            return
        args = [self._decode(v) for v in op.args]
        kwargs = {key: self._decode(v) for key, v in op.kwargs.items()}
        if kind == Op.KIND_CALL:
            result = self._function(op.name)(*args, **kwargs)
        elif kind == Op.KIND_METHOD:
            result = self._method(args[0], op.name)(*args[1:], **kwargs)
        elif kind == Op.KIND_GETITEM:
            result = args[0][args[1]]
        elif kind == Op.KIND_SETITEM:
            args[0][args[1]] = args[2]
            return
        elif kind == Op.KIND_LAUNCH:
            result = self._launch(op.name, args, kwargs)
        else:
            raise WireError(f"unknown operation kind {kind}")
        self._keep(op, result)

    def _keep(self, op: pb.ROp, result: Any) -> None:
        """Hold the results under the client's handles; check them against what the client inferred."""
        if op.results:
            self._keep_as_told(op, result)
            return
        if not op.out:
            return  # in place (an operator like +=, fill, sort, out=): nothing new to hold
        several = isinstance(result, (tuple, list)) and (len(op.out) != 1 or op.name in catalog.MULTIPLE_RESULTS)
        results = list(result) if several else [result]
        if len(results) != len(op.out):
            raise RemoteFault("ValueError", f"{op.name} gave {len(results)} results where {len(op.out)} were expected")
        self._hold_results(op, results)

    def _keep_as_told(self, op: pb.ROp, result: Any) -> None:
        """A function of the surface: its results in the form the client expects, or (``describe``)
        in whatever form it has, which goes back in the answer's values."""
        form, arrays = results.form(self.xp, op.name, result)
        if op.results == "describe":
            if len(arrays) > len(op.out):
                raise RemoteFault(
                    "ValueError", f"{op.name} gave {len(arrays)} arrays; at most {len(op.out)} can come back"
                )
            self._hold_results(op, arrays)
            self._values.append(encode(form, lambda _v: None))
            return
        problem = results.mismatch(op.name, op.results, len(op.out), form, len(arrays))
        if problem:
            raise RemoteFault("TypeError", problem)
        self._hold_results(op, arrays)

    def _hold_results(self, op: pb.ROp, results: list[Any]) -> None:
        for position, (handle, value) in enumerate(zip(op.out, results, strict=False)):
            array = value if isinstance(value, self.xp.ndarray) else self.xp.asarray(value)
            cupy_dtype(array.dtype)  # (NumPy, on a simulated GPU, makes arrays that CuPy would not)
            self.device.adopt(array)
            self._hold(handle, array)
            expect = op.expect[position] if position < len(op.expect) else None
            if (
                expect is None
                or not expect.dtype
                or tuple(expect.shape) != array.shape
                or expect.dtype != array.dtype.str
            ):
                self._metas[handle] = meta_pb(array.shape, array.dtype)

    def _aten(self, op: pb.ROp) -> None:
        """An ATen operator by name: tensor results under the client's handles, a scalar into the
        answer's values."""
        torch = self.torch
        operator = torch.operator(op.name)
        if operator is None:
            raise RemoteFault(
                "NotImplementedError", f"aten::{op.name} cannot run remotely (not an operator on tensors)"
            )
        args = [torch.decode(v, self._array) for v in op.args]
        kwargs = {key: torch.decode(v, self._array) for key, v in op.kwargs.items()}
        result = operator(*args, **kwargs)
        if not op.out:
            if not isinstance(result, torch.torch.Tensor) and result is not None:
                self._values.append(encode(result, lambda _v: None))  # (item(), equal(), is_nonzero())
            return
        results = _flat_tensors(result, torch.torch.Tensor)
        if len(results) != len(op.out):
            raise RemoteFault(
                "ValueError", f"aten::{op.name} gave {len(results)} tensors where {len(op.out)} were expected"
            )
        for position, (handle, found) in enumerate(zip(op.out, results, strict=True)):
            # (an undefined result, which the meta kernel makes defined: an empty tensor stands for it)
            tensor = found if found is not None else torch.torch.empty(0, device=torch.device)
            torch.hold(handle, tensor)
            self._hold(handle, tensor)
            # Shapes are told when the client asked (it could not infer them: expect without dtype)
            # or inferred otherwise; an operation sent without expectations trusts the meta kernels.
            expect = op.expect[position] if position < len(op.expect) else None
            if expect is not None and (not expect.dtype or tuple(expect.shape) != tuple(tensor.shape)):
                self._metas[handle] = torch.meta(tensor)

    def _hold(self, handle: int, array: Any) -> None:
        if handle == 0:
            raise WireError("handle 0 is not a handle")
        if handle not in self.arrays and len(self.arrays) >= MAX_HANDLES:
            raise RemoteFault("MemoryError", f"more than {MAX_HANDLES:,} arrays held at once")
        self.arrays[handle] = array

    def _function(self, name: str) -> Any:
        target = self.surface.resolve(name)
        if target is None:
            if not catalog.has_rules(name):
                raise RemoteFault("NotImplementedError", f"{catalog.module_name('')}.{name} is not supported remotely")
            target = self.xp  # (one the client has rules for, which this library may lack: its error)
            for part in name.split("."):
                target = getattr(target, part)
        if not self.gpu and name.startswith("random.") and name != "random.randint":
            return _with_cupy_dtype(target)
        return target

    def _method(self, array: Any, name: str) -> Any:
        if name not in catalog.METHODS and self.surface.resolve(f"{catalog.METHODS_PREFIX}.{name}") is None:
            raise RemoteFault("NotImplementedError", f"ndarray.{name} is not supported remotely")
        if not isinstance(array, self.xp.ndarray):
            raise RemoteFault("TypeError", f"ndarray.{name} needs an array")
        return getattr(array, name)

    def _decode(self, value: pb.RValue) -> Any:
        return decode(value, self._array, self.xp.asarray if self.gpu else (lambda a: a))

    def _array(self, handle: int) -> Any:
        try:
            return self.arrays[handle]
        except KeyError:
            why = "its upload is not complete" if handle in self._uploads else "no such array (an earlier error?)"
            raise RemoteFault("ValueError", f"unknown array handle {handle}: {why}") from None

    # ----- data in and out --------------------------------------------------------------

    def _start_upload(self, op: pb.ROp) -> None:
        if op.meta.dtype.startswith("torch."):
            dtype, shape = np.dtype(np.uint8), (self.torch.nbytes(op.meta),)
        else:
            dtype, shape = check_dtype(op.meta.dtype), check_shape(op.meta.shape)
        nbytes = nbytes_of(shape, dtype)
        # Checked against the partition before a byte is allocated.
        self.device.check_room(nbytes)
        [handle] = op.out
        tensor = op.meta if op.meta.dtype.startswith("torch.") else None
        overlapped = op.direct and self.gpu and nbytes >= staging.OVERLAP_FROM  # (no host copy of it all)
        upload = _Upload(np.empty(0 if overlapped else shape, dtype), tensor=tensor)
        self._uploads[handle] = upload
        if op.direct:
            if self.data is None:
                raise WireError("a direct upload, but this session has no data socket")
            if overlapped:
                self._receive_on_device(handle, upload, shape, dtype)
                return
            self.data.read_into(memoryview(upload.host).cast("B"))
            self._place(handle)
        elif nbytes == 0:
            self._place(handle)

    def _receive_on_device(self, handle: int, upload: _Upload, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """A large direct upload to a GPU: read piece by piece into pinned buffers, each piece
        copied to the device while the next arrives."""
        assert self.data is not None
        if upload.tensor is not None:
            side = self.torch
            flat = self._allocating(lambda: side.empty_bytes(shape[0]))
            stager = self._stager("torch")
            stager.aim(flat)
            staging.receive(self.data.read_into, shape[0], stager)
            del self._uploads[handle]
            tensor = side.from_device_bytes(flat, upload.tensor)
            side.hold(handle, tensor)
            self._hold(handle, tensor)
            return
        array = self._allocating(lambda: self.xp.empty(shape, dtype))
        stager = self._stager("cupy")
        stager.target = array.reshape(-1).view(self.xp.uint8)
        staging.receive(self.data.read_into, array.nbytes, stager)
        del self._uploads[handle]
        self.device.adopt(array)
        self._hold(handle, array)

    def _stager(self, kind: str) -> Any:
        if kind not in self._stagers:
            if kind == "torch":
                self._stagers[kind] = staging.TorchStager(self.torch.torch, self.torch.device)
            else:
                self._stagers[kind] = staging.CupyStager(self.xp)
        return self._stagers[kind]

    def _allocating(self, make: Any) -> Any:
        """``make()``, once more after the pool gives its cached blocks back if it did not fit."""
        try:
            return make()
        except Exception as exc:
            if error_type(exc) != "OutOfMemoryError" or not self._reclaim():
                raise
            return make()

    def _skip(self, op: pb.ROp) -> None:
        """An operation that did not run: keep the data socket in step with the client."""
        if not op.direct or self.data is None or self.data.broken:
            return
        if op.kind == Op.KIND_UPLOAD and op.out and op.out[0] not in self.arrays:
            self._uploads.pop(op.out[0], None)
            with contextlib.suppress(ValueError):
                self.data.drain(nbytes_of(check_shape(op.meta.shape), check_dtype(op.meta.dtype)))
        elif op.kind == Op.KIND_DOWNLOAD:
            with contextlib.suppress(ValueError):
                self.data.write(None, None)

    def _place(self, handle: int) -> None:
        upload = self._uploads.pop(handle)
        if upload.tensor is not None:
            tensor = self.torch.upload(upload.host, upload.tensor)
            self.torch.hold(handle, tensor)
            self._hold(handle, tensor)
            return
        # (check_room counted live arrays only: after the pool's cached blocks are back, it fits)
        array = self._allocating(lambda: self.xp.asarray(upload.host)) if self.gpu else upload.host
        self.device.adopt(array)
        self._hold(handle, array)

    def _download(self, op: pb.ROp) -> Iterator[pb.RemoteReply]:
        handle = op.args[0].handle
        array = self._array(handle)
        if op.direct and self.data is not None and self.gpu and _nbytes(array) >= staging.OVERLAP_FROM:
            self._send_from_device(handle, array)
            return
        if self._torch is not None and isinstance(array, self._torch.torch.Tensor):
            host = self._torch.to_host(array)  # raw bytes: the client knows the tensor's dtype and shape
        else:
            host = self.xp.asnumpy(array) if self.gpu else array
        if not host.flags.c_contiguous:
            host = host.copy(order="C")  # (not ascontiguousarray: it turns a 0-d array into 1-d)
        data = memoryview(host).cast("B") if host.size else memoryview(b"")
        if op.direct:
            if self.data is None:
                raise WireError("a direct download, but this session has no data socket")
            self.data.write(meta_pb(host.shape, host.dtype), data)
            self._metas[handle] = meta_pb(host.shape, host.dtype)
            return
        for offset in range(0, len(data), CHUNK):
            yield pb.RemoteReply(
                chunk=pb.RChunk(handle=handle, offset=offset, data=bytes(data[offset : offset + CHUNK]))
            )
        self._metas[handle] = meta_pb(host.shape, host.dtype)

    def _send_from_device(self, handle: int, array: Any) -> None:
        """A large direct download from a GPU: each piece is sent while the next is copied."""
        assert self.data is not None
        if self._torch is not None and isinstance(array, self._torch.torch.Tensor):
            flat = self._torch.device_bytes(array)
            stager = self._stager("torch")
            stager.aim(flat)
            meta = meta_pb((flat.numel(),), np.dtype(np.uint8))  # raw bytes, as to_host gives them
        else:
            flat = self.xp.ascontiguousarray(array).reshape(-1).view(self.xp.uint8)
            stager = self._stager("cupy")
            stager.target = flat
            meta = meta_pb(array.shape, array.dtype)
        self.data.write(meta, staging.send(_nbytes(flat), stager))
        self._metas[handle] = meta

    def _query(self, op: pb.ROp) -> pb.RValue:
        if op.name == "item":
            array = self._array(op.args[0].handle)
            if array.size != 1:
                raise RemoteFault("ValueError", "can only convert an array of size 1 to a Python scalar")
            return encode(array.item(), lambda _v: None)
        if op.name == "meta":
            for value in op.args:
                array = self._array(value.handle)
                self._metas[value.handle] = meta_pb(array.shape, array.dtype)
            return pb.RValue(none=pb.RNone())
        if op.name == "surface":  # the functions of one module: its prefix ("" for cupy itself)
            prefix = op.args[0].str if op.args else ""
            return pb.RValue(str=self.surface.describe(prefix))
        if op.name == "memory":
            used, limit = self.used_bytes, self.device.limit_bytes
            return encode((used, limit), lambda _v: None)
        if op.name == "torch.manual_seed":
            self.torch.seed(op.args[0].int)
            return pb.RValue(none=pb.RNone())
        if op.name == "torch.device":
            return encode(self.torch.describe(self.gpu_uuid), lambda _v: None)
        if op.name == "torch.empty_cache":
            self.torch.empty_cache()
            return pb.RValue(none=pb.RNone())
        if op.name == "clock":  # an event: when the work before it has finished on the device
            return pb.RValue(float=self.torch.clock() if self._torch is not None else time.perf_counter())
        raise RemoteFault("NotImplementedError", f"unknown query {op.name!r}")

    # ----- kernels ------------------------------------------------------------------------

    def _define_kernel(self, op: pb.ROp) -> None:
        kind = op.kwargs["kind"].str if "kind" in op.kwargs else ""
        if kind not in catalog.KERNEL_KINDS:
            raise WireError(f"unknown kernel kind {kind!r}")
        if not self.gpu:
            raise KernelsNeedAGpu(kind)
        params = {key: self._decode(v) for key, v in op.kwargs.items() if key != "kind"}
        self._kernels[op.name] = getattr(self.xp, kind)(**params)

    def _launch(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if not self.gpu:
            raise KernelsNeedAGpu("a CUDA kernel")
        kernel = self._kernels.get(name)
        if kernel is None:
            raise RemoteFault("ValueError", f"unknown kernel {name}")
        return kernel(*args, **kwargs)

    # ----- results ------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        return self.device.used_bytes + (self._torch.used_bytes if self._torch is not None else 0)

    def _fail(self, index: int, op: pb.ROp, exc: Exception) -> None:
        for handle in op.out:
            self.arrays.pop(handle, None)
            if self._torch is not None:
                self._torch.forget(handle)
        name = f"aten::{op.name}" if op.kind == Op.KIND_ATEN else op.name
        self._error = pb.RError(type=error_type(exc), message=str(exc), op_index=index, op_name=name)

    def _result(self, seq: int) -> pb.RResult:
        result = pb.RResult(
            seq=seq,
            values=self._values,
            metas=self._metas,
            device_used_bytes=self.used_bytes,
            device_limit_bytes=self.device.limit_bytes,
        )
        if self._error is not None:
            result.error.CopyFrom(self._error)
        self._error, self._op_count, self._values, self._metas = None, 0, [], {}
        return result


def _flat_tensors(result: Any, tensor_type: type) -> list[Any]:
    """An operator's tensor results in order (as the client's pytree flattens them), undefined ones
    (None) in their place."""
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat_tensors(item, tensor_type)]
    return [result] if result is None or isinstance(result, tensor_type) else []


def _with_cupy_dtype(function: Any) -> Any:
    """NumPy's legacy random functions take no ``dtype``; CuPy's do (float32 draws): cast."""

    def call(*args: Any, dtype: Any = None, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        return result if dtype is None else np.asarray(result).astype(dtype, copy=False)

    return call


def _nbytes(array: Any) -> int:
    """An array's or a tensor's size in bytes."""
    if hasattr(array, "untyped_storage"):
        return int(array.numel() * array.element_size())
    return int(array.nbytes)
