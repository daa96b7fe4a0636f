"""``import cupy`` under ``bitshare run --remote``: this directory comes first on PYTHONPATH, and this
module replaces itself with bitshare's remote CuPy (bitshare.remote.cupy)."""

import sys

from bitshare.remote import cupy as interposer

_cuda = interposer.cuda
sys.modules.update(
    {
        "cupy": interposer,
        "cupy.cuda": _cuda,
        "cupy.cuda.runtime": _cuda.runtime,
        "cupy.cuda.memory": _cuda.memory,
        "cupy.cuda.compiler": _cuda.compiler,
        "cupy.linalg": interposer.linalg,
        "cupy.fft": interposer.fft,
        "cupy.random": interposer.random,
    }
)
