"""Lease throughput and latency benchmark for a real ``bitshared``.

Starts a daemon on a temporary Unix socket (simulated GPU, temporary state
directory), then, for each concurrency level, runs N clients, each with its own
gRPC channel and connection, spread over worker processes. Every level has two
phases of the same length and concurrency: a no-op baseline (GetServerInfo) and
the lease phase (RequestLease with wait=false, then ReleaseLease). On a noisy
machine the figure that counts is the ratio of grant p50 to no-op p50.

After the run the daemon is stopped with SIGTERM and its SQLite store is checked:
every grant the clients saw acknowledged must be on disk, and none left active.

    .venv/bin/python benchmarks/lease_bench.py                       # full run
    .venv/bin/python benchmarks/lease_bench.py --seconds 1 --clients 1,16   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from lease_clients import CHANNEL_OPTIONS, MEMORY_MIB, READY_TIMEOUT_S, Phase, Samples, Usage, WorkerPool
from tables import cell, print_table

from bitshare.address import parse_address
from bitshare.client.connection import local_token
from bitshare.errors import BitshareError
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc

try:
    import psutil
except ImportError:  # optional: without it daemon CPU and I/O are not reported
    psutil = None

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "lease_bench.json"
SIMULATE = "1x256GiB"
DAEMON_LOG_LEVEL = "warning"
STOP_TIMEOUT_S = 20.0
TARGET_P99_CLIENTS = 16
TARGET_P99_MS = 10.0
TARGET_RATE_CLIENTS = 128
TARGET_RATE_PER_S = 2000.0


# ----- the daemon ----------------------------------------------------------------------------


class Daemon:
    """A ``bitshared`` subprocess on a Unix socket in ``workdir``, with a simulated GPU."""

    def __init__(self, workdir: Path, simulate: str) -> None:
        self.workdir = workdir
        self.socket = workdir / "bitshared.sock"
        self.state_dir = workdir / "state"
        self.db = self.state_dir / "state.db"
        self.target = f"unix:{self.socket}"
        self.log_path = workdir / "bitshared.log"
        config = workdir / "empty.toml"  # keeps any /etc/bitshare/bitshare.toml out of the run
        config.write_text("")
        self.command = [
            sys.executable,
            "-m",
            "bitshare.daemon",
            "--config",
            str(config),
            "--listen",
            self.target,
            "--state-dir",
            str(self.state_dir),
            "--simulate",
            simulate,
            "--log-level",
            DAEMON_LOG_LEVEL,
        ]
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._ps = psutil.Process(self.proc.pid) if psutil is not None else None

    def wait_ready(self, timeout: float) -> str:
        """Poll until the daemon hands out a token and answers GetServerInfo; returns the token."""
        deadline = time.monotonic() + timeout
        address = parse_address(self.target)
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bitshared exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                token = local_token(address, timeout=1.0)
                # A fresh channel per try: a failed one would wait out gRPC's reconnect backoff.
                with grpc.insecure_channel(self.target) as channel:
                    pb_grpc.LeaseServiceStub(channel).GetServerInfo(
                        pb.GetServerInfoRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=1.0
                    )
                return token
            except (grpc.RpcError, BitshareError) as exc:
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(0.05)
        raise RuntimeError(f"bitshared did not answer within {timeout:g}s ({last}):\n{self.log_tail()}")

    def usage(self) -> Usage:
        if self._ps is None:
            return Usage()
        try:
            cpu = self._ps.cpu_times()
            io = self._ps.io_counters()
        except (psutil.Error, AttributeError):
            return Usage()
        return Usage(cpu.user + cpu.system, io.write_count, io.write_bytes)

    def stop(self, timeout: float) -> dict[str, Any]:
        """SIGTERM, then wait; SIGKILL only if it does not stop in time."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        killed = False
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            killed = True
        return {"exit_code": code, "killed": killed, "stop_s": round(time.monotonic() - began, 3)}

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


# ----- figures -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between sorted samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_ms(values: list[float]) -> dict[str, float | int | None]:
    def ms(x: float | None) -> float | None:
        return None if x is None else round(x * 1000.0, 3)

    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values) if values else None),
        "mean_ms": ms(sum(values) / len(values) if values else None),
    }


