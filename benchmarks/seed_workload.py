"""One inference workload of the "seed" experiment: run a model flat out and count samples.

Builds a torchvision model with random weights (``weights=None``: nothing is downloaded) in
fp16 on the GPU, makes one random input batch on the GPU, warms up for ``--warmup`` seconds,
then runs ``model(x)`` under ``torch.inference_mode()`` for ``--seconds``, with a
``torch.cuda.synchronize()`` after every batch so that only finished work is counted.

With ``--start-file`` it prints ``ready`` after the warm-up and waits (``--start-timeout``)
for that file to appear before its measured window opens: ``seed_gpu.py`` uses this to start
the windows of concurrent workloads together. Last it prints one JSON line with the figures.

``--model cpu-matmul`` needs only NumPy: each sample is one 512x512 float32 matmul, ``--batch``
of them per iteration. It lets the orchestration be tested on a machine without a GPU.

    .venv/bin/python benchmarks/seed_workload.py --model resnet50 --batch 32 --seconds 30 --warmup 5
    .venv/bin/python benchmarks/seed_workload.py --model cpu-matmul --batch 4 --seconds 2 --warmup 0

Exit status: 0 when it ran, 2 when torch/CUDA (or NumPy for cpu-matmul) is missing, 3 when the
start file did not appear in time or the process that was to create it ended.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

CPU_MODEL = "cpu-matmul"
TORCH_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "vit_b_16")
IMAGE_SIZE = 224
MATMUL_SIZE = 512
START_POLL_S = 0.001
EXIT_MISSING = 2
EXIT_NO_START = 3
READY_LINE = "ready"


class Missing(Exception):
    """What the workload needs (torch with CUDA, or NumPy) is not there."""


def build_gpu_step(model_name: str, batch: int) -> tuple[Callable[[], None], Callable[[], dict[str, Any]]]:
    """A step that runs one fp16 batch through a random-weight torchvision model and waits for it;
    and a function giving the device figures once the run is over."""
    try:
        import torch
        import torchvision
    except ImportError as exc:
        raise Missing(f"{exc} (the GPU workloads need torch and torchvision)") from None
    if not torch.cuda.is_available():
        raise Missing(f"torch {torch.__version__} sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    try:
        model = torchvision.models.get_model(model_name, weights=None)
    except ValueError as exc:  # an unknown name
        raise Missing(str(exc)) from None
    model = model.half().cuda().eval()
    x = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, device="cuda", dtype=torch.float16)

    def step() -> None:
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()

    def device() -> dict[str, Any]:
        return {
            "device": torch.cuda.get_device_name(),
            "max_memory_mib": torch.cuda.max_memory_allocated() // 2**20,
        }

    return step, device


def build_cpu_step(batch: int) -> tuple[Callable[[], None], Callable[[], dict[str, Any]]]:
    """A step of ``batch`` single-threaded 512x512 float32 matmuls (one per sample)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # before NumPy loads its BLAS: one core per workload
    try:
        import numpy as np
    except ImportError as exc:
        raise Missing(f"{exc} ({CPU_MODEL} needs NumPy)") from None
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32)
    b = rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32)

    def step() -> None:
        for _ in range(batch):
            np.matmul(a, b)

    def device() -> dict[str, Any]:
        return {"device": "cpu", "max_memory_mib": 0}

    return step, device


def wait_for_file(path: str, timeout: float) -> str | None:
    """None once ``path`` exists; else why it will not: the deadline passed, or the parent (the
    orchestrator, or ``bitshare run``) went away and nobody is left to create it."""
    deadline = time.monotonic() + timeout
    parent = os.getppid()
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return f"{path} did not appear within {timeout:g}s"
        if os.getppid() != parent:
            return f"parent process {parent} ended while waiting for {path}"
        time.sleep(START_POLL_S)
    return None


def warm_up(step: Callable[[], None], seconds: float) -> int:
    """Run ``step`` for ``seconds`` (at least once: CUDA init, cuDNN autotuning); returns the count."""
    end = time.perf_counter() + seconds
    done = 0
    while done == 0 or time.perf_counter() < end:
        step()
        done += 1
    return done


def measure(step: Callable[[], None], seconds: float) -> tuple[int, float]:
    """Run ``step`` until ``seconds`` have passed; returns the iterations and the exact elapsed time."""
    start = time.perf_counter()
    iterations = 0
    while True:
        step()
        iterations += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return iterations, elapsed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one inference workload flat out and print its samples/s.")
    parser.add_argument(
        "--model", required=True, help=f"{', '.join(TORCH_MODELS)} (any torchvision name), or {CPU_MODEL}"
    )
    parser.add_argument("--batch", type=int, required=True, help="samples per iteration")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds [30]")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds, not counted [5]")
    parser.add_argument("--start-file", default=None, help="print 'ready' after the warm-up, then wait for this file")
    parser.add_argument(
        "--start-timeout", type=float, default=600.0, help="seconds to wait for --start-file before giving up [600]"
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--batch must be >= 1, --seconds > 0 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.model == CPU_MODEL:
            step, device = build_cpu_step(args.batch)
        else:
            step, device = build_gpu_step(args.model, args.batch)
    except Missing as exc:
        print(f"seed_workload: cannot run {args.model}: {exc}", file=sys.stderr)
        return EXIT_MISSING
    warm_up(step, args.warmup)
    if args.start_file is not None:
        print(READY_LINE, flush=True)
        why = wait_for_file(args.start_file, args.start_timeout)
        if why is not None:
            print(f"seed_workload: not starting: {why}", file=sys.stderr)
            return EXIT_NO_START
    started_at = time.time()
    iterations, elapsed = measure(step, args.seconds)
    samples = iterations * args.batch
    result = {
        "model": args.model,
        "batch": args.batch,
        "samples": samples,
        "seconds": round(elapsed, 4),
        "samples_per_s": round(samples / elapsed, 2),
        **device(),
        "started_at": round(started_at, 4),  # wall clock, so that concurrent windows can be compared
        "ended_at": round(started_at + elapsed, 4),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
