"""Remote PyTorch against PyTorch's own operator database, a fixed slice of it: each operator's
sample inputs run on the CPU and on the lease's (simulated) GPU through ``bitshare run``, and
every one of these operators must agree (benchmarks/torch_conformance.py runs the whole of it);
and two results the whole run found wrong: one the worker holds in another size than PyTorch's
meta kernel says, and an operator's undefined result; and a tensor read back in chunks."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest

from ..support.harness import ROOT, Daemon, run_cli

pytest.importorskip("torch")
# What op_db's module needs beyond torch; the module itself is imported by the leased program only,
# as importing it changes torch's global state (backend flags, TorchScript's call) in this process.
pytest.importorskip("expecttest", reason="torch.testing._internal's op_db needs expecttest")

SCRIPT = ROOT / "benchmarks" / "torch_conformance.py"

# Elementwise, reductions, matmul and linalg, indexing and scatter/gather, shapes and views,
# convolution and pooling, sorting, joining and splitting, masks, scans; matmul of a vector and
# stft change views in place (squeeze_, transpose_); expand_as and fft.ifft give results that are
# a one-element tensor of stride 0 and a conjugate view.
SLICE = (
    "add",
    "mul",
    "div.no_rounding_mode",
    "exp",
    "sigmoid",
    "clamp",
    "sum",
    "mean",
    "amax",
    "var",
    "mm",
    "bmm",
    "addmm",
    "matmul",
    "linalg.solve",
    "linalg.qr",
    "index_select",
    "index_add",
    "scatter_add",
    "gather",
    "take_along_dim",
    "reshape",
    "permute",
    "transpose",
    "narrow",
    "as_strided",
    "nn.functional.conv2d",
    "nn.functional.max_pool2d",
    "nn.functional.avg_pool2d",
    "sort",
    "topk",
    "cat",
    "stack",
    "split",
    "where",
    "masked_fill",
    "masked_select",
    "cumsum",
    "stft",
    "expand_as",
    "fft.ifft",
    "softmax",  # with a dtype: placed "where the input is", a remote tensor's C++ device (meta)
    "nn.functional.pad.circular",
)


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--simulate", "1x16GiB")


def outcomes(daemon: Daemon, names: tuple[str, ...]) -> dict[str, dict]:
    """Each named operator's outcome, from the script's measuring part run as a leased program."""
    done = run_cli(
        daemon,
        *("run", "-p", "0.5", "--", sys.executable, str(SCRIPT), "--inside"),
        *("--ops", ",".join(names), "--samples", "4"),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[-1] == {"done": True}, done.stdout[-2000:]
    return {line["op"]: line for line in lines if "outcome" in line}


def test_a_slice_of_op_db_agrees_with_the_cpu(daemon: Daemon) -> None:
    found = outcomes(daemon, SLICE)
    assert set(SLICE) <= set(found), set(SLICE) - set(found)  # (a name selects its variants too)
    failing = {op: f"{r['outcome']}: {r['reason']}" for op, r in found.items() if r["outcome"] != "agree"}
    assert not failing, failing
    assert all(r["samples"] >= 1 for r in found.values())  # (agreement over at least one compared sample)


# native_batch_norm in eval mode: PyTorch's meta kernel says its saved mean has one value per
# channel, the CPU kernel (as CUDA's) gives an empty one.
DISAGREEING_META = """
import torch
parts = [torch.randn(3, 2), torch.ones(2), torch.zeros(2), torch.zeros(2), torch.ones(2)]
out = torch.native_batch_norm(*(t.cuda() for t in parts), False, 0.1, 1e-5)
print("output agrees", torch.allclose(out[0].cpu(), torch.native_batch_norm(*parts, False, 0.1, 1e-5)[0]))
try:
    print("saved mean", out[1].cpu().tolist())
except RuntimeError as exc:
    print("saved mean raised", str(exc).splitlines()[0])
"""


def test_a_result_the_worker_holds_in_another_size_is_refused_not_read_as_garbage(daemon: Daemon) -> None:
    done = run_cli(daemon, "run", "-p", "0.5", "--", sys.executable, "-c", DISAGREEING_META, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "output agrees True"
    assert lines[1].startswith("saved mean raised the GPU server holds 0 bytes for this tensor of shape [2]"), lines


# The first convolution's input needs no gradient: convolution_backward's first result is undefined.
UNDEFINED_RESULT = """
import torch
def grads(device):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3).to(device)
    conv(torch.randn(2, 3, 7, 7).to(device)).square().sum().backward()
    return [p.grad.cpu() for p in conv.parameters()]
remote, cpu = grads("cuda"), grads("cpu")
print("gradients agree", all(torch.allclose(r, c, rtol=1e-4, atol=1e-5) for r, c in zip(remote, cpu)))
"""


def test_an_operator_with_an_undefined_result_runs_remotely(daemon: Daemon) -> None:
    done = run_cli(daemon, "run", "-p", "0.5", "--", sys.executable, "-c", UNDEFINED_RESULT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["gradients agree True"]


# Transfers in chunks on the stream, as across the network (no data socket): what is read back is
# the program's own tensor, writable.
CHUNKED_READ = """
import bitshare.remote.bulk as bulk
bulk.DataSocket.open = classmethod(lambda cls, *args, **kwargs: None)
import torch
from bitshare.remote.session import session
x = torch.arange(12.0).reshape(3, 4)
back = (x.cuda() * 2).cpu()
back += 1
print("chunks", session()._data is None, torch.equal(back, x * 2 + 1))
"""


def test_a_tensor_read_back_in_chunks_is_the_programs_own(daemon: Daemon) -> None:
    done = run_cli(daemon, "run", "-p", "0.5", "--", sys.executable, "-W", "error", "-c", CHUNKED_READ, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["chunks True True"]
    assert "not writable" not in done.stderr
