"""An MLP inference workload in CuPy: on a GPU with CuPy, or through bitshare's remote CuPy on any
daemon (on simulated GPUs it executes on NumPy in the daemon's worker).

    python -m bitshare.bench.workloads.cupy_mlp --size medium

Sizes (hidden width, layers, batch) go from light to heavy, like the paper's four models.
"""

from __future__ import annotations

import argparse
import itertools

SIZES = {  # hidden width, hidden layers, batch
    "small": (256, 2, 32),
    "medium": (512, 3, 32),
    "large": (1024, 3, 32),
    "xlarge": (1536, 4, 32),
}
INPUTS, CLASSES = 512, 10
WARMUP_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="medium")
    args = parser.parse_args()

    import cupy as cp

    from bitshare.bench.protocol import serve

    hidden, layers, batch = SIZES[args.size]
    cp.random.seed(7)
    widths = [INPUTS] + [hidden] * layers + [CLASSES]
    weights = [
        (cp.random.standard_normal((a, b), dtype=cp.float32) / float(a) ** 0.5, cp.zeros(b, dtype=cp.float32))
        for a, b in itertools.pairwise(widths)
    ]
    x = cp.random.standard_normal((batch, INPUTS), dtype=cp.float32)

    def step() -> int:
        h = x
        for number, (w, b) in enumerate(weights):
            h = h @ w + b
            if number < len(weights) - 1:
                h = cp.maximum(h, 0)
        labels = h.argmax(axis=1)
        cp.cuda.Stream.null.synchronize()
        int(labels[0])  # the batch is finished, not merely queued
        return batch

    serve(step, warmup_s=WARMUP_S)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
