"""A program to run on a lease: it prints what it was lent, does a little work in it, and shows
that the partition is a limit (an allocation past it is refused)."""

import os
import time

lease = os.environ.get("BITSHARE_LEASE_ID", "(none: run me with bitshare run)")
mib = int(os.environ.get("BITSHARE_GPU_MEMORY_MIB", "0").split(",")[0])
simulated = os.environ.get("BITSHARE_SIMULATED") == "1"
print(
    f"lease {lease}: {mib} MiB of GPU memory on {os.environ.get('BITSHARE_SERVER', '?')}"
    f"{' (simulated GPU, CPU-backed)' if simulated else ''}"
)

if simulated:
    from bitshare import simgpu

    device = simgpu.device(0)
    x = device.empty((1024, 1024), "float32")
    x[:] = 1.0
    start = time.perf_counter()
    with device.busy():
        total = float((x @ x).sum())
    print(f"1024x1024 matmul in simulated device memory in {time.perf_counter() - start:.3f}s (sum {total:g})")
    try:
        device.empty((mib + 1) * 1024 * 1024, "uint8")
    except simgpu.OutOfMemoryError as exc:
        print(f"past the partition: {exc}")
elif os.environ.get("CUDA_VISIBLE_DEVICES"):
    try:
        import cupy

        x = cupy.random.random((4096, 4096), dtype=cupy.float32)
        start = time.perf_counter()
        float((x @ x).sum())
        print(f"4096x4096 matmul on the leased GPU in {time.perf_counter() - start:.3f}s")
        try:
            cupy.empty((mib + 1) * 1024 * 1024, dtype=cupy.uint8)
        except cupy.cuda.memory.OutOfMemoryError as exc:
            print(f"past the partition: {exc}")
    except ImportError:
        print("install bitshare[cuda12] or bitshare[cuda13] to use the GPU from Python")
