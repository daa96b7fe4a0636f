"""Admin verbs through the real CLI: revoke ends the holder's command, resize, drain, priority, events."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
from pathlib import Path

from bitshare.client.connection import LeaseRequest, connect
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import (
    Daemon,
    bitshare_cmd,
    daemon_with_token,
    run_cli,
    spawn_cli,
    wait_for,
)
from ..support.holders import hold_command


def test_revoke_ends_the_command_and_moves_the_queue(daemon: Daemon, tmp_path: Path) -> None:
    err = tmp_path / "holder.err"
    holder = spawn_cli(
        daemon,
        "run",
        "-p",
        "1",
        "--kill-grace",
        "5",
        "--",
        *hold_command(tmp_path / "m0", tmp_path / "never"),
        stderr_path=err,
    )
    wait_for((tmp_path / "m0").exists, 30, "holder running")
    lease_id = (tmp_path / "m0").read_text()
    with daemon.client() as client:
        queued = client.request(LeaseRequest(fraction=0.5))
        assert queued.state == pb.LEASE_STATE_QUEUED

    done = run_cli(daemon, "lease", "revoke", lease_id, "--reason", "maintenance")
    assert done.returncode == 0, done.stderr
    assert holder.wait(timeout=30) == 128 + 15  # SIGTERM ended the command; bitshare exits with its code
    assert f"lease {lease_id} revoked: maintenance" in err.read_text()
    with daemon.client() as client:
        assert client.get(lease_id).state == pb.LEASE_STATE_REVOKED
        assert client.get(queued.id).state == pb.LEASE_STATE_ACTIVE

    events = run_cli(daemon, "--json", "events", "--lease", lease_id)
    kinds = [e["kind"] for e in json.loads(events.stdout)]
    assert kinds == ["granted", "revoked"]


def test_resize_grows_only_into_free_memory_and_shrinking_moves_the_queue(daemon: Daemon) -> None:
    with daemon.client() as client:
        big = client.request(LeaseRequest(fraction=0.75))
        small = client.request(LeaseRequest(fraction=0.25))
        waiting = client.request(LeaseRequest(fraction=0.5))
        assert waiting.state == pb.LEASE_STATE_QUEUED

    grow = run_cli(daemon, "lease", "resize", small.id, "-p", "0.5")
    assert grow.returncode == 75 and "free" in grow.stderr, grow.stderr
    with daemon.client() as client:
        assert client.get(small.id).allocations[0].memory_mib == small.allocations[0].memory_mib

    shrink = run_cli(daemon, "lease", "resize", big.id, "-m", "1GiB")
    assert shrink.returncode == 0, shrink.stderr
    with daemon.client() as client:
        assert client.get(big.id).allocations[0].memory_mib == 1024
        assert client.get(waiting.id).state == pb.LEASE_STATE_ACTIVE


def test_drain_stops_new_grants_until_undrained(daemon: Daemon) -> None:
    assert run_cli(daemon, "gpu", "drain", "0").returncode == 0
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.25))
        assert lease.state == pb.LEASE_STATE_QUEUED
        assert client.gpus()[0].drained
    daemon.kill9()
    daemon.restart()  # drained state is durable too
    with daemon.client() as client:
        assert client.gpus()[0].drained
    assert run_cli(daemon, "gpu", "undrain", "0").returncode == 0
    with daemon.client() as client:
        wait_for(
            lambda: client.get(lease.id).state in (pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_CANCELLED),
            10,
            "the queued request to be decided",
        )
    bad = run_cli(daemon, "gpu", "drain", "7")
    assert bad.returncode == 2 and "no GPU 7" in bad.stderr


def test_priority_reorders_the_queue(daemon: Daemon) -> None:
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=1.0))
        first = client.request(LeaseRequest(fraction=1.0))
        second = client.request(LeaseRequest(fraction=1.0))
        assert (first.queue_position, second.queue_position) == (1, 2)
    done = run_cli(daemon, "lease", "priority", second.id, "5")
    assert done.returncode == 0, done.stderr
    listed = json.loads(run_cli(daemon, "--json", "queue").stdout)
    assert [lease["id"] for lease in listed] == [second.id, first.id]


def test_listings_print_tables_and_json(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.25, command="python infer.py"))
    table = run_cli(daemon, "leases")
    assert lease.id in table.stdout and "python infer.py" in table.stdout
    gpus = json.loads(run_cli(daemon, "list-gpus", "--json").stdout)
    assert gpus[0]["simulated"] is True and int(gpus[0]["granted_mib"]) == lease.allocations[0].memory_mib
    smi = run_cli(daemon, "smi")
    assert "SIMULATED" in smi.stdout and lease.id in smi.stdout
    health = run_cli(daemon, "health")
    assert health.returncode == 0 and health.stdout.startswith("SERVING")


def test_telemetry_stream_sends_a_snapshot_on_every_change(daemon: Daemon) -> None:
    with daemon.client() as client:
        stream = client.admin.WatchTelemetry(pb.WatchTelemetryRequest(min_interval_s=0.05), metadata=client.metadata)
        try:
            first = next(stream)
            assert first.server.simulated and len(first.gpus) == 1 and not first.leases
            lease = client.request(LeaseRequest(fraction=0.25))
            snapshot = next(stream)
            while lease.id not in {item.id for item in snapshot.leases}:
                snapshot = next(stream)
            assert snapshot.version > first.version
            assert snapshot.gpus[0].granted_mib == lease.allocations[0].memory_mib
            assert snapshot.gpus[0].partitions[0].owner == lease.owner  # admins see owners
        finally:
            stream.cancel()


def test_event_log_and_events_cli(daemon: Daemon) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.25))
        client.release(lease.id)
        kinds = [event.kind for event in client.events(lease_id=lease.id)]
    assert kinds == ["granted", "released"]
    table = run_cli(daemon, "events", "--limit", "5")
    assert table.returncode == 0 and lease.id in table.stdout and "released" in table.stdout


def test_smi_watch_redraws_the_consoles_gpu_view_until_interrupted(daemon: Daemon, tmp_path: Path) -> None:
    with daemon.client() as client:
        lease = client.request(LeaseRequest(fraction=0.25, command="python infer.py"))
    out = tmp_path / "smi.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            bitshare_cmd("--server", daemon.server, "smi", "--watch", "0.2"),
            stdout=sink,
            env=daemon.env,
            # as from a terminal: a suite started in the background inherits SIGINT ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - one call, no locks
        )
        try:
            frames = lambda: out.read_text().split(f"{daemon.server}: bitshared")  # noqa: E731
            wait_for(lambda: len(frames()) > 4 and "util" in frames()[-1], 20, "three redraws, and a whole fourth")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 130
        finally:
            proc.kill()
    last = frames()[-1]  # not a terminal: frames one after another (the screen is cleared only on one)
    assert "GPU 0 · " in last and "[SIMULATED (CPU-backed)]" in last
    assert f"■ {lease.id}  {lease.owner}" in last  # the partition, named as the console names it
    sparkline = next(line for line in last.splitlines() if line.strip().startswith("util"))
    points = sparkline.split()[1]
    assert set(points) == {"▁"} and len(points) >= 3  # idle, one point a redraw


def test_the_audit_log_names_who_did_each_thing(make_daemon, tmp_path: Path) -> None:
    daemon, address, admin_token = daemon_with_token(make_daemon, tmp_path, "admin", name="ops")
    with daemon.client() as client:
        first = client.request(LeaseRequest(fraction=0.5))
        queued = client.request(LeaseRequest(fraction=0.75))
    with connect(address, admin_token) as ops:
        ops.revoke(first.id, "disk swap")  # the queued request is granted in its place
        ops.drain(0, True)
        ops.drain(0, False)
    with daemon.client() as client:
        client.release(queued.id)
        events = [(e.kind, e.lease_id, e.actor) for e in client.events(limit=50)]
    me = f"user:{pwd.getpwuid(os.getuid()).pw_name}"
    assert events == [
        ("granted", first.id, me),
        ("queued", queued.id, me),
        ("revoked", first.id, "token:ops"),
        ("granted", queued.id, "bitshared"),  # the daemon's doing, not the admin's
        ("drained", "", "token:ops"),
        ("undrained", "", "token:ops"),
        ("released", queued.id, me),
    ]
    table = run_cli(daemon, "events").stdout
    assert "BY" in table.splitlines()[0] and "token:ops" in table
