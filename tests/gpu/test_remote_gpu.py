"""Remote CuPy on a real GPU: the worker runs CuPy. The examples (RawKernel included) and the
conformance suite through ``bitshare run --remote``; the conformance suite with local CuPy too,
so the interposer is held to what CuPy itself does."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest

from ..support.harness import ROOT, Daemon, run_cli

pytestmark = pytest.mark.gpu

EXAMPLES = ["cupy_mlp.py", "cupy_kmeans.py", "cupy_fft_filter.py"]


@pytest.fixture
def nvml_daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--backend", "nvml", "--mps", "off")


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_examples_match_numpy_through_bitshare(nvml_daemon: Daemon, example: str) -> None:
    program = str(ROOT / "examples" / example)
    done = run_cli(nvml_daemon, "run", "--remote", "-p", "0.25", "--", sys.executable, program, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "result matches NumPy within tolerance" in done.stdout


@pytest.mark.parametrize("mode", ["--remote", "--local"])
def test_the_covered_surface_agrees_with_numpy_on_cupy(nvml_daemon: Daemon, mode: str) -> None:
    conformance = str(ROOT / "tests" / "apps" / "conformance.py")
    program = [sys.executable, "-W", "ignore", conformance]
    done = run_cli(nvml_daemon, "run", mode, "-p", "0.25", "--", *program, timeout=300)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and summary["failures"] == 0, done.stdout + done.stderr
