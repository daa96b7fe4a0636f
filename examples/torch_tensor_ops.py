"""Tensor code on the GPU — masks, nonzero, topk, scatter_add, unique, in-place ops and views,
torch.save/load, events and memory queries — each result checked against the CPU.

Runs unchanged with PyTorch on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/torch_tensor_ops.py
"""

import io

import torch

device = "cuda" if torch.cuda.is_available() else "cpu"


def work(on: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    x = torch.randn(64, 32).to(on)
    out = {}
    mask = x > 0.5
    out["masked"] = x[mask]
    out["nonzero"] = torch.nonzero(mask)
    out["topk"] = x.topk(4, dim=1).values
    index = (x.abs() * 10).long() % 8
    out["scatter_add"] = torch.zeros(64, 8, device=on).scatter_add_(1, index, x)
    out["unique"] = torch.unique(index)
    y = x.clone()
    y[:, ::2] *= -1  # in place, through a view
    y.T[3].add_(100)
    view = y.view(32, 64)[1:5]
    view.clamp_(max=50)
    out["views"] = y
    out["where"] = torch.where(mask, x, torch.zeros_like(x)).cumsum(dim=0)
    out["any"] = torch.tensor([bool(mask.any()), int(mask.sum())], device=on)
    return out


got = work(device)
expected = work("cpu")
for name, value in expected.items():
    assert got[name].device.type == device, name
    assert torch.allclose(got[name].cpu(), value, rtol=1e-5, atol=1e-6), name
    print(f"{name}: {tuple(value.shape)} agrees")

buffer = io.BytesIO()
torch.save({"weights": got["views"], "step": 7}, buffer)
buffer.seek(0)
loaded = torch.load(buffer)
assert loaded["step"] == 7 and loaded["weights"].device.type == device
assert torch.equal(loaded["weights"].cpu(), got["views"].cpu())
buffer.seek(0)
assert torch.equal(torch.load(buffer, map_location="cpu")["weights"], got["views"].cpu())
print("torch.save / torch.load round trip agrees")

start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
if device == "cuda":
    start.record()
    a = torch.randn(256, 256, device=device)
    for _ in range(10):
        a = a @ a.T / 256
    end.record()
    end.synchronize()
    elapsed = start.elapsed_time(end)
    free, total = torch.cuda.mem_get_info()
    allocated = torch.cuda.memory_allocated()
    print(f"10 matmuls: {elapsed:.2f} ms; allocated {allocated} bytes; free {free} of {total}")
    assert elapsed > 0 and 0 < allocated <= total and free <= total
    assert torch.cuda.max_memory_allocated() >= allocated
print("tensor operations match the CPU")
