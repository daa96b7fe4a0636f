"""Remote CuPy's surface is the worker's library (NumPy's on a simulated GPU): every function by
name, with its signature, results in the library's own forms, queued once their form is known."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable

import numpy as np
import pytest

from ..support.harness import ROOT, Daemon, run_cli


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--simulate", "1x16GiB", "--sample-interval", "0.1")


def test_the_workers_functions_by_name(daemon: Daemon) -> None:
    done = run_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, str(ROOT / "tests" / "apps" / "derived_surface.py")
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    expected = np.unique_all(np.asarray([3, 1, 2, 3, 1]))
    assert found["unique_all"] == [
        "UniqueAllResult",
        list(expected._fields),
        expected.values.tolist(),
        expected.counts.tolist(),
    ]
    assert found["signature"] == str(inspect.signature(np.cumulative_sum))
    assert found["ufunc_signature"] == str(inspect.signature(np.add))
    assert found["isdtype"] is True
    assert found["matrix_norm"] == pytest.approx(3**0.5)
    assert found["bad_keyword"] == "cumulative_sum() got an unexpected keyword argument 'bogus'"
    assert found["queued_round_trips"] == 0  # two calls and an add, nothing waited
    assert found["cumulative_sum"] == (2 * np.cumulative_sum([3, 1, 2, 3, 1])).tolist()
    assert found["dir"] == [True, False, True]
    assert found["method"] == 5
    assert found["nonzero"] == ["tuple", [0, 1, 2, 3, 4]]
    assert found["device"] == [True]
    assert "Device not understood: a remote lease has one GPU" in found["other_device"]
    assert found["numpy_ufunc"] == np.spacing(np.asarray([1.0])).tolist()
    assert found["star_import"] == [True, False]  # __all__ lists the worker's functions
    assert found["result_type"] == str(np.result_type(np.int64, np.float32))  # NumPy's, on the dtypes
    assert found["inplace_cast"].startswith("Cannot cast ufunc 'add' output from dtype('float64') to dtype('int64')")
    assert found["same_array"] is True
    assert found["external_stream"] == "ExternalStream"
    assert found["shape_set"] == [[2, 3], [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    assert found["name"] == "cupy"


def test_cupyx_scipy_is_scipys_on_a_simulated_gpu(daemon: Daemon) -> None:
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    program = (
        "import inspect, json, numpy as np, cupy\n"
        "import cupyx.scipy.ndimage as ndi\n"
        "from cupyx.scipy import special, signal\n"
        "x = cupy.asarray(np.arange(25.0).reshape(5, 5))\n"
        "b, a = signal.butter(2, 0.5)\n"
        "print(json.dumps([ndi.gaussian_filter(x, 1).get().tolist(), float(special.erf(cupy.asarray(0.5))),\n"
        "    str(inspect.signature(ndi.zoom)), [b.tolist(), a.tolist()], hasattr(cupy, 'sparse'),\n"
        "    hasattr(__import__('cupyx').scipy, 'sparse')]))\n"
    )
    done = run_cli(daemon, "run", "-p", "0.25", "--", sys.executable, "-c", program)
    assert done.returncode == 0, done.stderr
    filtered, erf, signature, butter, has_sparse, has_scipy_sparse = json.loads(done.stdout.strip().splitlines()[-1])
    import scipy.signal
    import scipy.special

    np.testing.assert_allclose(filtered, scipy_ndimage.gaussian_filter(np.arange(25.0).reshape(5, 5), 1))
    assert erf == pytest.approx(float(scipy.special.erf(0.5)))
    assert signature == str(inspect.signature(scipy_ndimage.zoom))
    expected_b, expected_a = scipy.signal.butter(2, 0.5)
    np.testing.assert_allclose(butter[0], expected_b)
    np.testing.assert_allclose(butter[1], expected_a)
    assert (has_sparse, has_scipy_sparse) == (False, False)  # not covered, and missing as such
