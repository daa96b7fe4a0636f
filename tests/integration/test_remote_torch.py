"""Remote PyTorch on simulated GPUs: unmodified PyTorch programs through ``bitshare run``, checked
against the CPU; what is not covered failing in one line; the worker's operators, memory, crashes
and resizes, over a real daemon and real gRPC."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from bitshare.client.connection import LeaseRequest  # noqa: E402
from bitshare.protocol.v1 import bitshare_pb2 as pb  # noqa: E402

from ..support.harness import ROOT, Daemon, finish, run_cli, spawn_cli, wait_for  # noqa: E402
from ..support.remote_wire import RawSession, results  # noqa: E402

Op = pb.ROp
MIB = 1024 * 1024


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon("--simulate", "1x16GiB", "--sample-interval", "0.1", "--grace", "2")


def run_python(daemon: Daemon, *args: str, size: tuple[str, str] = ("-p", "0.25"), timeout: float = 120):
    done = run_cli(daemon, "run", *size, "--", sys.executable, *args, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


EXAMPLES = {
    "torch_inference.py": "inference matches the CPU within tolerance",
    "torch_train_cnn.py": "training matches the CPU step by step",
    "torch_tensor_ops.py": "tensor operations match the CPU",
    "torch_out_of_memory.py": "after the failure the device works: 512.0",
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_examples_run_unchanged_and_match_the_cpu(daemon: Daemon, example: str) -> None:
    if example == "torch_inference.py":
        pytest.importorskip("torchvision")
    code, out, err = run_python(daemon, str(ROOT / "examples" / example))
    assert code == 0, out + err
    assert EXAMPLES[example] in out, out
    assert "Traceback" not in err, err


def test_the_program_sees_the_leased_gpu(daemon: Daemon) -> None:
    program = (
        "import torch\n"
        "p = torch.cuda.get_device_properties(0)\n"
        "x = torch.ones(3, device='cuda')\n"
        "print(torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.current_device())\n"
        "print(p.name, p.total_memory // 2**20, torch.cuda.get_device_capability())\n"
        "print(x.device, x.is_cuda, type(x).__mro__[1].__name__, x)\n"
        "h = torch.arange(4.0)\n"  # the ways of .to() and .cuda() a program uses
        "print(h.to('cuda', non_blocking=True).device, h.to('cuda', torch.float64, True).dtype, "
        "h.cuda(non_blocking=True).sum().item(), h.to(0).to('cpu', non_blocking=True).tolist())\n"
    )
    code, out, err = run_python(daemon, "-c", program, size=("-m", "3000"))
    assert code == 0, err
    available, name, tensor, moved = out.splitlines()
    assert moved == "cuda:0 torch.float64 6.0 [0.0, 1.0, 2.0, 3.0]"
    assert available == "True 1 0"
    assert name.startswith("bitshare simulated GPU SIM-00-16384 (CPU) 3000 ")
    assert tensor == "cuda:0 True Tensor tensor([1., 1., 1.], device='cuda:0')"


def test_one_round_trip_per_sync(daemon: Daemon) -> None:
    program = (
        "import torch\n"
        "from bitshare.remote.session import session\n"
        "x = torch.zeros(8, device='cuda')\n"
        "torch.cuda.synchronize()\n"
        "trips = session().round_trips\n"
        "for _ in range(2000):\n"
        "    x = x + 1\n"
        "print(x.sum().item(), session().round_trips - trips)\n"
        "mask = x > 1000\n"
        "trips = session().round_trips\n"
        "print(x[mask].shape[0], session().round_trips - trips)\n"  # the shape comes with the one answer
    )
    code, out, err = run_python(daemon, "-c", program)
    assert code == 0, err
    assert out.split() == ["16000.0", "1", "8", "1"]


NOT_COVERED = r"""
import warnings, torch
def said(what, call):
    try:
        call()
    except Exception as exc:
        print(what, type(exc).__name__, str(exc).splitlines()[0])
    else:
        print(what, "ran")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    f = torch.compile(lambda t: t * 2)
    print("compile", f(torch.ones(2, device="cuda")).tolist(), len(caught), str(caught[0].message).split(":")[0])
