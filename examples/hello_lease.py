"""A program to run on a lease: it prints what it was lent and does a little work in it."""

import os
import time

lease = os.environ.get("BITSHARE_LEASE_ID", "(none: run me with bitshare run)")
mib = int(os.environ.get("BITSHARE_GPU_MEMORY_MIB", "0").split(",")[0])
simulated = os.environ.get("BITSHARE_SIMULATED") == "1"
print(f"lease {lease}: {mib} MiB of GPU memory on {os.environ.get('BITSHARE_SERVER', '?')}"
      f"{' (simulated GPU, CPU-backed)' if simulated else ''}")

if not simulated and os.environ.get("CUDA_VISIBLE_DEVICES"):
    try:
        import cupy

        x = cupy.random.random((4096, 4096), dtype=cupy.float32)
        start = time.perf_counter()
        float((x @ x).sum())
        print(f"4096x4096 matmul on the leased GPU in {time.perf_counter() - start:.3f}s")
    except ImportError:
        print("install bitshare[cuda12] or bitshare[cuda13] to use the GPU from Python")
