"""The worker's functions by name, as a program sees them: prints one JSON object of findings
(checked by tests/integration/test_remote_surface.py against NumPy, the worker's library here)."""

from __future__ import annotations

import inspect
import json

import cupy
import numpy as np

from bitshare.remote.session import current

x = cupy.asarray([3, 1, 2, 3, 1])
found: dict = {}
unique = cupy.unique_all(x)
found["unique_all"] = [type(unique).__name__, list(unique._fields), unique.values.tolist(), unique.counts.tolist()]
found["signature"] = str(inspect.signature(cupy.cumulative_sum))
found["ufunc_signature"] = str(inspect.signature(cupy.add))
found["isdtype"] = cupy.isdtype(cupy.float32, "real floating")
found["matrix_norm"] = float(cupy.linalg.matrix_norm(cupy.eye(3)))
try:
    cupy.cumulative_sum(x, bogus=1)
except TypeError as exc:
    found["bad_keyword"] = str(exc)
cupy.cumulative_sum(x)  # (a first call of this kind was made above: its form is known)
before = current().round_trips
y = cupy.cumulative_sum(x) + cupy.cumulative_sum(x)
found["queued_round_trips"] = current().round_trips - before
found["cumulative_sum"] = y.tolist()
found["dir"] = ["unique_all" in dir(cupy), "loadtxt" in dir(cupy), "svdvals" in dir(cupy.linalg)]
found["method"] = x.argpartition(2).shape[0]
found["nonzero"] = [type(x.nonzero()).__name__, x.nonzero()[0].tolist()]
found["device"] = [x.device == cupy.cuda.Device(0) if hasattr(x, "device") else None]
try:
    cupy.zeros(3, device="cpu")
except ValueError as exc:
    found["other_device"] = str(exc)
found["numpy_ufunc"] = np.spacing(cupy.asarray([1.0])).tolist()
namespace: dict = {}
exec("from cupy import *", namespace)  # (what a program's star import gives)
found["star_import"] = ["setdiff1d" in namespace, "loadtxt" in namespace]
found["result_type"] = str(np.result_type(x, cupy.asarray([1.5], dtype=cupy.float32)))
try:
    x += 1.5
except TypeError as exc:
    found["inplace_cast"] = str(exc)
found["same_array"] = cupy.array(x, copy=False) is x
found["external_stream"] = type(cupy.cuda.ExternalStream(0)).__name__
view = cupy.arange(6.0).view()
view.shape = (2, 3)
found["shape_set"] = [list(view.shape), view.get().tolist()]
found["name"] = cupy.__name__
print(json.dumps(found))
