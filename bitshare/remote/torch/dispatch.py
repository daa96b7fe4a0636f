"""ATen operators on remote tensors: shapes from PyTorch's meta kernels here, the work queued for
the lease's worker, which runs the same operator by name.

An operation costs no round trip: its results' shapes, strides and dtypes come from running
the operator on meta tensors (cached per signature), the results are named by handles chosen
here, and the operation joins the session's queue. Only what needs the data waits for the
worker: ``.item()``, ``.cpu()``, printing, ``bool(x)``, ``torch.cuda.synchronize()``, and
operators whose result's shape depends on the values (``nonzero``, a boolean mask, ``unique``),
each one round trip.
"""

from __future__ import annotations

import atexit
import math
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_unflatten

from ...protocol.v1 import bitshare_pb2 as pb
from .. import session as sessions
from .meta_cache import Made, MetaCache
from .tensor import RemoteTensor, from_host_bytes, hooks, host_bytes
from .values import decode_scalar, encode

aten = torch.ops.aten
Op = pb.ROp
META = torch.device("meta")
_cache = MetaCache()


def forward(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``func`` (an ATen operator overload) where its tensors live: on the lease's worker."""
    special = _SPECIAL.get(func)
    if special is not None:
        return special(args, kwargs)
    if func.namespace != "aten":
        raise NotImplementedError(
            f"{func._schema.name} is a custom operator: its kernels are in this process, not on the GPU "
            "server (bitshare's remote PyTorch runs ATen's operators)"
        )
    return _queue(func, args, kwargs)


def _queue(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not _returns_tensors(func):
        return _value(func, args, kwargs)  # bool(x), x.item(), torch.equal: the worker answers
    inferred = _cache.infer(func, args, kwargs)
    if inferred is None:
        return _data_dependent(func, args, kwargs)
    results, spec = inferred
    session = _session()
    handles: list[int] = []
    undefined: list[int] = []
    for position, leaf in enumerate(results):
        if isinstance(leaf, RemoteTensor):  # (an input, changed in place or given as out=)
            result = leaf
        elif isinstance(leaf, Made):
            result = results[position] = RemoteTensor(leaf.meta, session.new_handle(), leaf.signature)
        elif isinstance(leaf, torch.Tensor):
            result = results[position] = RemoteTensor(leaf, session.new_handle())
        elif leaf is None:
            # An undefined result (convolution_backward's unasked gradient) keeps its place: the
            # worker holds an empty tensor under its handle, freed with the next batch.
            undefined.append(session.new_handle())
            handles.append(undefined[-1])
            continue
        else:
            continue
        handles.append(result._bitshare_handle)
    session.queue(_op(func, args, kwargs, handles))  # (no shapes sent: the meta kernels agree)
    for handle in undefined:
        session.free(handle, 0)
    return results[0] if spec.is_leaf() else tree_unflatten(results, spec)


def _op(func: Any, args: Any, kwargs: dict[str, Any], out: list[int], expect: list[pb.RMeta] | None = None) -> pb.ROp:
    try:
        encoded, named = [encode(a) for a in args], {k: encode(v) for k, v in kwargs.items()}
    except NotImplementedError as exc:
        raise NotImplementedError(f"{func._schema.name}: {exc}") from None
    return Op(kind=Op.KIND_ATEN, name=func.__name__, args=encoded, kwargs=named, out=out, expect=expect or [])


def _returns_tensors(func: Any) -> bool:
    found = _RETURNS_TENSORS.get(func)
    if found is None:
        found = any("Tensor" in str(r.type) for r in func._schema.returns) or not func._schema.returns
        _RETURNS_TENSORS[func] = found
    return found


_RETURNS_TENSORS: dict[Any, bool] = {}


def _value(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """An operator whose result is a number or a bool: sent with what is queued, one round trip."""
    session = _session()
    session.queue(_op(func, args, kwargs, []))
    result, _ = session.sync()
    if not result.values:
        raise RuntimeError(f"the worker gave no value for aten::{func.__name__}")
    return decode_scalar(result.values[-1])


def _data_dependent(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """An operator whose results' shapes only the values tell (``nonzero``, ``masked_select``,
    ``unique``): it runs with what is queued, and the worker says the shapes (one round trip)."""
    returns = func._schema.returns
    if any(str(r.type) != "Tensor" for r in returns):
        raise NotImplementedError(
            f"aten::{func.__name__} on a remote GPU: bitshare's remote PyTorch cannot tell its results beforehand"
        )
    session = _session()
    handles = [session.new_handle() for _ in returns]
    session.queue(_op(func, args, kwargs, handles, [pb.RMeta() for _ in returns]))
    result, _ = session.sync()
    made = []
    for handle in handles:
        meta = result.metas.get(handle)
        if meta is None:
            raise RuntimeError(f"the worker did not say the shape of aten::{func.__name__}'s result")
        dtype = getattr(torch, meta.dtype.removeprefix("torch."), None) if meta.dtype.startswith("torch.") else None
        if not isinstance(dtype, torch.dtype):
            raise RuntimeError(f"the worker gave aten::{func.__name__}'s result an unknown dtype {meta.dtype!r}")
        made.append(RemoteTensor(torch.empty(tuple(meta.shape), dtype=dtype, device=META), handle))
    return made[0] if len(made) == 1 else tuple(made)


# ----- data in and out ------------------------------------------------------------------------


def upload(host: torch.Tensor) -> RemoteTensor:
    """A CPU tensor's copy on the lease's GPU (its bytes over the bulk path)."""
    session = _session()
    handle = session.new_handle()
    meta = torch.empty(tuple(host.shape), dtype=host.dtype, device=META)
    data = host_bytes(host)
    session.upload(handle, data, meta=pb.RMeta(shape=tuple(host.shape), dtype=str(host.dtype)), name="aten::_to_copy")
    return RemoteTensor(meta, handle)


def to_host(tensor: RemoteTensor) -> torch.Tensor:
    """The tensor's values in this process (a sync point)."""
    nbytes = math.prod(tensor.shape) * tensor.element_size()
    # (no size given: the worker's own is what arrives, so a result it holds in another size
    # than the meta kernel said is refused here rather than read as uninitialised memory)
    data = _session().download(tensor._bitshare_handle, None)
    if data.nbytes != nbytes:
        raise RuntimeError(
            f"the GPU server holds {data.nbytes} bytes for this tensor of shape {list(tensor.shape)} and "
            f"{tensor.dtype} ({nbytes} bytes): PyTorch's meta kernel for the operator that made it disagrees "
            "with the kernel that ran (bitshare's remote PyTorch)"
        )
    if not data.flags.writeable:  # (joined from chunks of the stream: the tensor must be the program's own)
        data = data.copy()
    return from_host_bytes(data.view(np.uint8), tensor.dtype, tuple(tensor.shape))


def dropped(tensor: RemoteTensor) -> None:
    """A remote tensor the program no longer holds: the worker frees it with the next batch."""
    handle = getattr(tensor, "_bitshare_handle", 0)
    current = sessions.current()
    if handle and current is not None and not current.closed:
        current.free(handle, tensor._bitshare_meta.nbytes)


hooks.forward, hooks.to_host, hooks.dropped = forward, to_host, dropped
# Tensors dropped after the session's close at exit have nothing left to free.
atexit.register(setattr, hooks, "dropped", None)


def _session() -> sessions.Session:
    current = sessions.current()
    return current if current is not None and not current.closed else sessions.session()


# ----- operators that are not only computation -----------------------------------------------


def _to_copy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    source = args[0]
    device = kwargs.get("device")
    dtype = kwargs.get("dtype")
    if isinstance(source, RemoteTensor) and device is not None and torch.device(device).type == "cpu":
        host = to_host(source)
        return host.to(dtype) if dtype is not None and dtype != host.dtype else host
    if not isinstance(source, RemoteTensor):  # a CPU tensor to the GPU
        if dtype is not None and dtype != source.dtype:
            source = source.to(dtype)
        return upload(source)
    return _queue(aten._to_copy.default, args, kwargs)


def _copy_(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    target, source = args[0], args[1]
    if not isinstance(target, RemoteTensor):  # GPU -> CPU into a tensor of the program's
        return target.copy_(to_host(source))
    if not isinstance(source, RemoteTensor):
        source = upload(source if source.dim() else source.reshape(()))
    return _queue(aten.copy_.default, (target, source, *args[2:]), kwargs)


def _refuse(what: str) -> Any:
    def refused(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{what} is not supported by bitshare's remote PyTorch")

    return refused


_SPECIAL: dict[Any, Any] = {
    aten._to_copy.default: _to_copy,
    aten.copy_.default: _copy_,
    aten.is_pinned.default: lambda args, kwargs: False,
    aten._pin_memory.default: _refuse("pin_memory() of a remote GPU tensor"),
    aten.set_.source_Tensor: _refuse("Tensor.set_() on a remote GPU tensor"),
    aten.set_.source_Storage: _refuse("Tensor.set_() on a remote GPU tensor"),
    aten.set_.source_Storage_storage_offset: _refuse("Tensor.set_() on a remote GPU tensor"),
}
