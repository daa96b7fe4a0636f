"""The lease service on real NVIDIA GPUs (NVML backend, CuPy). Run by tests/gpu/run.sh on a GPU host."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ..support.harness import Daemon, run_cli, spawn_cli, wait_for

pytestmark = pytest.mark.gpu

CUPY_PROBE = """
import json, os, sys, cupy
limit = int(os.environ["CUPY_GPU_MEMORY_LIMIT"])
mib = int(os.environ["BITSHARE_GPU_MEMORY_MIB"])
inside = cupy.zeros((mib - 256) * 1024 * 1024 // 4, dtype=cupy.float32)  # fits in the partition
inside += 1
refused = False
try:
    cupy.zeros(2 * limit // 4, dtype=cupy.float32)  # twice the partition: CuPy's pool limit refuses it
except cupy.cuda.memory.OutOfMemoryError:
    refused = True
print(json.dumps({"visible": os.environ["CUDA_VISIBLE_DEVICES"], "limit": limit, "mib": mib,
                  "device_count": cupy.cuda.runtime.getDeviceCount(), "refused": refused,
                  "sum": float(inside[:1024].sum())}))
"""


@pytest.fixture
def nvml_daemon(make_daemon) -> Daemon:
    return make_daemon("--backend", "nvml", "--lease-ttl", "10", "--mps", "off")


def test_nvml_inventory_matches_the_driver(nvml_daemon: Daemon) -> None:
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        total_mib = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
    finally:
        pynvml.nvmlShutdown()
    gpus = json.loads(run_cli(nvml_daemon, "list-gpus", "--json").stdout)
    assert gpus[0]["uuid"] == uuid and int(gpus[0]["total_mib"]) == total_mib
    assert gpus[0]["backend"] == "nvml" and not gpus[0].get("simulated", False)
    assert "SIMULATED" not in nvml_daemon.log()


def test_cupy_sees_only_its_gpu_and_its_partition(nvml_daemon: Daemon) -> None:
    done = run_cli(nvml_daemon, "run", "-p", "0.25", "--", sys.executable, "-c", CUPY_PROBE, timeout=180)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    gpus = json.loads(run_cli(nvml_daemon, "list-gpus", "--json").stdout)
    assert probe["visible"] == gpus[0]["uuid"] and probe["device_count"] == 1
    assert probe["limit"] == probe["mib"] * 1024 * 1024
    assert probe["refused"] is True and probe["sum"] == 1024.0


def test_four_quarter_leases_run_cupy_at_the_same_time(nvml_daemon: Daemon, tmp_path: Path) -> None:
    hold = (
        "import cupy, pathlib, sys, time; x = cupy.ones(1 << 20); pathlib.Path(sys.argv[1]).touch();"
        "d = time.monotonic() + 120\n"
        "while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < d: x += 1; time.sleep(0.01)"
    )
    procs = [
        spawn_cli(
            nvml_daemon,
            "run",
            "-p",
            "0.25",
            "--filter",
            "index=0",
            "--",
            sys.executable,
            "-c",
            hold,
            str(tmp_path / f"up{i}"),
            str(tmp_path / "stop"),
        )
        for i in range(4)
    ]
    wait_for(lambda: all((tmp_path / f"up{i}").exists() for i in range(4)), 120, "four CuPy programs running")
    (tmp_path / "stop").touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
