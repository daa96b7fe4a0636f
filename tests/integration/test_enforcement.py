"""Enforcement on simulated GPUs, end to end: the agent, the watchdog, live resize and revoke.

Each test runs a real daemon and a real ``bitshare run`` whose command is a Python program
holding simulated device memory (tests/apps/simgpu_app.py), driven line by line.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from bitshare import simgpu
from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, refused_start, run_cli, wait_for
from ..support.leased_app import LeasedApp

APP = Path(__file__).resolve().parent.parent / "apps" / "simgpu_app.py"
GRACE_S = 2.0
TTL_S = 3.0
FAST = ("--simulate", "1x16GiB", "--grace", str(GRACE_S), "--sample-interval", "0.1")


@pytest.fixture
def apps(daemon_fast: Daemon, tmp_path: Path) -> Iterator[Callable[..., LeasedApp]]:
    started: list[LeasedApp] = []

    def start(*run_args: str) -> LeasedApp:
        app = LeasedApp(daemon_fast, tmp_path, APP, *run_args)
        started.append(app)
        return app

    yield start
    for app in started:
        app.close()


@pytest.fixture
def daemon_fast(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon(*FAST)


def only_lease(daemon: Daemon) -> pb.Lease:
    with daemon.client() as client:
        leases = client.all_leases()
    assert len(leases) == 1, leases
    return leases[0]


def measured(daemon: Daemon, used_mib: int) -> Callable[[], pb.Lease | None]:
    """A predicate: the only lease, once the daemon has measured ``used_mib`` on it."""

    def check() -> pb.Lease | None:
        lease = only_lease(daemon)
        return lease if lease.usage.HasField("sampled_at") and lease.usage.used_mib == used_mib else None

    return check


def test_the_agent_holds_the_process_to_its_partition(daemon_fast: Daemon, apps: Callable[..., LeasedApp]) -> None:
    app = apps("-m", "1GiB")
    assert app.ask("alloc 600") == "ok 600"
    refused = app.ask("alloc 600")
    assert refused.startswith("oom out of memory allocating 629,145,600 bytes"), refused
    assert app.ask("limit") == "limit 1024"
    assert app.ask("agent") == "agent bitshare.simgpu"
    lease = wait_for(measured(daemon_fast, 600), 10, "the daemon to measure 600 MiB")
    assert lease.enforcement == "agent"
    assert [p.pid for p in lease.usage.processes] == [app.pid()]
    assert app.ask("exit") == ""
    assert app.proc.wait(timeout=15) == 0


def test_without_the_agent_the_watchdog_protects_the_lease(daemon_fast: Daemon, apps: Callable[..., LeasedApp]) -> None:
    app = apps("-m", "1GiB", "--no-agent")
    assert app.ask("agent") == "agent none"
    assert app.ask("alloc 100") == "ok 100"
    lease = wait_for(measured(daemon_fast, 100), 10, "the daemon to measure 100 MiB")
    assert lease.enforcement == "watchdog"


def test_a_process_over_its_partition_is_warned_then_ended(daemon_fast: Daemon, apps: Callable[..., LeasedApp]) -> None:
    app = apps("-m", "1GiB", "--no-agent")
    assert app.ask("unlimit") == "ok"  # an application that ignores the cooperative limit
    assert app.ask("alloc 1500") == "ok 1500"
    lease_id = only_lease(daemon_fast).id
    wait_for(lambda: "over its 1024 MiB partition" in app.stderr(), 10, "the holder to be warned")
    assert app.proc.wait(timeout=GRACE_S + 20) == 128 + signal.SIGTERM
    with daemon_fast.client() as client:
        ended = client.get(lease_id)
        events = [e.kind for e in client.events(lease_id=lease_id)]
    assert ended.state == pb.LEASE_STATE_REVOKED
    assert ended.end_reason.startswith("over its partition: uses 1500 MiB on GPU 0"), ended.end_reason
    assert "over_limit" in events


def test_a_lease_back_within_its_partition_is_cleared(make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = make_daemon("--simulate", "1x16GiB", "--grace", "30", "--sample-interval", "0.1")  # time to free memory
    app = LeasedApp(daemon, tmp_path, APP, "-m", "1GiB", "--no-agent")
    assert app.ask("unlimit") == "ok"
    assert app.ask("alloc 1500") == "ok 1500"
    wait_for(lambda: "over its 1024 MiB partition" in app.stderr(), 10, "the holder to be warned")
    assert app.ask("free") == "ok 0"
    wait_for(lambda: "back within its partition" in app.stderr(), 10, "the warning to be cleared")
    assert app.proc.poll() is None
    assert only_lease(daemon).state == pb.LEASE_STATE_ACTIVE
    app.close()


def test_a_shrink_is_applied_live_and_enforced_after_the_grace_period(
    daemon_fast: Daemon, apps: Callable[..., LeasedApp]
) -> None:
    app = apps("-m", "2GiB")
    assert app.ask("alloc 1500") == "ok 1500"
    lease_id = only_lease(daemon_fast).id
    with daemon_fast.client() as client:
        client.resize(lease_id, memory_mib=1024)
    wait_for(lambda: app.ask("limit") == "limit 1024", 10, "the agent to apply the new limit")
    assert f"lease {lease_id} resized to 1024 MiB" in app.stderr()
    assert app.ask("alloc 10").startswith("oom")  # the new limit holds for new allocations
    # Still holding 1500 MiB of a 1024 MiB partition: warned, then ended after the grace period.
    wait_for(lambda: "over its 1024 MiB partition" in app.stderr(), 10, "the holder to be warned")
    assert app.proc.wait(timeout=GRACE_S + 20) == 128 + signal.SIGTERM
    with daemon_fast.client() as client:
        assert client.get(lease_id).end_reason.startswith("over its partition")


def test_a_grow_is_applied_live(daemon_fast: Daemon, apps: Callable[..., LeasedApp]) -> None:
    app = apps("-m", "1GiB")
    assert app.ask("alloc 1000") == "ok 1000"
    assert app.ask("alloc 500").startswith("oom")
    with daemon_fast.client() as client:
        client.resize(only_lease(daemon_fast).id, memory_mib=2048)
    wait_for(lambda: app.ask("limit") == "limit 2048", 10, "the agent to apply the new limit")
    assert app.ask("alloc 500") == "ok 1500"


def test_a_child_process_inherits_the_limit_and_counts_for_the_lease(
    daemon_fast: Daemon, apps: Callable[..., LeasedApp]
) -> None:
    app = apps("-m", "1GiB")
    assert app.ask("alloc 300") == "ok 300"
    assert app.ask("child 2000").startswith("child oom out of memory")
    assert app.ask("child 400") == "child ok 400 of 1024"
    lease = wait_for(measured(daemon_fast, 700), 10, "the daemon to count parent and child")
    # The child refused at 2000 MiB still has the device open, holding nothing.
    assert sorted(p.used_mib for p in lease.usage.processes) == [0, 300, 400]


def test_revoke_ends_the_command_even_when_its_holder_is_frozen(
    daemon_fast: Daemon, apps: Callable[..., LeasedApp]
) -> None:
    app = apps("-m", "1GiB")
    app_pid = app.pid()
    lease_id = only_lease(daemon_fast).id
    wait_for(lambda: only_lease(daemon_fast).enforcement != "none", 10, "the daemon to know the process")
    app.proc.send_signal(signal.SIGSTOP)  # the holder cannot act; the daemon must
    try:
        with daemon_fast.client() as client:
            client.revoke(lease_id, "maintenance")
        wait_for(lambda: not psutil.pid_exists(app_pid) or _zombie(app_pid), GRACE_S + 10, "the command to end")
    finally:
        app.proc.send_signal(signal.SIGCONT)
    assert "enforcement.signal" in daemon_fast.log()


def test_a_vanished_holder_loses_its_lease_at_the_ttl_and_its_command_is_ended(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = make_daemon(*FAST, "--lease-ttl", str(TTL_S))
    app = LeasedApp(daemon, tmp_path, APP, "-m", "1GiB")
    try:
        app_pid = app.pid()
        lease_id = only_lease(daemon).id
        wait_for(lambda: only_lease(daemon).enforcement != "none", 10, "the daemon to know the process")
        app.proc.send_signal(signal.SIGSTOP)  # the client host vanishes: no heartbeat, no release
        frozen_at = time.monotonic()
        with daemon.client() as client:
            wait_for(lambda: client.get(lease_id).state == pb.LEASE_STATE_EXPIRED, TTL_S + 10, "the lease to expire")
            assert time.monotonic() - frozen_at >= TTL_S - 1.0  # not before its TTL
            assert client.gpus()[0].granted_mib == 0
        wait_for(lambda: not psutil.pid_exists(app_pid) or _zombie(app_pid), GRACE_S + 10, "the command to end")
    finally:
        app.proc.send_signal(signal.SIGCONT)
        app.close()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_gpu_memory_outside_any_lease_is_reported(daemon_fast: Daemon) -> None:
    with daemon_fast.client() as client:
        info = client.server_info()
        gpu = client.gpus()[0]
    pool = simgpu.DevicePool(0, gpu.uuid, 0, Path(info.simgpu_directory))
    held = pool.empty(64 * 1024 * 1024, "uint8")

    def unleased() -> list[pb.ProcessUsage]:
        with daemon_fast.client() as client:
            return list(client.gpus()[0].unleased)

    found = wait_for(unleased, 10, "the daemon to see the process")
    assert [(p.pid, p.used_mib) for p in found] == [(os.getpid(), 64)]
    smi = run_cli(daemon_fast, "smi")
    assert f"pid {os.getpid()}" in smi.stdout and "NOT UNDER A LEASE" in smi.stdout
    del held


def test_a_process_named_for_another_lease_is_refused_with_a_warning(
    daemon_fast: Daemon, apps: Callable[..., LeasedApp]
) -> None:
    app = apps("-m", "1GiB")
    app_pid = app.pid()
    wait_for(lambda: only_lease(daemon_fast).enforcement != "none", 10, "the daemon to know the process")
    with daemon_fast.client() as client:
        other = client.request(LeaseRequest(memory_mib=512))
        call = client.leases.AttachLease(
            iter([pb.AttachRequest(lease_id=other.id, pids=[app_pid])]), metadata=client.metadata, timeout=10
        )
        events = iter(call)
        assert next(events).kind == pb.LeaseEvent.KIND_SNAPSHOT
        warning = next(events)
        call.cancel()
        assert warning.kind == pb.LeaseEvent.KIND_WARNING
        assert warning.message == f"processes not measured: process {app_pid} was named for another lease"
        assert client.get(other.id).enforcement == "none"  # nothing was taken from the other lease


def test_mps_on_is_refused_on_simulated_gpus(tmp_path: Path) -> None:
    state, socket = tmp_path / "s", f"unix:{tmp_path / 's.sock'}"
    done = refused_start("--simulate", "1x16GiB", "--mps", "on", "--state-dir", str(state), "--listen", socket)
    assert done.returncode == 78
    assert "mps = on needs NVIDIA GPUs" in done.stderr
    assert not (tmp_path / "s" / "state.db").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--mps", "maybe", "--mps must be auto, on or off"),
        ("--watchdog", "kill", "--watchdog must be enforce, warn or off"),
        ("--grace", "-1", "--grace must be >= 0 seconds"),
        ("--sample-interval", "0.001", "--sample-interval must be >= 0.05 seconds"),
    ],
)
def test_bad_enforcement_flags_are_refused(flag: str, value: str, message: str) -> None:
    done = refused_start(flag, value)
    assert done.returncode == 2
    assert message in done.stderr
