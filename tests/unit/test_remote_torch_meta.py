"""Remote PyTorch's pure parts: the operators a worker may run (from ATen's schemas) and the
meta results kept per signature (shapes, views and in-place results as PyTorch makes them)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bitshare.daemon.workers.torch_ops import allowed_operators  # noqa: E402
from bitshare.remote.torch.meta_cache import Made, MetaCache  # noqa: E402
from bitshare.remote.torch.tensor import RemoteTensor  # noqa: E402

aten = torch.ops.aten


def remote(*shape: int, handle: int = 1) -> RemoteTensor:
    return RemoteTensor(torch.empty(shape, device="meta"), handle)


def meta_of(leaf: object) -> torch.Tensor:
    return leaf.meta if isinstance(leaf, Made) else leaf  # type: ignore[return-value]


def test_the_allow_list_is_atens_operators_on_tensors_and_nothing_that_names_a_file() -> None:
    allowed = allowed_operators(torch)
    for name in (
        "add.Tensor",
        "convolution.default",
        "_local_scalar_dense.default",
        "nonzero.default",
        "copy_.default",
    ):
        assert name in allowed, name
    for name in ("from_file.default", "_print.default", "has_torch_function.default"):
        assert name not in allowed, name
    assert len(allowed) > 1500
    for name in sorted(allowed)[::50]:  # each resolves to a real overload of ATen's
        packet, overload = name.rsplit(".", 1)
        assert getattr(getattr(aten, packet), overload)._schema.name == f"aten::{packet}"


def test_a_repeated_operation_is_answered_from_the_cache_with_the_same_results() -> None:
    cache = MetaCache()
    a, b = remote(4, 3, handle=1), remote(3, handle=2)
    first, _ = cache.infer(aten.add.Tensor, (a, b), {})
    second, _ = cache.infer(aten.add.Tensor, (remote(4, 3, handle=3), remote(3, handle=4)), {})
    assert (cache.misses, cache.hits) == (1, 1)
    assert [meta_of(x).shape for x in first] == [meta_of(x).shape for x in second] == [torch.Size([4, 3])]
    assert meta_of(second[0]).device.type == "meta" and meta_of(second[0]).stride() == (3, 1)
    cache.infer(aten.add.Tensor, (remote(5, 3), b), {})  # another shape: another signature
    cache.infer(aten.add.Scalar, (a, 2.0), {})  # a scalar is part of it
    cache.infer(aten.add.Scalar, (a, 3.0), {})
    assert (cache.misses, cache.hits) == (4, 1)


def test_views_from_the_cache_share_their_inputs_storage_and_in_place_results_are_the_input() -> None:
    cache = MetaCache()
    for _ in range(2):  # worked out, then from the cache
        x = remote(6, 4)
        [view], _ = cache.infer(aten.slice.Tensor, (x, 0, 2, 5), {})
        view = meta_of(view)
        assert view.shape == (3, 4) and view.storage_offset() == 8
        assert view.untyped_storage()._cdata == x._bitshare_meta.untyped_storage()._cdata
        [same], _ = cache.infer(aten.mul_.Scalar, (x, 2.0), {})
        assert same is x
    assert cache.hits == 2


def test_data_dependent_shapes_are_left_to_the_worker_and_mistakes_raise_at_once() -> None:
    cache = MetaCache()
    assert cache.infer(aten.nonzero.default, (remote(5),), {}) is None
    assert cache.infer(aten.nonzero.default, (remote(5),), {}) is None  # (remembered as such)
    with pytest.raises(RuntimeError, match="broadcast"):
        cache.infer(aten.add.Tensor, (remote(4, 3), remote(4)), {})
    with pytest.raises(NotImplementedError, match="changes the shape of a remote GPU tensor in place"):
        cache.infer(aten.resize_.default, (remote(4), [8]), {})


@pytest.mark.parametrize(
    "tensor",
    [
        torch.ones(()).expand(1),  # one element of stride 0
        torch.arange(6.0).reshape(2, 3).T,  # transposed
        torch.randn(3, dtype=torch.complex64).conj(),  # a conjugate view
        torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
        torch.tensor([True, False]),
        torch.empty(0, 4),
    ],
    ids=["stride0", "transposed", "conj", "bfloat16", "bool", "empty"],
)
def test_a_cpu_tensors_bytes_round_trip_whatever_its_layout(tensor: torch.Tensor) -> None:
    from bitshare.remote.torch.tensor import from_host_bytes, host_bytes

    back = from_host_bytes(host_bytes(tensor), tensor.dtype, tuple(tensor.shape))
    assert back.shape == tensor.shape and back.dtype == tensor.dtype
    assert torch.equal(back, tensor.resolve_conj())