said("distributed", lambda: torch.distributed.init_process_group("nccl"))
said("graph", lambda: torch.cuda.CUDAGraph())
said("second gpu", lambda: torch.ones(1, device="cuda:1"))
said("generator", lambda: torch.randn(2, device="cuda", generator=torch.Generator()))
said("pin", lambda: torch.ones(2, device="cuda").pin_memory())
said("streams", lambda: torch.ones(2, device="cuda").record_stream(torch.cuda.current_stream()))
said("numpy", lambda: torch.ones(2, device="cuda").numpy())
lib = torch.library.Library("bitsharetest", "DEF")
lib.define("twice(Tensor x) -> Tensor")
lib.impl("twice", lambda x: x * 2, "CompositeExplicitAutograd")
said("custom op", lambda: torch.ops.bitsharetest.twice(torch.ones(2, device="cuda")))
said("resize", lambda: torch.ones(4, device="cuda").resize_(8))
said("cov", lambda: torch.cov(torch.randn(3, 4, device="cuda")))  # (a tensor PyTorch's C++ made on meta)
print("still works", (torch.ones(3, device="cuda") * 3).sum().item())
"""


def test_what_is_not_covered_fails_at_its_line_naming_itself(daemon: Daemon) -> None:
    code, out, err = run_python(daemon, "-c", NOT_COVERED)
    assert code == 0, err
    said = dict(line.split(" ", 1) for line in out.splitlines() if not line.startswith(("second", "still", "custom")))
    lines = out.splitlines()
    assert said["compile"] == "[2.0, 2.0] 1 torch.compile runs the model eagerly under bitshare's remote PyTorch"
    assert said["distributed"].startswith(
        "NotImplementedError torch.distributed (NCCL, process groups) is not supported"
    )
    assert said["graph"].startswith("NotImplementedError CUDA graphs (torch.cuda.CUDAGraph) are not supported")
    assert "second gpu RuntimeError CUDA error: invalid device ordinal 1: the lease has one GPU" in out, out
    assert said["generator"].startswith("NotImplementedError aten::randn: a torch.Generator of its own on a remote GPU")
    assert said["pin"].startswith("RuntimeError cannot pin")
    assert said["streams"] == "ran"  # (one stream: nothing to record)
    assert said["numpy"].startswith("TypeError can't convert cuda:0 device type tensor to numpy")
    assert "custom op NotImplementedError bitsharetest::twice is a custom operator" in out
    assert said["resize"].startswith("NotImplementedError aten::resize_ changes the shape of a remote GPU tensor")
    assert said["cov"].startswith("NotImplementedError aten::div: an argument was made by PyTorch's C++ on a remote")
    assert lines[-1] == "still works 9.0"


def test_the_worker_runs_only_aten_operators_on_tensors(daemon: Daemon) -> None:
    """Sent by hand, as no interposer would: names outside the allow-list derived from ATen's
    schemas, and torch constants that are not torch's, are refused one by one; the session goes on."""
    x = pb.RValue(handle=1)
    ones = Op(
        kind=Op.KIND_ATEN,
        name="ones.default",
        args=[pb.RValue(list=pb.RList(items=[pb.RValue(int=3)]))],
        kwargs={"device": pb.RValue(torch="device.cuda")},
        out=[1],
    )
    refused = {
        "from_file.default": [pb.RValue(str="/etc/shadow")],  # reads a file on the GPU server
        "os.system": [pb.RValue(str="true")],
        "add": [x, x],  # no overload
        "_print.default": [pb.RValue(str="hi")],  # no tensor in or out
    }
    with daemon.client() as client:
        lease = client.request(LeaseRequest(memory_mib=256))
        session = RawSession(client, lease.id)
        try:
            [made] = results(session.sync(ones))
            assert not made.HasField("error"), made.error
            for name, args in refused.items():
                [result] = results(session.sync(Op(kind=Op.KIND_ATEN, name=name, args=args, out=[2])))
                assert result.error.type == "NotImplementedError", name
                assert "cannot run remotely" in result.error.message, name
            bad_constant = Op(
                kind=Op.KIND_ATEN,
                name="ones.default",
                args=[pb.RValue(list=pb.RList(items=[pb.RValue(int=1)]))],
                kwargs={"dtype": pb.RValue(torch="dtype.__class__")},
                out=[3],
            )
            [result] = results(session.sync(bad_constant))
            assert (
                result.error.type == "ValueError" and "unknown torch constant 'dtype.__class__'" in result.error.message
            )
            total = Op(kind=Op.KIND_ATEN, name="sum.default", args=[x], out=[4])
            item = Op(kind=Op.KIND_ATEN, name="_local_scalar_dense.default", args=[pb.RValue(handle=4)])
            [result] = results(session.sync(total, item))
            assert not result.HasField("error") and result.values[-1].float == 3.0
        finally:
            session.close()


TORCH_HOLDER = """
import pathlib, sys, time
import torch
x = torch.ones(16, 1024, 1024, device="cuda")  # 64 MiB on the worker
print(x[0, 0, 0].item(), flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print(x.sum().item())
"""


