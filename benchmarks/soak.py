"""Soak: a real ``bitshared`` holding 500 clients' live leases for a set time.

Starts a daemon (8 simulated 80 GiB GPUs, a short lease TTL) on a temporary Unix socket. 500
clients, each with its own gRPC channel (asyncio, one process), take a 256 MiB lease and send a
keep-alive every ``--keepalive`` seconds; one more client requests and releases a lease
``--rate`` times a second, timing each grant. Every ``--sample`` seconds the daemon's CPU and
resident memory are read. At the end:

- leases wrongly expired: a held lease that ended while its client kept it alive (target: 0);
- grant latency p50/p99 of the steady stream, and keep-alive latency p99;
- the daemon's CPU (% of one core) and memory over time, and the memory's growth over the second
  half of the run (it must not grow without bound).

    .venv/bin/python benchmarks/soak.py                    # 500 clients, 120 s
    .venv/bin/python benchmarks/soak.py --clients 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil
from tables import print_table

from bitshare.address import parse_address
from bitshare.client.connection import local_token
from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.protocol.v1 import bitshare_pb2_grpc as pb_grpc

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "soak.json"
TTL_S = 6.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def slope_mib_per_min(samples: list[tuple[float, float, int]]) -> float:
    """Least-squares growth of resident memory over the second half of the run."""
    half = samples[len(samples) // 2 :]
    if len(half) < 3:
        return float("nan")
    xs, ys = [t for t, _, _ in half], [rss / 2**20 for _, _, rss in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else float("nan")


async def holder(server: str, md: list, keepalive_s: float, stop: asyncio.Event, out: dict) -> None:
    async with grpc.aio.insecure_channel(server) as channel:
        stub = pb_grpc.LeaseServiceStub(channel)
        spec = pb.LeaseSpec(gpu_count=1, memory_mib=256, wait=False)
        lease = await stub.RequestLease(pb.RequestLeaseRequest(spec=spec, command="soak holder"), metadata=md)
        out["held"] += 1
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), keepalive_s)
            started = time.perf_counter()
            reply = await stub.KeepAlive(pb.KeepAliveRequest(lease_ids=[lease.id]), metadata=md)
            out["keepalive_s"].append(time.perf_counter() - started)
            if any(x.state != pb.LEASE_STATE_ACTIVE for x in reply.leases) or not reply.leases:
                out["wrongly_expired"] += 1
                return
        await stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=md)


async def requester(server: str, md: list, rate: float, stop: asyncio.Event, out: dict) -> None:
    async with grpc.aio.insecure_channel(server) as channel:
        stub = pb_grpc.LeaseServiceStub(channel)
        spec = pb.LeaseSpec(gpu_count=1, memory_mib=512, wait=False)
        while not stop.is_set():
            started = time.perf_counter()
            lease = await stub.RequestLease(pb.RequestLeaseRequest(spec=spec, command="soak stream"), metadata=md)
            out["grant_s"].append(time.perf_counter() - started)
            await stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=md)
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))


async def sampler(daemon: psutil.Process, every_s: float, stop: asyncio.Event, out: dict) -> None:
    started, last = time.monotonic(), daemon.cpu_times()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        now = daemon.cpu_times()
        cpu = 100 * ((now.user + now.system) - (last.user + last.system)) / every_s
        out["samples"].append((time.monotonic() - started, cpu, daemon.memory_info().rss))
        last = now


async def soak(server: str, daemon: psutil.Process, args: argparse.Namespace) -> dict:
    md = [("authorization", f"Bearer {local_token(parse_address(server))}")]
    out: dict = {"held": 0, "wrongly_expired": 0, "keepalive_s": [], "grant_s": [], "samples": []}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(holder(server, md, args.keepalive, stop, out)) for _ in range(args.clients)]
    deadline = time.monotonic() + 60
    while out["held"] < args.clients and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    tasks.append(asyncio.create_task(requester(server, md, args.rate, stop, out)))
    tasks.append(asyncio.create_task(sampler(daemon, args.sample, stop, out)))
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=20.0, help="Grants a second in the steady stream.")
    parser.add_argument("--keepalive", type=float, default=2.0, help="Seconds between a holder's keep-alives.")
    parser.add_argument("--sample", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bitshare-soak-") as tmp:
        server = f"unix:{tmp}/bitshared.sock"
        log = open(f"{tmp}/bitshared.log", "wb")  # noqa: SIM115 - held for the daemon's life
        command = [
            sys.executable, "-m", "bitshare.daemon", "--listen", server, "--state-dir", f"{tmp}/state",
            "--simulate", "8x80GiB", "--lease-ttl", str(TTL_S), "--log-level", "warning",
        ]  # fmt: skip
        proc = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(f"{tmp}/bitshared.sock"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bitshared did not start:\n{Path(tmp, 'bitshared.log').read_text()}")
                time.sleep(0.05)
            time.sleep(0.5)
            out = asyncio.run(soak(server, psutil.Process(proc.pid), args))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    samples = out["samples"]
    cpu = [c for _, c, _ in samples]
    rss = [r / 2**20 for _, _, r in samples]
    result = {
        "benchmark": "soak",
        "clients": args.clients,
        "seconds": args.seconds,
        "lease_ttl_s": TTL_S,
        "keepalive_s": args.keepalive,
        "leases_held": out["held"],
        "leases_wrongly_expired": out["wrongly_expired"],
        "grants": len(out["grant_s"]),
        "grant_ms": {"p50": 1000 * percentile(out["grant_s"], 0.5), "p99": 1000 * percentile(out["grant_s"], 0.99)},
        "keepalive_ms_p99": 1000 * percentile(out["keepalive_s"], 0.99),
        "daemon_cpu_pct": {"mean": statistics.fmean(cpu) if cpu else None, "max": max(cpu, default=None)},
        "daemon_rss_mib": {
            "first": rss[0] if rss else None,
            "last": rss[-1] if rss else None,
            "max": max(rss, default=None),
        },
        "rss_growth_mib_per_min_second_half": slope_mib_per_min(samples),
        "samples": [{"t": t, "cpu_pct": c, "rss_mib": r / 2**20} for t, c, r in samples],
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"soak: {args.clients} clients holding leases (TTL {TTL_S:g}s, keep-alive every {args.keepalive:g}s), "
          f"{args.rate:g} grants/s, {args.seconds:g}s")  # fmt: skip
    rows = [
        ["leases held", result["leases_held"], f"{args.clients}"],
        ["leases wrongly expired", result["leases_wrongly_expired"], "0"],
        ["grant p50 / p99", f"{result['grant_ms']['p50']:.1f} / {result['grant_ms']['p99']:.1f} ms", "-"],
        ["keep-alive p99", f"{result['keepalive_ms_p99']:.1f} ms", "-"],
        [
            "daemon CPU mean / max",
            f"{result['daemon_cpu_pct']['mean']:.1f} / {result['daemon_cpu_pct']['max']:.1f}%",
            "-",
        ],
        ["daemon RSS first / last / max", f"{rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f} MiB", "-"],
        ["RSS growth, second half", f"{result['rss_growth_mib_per_min_second_half']:.2f} MiB/min", "~0"],
    ]
    print_table(["measure", "result", "target"], rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0 if result["leases_wrongly_expired"] == 0 and result["leases_held"] == args.clients else 1


if __name__ == "__main__":
    sys.exit(main())
