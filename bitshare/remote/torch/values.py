"""Arguments of ATen operators on the remote wire: remote tensors by handle, small CPU tensors
inline, torch constants by name. Nothing else crosses (no objects, no pickles)."""

from __future__ import annotations

from typing import Any

import torch

from ...protocol.v1 import bitshare_pb2 as pb
from .tensor import RemoteTensor, host_bytes

INLINE_LIMIT = 1 << 16  # a CPU tensor given to a remote operator travels with it up to this size

_CONSTANTS: dict[Any, str] = {}
for _kind, _type in (("dtype", torch.dtype), ("layout", torch.layout), ("memory_format", torch.memory_format)):
    for _name in dir(torch):
        _value = getattr(torch, _name)
        if isinstance(_value, _type) and _value not in _CONSTANTS:
            _CONSTANTS[_value] = f"{_kind}.{_name}"
_NONE = pb.RValue(none=pb.RNone())
_CUDA = pb.RValue(torch="device.cuda")


def encode(value: Any) -> pb.RValue:
    if isinstance(value, RemoteTensor):
        return pb.RValue(handle=value._bitshare_handle)
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return pb.RValue(bool=value)
    if isinstance(value, int):
        return pb.RValue(int=value)
    if isinstance(value, float):
        return pb.RValue(float=value)
    if isinstance(value, (list, tuple)):
        return pb.RValue(list=pb.RList(items=[encode(v) for v in value], tuple=isinstance(value, tuple)))
    if isinstance(value, str):
        return pb.RValue(str=value)
    if isinstance(value, torch.device):
        if value.type == "meta":
            # A remote tensor's own device as PyTorch's C++ sees it (its C++ device is meta): an
            # operator made of others that places a result "where the input is" (softmax with a
            # dtype, pad) means the remote GPU.
            return _CUDA
        if value.type not in ("cuda", "cpu"):
            raise NotImplementedError(f"bitshare's remote PyTorch cannot place tensors on {value}")
        if value.type == "cuda" and value.index not in (None, 0):
            raise RuntimeError(
                f"CUDA error: invalid device ordinal {value.index}: the lease has one GPU (bitshare's remote PyTorch)"
            )
        return pb.RValue(torch=f"device.{value.type}")
    constant = _CONSTANTS.get(value) if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)) else None
    if constant is not None:
        return pb.RValue(torch=constant)
    if isinstance(value, torch.Tensor):
        return pb.RValue(array=inline(value))
    if isinstance(value, complex):
        return pb.RValue(complex=pb.RComplex(real=value.real, imag=value.imag))
    if isinstance(value, torch.Generator):
        raise NotImplementedError(
            "a torch.Generator of its own on a remote GPU is not supported by bitshare's remote PyTorch: "
            "seed the device's default one (torch.manual_seed)"
        )
    raise TypeError(f"bitshare's remote PyTorch cannot send a {type(value).__name__} to the GPU server")


def inline(tensor: torch.Tensor) -> pb.RHostArray:
    """A CPU tensor sent with the operation that uses it (a 0-d scalar tensor, a small index)."""
    if tensor.device.type == "meta":
        raise NotImplementedError(
            "an argument was made by PyTorch's C++ on a remote tensor's own C++ device (meta), which "
            "keeps no values: not supported by bitshare's remote PyTorch (docs/remote.md lists such operators)"
        )
    if tensor.device.type != "cpu":
        raise TypeError(f"a tensor on {tensor.device} cannot be sent to the GPU server")
    if tensor.numel() * tensor.element_size() > INLINE_LIMIT:
        raise RuntimeError(
            "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
            f"(a CPU tensor of shape {list(tensor.shape)} given to an operation on the remote GPU)"
        )
    return pb.RHostArray(dtype=str(tensor.dtype), shape=tuple(tensor.shape), data=host_bytes(tensor).tobytes())


def decode_scalar(value: pb.RValue) -> Any:
    which = value.WhichOneof("kind")
    if which in ("float", "int", "bool", "str"):
        return getattr(value, which)
    if which == "complex":
        return complex(value.complex.real, value.complex.imag)
    if which == "list":
        return [decode_scalar(v) for v in value.list.items]
    if which in (None, "none"):
        return None
    raise TypeError(f"the worker answered a {which} where a number was expected")
