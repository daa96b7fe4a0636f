"""k-means clustering with CuPy, checked against the same algorithm in NumPy.

Runs unchanged with real CuPy on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/cupy_kmeans.py
"""

import cupy as cp
import numpy as np

POINTS, DIMS, K, ITERATIONS = 20000, 16, 8, 15

rng = np.random.default_rng(3)
centres_true = rng.uniform(-10, 10, (K, DIMS))
points = (centres_true[rng.integers(0, K, POINTS)] + rng.standard_normal((POINTS, DIMS))).astype(np.float64)
start = points[rng.choice(POINTS, K, replace=False)]


def kmeans(xp, x, centres):
    for _ in range(ITERATIONS):
        distances = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = distances.argmin(axis=1)
        onehot = (labels[:, None] == xp.arange(K)[None, :]).astype(x.dtype)
        counts = onehot.sum(axis=0)
        centres = (onehot.T @ x) / xp.maximum(counts, 1)[:, None]
    return centres, labels


centres, labels = kmeans(cp, cp.asarray(points), cp.asarray(start))
ref_centres, ref_labels = kmeans(np, points, start)
difference = float(np.abs(cp.asnumpy(centres) - ref_centres).max())
relabelled = int((cp.asnumpy(labels) != ref_labels).sum())
print(f"{POINTS} points, k={K}: max |centre difference| {difference:.2e}, {relabelled} labels differ")
assert difference < 1e-8 and relabelled == 0, "result differs from NumPy"
print("result matches NumPy within tolerance")
