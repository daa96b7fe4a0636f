"""Going past the GPU memory one has: torch.cuda.OutOfMemoryError at the line that needs the memory
(on a remote GPU, where the work is synchronised), and the device still usable after.

Runs unchanged with PyTorch on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/torch_out_of_memory.py
"""

import torch

free, total = torch.cuda.mem_get_info()
print(f"the GPU has {total / 2**30:.2f} GiB, {free / 2**30:.2f} GiB free")
kept = torch.ones(1024, 1024, device="cuda")
try:
    too_big = torch.empty(int(total // 4) + 1024, dtype=torch.float32, device="cuda")  # more bytes than the GPU has
    too_big.fill_(1)
    print("sum", too_big.sum().item())
except torch.cuda.OutOfMemoryError as exc:
    print("out of memory:", str(exc).splitlines()[0])
else:
    raise SystemExit("allocating more than the GPU's memory did not fail")
assert kept.sum().item() == 1024 * 1024  # what was there before is still there
more = torch.ones(256, device="cuda") * 2
print("after the failure the device works:", more.sum().item())