def usage_figures(used: Usage, seconds: float, completed: int) -> dict[str, float | None]:
    return {
        "daemon_cpu_s": None if used.cpu_s is None else round(used.cpu_s, 3),
        "daemon_cpu_pct_of_core": None if used.cpu_s is None else round(100.0 * used.cpu_s / seconds, 1),
        "daemon_cpu_ms_per_op": None
        if used.cpu_s is None or not completed
        else round(1000 * used.cpu_s / completed, 3),
        "daemon_write_syscalls": used.write_calls,
        "daemon_write_bytes": used.write_bytes,
        "daemon_write_syscalls_per_op": None
        if used.write_calls is None or not completed
        else round(used.write_calls / completed, 2),
        "clients_cpu_pct_of_core": None if used.client_cpu_s is None else round(100.0 * used.client_cpu_s / seconds, 1),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def measure_level(
    pool: WorkerPool, daemon: Daemon, clients: int, warmup_s: float, seconds: float
) -> tuple[dict, Samples]:
    """The no-op baseline then the lease phase at one concurrency; returns figures and lease samples."""
    load_before = os.getloadavg()[0]
    noop, noop_used = pool.run(Phase("noop", clients, warmup_s, seconds), daemon)
    lease, lease_used = pool.run(Phase("lease", clients, warmup_s, seconds), daemon)
    noop_lat, grant_lat, release_lat = latency_ms(noop.first), latency_ms(lease.first), latency_ms(lease.second)
    figures = {
        "clients": clients,
        "grants": lease.completed,
        "grant": grant_lat,
        "release": release_lat,
        "pairs_per_s": round(lease.completed / seconds, 1),
        "lease_daemon": usage_figures(lease_used, seconds, lease.completed),
        "lease_errors": lease.errors,
        "noop": noop_lat,
        "noop_per_s": round(noop.completed / seconds, 1),
        "noop_daemon": usage_figures(noop_used, seconds, noop.completed),
        "noop_errors": noop.errors,
        "ratio_grant_p50_to_noop_p50": ratio(grant_lat["p50_ms"], noop_lat["p50_ms"]),
        "ratio_release_p50_to_noop_p50": ratio(release_lat["p50_ms"], noop_lat["p50_ms"]),
        "ratio_grant_p99_to_noop_p99": ratio(grant_lat["p99_ms"], noop_lat["p99_ms"]),
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    return figures, lease


def check_durability(db: Path, granted: list[str], unreleased: list[str], stop: dict[str, Any]) -> dict[str, Any]:
    """Every acknowledged grant is a row of ``leases``, their number matches, and none is active."""
    files = {p.name: p.stat().st_size for p in db.parent.glob(db.name + "*")}
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
        active = conn.execute("SELECT COUNT(*) FROM leases WHERE state = 'active'").fetchone()[0]
        ids = {row[0] for row in conn.execute("SELECT id FROM leases")}
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    acked = set(granted)
    missing = sorted(acked - ids)
    clean_stop = stop["exit_code"] == 0 and not stop["killed"]
    passed = rows == len(granted) and not missing and active == 0 and len(acked) == len(granted) and clean_stop
    return {
        "result": "PASS" if passed else "FAIL",
        "acknowledged_grants": len(granted),
        "distinct_acknowledged_ids": len(acked),
        "rows_in_leases": rows,
        "rows_active": active,
        "acknowledged_missing_on_disk": len(missing),
        "missing_examples": missing[:10],
        "releases_failed_client_side": len(unreleased),
        "rows_in_events": events,
        "state_files_bytes": files,
        "daemon_stop": stop,
    }


def targets(levels: list[dict]) -> list[dict[str, Any]]:
    by_clients = {level["clients"]: level for level in levels}
    p99_level = by_clients.get(TARGET_P99_CLIENTS)
    rate_level = by_clients.get(TARGET_RATE_CLIENTS)
    p99 = p99_level["grant"]["p99_ms"] if p99_level else None
    rate = rate_level["pairs_per_s"] if rate_level else None
    return [
        {
            "target": f"grant p99 < {TARGET_P99_MS:g} ms at {TARGET_P99_CLIENTS} clients",
            "measured": p99,
            "met": None if p99 is None else p99 < TARGET_P99_MS,
        },
        {
            "target": f">= {TARGET_RATE_PER_S:,.0f} grant+release/s at {TARGET_RATE_CLIENTS} clients",
            "measured": rate,
            "met": None if rate is None else rate >= TARGET_RATE_PER_S,
        },
    ]


# ----- output --------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (fsync cost depends on it), if psutil can tell."""
    if psutil is None:
        return None
    resolved = str(path.resolve())
    mounts = [
        p
        for p in psutil.disk_partitions(all=True)
        if resolved == p.mountpoint or resolved.startswith(p.mountpoint.rstrip("/") + "/")
    ]
    return max(mounts, key=lambda p: len(p.mountpoint)).fstype if mounts else None


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "psutil": getattr(psutil, "__version__", None),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark bitshared's lease grant/release path against a no-op gRPC baseline.",
    )
    parser.add_argument("--clients", default="1,16,128", help="comma-separated concurrency levels [1,16,128]")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase [5]")
    parser.add_argument(
        "--warmup", type=float, default=None, help="warm-up seconds before each phase [a fifth of --seconds, at most 1]"
    )
    parser.add_argument("--procs", type=int, default=2, help="client worker processes [2]")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results file [{DEFAULT_OUT}]")
    args = parser.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.clients.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--clients must be comma-separated integers, got {args.clients!r}")
    if not args.levels or min(args.levels) < 1:
        parser.error("--clients needs at least one level, each >= 1")
    if args.seconds <= 0 or args.procs < 1:
        parser.error("--seconds must be > 0 and --procs >= 1")
    if args.warmup is None:
        args.warmup = min(1.0, args.seconds / 5)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"bitshared lease benchmark: clients {args.levels}, {args.seconds:g}s per phase after "
        f"{args.warmup:g}s warm-up, {args.procs} client processes, {os.cpu_count()} CPUs"
    )
    print(
        f"daemon: {SIMULATE} simulated GPU, {MEMORY_MIB} MiB per lease, log level {DAEMON_LOG_LEVEL}, "
        "store synchronous=FULL"
    )
    machine = machine_info()
    levels: list[dict] = []
    granted: list[str] = []
    unreleased: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bitshare-bench-") as tmp:
        daemon = Daemon(Path(tmp), SIMULATE)
        pool: WorkerPool | None = None
        try:
            token = daemon.wait_ready(READY_TIMEOUT_S)
            machine["state_dir_filesystem"] = filesystem_of(daemon.state_dir)
            pool = WorkerPool(args.procs, daemon.target, token)
            for clients in args.levels:
                figures, lease = measure_level(pool, daemon, clients, args.warmup, args.seconds)
                levels.append(figures)
                granted += lease.granted
                unreleased += lease.unreleased
                errors = {**figures["noop_errors"], **figures["lease_errors"]}
                print(
                    f"  {clients} clients: {figures['pairs_per_s']:,.0f} grant+release/s, "
                    f"grant p50 {cell(figures['grant']['p50_ms'])} ms" + (f", errors {errors}" if errors else ""),
                    flush=True,
                )
        finally:
            if pool is not None:
                pool.close()
            stop = daemon.stop(STOP_TIMEOUT_S)
        durability = check_durability(daemon.db, granted, unreleased, stop)
        log_tail = daemon.log_tail()

    print()
    print_table(
        ["clients", "grants", "grant p50 ms", "grant p99 ms", "release p50 ms", "release p99 ms", "grant+release/s"],
        [
            [
                level["clients"],
                level["grants"],
                level["grant"]["p50_ms"],
                level["grant"]["p99_ms"],
                level["release"]["p50_ms"],
                level["release"]["p99_ms"],
                level["pairs_per_s"],
            ]
            for level in levels
        ],
    )
    print()
    print("baseline (GetServerInfo no-op, same daemon, same concurrency) and daemon resource use:")
    print_table(
        [
            "clients",
            "no-op p50 ms",
            "no-op p99 ms",
            "no-op/s",
            "grant p50 / no-op p50",
            "daemon CPU % (lease)",
            "daemon CPU ms/pair",
            "clients CPU % (lease)",
            "daemon CPU % (no-op)",
            "write syscalls/pair",
        ],
        [
            [
                level["clients"],
                level["noop"]["p50_ms"],
                level["noop"]["p99_ms"],
                level["noop_per_s"],
                level["ratio_grant_p50_to_noop_p50"],
                level["lease_daemon"]["daemon_cpu_pct_of_core"],
                level["lease_daemon"]["daemon_cpu_ms_per_op"],
                level["lease_daemon"]["clients_cpu_pct_of_core"],
                level["noop_daemon"]["daemon_cpu_pct_of_core"],
                level["lease_daemon"]["daemon_write_syscalls_per_op"],
            ]
            for level in levels
        ],
    )
    print(
        "store commits: not observable from outside the daemon (Store.commits is in-process only); "
        "write syscalls are shown as a proxy"
    )
    print()
    d = durability
    print(
        f"durability: {d['result']} - {d['acknowledged_grants']:,} acknowledged grants, "
        f"{d['rows_in_leases']:,} rows in leases, {d['acknowledged_missing_on_disk']} missing, "
        f"{d['rows_active']} active; daemon exit {stop['exit_code']}"
        + (" (killed)" if stop["killed"] else "")
        + f" after SIGTERM in {stop['stop_s']}s"
    )
    goals = targets(levels)
    for goal in goals:
        verdict = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[goal["met"]]
        print(f"target {goal['target']}: {verdict} (measured {cell(goal['measured'])})")

    report = {
        "benchmark": "lease_bench",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine | {"loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "parameters": {
            "clients": args.levels,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "procs": args.procs,
            "simulate": SIMULATE,
            "memory_mib_per_lease": MEMORY_MIB,
            "daemon_log_level": DAEMON_LOG_LEVEL,
            "channel_per_client": True,
            "channel_options": CHANNEL_OPTIONS,
            "baseline_rpc": "LeaseService.GetServerInfo",
        },
        "levels": levels,
        "baseline_ratios": {str(level["clients"]): level["ratio_grant_p50_to_noop_p50"] for level in levels},
        "durability": durability,
        "targets": goals,
        "daemon_log_tail": log_tail,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0 if durability["result"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
