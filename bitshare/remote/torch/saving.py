"""``torch.save`` and ``torch.load`` of remote tensors.

A saved remote tensor is written as PyTorch writes a CUDA tensor (its bytes, its location
``cuda:0``), so the file loads on any machine; in a remote program, tensors saved from ``cuda``
load onto the remote GPU again, as they would on a GPU host.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .dispatch import to_host
from .tensor import hooks

_saved: set[int] = set()  # storages copied to the host for saving: their location is cuda:0
_loaded: set[int] = set()  # storages read from a file where their location was a GPU


def reduce_remote(tensor: Any, protocol: Any) -> Any:
    host = to_host(tensor.detach())
    _saved.add(host.untyped_storage().data_ptr())
    host.requires_grad_(tensor.requires_grad)
    return host.__reduce_ex__(protocol)


def _tag(storage: Any) -> str | None:
    if storage.device.type == "cpu" and storage.data_ptr() in _saved:
        return "cuda:0"
    return None


def _restore(storage: Any, location: str) -> Any:
    if location.startswith("cuda"):
        _loaded.add(storage.data_ptr())
        return storage  # on the host for now; load() moves its tensors to the remote GPU
    return None


def _to_remote(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.untyped_storage().data_ptr() in _loaded:
        moved = value.detach().to("cuda:0")
        if isinstance(value, torch.nn.Parameter):
            return torch.nn.Parameter(moved, value.requires_grad)
        return moved.requires_grad_(value.requires_grad)
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _to_remote(value[key])
        return value
    if isinstance(value, list):
        return [_to_remote(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_to_remote(v) for v in value)
    return value


hooks.reduce = reduce_remote


def install() -> None:
    torch.serialization.register_package(5, _tag, _restore)  # (before torch's own CPU and CUDA ones)
    original_load, original_save = torch.load, torch.save

    @functools.wraps(original_load)
    def load(*args: Any, **kwargs: Any) -> Any:
        try:
            return _to_remote(original_load(*args, **kwargs))
        finally:
            _loaded.clear()

    @functools.wraps(original_save)
    def save(*args: Any, **kwargs: Any) -> Any:
        try:
            return original_save(*args, **kwargs)
        finally:
            _saved.clear()  # (a later CPU tensor at the same address is not a GPU one)

    torch.load, torch.save = load, save
