"""The tensor a remote program holds for one on the lease's GPU: a ``cuda`` tensor to the
program, a meta tensor (shape, strides, dtype, no data) to PyTorch's own kernels, and a handle
the worker knows the real tensor by.

PyTorch's autograd, ``nn.Module``, optimizers and ``state_dict`` see an ordinary tensor: the
subclass sits below autograd (``__torch_dispatch__``), so every operation on it, forward and
backward, reaches :mod:`.dispatch` as an ATen operator. Its C++ device is ``meta`` (so nothing in
the process calls CUDA), while its dispatch keys and the Python ``device`` are CUDA's (so
autocast, ``.is_cuda`` and ``x.device`` behave as on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

CUDA = torch.device("cuda", 0)


class Hooks:
    """What a remote tensor's methods call, given by the modules that do it (dispatch, saving),
    which themselves build on this one."""

    forward: Callable[[Any, Any, Any], Any]
    to_host: Callable[[RemoteTensor], torch.Tensor]
    reduce: Callable[[RemoteTensor, Any], Any]
    dropped: Callable[[RemoteTensor], None] | None = None  # None while the interpreter shuts down


hooks = Hooks()


class RemoteTensor(torch.Tensor):
    _bitshare_handle: int
    _bitshare_meta: torch.Tensor
    _bitshare_signature: tuple[Any, ...]

    @staticmethod
    def __new__(cls, meta: torch.Tensor, handle: int, signature: tuple[Any, ...] | None = None) -> RemoteTensor:
        made = torch.Tensor._make_subclass(cls, meta, False, dispatch_device=False, device_for_backend_keys=CUDA)
        made._bitshare_meta = meta
        made._bitshare_handle = handle
        # What an operation's results depend on (shape, strides, dtype, offset), kept: the meta
        # cache asks for it at each use (a view changed in place, t_ say, sets it anew).
        made._bitshare_signature = signature or signature_of(meta)
        return made

    def __init__(self, meta: torch.Tensor, handle: int, signature: tuple[Any, ...] | None = None) -> None:
        pass  # (all made in __new__; torch.Tensor's own __init__ takes no arguments)

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return hooks.forward(func, args, kwargs or {})

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return CUDA

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_meta(self) -> bool:  # type: ignore[override]
        return False  # (meta only to PyTorch's C++: to the program it is a CUDA tensor)

    def get_device(self) -> int:
        return 0

    def __del__(self) -> None:
        if hooks.dropped is not None:
            hooks.dropped(self)

    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        host = hooks.to_host(self)
        contents = torch._tensor_str._tensor_str(host, len("tensor(")) if host.numel() else "[]"
        # As PyTorch prints a CUDA tensor (its suffixes: device, dtype, grad_fn), not as a subclass.
        said = torch._tensor_str._str_intern(self, tensor_contents=contents)
        prefix = f"{type(self).__name__}("
        suffix_indent = "\n" + " " * len(prefix)  # (the suffixes' lines are indented under the prefix)
        lines = said.removeprefix(prefix).split(suffix_indent)
        return "tensor(" + ("\n" + " " * len("tensor(")).join(lines)

    def tolist(self) -> Any:
        return hooks.to_host(self).tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        if force:
            return hooks.to_host(self).numpy()
        raise TypeError(
            "can't convert cuda:0 device type tensor to numpy. "
            "Use Tensor.cpu() to copy the tensor to host memory first."
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.numpy()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return hooks.reduce(self, protocol)

    def __getitem__(self, index: Any) -> Any:
        return super().__getitem__(_index(index))

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(value, (bool, int, float, complex)):  # (made on the C++ device too: here instead)
            value = torch.tensor(value, dtype=self.dtype)
        super().__setitem__(_index(index), value)

    def data_ptr(self) -> int:
        raise RuntimeError("data_ptr() of a remote GPU tensor: its memory is on the GPU server, not in this process")

    def untyped_storage(self) -> Any:
        return self._bitshare_meta.untyped_storage()  # (for identity and size; it holds no bytes here)

    def record_stream(self, stream: Any) -> None:
        return None  # (one stream, in order: the tensor is not freed before work queued on it)

    def pin_memory(self, device: Any = None) -> torch.Tensor:
        raise RuntimeError("cannot pin 'torch.cuda.FloatTensor' only dense CPU tensors can be pinned")


INDEX_INLINE_LIMIT = 1 << 16  # a list index of more bytes goes to the GPU first (its own upload)


def _index(index: Any) -> Any:
    """An index with its Python lists made tensors here: PyTorch's C++ would make them on the
    indexed tensor's C++ device, which for a remote tensor is meta and keeps no values."""
    if isinstance(index, list):
        made = torch.tensor(index)
        return made.to(CUDA) if made.numel() * made.element_size() > INDEX_INLINE_LIMIT else made
    if isinstance(index, tuple) and any(isinstance(part, list) for part in index):
        return tuple(_index(part) if isinstance(part, list) else part for part in index)
    return index


def signature_of(meta: torch.Tensor) -> tuple[Any, ...]:
    return (tuple(meta.shape), meta.stride(), meta.dtype, meta.storage_offset())


def host_bytes(tensor: torch.Tensor) -> np.ndarray:
    """A CPU tensor's values in C order as a flat array of bytes (any dtype, bfloat16 included)."""
    flat = tensor.detach().resolve_conj().resolve_neg().contiguous().reshape(-1)
    if flat.numel() == 0:
        return np.empty(0, np.uint8)
    if flat.stride(0) != 1:  # (one element of stride 0 is "contiguous", but not as bytes)
        flat = flat.clone(memory_format=torch.contiguous_format)
    return flat.view(torch.uint8).numpy()


def from_host_bytes(data: np.ndarray, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if data.size == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.from_numpy(np.ascontiguousarray(data)).view(dtype).reshape(shape)
