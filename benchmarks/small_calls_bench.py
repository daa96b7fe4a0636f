"""Small calls through remote CuPy: minimal syncs, a conformance test's mix, queued operations.

A suite of thousands of small checks (``xp.asarray(small list)`` -> an operation -> ``bool(x)``,
``float(x)``, ``x.shape``, ``.get()``) pays a round trip for nearly every line. This starts a
real ``bitshared`` with a simulated GPU on a temporary Unix socket, runs itself under
``bitshare run --remote`` so that ``import cupy`` is bitshare's remote CuPy, and measures, each
as the best of ``--repeats`` rounds:

- **sync**: ``float(cp.asarray(1.0) + 1)``, one round trip each;
- **mix**: two small arrays from lists, three operations, ``.shape``/``.dtype``, ``==`` and
  ``bool((a == b).all())``, ``.get()``: what one conformance example does;
- **queued**: ``a = a + 1`` with no sync (one sync at the end of the round);
- **grpc**: a bare unary call on the session's own channel (the transport's floor for a sync).

With each figure go the CPU µs per call that the program, the daemon and the lease's worker
used (all their threads), in the least busy round: where the time goes, and steadier than
wall-clock time on a small, noisy machine.

The same loops run on local NumPy in the leased program (the same Python, the same moment of
the machine) as the baseline; the ratio is remote time over NumPy time.

    .venv/bin/python benchmarks/small_calls_bench.py [--repeats 7] [--out PATH]
    .venv/bin/python benchmarks/small_calls_bench.py --profile client.prof   # cProfile of the remote loops
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_bench import run_leased, start_daemon
from tables import finished_at, machine, print_table, write_results

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "small_calls_bench.json"
COUNTS = {"sync": 1_000, "mix": 300, "queued": 10_000, "grpc": 1_000}  # calls per round


# ----- inside the lease (bitshare's remote CuPy) ---------------------------------------------


def sync_loop(xp: Any, count: int) -> None:
    for _ in range(count):
        assert float(xp.asarray(1.0) + 1) == 2.0


def mix_loop(xp: Any, count: int) -> None:
    for i in range(count):
        a = xp.asarray([1.0, 2.0, 3.0, float(i)])
        b = xp.asarray([[1, 2, 3, 4]], dtype=xp.int32)
        c = a * b
        d = xp.abs(c - 1)
        e = d.sum(axis=-1)
        assert c.shape == (1, 4) and d.dtype == xp.float64 and e.shape == (1,)
        assert bool((c == a * b).all())
        host = e.get() if hasattr(e, "get") else e  # (NumPy's arrays are already on the host)
        assert host[0] > 0


def queued_loop(xp: Any, count: int) -> None:
    a = xp.zeros(4, dtype=xp.float32)
    for _ in range(count):
        a = a + 1
    assert float(a[0]) == count


def cpu_seconds(processes: dict[str, Any]) -> dict[str, float]:
    """CPU seconds used so far (user and system, all threads) by each process."""
    used = {}
    for name, process in processes.items():
        times = process.cpu_times()
        used[name] = times.user + times.system
    return used


def best_us(
    loop: Callable[[Any, int], None], xp: Any, count: int, repeats: int, processes: dict[str, Any] | None = None
) -> tuple[float, dict[str, float]]:
    """Best µs per call over ``repeats`` rounds, after one warm-up round, and the CPU µs per call
    that each of ``processes`` used in the least busy round (the quietest moment of the machine)."""
    times, cpu = [], []
    processes = processes or {}
    for _ in range(repeats + 1):
        before = cpu_seconds(processes)
        started = time.perf_counter()
        loop(xp, count)
        times.append(time.perf_counter() - started)
        after = cpu_seconds(processes)
        cpu.append({name: 1e6 * (after[name] - before[name]) / count for name in processes})
    least = min(cpu[1:], key=lambda used: sum(used.values())) if processes else {}
    return 1e6 * min(times[1:]) / count, least


def session_processes() -> dict[str, Any]:
    """This program, the lease's worker and the daemon (the worker's parent)."""
    import psutil

    me = psutil.Process()
    workers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "bitshare.daemon.workers.worker" in " ".join(p.info["cmdline"] or [])
    ]
    if len(workers) != 1:
        return {"client": me}
    return {"client": me, "daemon": workers[0].parent(), "worker": workers[0]}


def inside(repeats: int, scale: float, profile: str) -> dict[str, Any]:
    import cupy
    import numpy

    from bitshare.remote.session import session

    owner = session()
    counts = {name: max(1, int(n * scale)) for name, n in COUNTS.items()}

    def grpc_loop(_xp: Any, count: int) -> None:
        for _ in range(count):
            owner.client.server_info()

    figures: dict[str, Any] = {"bulk_path": owner.bulk_path, "counts": counts}
    processes = session_processes()
    loops = {"sync": sync_loop, "mix": mix_loop, "queued": queued_loop}
    for name, loop in loops.items():  # NumPy and remote alternate: both see the same machine
        figures[f"{name}_numpy_us"], _ = best_us(loop, numpy, counts[name], repeats)
        trips = owner.round_trips
        figures[f"{name}_remote_us"], figures[f"{name}_cpu_us"] = best_us(loop, cupy, counts[name], repeats, processes)
        figures[f"{name}_round_trips_each"] = (owner.round_trips - trips) / (counts[name] * (repeats + 1))
    figures["grpc_us"], figures["grpc_cpu_us"] = best_us(grpc_loop, None, counts["grpc"], repeats, processes)
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        sync_loop(cupy, counts["sync"])
        mix_loop(cupy, counts["mix"])
        profiler.disable()
        profiler.dump_stats(profile)
    return figures


# ----- the run -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="calls per round, as a multiple of the default")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--profile", default="", help="also write a cProfile of the remote sync and mix loops here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args.repeats, args.scale, args.profile)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bitshare-small-calls-") as tmp:
        daemon, server = start_daemon(Path(tmp), "simulated")
        try:
            inner = [__file__, "--inside", "--repeats", str(args.repeats), "--scale", str(args.scale)]
            if args.profile:
                inner += ["--profile", str(Path(args.profile).resolve())]
            figures = run_leased(server, "--remote", inner)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

    rows = []
    for name, what in (
        ("sync", "minimal sync: float(asarray(1.0) + 1)"),
        ("mix", "conformance mix (2 arrays, 9 ops, 2 syncs)"),
        ("queued", "queued a = a + 1, no sync"),
        ("grpc", "bare gRPC unary call (same channel)"),
    ):
        remote, local = figures.get(f"{name}_remote_us", figures.get(f"{name}_us")), figures.get(f"{name}_numpy_us")
        cpu = figures[f"{name}_cpu_us"]
        rows.append(
            [
                what,
                remote,
                1e6 / remote,
                local,
                remote / local if local else None,
                figures.get(f"{name}_round_trips_each"),
                *(cpu.get(process) for process in ("client", "daemon", "worker")),
            ]
        )
    print(f"remote CuPy on a simulated daemon, Unix socket (bulk path: {figures['bulk_path']}); best of {args.repeats}")
    print_table(
        [
            "measure",
            "remote µs/call",
            "calls/s",
            "NumPy µs/call",
            "remote/NumPy",
            "round trips",
            "CPU µs: client",
            "daemon",
            "worker",
        ],
        rows,
    )
    write_results(
        args.out,
        {
            "benchmark": "small_calls_bench",
            "machine": machine(),
            "repeats": args.repeats,
            "figures": figures,
            "finished_at": finished_at(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