def test_the_workers_tensors_count_for_its_lease_and_a_crash_ends_that_lease_only(
    daemon: Daemon, tmp_path: Path
) -> None:
    err = tmp_path / "holder.err"
    proc = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", TORCH_HOLDER, str(tmp_path / "go"), stderr_path=err
    )

    def measured() -> pb.Lease | None:
        with daemon.client() as client:
            leases = client.all_leases()
        return leases[0] if leases and 64 <= leases[0].usage.used_mib <= 65 and leases[0].usage.processes else None

    try:
        lease = wait_for(measured, 60, "the daemon to measure the worker's 64 MiB of tensors")
    except AssertionError:
        proc.kill()
        raise AssertionError(f"holder: {err.read_text()}\ndaemon: {daemon.log()[-3000:]}") from None
    os.kill(lease.usage.processes[0].pid, signal.SIGSEGV)  # as a bad kernel would end it
    (tmp_path / "go").touch()
    code, _ = finish(proc, 60, err)
    assert code in (1, 128 + signal.SIGTERM)
    assert "crashed (killed by SIGSEGV)" in err.read_text()
    assert "Traceback" not in err.read_text()
    with daemon.client() as client:
        ended = client.get(lease.id)
    assert ended.state == pb.LEASE_STATE_REVOKED and ended.end_reason == "its remote worker crashed (killed by SIGSEGV)"
    code, out, stderr = run_python(daemon, "-c", "import torch; print(torch.arange(4, device='cuda').sum().item())")
    assert code == 0 and out.strip() == "6", stderr


TORCH_RESIZED = """
import pathlib, sys, time
import torch
print(torch.cuda.mem_get_info()[1] // 2**20, flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print(torch.cuda.mem_get_info()[1] // 2**20)
try:
    torch.zeros(300, 1024, 1024, dtype=torch.uint8, device="cuda").sum().item()  # 300 MiB: fitted 512, not 256
except torch.cuda.OutOfMemoryError:
    print("refused")
print(torch.ones(1024, device="cuda").sum().item())
"""


def test_a_resize_reaches_the_torch_worker_at_once(daemon: Daemon, tmp_path: Path) -> None:
    proc = spawn_cli(daemon, "run", "-m", "512", "--", sys.executable, "-c", TORCH_RESIZED, str(tmp_path / "go"))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "512"
    with daemon.client() as client:
        [lease] = client.all_leases()
        client.resize(lease.id, memory_mib=256)
    (tmp_path / "go").touch()
    code, out = finish(proc, 60)
    assert code == 0 and out.split() == ["256", "refused", "1024.0"]


def test_cupy_and_torch_share_the_programs_one_session(daemon: Daemon) -> None:
    program = (
        "import cupy, torch\n"
        "from bitshare.remote.session import session\n"
        "a = cupy.arange(6.0).reshape(2, 3)\n"
        "t = torch.arange(6.0, device='cuda').reshape(2, 3)\n"
        "print(float((a * 2).sum()), (t * 2).sum().item(), session().incarnation)\n"
    )
    code, out, err = run_python(daemon, "-c", program)
    assert code == 0, err
    assert out.split() == ["30.0", "30.0", "0"]


def test_the_sites_own_sitecustomize_still_runs_once(daemon: Daemon, tmp_path: Path) -> None:
    """bitshare's agent and remote PyTorch each shadow a sitecustomize: the program's own, further
    along its PYTHONPATH, runs once, after both."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os, sys\nsys.stderr.write(f'site ran in {os.getpid()}\\n')\n")
    env = {**daemon.env, "PYTHONPATH": str(site)}  # (bitshare run's own Python runs it too: another pid)
    program = (
        "import os, torch; print(os.getpid(), torch.cuda.is_available(), torch.ones(2, device='cuda').sum().item())"
    )
    done = run_cli(daemon, "run", "-p", "0.25", "--", sys.executable, "-c", program, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    pid, *said = done.stdout.split()
    assert said == ["True", "2.0"]
    assert done.stderr.count(f"site ran in {pid}\n") == 1, done.stderr


INDEXING = r"""
import torch
def work(on):
    x = torch.arange(24.0).reshape(4, 6).to(on)
    got = [x[[0, 2]], x[[True, False, True, False]], x[[0, 1], [2, 3]], x[:, [5, 0]], x[list(range(4)) * 3000]]
    y = torch.zeros(4, 6).to(on)
    y[[1, 3]] = 5.0
    y[y > 4] += 1
    y[0] = 7
    y[:, [0, 2]] = torch.ones(4, 2).to(on) * 2
    z = torch.arange(6).to(on)
    z[z > 2] = 0
    return [t.cpu() for t in (*got, y, z)]
print(all(torch.equal(a, b) for a, b in zip(work("cuda"), work("cpu"), strict=True)))
"""


def test_indexing_with_python_lists_and_setting_scalars_match_the_cpu(daemon: Daemon) -> None:
    """Lists in an index and a scalar assigned are made tensors by PyTorch's C++ on the indexed
    tensor's C++ device, which for a remote tensor is meta: they are made here instead."""
    code, out, err = run_python(daemon, "-c", INDEXING)
    assert code == 0, err
    assert out.strip() == "True"
