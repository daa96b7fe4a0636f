"""Hard partitions on a real NVIDIA GPU: MPS, the in-process agent, the watchdog, live resize and revoke.

Run by tests/gpu/run.sh on a GPU host. Each test runs real daemons on the NVML backend
and real ``bitshare run`` processes with CuPy or PyTorch programs from tests/apps/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..support.harness import Daemon, run_cli, wait_for
from ..support.leased_app import LeasedApp

pytestmark = pytest.mark.gpu

APPS = Path(__file__).resolve().parent.parent / "apps"
CUPY_APP = APPS / "cupy_app.py"
TORCH_PROBE = APPS / "torch_probe.py"
GRACE_S = 3.0
ENFORCEMENT = ("--backend", "nvml", "--grace", str(GRACE_S), "--sample-interval", "0.5")
MATCH_MIB = 64  # the watchdog's figure against nvidia-smi's


@pytest.fixture
def mps_daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    if shutil.which("nvidia-cuda-mps-control") is None:
        pytest.skip("nvidia-cuda-mps-control is not installed here")
    try:
        return make_daemon(*ENFORCEMENT, "--mps", "on", name="mps")
    except AssertionError as exc:
        if "MPS cannot run" in str(exc):  # a container without what MPS needs: say so, do not fail
            pytest.skip(f"MPS cannot run on this host: {exc}")
        raise


@pytest.fixture
def plain_daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon(*ENFORCEMENT, "--mps", "off", name="plain")


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[..., LeasedApp]]:
    started: list[LeasedApp] = []

    def start(daemon: Daemon, *run_args: str) -> LeasedApp:
        app = LeasedApp(daemon, tmp_path, CUPY_APP, *run_args)
        started.append(app)
        return app

    yield start
    for app in started:
        app.close()


def partition_mib(daemon: Daemon, fraction: float) -> int:
    with daemon.client() as client:
        capacity = client.gpus()[0].capacity_mib
    return int(fraction * capacity)


def lease_of(daemon: Daemon, pid: int):
    with daemon.client() as client:
        for lease in client.all_leases():
            if any(p.pid == pid for p in lease.usage.processes):
                return lease
    return None


def torch_probe(daemon: Daemon, *run_args: str) -> dict:
    done = run_cli(daemon, "run", *run_args, "--", sys.executable, str(TORCH_PROBE), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----- MPS: the driver holds the process to its partition -------------------------------


def test_mps_holds_cupy_to_its_partition_and_reports_it(mps_daemon: Daemon, apps) -> None:
    partition = partition_mib(mps_daemon, 0.25)
    app = apps(mps_daemon, "-p", "0.25", "--no-agent")
    _, total = (int(x) for x in app.ask("meminfo", 120).split()[1:])
    assert partition - MATCH_MIB <= total <= partition, (total, partition)  # cudaMemGetInfo: the partition
    filled = int(app.ask("fill", 120).split()[1])
    assert partition - 2048 <= filled < partition, (filled, partition)  # out of memory at the partition
    lease = wait_for(lambda: lease_of(mps_daemon, app.pid()), 20, "the daemon to see the process")
    assert lease.enforcement == "mps"


def test_mps_holds_pytorch_to_its_partition(mps_daemon: Daemon) -> None:
    partition = partition_mib(mps_daemon, 0.25)
    probe = torch_probe(mps_daemon, "-p", "0.25", "--no-agent")
    assert partition - MATCH_MIB <= probe["total_mib"] <= partition, probe
    assert partition - 2048 <= probe["allocated_mib"] < partition, probe
    assert "out of memory" in probe["refused"].lower(), probe


def test_a_quarter_and_three_quarters_run_at_once_and_children_inherit_the_limit(mps_daemon: Daemon, apps) -> None:
    quarter = apps(mps_daemon, "-p", "0.25")
    rest = apps(mps_daemon, "-p", "0.75")
    for app in (quarter, rest):
        assert app.ask("alloc 1024", 120).startswith("ok")
    # Both spin at the same time: their windows overlap and both make progress.
    for app in (quarter, rest):
        app.send("spin 5")
    spins = [json.loads(app.receive(60)) for app in (quarter, rest)]
    overlap = min(s["ended"] for s in spins) - max(s["started"] for s in spins)
    assert overlap > 3.0 and all(s["steps"] > 0 for s in spins), spins
    child = json.loads(quarter.ask("child", 120))
    assert child["total_mib"] <= partition_mib(mps_daemon, 0.25), child  # MPS's limit reached the child


def test_the_watchdog_measures_what_nvml_reports(mps_daemon: Daemon, apps) -> None:
    app = apps(mps_daemon, "-p", "0.25")
    assert app.ask("alloc 2048", 120).startswith("ok")
    pid = app.pid()
    lease = wait_for(lambda: lease_of(mps_daemon, pid), 20, "the daemon to see the process")

    def settled():
        lease = lease_of(mps_daemon, pid)
        return lease if lease is not None and lease.usage.used_mib >= 2048 else None

    lease = wait_for(settled, 20, "the daemon to measure the allocation")
    smi = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = {int(p): int(m) for p, m in (line.split(",") for line in smi.strip().splitlines() if line.strip())}
    assert pid in used, smi
    assert abs(lease.usage.used_mib - used[pid]) <= MATCH_MIB, (lease.usage, used)


def test_a_dead_mps_control_daemon_is_restarted(mps_daemon: Daemon) -> None:
    pid_file = mps_daemon.tmp / "mps" / "gpu0" / "pipe" / "nvidia-cuda-mps-control.pid"
    old = int(pid_file.read_text())
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: "mps.restarted" in mps_daemon.log(), 30, "the daemon to restart MPS")
    assert int(pid_file.read_text()) != old
    done = run_cli(
        mps_daemon,
        "run",
        "-p",
        "0.25",
        "--",
        sys.executable,
        "-c",
        "import cupy, os; x = cupy.ones(1 << 20); print(os.environ['CUDA_MPS_PIPE_DIRECTORY'], float(x.sum()))",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(pid_file.parent), "1048576.0"]


# ----- the in-process agent: CuPy's pool and PyTorch's fraction, live -----------------


def test_the_agent_holds_cupy_and_pytorch_without_mps(plain_daemon: Daemon, apps) -> None:
    partition = partition_mib(plain_daemon, 0.25)
    app = apps(plain_daemon, "-p", "0.25")
    assert app.ask("limit", 120) == f"limit {partition}"
    assert app.ask(f"alloc {partition - 1024}", 120).startswith("ok")
    assert app.ask("alloc 2048", 120).startswith("oom")  # the pool refuses past the partition
    lease = wait_for(lambda: lease_of(plain_daemon, app.pid()), 20, "the daemon to see the process")
    assert lease.enforcement == "agent"
    probe = torch_probe(plain_daemon, "-p", "0.25")
    assert probe["agent"] == ["torch"], probe
    assert partition - 1024 <= probe["allocated_mib"] <= partition, probe


def test_a_running_cupy_application_is_resized_live(plain_daemon: Daemon, apps) -> None:
    half, quarter = partition_mib(plain_daemon, 0.5), partition_mib(plain_daemon, 0.25)
    app = apps(plain_daemon, "-p", "0.5")
    pid = app.pid()
    assert app.ask("limit", 120) == f"limit {half}"
    assert app.ask(f"alloc {quarter + 2048}", 120).startswith("ok")  # fits 50%, not 25%
    lease = wait_for(lambda: lease_of(plain_daemon, pid), 20, "the daemon to see the process")
    with plain_daemon.client() as client:
        client.resize(lease.id, fraction=0.25)
    wait_for(lambda: app.ask("limit") == f"limit {quarter}", 20, "the agent to apply the new size")
    assert app.ask("alloc 1024").startswith("oom")  # the new size holds at once
    assert app.ask("free").startswith("ok")  # back within the partition before the grace period ends
    assert app.ask(f"alloc {quarter - 1024}").startswith("ok")
    assert app.pid() == pid and app.proc.poll() is None  # the same process, never restarted


def test_revoke_ends_the_application_within_the_grace_period(plain_daemon: Daemon, apps) -> None:
    app = apps(plain_daemon, "-p", "0.25")
    assert app.ask("alloc 64", 120).startswith("ok")  # NVML lists a process once it has a CUDA context
    pid = app.pid()
    lease = wait_for(lambda: lease_of(plain_daemon, pid), 60, "the daemon to see the process")
    app.send("spin 600")
    started = time.monotonic()
    with plain_daemon.client() as client:
        client.revoke(lease.id, "gpu test")
    code = app.proc.wait(timeout=GRACE_S + 30)
    took = time.monotonic() - started
    assert code == 128 + signal.SIGTERM
    assert took <= GRACE_S + 1.0, took
