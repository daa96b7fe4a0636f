"""``import cupy`` under ``bitshare run --remote``: this directory comes first on PYTHONPATH, and this
module replaces itself with bitshare's remote CuPy (bitshare.remote.cupy)."""

import sys

from bitshare.remote import cupy as remote_cupy

_cuda = remote_cupy.cuda
sys.modules.update(
    {
        "cupy": remote_cupy,
        "cupy.cuda": _cuda,
        "cupy.cuda.runtime": _cuda.runtime,
        "cupy.cuda.memory": _cuda.memory,
        "cupy.cuda.compiler": _cuda.compiler,
        "cupy.cuda.device": _cuda.device,
        "cupy.linalg": remote_cupy.linalg,
        "cupy.fft": remote_cupy.fft,
        "cupy.random": remote_cupy.random,
    }
)
# The name programs and libraries see (array-api-compat's is_cupy_namespace reads it), as CuPy's own;
# the package is bitshare.remote.cupy all the same to the import system (its __spec__ keeps that).
remote_cupy.__name__ = "cupy"
