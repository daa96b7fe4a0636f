"""Make an unmodified PyTorch program's ``cuda`` device the lease's GPU on the GPU server.

Three things, once, right after ``import torch``: ``torch.cuda``'s functions answer for the
lease's GPU; a dispatch mode sends every ATen operator that has a remote tensor among its
arguments, or makes one (``device="cuda"``), to :mod:`.dispatch`, and lets every other run as
before; and the few Python entry points that would call CUDA in this process before any operator
runs (``Tensor.cuda()``, ``.to("cuda")`` without an index, ``torch.tensor(..., device="cuda")``)
first make their tensor on the CPU.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import cuda, errors, saving  # noqa: F401 - errors: PyTorch's types for the worker's errors
from .dispatch import forward
from .tensor import CUDA, RemoteTensor

_installed: list[RemoteMode] = []


class RemoteMode(TorchDispatchMode):
    """Always on: remote work goes to the worker, the rest runs here as it would."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # (torch.compile runs eagerly here: no need to wrap every operation to skip it)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if RemoteTensor in types or _on_cuda(kwargs.get("device")) or any(_on_cuda(a) for a in args):
            if _composite(func) and _moves(args, kwargs):
                # An operator made of others (here because inference mode skips the autograd
                # keys that decompose it) that may move data between the host and the GPU: its
                # parts come back here one by one, the copies among them. Others go whole.
                with self:
                    return func.decompose(*args, **kwargs)
            return forward(func, args, kwargs)
        return func(*args, **kwargs)


def _moves(args: Any, kwargs: dict[str, Any]) -> bool:
    """A device among the arguments, or a tensor that is not a remote one."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.device) or (isinstance(value, torch.Tensor) and not isinstance(value, RemoteTensor)):
            return True
    return False


def _on_cuda(device: Any) -> bool:
    return isinstance(device, torch.device) and device.type == "cuda"


_COMPOSITE: dict[Any, bool] = {}


def _composite(func: Any) -> bool:
    found = _COMPOSITE.get(func)
    if found is None:
        found = torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")
        _COMPOSITE[func] = found
    return found


def _cuda(device: Any) -> Any:
    """A device as given, with ``cuda`` meaning the lease's GPU (index 0)."""
    if isinstance(device, int) and not isinstance(device, bool):
        cuda._check(device)
        return CUDA
    if isinstance(device, (str, torch.device)):
        device = torch.device(device)
        if device.type == "cuda":
            cuda._check(device)
            return CUDA
    return device


def _patch_entry_points() -> None:
    tensor_to, tensor_new = torch.Tensor.to, torch.tensor
    as_tensor = torch.as_tensor

    @functools.wraps(tensor_to)
    def to(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if "device" in kwargs:
            kwargs["device"] = _cuda(kwargs["device"])
        if args and isinstance(args[0], (str, torch.device, int)) and not isinstance(args[0], bool):
            args = (_cuda(args[0]), *args[1:])
        return tensor_to(self, *args, **kwargs)

    def to_cuda(self: torch.Tensor, device: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
        return to(self, _cuda(device if device is not None else "cuda"), **kwargs)

    @functools.wraps(tensor_new)
    def tensor(data: Any, *args: Any, device: Any = None, **kwargs: Any) -> Any:
        if _on_cuda(_cuda(device)):
            return to(tensor_new(data, *args, **kwargs), CUDA)
        return tensor_new(data, *args, device=device, **kwargs)

    @functools.wraps(as_tensor)
    def as_tensor_(data: Any, dtype: Any = None, device: Any = None) -> Any:
        if _on_cuda(_cuda(device)):
            if isinstance(data, RemoteTensor):
                return data if dtype is None else data.to(dtype)
            return to(as_tensor(data, dtype=dtype), CUDA)
        return as_tensor(data, dtype=dtype, device=device)

    torch.Tensor.to = to  # type: ignore[method-assign]
    torch.Tensor.cuda = to_cuda  # type: ignore[method-assign]
    torch.tensor = tensor
    torch.as_tensor = as_tensor_


def _not_covered() -> None:
    compile_ = torch.compile

    @functools.wraps(compile_)
    def compile(model: Any = None, **kwargs: Any) -> Any:
        warnings.warn(
            "torch.compile runs the model eagerly under bitshare's remote PyTorch: compiled kernels "
            "would run in this process, which has no GPU",
            stacklevel=2,
        )
        if model is None:
            return lambda m: m
        return model

    torch.compile = compile
    distributed = importlib.import_module("torch.distributed")

    def init_process_group(*args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "torch.distributed (NCCL, process groups) is not supported by bitshare's remote PyTorch: a lease is one GPU"
        )

    distributed.init_process_group = init_process_group


def install() -> None:
    """Once per process; safe to call again."""
    if _installed:
        return
    for name, value in cuda.SURFACE.items():
        setattr(torch.cuda, name, value)
    for name, value in cuda.ACCELERATOR.items():
        if hasattr(torch.accelerator, name):
            setattr(torch.accelerator, name, value)
    _patch_entry_points()
    _not_covered()
    # model.to("cuda") swaps each parameter for its remote copy in place (the objects optimizers
    # and tied weights hold stay the same), rather than assigning `param.data`, which would give a
    # CPU Parameter the remote tensor's metadata and none of its behaviour.
    torch.__future__.set_swap_module_params_on_conversion(True)
    saving.install()
    mode = RemoteMode()
    mode.__enter__()  # (left on for the program's whole life)
    _installed.append(mode)
