"""The Array API standard on remote CuPy (simulated GPU): the array and namespace objects,
array-api-compat's namespace of a remote array, and scikit-learn's array API dispatch fitting
estimators on remote arrays, checked against the same fits on NumPy. Programs run unchanged
under ``bitshare run``."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest

from ..support.harness import Daemon, run_cli


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--simulate", "1x16GiB", "--grace", "2")


def run_program(daemon: Daemon, program: str, timeout: float = 100) -> dict:
    """Run ``program`` under ``bitshare run`` and return the JSON object its last line prints."""
    env = {**daemon.env, "SCIPY_ARRAY_API": "1"}  # SciPy reads it at import; scikit-learn's dispatch needs it
    done = run_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", textwrap.dedent(program), timeout=timeout, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# The data both sides fit: NumPy's generator gives the same numbers in the program as here.
DATA = """
rng = np.random.default_rng(7)
X = rng.standard_normal((90, 6)) @ np.diag([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])
y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 1.5).astype(np.int64)
"""


def data() -> tuple[np.ndarray, np.ndarray]:
    scope: dict = {"np": np}
    exec(DATA, scope)
    return scope["X"], scope["y"]


def test_the_array_and_namespace_objects_answer_as_the_standard_asks(daemon: Daemon) -> None:
    answers = run_program(
        daemon,
        """
        import json, cupy

        def error(call):
            try:
                call()
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return "no error"

        x = cupy.arange(24.0).reshape(2, 3, 4)
        info = cupy.__array_namespace_info__()
        dev = cupy.cuda.Device(0)
        print(json.dumps({
            "namespace": [x.__array_namespace__() is cupy, x.__array_namespace__(api_version="2023.12") is cupy,
                          x.__array_namespace__(api_version="2024.12") is cupy],
            "version": cupy.__array_api_version__,
            "bad version": error(lambda: x.__array_namespace__(api_version="2099.12")),
            "device": [isinstance(x.device, cupy.cuda.Device), x.device.id, x.device == dev, dev == x.device,
                       len({x.device, x[0].device, info.default_device()}), x.device == "cpu"],
            "to_device": [x.to_device(x.device) is x, x.to_device(dev) is x],
            "to cpu": error(lambda: x.to_device("cpu")),
            "mT": [list(x.mT.shape), cupy.asnumpy(x.mT).tolist(), list(x[0].mT.shape)],
            "mT of 1-D": error(lambda: x[0, 0].mT),
            "dlpack": [hasattr(x, "__dlpack__"), hasattr(x, "__dlpack_device__")],
            "capabilities": info.capabilities(),
            "default_device": [info.default_device() == x.device, [d == x.device for d in info.devices()]],
            "default_dtypes": {k: str(v) for k, v in info.default_dtypes(device=x.device).items()},
            "dtypes": [str(v) for v in info.dtypes().values()],
            "real floating": list(info.dtypes(kind="real floating")),
            "bool and complex": list(info.dtypes(kind=("bool", "complex floating"))),
            "bad kind": error(lambda: info.dtypes(kind="float")),
            "other device": error(lambda: info.dtypes(device="cpu")),
        }))
        """,
    )
    assert answers["namespace"] == [True, True, True]
    assert answers["version"] == "2024.12"
    assert answers["bad version"] == 'ValueError: Version "2099.12" of the Array API Standard is not supported.'
    assert answers["device"] == [True, 0, True, True, 1, False]
    assert answers["to_device"] == [True, True]
    assert answers["to cpu"].startswith("ValueError: cannot move a remote array to 'cpu': a remote lease has one GPU")
    assert "\n" not in answers["to cpu"]
    host = np.arange(24.0).reshape(2, 3, 4)
    assert answers["mT"] == [[2, 4, 3], np.swapaxes(host, -1, -2).tolist(), [4, 3]]
    assert answers["mT of 1-D"] == "ValueError: matrix transpose with ndim < 2 is undefined"
    assert answers["dlpack"] == [False, False]  # the memory is on the server: no capsule to offer here
    assert answers["capabilities"] == {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}
    assert answers["default_device"] == [True, [True]]
    assert answers["default_dtypes"] == {
        "real floating": "float64",
        "complex floating": "complex128",
        "integral": "int64",
        "indexing": "int64",
    }
    assert answers["dtypes"] == [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]  # not float16: CuPy's arrays hold it, but it is not one of the standard's dtypes
    assert answers["real floating"] == ["float32", "float64"]
    assert answers["bool and complex"] == ["bool", "complex64", "complex128"]
    assert answers["bad kind"] == "ValueError: unsupported kind: 'float'"
    assert answers["other device"].startswith("ValueError: Device not understood")


def test_array_api_compat_gives_a_namespace_whose_functions_run_remotely(daemon: Daemon) -> None:
    pytest.importorskip("array_api_compat", reason="array-api-compat is not installed (the dev extra)")
    answers = run_program(
        daemon,
        """
        import json, cupy, numpy as np, array_api_compat

        x = cupy.asarray(np.arange(12.0).reshape(3, 4))
        xp = array_api_compat.array_namespace(x)
        results = {
            "matrix_norm": xp.linalg.matrix_norm(x),
            "vecdot": xp.vecdot(x, x),
            "cumulative_sum": xp.cumulative_sum(x, axis=1),
            "unique_values": xp.unique_values(xp.asarray([3, 1, 3, 2])),
            "mean": xp.mean(x, axis=0),
            "astype": xp.astype(x, xp.float32),
            "permute_dims": xp.permute_dims(x, (1, 0)),
        }
        print(json.dumps({
            "namespace": xp.__name__,
            "compat": [array_api_compat.is_cupy_array(x), array_api_compat.device(x) == x.device,
                       array_api_compat.to_device(x, x.device) is x],
            "remote": {k: [type(v) is cupy.ndarray, type(v).__module__] for k, v in results.items()},
            "values": {k: cupy.asnumpy(v).tolist() for k, v in results.items()},
            "dtypes": {k: str(v.dtype) for k, v in results.items()},
        }))
        """,
    )
    assert answers["namespace"] == "array_api_compat.cupy"
    assert answers["compat"] == [True, True, True]
    for name, (is_cupy, module) in answers["remote"].items():
        assert is_cupy and module.startswith("bitshare.remote.cupy"), name  # arrays on the worker, not here
    host = np.arange(12.0).reshape(3, 4)
    expected = {
        "matrix_norm": np.linalg.matrix_norm(host),
        "vecdot": np.vecdot(host, host),
        "cumulative_sum": np.cumulative_sum(host, axis=1),
        "unique_values": np.unique_values(np.asarray([3, 1, 3, 2])),
        "mean": np.mean(host, axis=0),
        "astype": host.astype(np.float32),
        "permute_dims": np.permute_dims(host, (1, 0)),
    }
    for name, value in expected.items():
        found = np.asarray(answers["values"][name])
        if name == "unique_values":  # the standard leaves their order open (NumPy 2.3 stopped sorting them)
            found = np.sort(found)
        want = np.sort(value) if name == "unique_values" else value
        np.testing.assert_allclose(found, want, rtol=1e-12, err_msg=name)
        assert answers["dtypes"][name] == str(value.dtype), name


# Each estimator: its class, its parameters, and the methods (called on X) and fitted attributes compared.
ESTIMATORS = {
    "PCA": (
        "decomposition.PCA",
        {"n_components": 2, "svd_solver": "full"},
        ["transform", "explained_variance_", "explained_variance_ratio_", "components_", "mean_"],
    ),
    "LinearDiscriminantAnalysis": (
        "discriminant_analysis.LinearDiscriminantAnalysis",
        {},
        ["predict", "predict_proba", "transform", "coef_", "intercept_", "means_", "classes_"],
    ),
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_scikit_learn_fits_on_remote_arrays_as_on_numpy(daemon: Daemon, name: str) -> None:
    pytest.importorskip("scipy", reason="SciPy is not installed (the dev extra)")
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (the dev extra)")
    where, parameters, compared = ESTIMATORS[name]
    module, _, cls = where.rpartition(".")
    answers = run_program(
        daemon,
        f"""
        import importlib, json, cupy, numpy as np, sklearn

        sklearn.set_config(array_api_dispatch=True)
        {textwrap.indent(DATA, " " * 8).strip()}
        Xg, yg = cupy.asarray(X), cupy.asarray(y)
        fitted = getattr(importlib.import_module("sklearn.{module}"), "{cls}")(**{parameters!r}).fit(Xg, yg)
        found = {{k: getattr(fitted, k) for k in {compared!r}}}
        out = {{k: v(Xg) if callable(v) else v for k, v in found.items()}}
        print(json.dumps({{
            "remote": {{k: type(v) is cupy.ndarray for k, v in out.items()}},
            "values": {{k: cupy.asnumpy(v).tolist() for k, v in out.items()}},
        }}))
        """,
        timeout=200,
    )
    assert answers["remote"] == dict.fromkeys(compared, True)  # results and fitted attributes stay on the GPU
    X, y = data()
    importlib.import_module(f"sklearn.{module}")
    fitted = getattr(getattr(sklearn, module), cls)(**parameters).fit(X, y)
    for attribute in compared:
        expected = getattr(fitted, attribute)
        expected = expected(X) if callable(expected) else expected
        value = np.asarray(answers["values"][attribute])
        if attribute in ("predict", "classes_"):
            np.testing.assert_array_equal(value, expected, err_msg=attribute)
        else:  # the same LAPACK on a simulated GPU; cuSOLVER on a real one differs in the last digits
            np.testing.assert_allclose(value, expected, rtol=1e-7, atol=1e-9, err_msg=attribute)
