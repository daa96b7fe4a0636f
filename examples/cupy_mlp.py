"""Batched MLP inference with CuPy, checked against NumPy.

Runs unchanged with real CuPy on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/cupy_mlp.py
"""

import cupy as cp
import numpy as np

BATCHES, BATCH, INPUTS, HIDDEN, CLASSES = 20, 256, 512, 1024, 10

rng = np.random.default_rng(7)
w1 = rng.standard_normal((INPUTS, HIDDEN), dtype=np.float32) / np.sqrt(INPUTS)
b1 = rng.standard_normal(HIDDEN, dtype=np.float32) * 0.1
w2 = rng.standard_normal((HIDDEN, CLASSES), dtype=np.float32) / np.sqrt(HIDDEN)
b2 = rng.standard_normal(CLASSES, dtype=np.float32) * 0.1
inputs = rng.standard_normal((BATCHES, BATCH, INPUTS), dtype=np.float32)


def infer(xp, x, w1, b1, w2, b2):
    hidden = xp.maximum(x @ w1 + b1, 0)
    logits = hidden @ w2 + b2
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = xp.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, probs.argmax(axis=1)


gw1, gb1, gw2, gb2 = (cp.asarray(a) for a in (w1, b1, w2, b2))
worst = 0.0
mismatched = 0
for batch in inputs:
    probs, labels = infer(cp, cp.asarray(batch), gw1, gb1, gw2, gb2)
    ref_probs, ref_labels = infer(np, batch, w1, b1, w2, b2)
    worst = max(worst, float(np.abs(cp.asnumpy(probs) - ref_probs).max()))
    mismatched += int((cp.asnumpy(labels) != ref_labels).sum())

print(f"{BATCHES} batches of {BATCH}: max |difference| {worst:.2e}, {mismatched} labels differ")
assert worst < 1e-4 and mismatched == 0, "result differs from NumPy"
print("result matches NumPy within tolerance")
