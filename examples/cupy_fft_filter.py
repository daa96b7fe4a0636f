"""A low-pass FFT filter with CuPy whose spectrum step is a RawKernel, checked against NumPy.

Runs unchanged with real CuPy on a GPU, or through bitshare on a GPU server:
    bitshare run --remote -p 0.25 -- python examples/cupy_fft_filter.py
On a simulated GPU (no CUDA compiler) pass --no-kernel to do the step with array operations.
"""

import sys

import cupy as cp
import numpy as np

SAMPLES, CUTOFF = 1 << 18, 2000

LOW_PASS = cp.RawKernel(
    r"""
extern "C" __global__
void low_pass(float2* spectrum, const int n, const int cutoff) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i < n && i >= cutoff) {
        spectrum[i].x = 0.0f;
        spectrum[i].y = 0.0f;
    }
}
""",
    "low_pass",
)

rng = np.random.default_rng(11)
t = np.arange(SAMPLES, dtype=np.float32) / SAMPLES
signal = (np.sin(2 * np.pi * 50 * t) + 0.5 * rng.standard_normal(SAMPLES)).astype(np.float32)

spectrum = cp.fft.rfft(cp.asarray(signal)).astype(cp.complex64)
n = spectrum.shape[0]
if "--no-kernel" in sys.argv:
    spectrum[CUTOFF:] = 0
else:
    LOW_PASS(((n + 255) // 256,), (256,), (spectrum, np.int32(n), np.int32(CUTOFF)))
filtered = cp.fft.irfft(spectrum, n=SAMPLES)

ref_spectrum = np.fft.rfft(signal).astype(np.complex64)
ref_spectrum[CUTOFF:] = 0
reference = np.fft.irfft(ref_spectrum, n=SAMPLES)
difference = float(np.abs(cp.asnumpy(filtered) - reference).max())
print(f"{SAMPLES} samples, cutoff {CUTOFF}: max |difference| {difference:.2e}")
assert difference < 1e-4, "result differs from NumPy"
print("result matches NumPy within tolerance")
