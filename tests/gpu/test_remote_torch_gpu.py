"""Remote PyTorch on a real GPU: the worker runs PyTorch on CUDA. The PyTorch examples, unmodified,
with local CUDA and through ``bitshare run --remote`` (each checks itself against the CPU), and a
partition that holds: past it, torch.cuda.OutOfMemoryError in the program."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from ..support.harness import ROOT, Daemon, run_cli

pytestmark = pytest.mark.gpu
pytest.importorskip("torch")

EXAMPLES = {
    "torch_inference.py": "inference matches the CPU within tolerance",
    "torch_train_cnn.py": "training matches the CPU step by step",
    "torch_tensor_ops.py": "tensor operations match the CPU",
    "torch_out_of_memory.py": "after the failure the device works: 512.0",
}


@pytest.fixture
def nvml_daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--backend", "nvml", "--mps", "off")


@pytest.mark.parametrize("mode", ["--remote", "--local"])
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_torch_examples_match_the_cpu_on_cuda(nvml_daemon: Daemon, example: str, mode: str) -> None:
    if example == "torch_inference.py":
        pytest.importorskip("torchvision")
    program = str(ROOT / "examples" / example)
    done = run_cli(nvml_daemon, "run", mode, "-m", "4096", "--", sys.executable, program, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert EXAMPLES[example] in done.stdout, done.stdout


def test_the_remote_device_is_the_leased_gpu(nvml_daemon: Daemon) -> None:
    program = (
        "import torch; p = torch.cuda.get_device_properties(0); "
        "print(p.total_memory // 2**20, p.major >= 7, 'simulated' in p.name)"
    )
    done = run_cli(nvml_daemon, "run", "--remote", "-m", "2048", "--", sys.executable, "-c", program, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2048", "True", "False"]
