"""The results of an ATen operator, inferred on the client from PyTorch's own meta kernels.

Running a meta kernel costs tens to hundreds of microseconds of Python and C++ per operation;
a model's forward repeats the same operations on the same shapes every step. So the outcome of
each signature (operator, and each argument's shape, strides, dtype and offset, or its value) is
kept, and a repeated operation makes its results' meta tensors directly: new ones with the
recorded shape, views as views of the same input (so aliasing stays what PyTorch made it).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_flatten

from .tensor import RemoteTensor, signature_of

aten = torch.ops.aten
META = torch.device("meta")
MAX_ENTRIES = 65_536  # signatures kept; past that the cache starts again (a program whose shapes never repeat)

# How a result was made, per leaf of the operator's output: a new tensor, a view of an input,
# an input itself (in place, out=), or a value.
_NEW, _VIEW, _INPUT, _VALUE = range(4)


class Made(NamedTuple):
    """A result's meta tensor made from the cache, with its signature (known without asking it)."""

    meta: torch.Tensor
    signature: tuple[Any, ...]


class MetaCache:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: dict[Any, tuple[Any, list[tuple[Any, ...]]] | None] = {}
        self.hits = 0
        self.misses = 0

    def infer(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], Any] | None:
        """The operator's output leaves (meta tensors for new results, or :class:`Made` ones from the
        cache; the input RemoteTensor for a result that is an input) and their tree spec; None when
        the shapes depend on the values."""
        inputs: list[RemoteTensor] = []
        # (a view changed in place changes its input's signature: worked out each time)
        kept = self.enabled and not _changes_view(func)
        key = _signature(func, args, kwargs, inputs) if kept else None
        if key is not None:
            entry = self._entries.get(key, _MISSING)
            if entry is not _MISSING:
                self.hits += 1
                return None if entry is None else _replay(entry, inputs)
        self.misses += 1
        found = _run_meta(func, args, kwargs)
        if key is not None:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            if found is None:
                self._entries[key] = None
            else:
                recipe = _record(found, inputs)
                if recipe is not None:
                    self._entries[key] = recipe
        return found


_MISSING: Any = object()


def _run_meta(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], Any] | None:
    by_meta: dict[int, RemoteTensor] = {}

    def to_meta(value: Any) -> Any:
        if isinstance(value, RemoteTensor):
            by_meta[id(value._bitshare_meta)] = value
            return value._bitshare_meta
        if isinstance(value, torch.device):
            return META if value.type == "cuda" else value
        if isinstance(value, (list, tuple)):
            return type(value)(to_meta(v) for v in value)
        return value

    try:
        out = func(*to_meta(args), **{k: to_meta(v) for k, v in kwargs.items()})
    except NotImplementedError:
        return None  # no meta kernel: the shapes depend on the values (nonzero, masked_select)
    except RuntimeError as exc:
        if "meta" in str(exc).lower():
            return None
        raise  # the program's own mistake (shapes that do not broadcast): raised here, as on a GPU
    leaves, spec = tree_flatten(out)
    for position, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor):
            same = by_meta.get(id(leaf))
            if same is not None:
                if _changes_view(func):
                    _follow_meta(same)
                elif same.shape != leaf.shape or same.stride() != leaf.stride():
                    raise NotImplementedError(
                        f"{func._schema.name} changes the shape of a remote GPU tensor in place: not "
                        "supported by bitshare's remote PyTorch (use the out-of-place form)"
                    )
                leaves[position] = same
    return leaves, spec


def _changes_view(func: Any) -> bool:
    """An operator that changes its input's shape, strides or offset in place and nothing else
    (``resize_`` and ``set_`` change the storage as well: those stay refused, each at its line)."""
    return torch.Tag.inplace_view in func.tags and func.overloadpacket not in _CHANGE_STORAGE


_CHANGE_STORAGE = {aten.resize_, aten.resize_as_, aten.set_}


def _follow_meta(remote: RemoteTensor) -> None:
    """A view changed in place (``squeeze_``, ``t_``, ``transpose_``, ``as_strided_``: what
    ``matmul`` does to a vector's result) changed its meta tensor: the tensor the program holds
    takes the same shape, strides and offset, as the worker's does when the operator runs."""
    meta = remote._bitshare_meta
    with no_dispatch():  # (the program's tensor's own metadata: not an operation to forward)
        remote.as_strided_(meta.shape, meta.stride(), meta.storage_offset())
    remote._bitshare_signature = signature_of(meta)


def _signature(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], inputs: list[RemoteTensor]) -> Any:
    """A hashable key of everything the results' metadata depends on; None when an argument has
    no such key (a CPU tensor's values, say)."""
    parts: list[Any] = [func]
    for value in args:
        if not _part(value, parts, inputs):
            return None
    for name, value in kwargs.items():
        parts.append(name)
        if not _part(value, parts, inputs):
            return None
    return tuple(parts)


def _part(value: Any, parts: list[Any], inputs: list[RemoteTensor]) -> bool:
    if isinstance(value, RemoteTensor):
        inputs.append(value)
        parts.append(value._bitshare_signature)
        return True
    if isinstance(value, torch.Tensor):
        return False  # a CPU tensor among a remote operation's arguments (a scalar): not kept
    if isinstance(value, (list, tuple)):
        parts.append(len(value))
        return all(_part(v, parts, inputs) for v in value)
    parts.append((type(value), value))
    return True


def _record(found: tuple[list[Any], Any], inputs: list[RemoteTensor]) -> tuple[Any, list[tuple[Any, ...]]] | None:
    leaves, spec = found
    metas = [t._bitshare_meta for t in inputs]
    recipe: list[tuple[Any, ...]] = []
    for leaf in leaves:
        if isinstance(leaf, RemoteTensor):
            recipe.append((_INPUT, _index(inputs, leaf)))
        elif isinstance(leaf, torch.Tensor):
            base = _base_of(leaf, metas)
            signature = signature_of(leaf)
            if base is not None and metas[base].dtype == leaf.dtype:
                recipe.append((_VIEW, base, tuple(leaf.shape), leaf.stride(), leaf.storage_offset(), signature))
            elif leaf.storage_offset() == 0:
                recipe.append((_NEW, tuple(leaf.shape), leaf.stride(), leaf.dtype, signature))
            else:
                return None  # (a new tensor at an offset: not kept, worked out each time)
        else:
            recipe.append((_VALUE, leaf))
    return spec, recipe


def _replay(entry: tuple[Any, list[tuple[Any, ...]]], inputs: list[RemoteTensor]) -> tuple[list[Any], Any]:
    spec, recipe = entry
    leaves: list[Any] = []
    for step in recipe:
        kind = step[0]
        if kind == _NEW:
            leaves.append(Made(torch.empty_strided(step[1], step[2], dtype=step[3], device=META), step[4]))
        elif kind == _VIEW:
            leaves.append(Made(inputs[step[1]]._bitshare_meta.as_strided(step[2], step[3], step[4]), step[5]))
        elif kind == _INPUT:
            leaves.append(inputs[step[1]])
        else:
            leaves.append(step[1])
    return leaves, spec


def _index(inputs: list[RemoteTensor], tensor: RemoteTensor) -> int:
    for position, candidate in enumerate(inputs):
        if candidate is tensor:
            return position
    raise AssertionError("a result that is an input was not among the inputs")


def _base_of(leaf: torch.Tensor, metas: list[torch.Tensor]) -> int | None:
    """Which input's storage a result shares (a view), if any."""
    storage = leaf.untyped_storage()
    for position, meta in enumerate(metas):
        if meta.untyped_storage()._cdata == storage._cdata:
            return position
    return None
