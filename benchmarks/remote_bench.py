"""Remote GPU access benchmark: bulk transfers, queued small operations, and (on a GPU) compute.

Starts a real ``bitshared`` on a temporary Unix socket (simulated GPU unless ``--backend nvml``),
then runs itself under ``bitshare run --remote`` so that its ``import cupy`` is bitshare's
remote CuPy, and measures in that one run:

- upload and download of 256 MiB (GiB/s), against a plain socket transfer of the same bytes
  between two processes measured in the same run (target: at least 0.8 of it);
- queued small operations per second, and round trips per sync point (targets: 20,000 ops/s,
  one round trip);
- on a GPU (``--backend nvml``), a compute-bound loop through the interposer against the same
  loop with local CuPy (target: at most 1.10x).

Each transfer is repeated (``--repeats``) after a warm-up and the best time counts, for the
remote path and the baselines alike: on a small, noisy machine that is the stable figure.
The plain-socket baseline is measured twice: received into a new array each time (as the
worker's uploads and the client's downloads are: the ratio that counts) and into one reused
buffer (the transport alone).

    .venv/bin/python benchmarks/remote_bench.py
    .venv/bin/python benchmarks/remote_bench.py --backend nvml      # on a GPU host
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tables import print_table

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "remote_bench.json"
MIB = 1024 * 1024
TRANSFER_MIB = 256
SMALL_OPS = 20_000
READY_TIMEOUT_S = 60.0
TARGETS = {"transfer_vs_socket": 0.8, "ops_per_s": 20_000, "round_trips_per_sync": 1, "compute_vs_local": 1.10}


# ----- inside the lease (bitshare's remote CuPy) ---------------------------------------------


def inside(repeats: int) -> dict[str, Any]:
    import cupy
    import numpy as np

    from bitshare.remote.session import session

    owner = session()
    host = np.ones(TRANSFER_MIB * MIB // 8)
    uploads, downloads = [], []
    for _ in range(repeats + 1):  # the first round warms both ends' memory up and is dropped
        started = time.perf_counter()
        remote = cupy.asarray(host)
        cupy.cuda.Device().synchronize()
        uploads.append(time.perf_counter() - started)
        started = time.perf_counter()
        back = remote.get()
        downloads.append(time.perf_counter() - started)
        assert back.shape == host.shape
        del remote, back
    small = cupy.ones(16, dtype=cupy.float32)
    trips = owner.round_trips
    started = time.perf_counter()
    for _ in range(SMALL_OPS):
        small = small + 1
    value = float(small[0])  # the one sync point
    elapsed = time.perf_counter() - started
    assert value == SMALL_OPS + 1
    return {
        "upload_s": min(uploads[1:]),
        "download_s": min(downloads[1:]),
        "ops_per_s": SMALL_OPS / elapsed,
        "round_trips_per_sync": owner.round_trips - trips,
        "data_socket": owner._data is not None,
        "compute_s": compute_loop(cupy) if not os.environ.get("BITSHARE_SIMULATED") else None,
    }


def compute_loop(xp: Any) -> float:
    """A compute-bound loop: matrix products, one sync at the end."""
    x = xp.random.random((4096, 4096)).astype(xp.float32)
    xp.cuda.Device().synchronize()
    started = time.perf_counter()
    for _ in range(50):
        x = x @ x
        x = x / xp.abs(x).max()
    xp.cuda.Device().synchronize()
    return time.perf_counter() - started


def local_compute() -> dict[str, Any]:
    import cupy

    compute_loop(cupy)  # warm-up: kernels compiled, memory pooled
    return {"compute_s": compute_loop(cupy)}


# ----- the baseline: a plain socket between two processes ------------------------------------


def socket_transfer(repeats: int, fresh: bool) -> float:
    """Best seconds to move TRANSFER_MIB through a socket pair between two processes, received into
    a new array each time (``fresh``: as the worker's uploads and the client's downloads are) or
    into one reused buffer (the transport alone)."""
    import numpy as np

    sender, receiver = socket.socketpair()
    size = TRANSFER_MIB * MIB
    pid = os.fork()
    if pid == 0:  # the receiving process
        sender.close()
        buffer = memoryview(np.empty(size, np.uint8))
        for _ in range(repeats + 1):
            if fresh:
                buffer = memoryview(np.empty(size, np.uint8))
            got = 0
            while got < size:
                got += receiver.recv_into(buffer[got:])
            receiver.sendall(b"k")
        os._exit(0)
    receiver.close()
    data = memoryview(np.ones(size, np.uint8))
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        sender.sendall(data)
        sender.recv(1)
        times.append(time.perf_counter() - started)
    os.waitpid(pid, 0)
    return min(times[1:])


# ----- the run -----------------------------------------------------------------------------------


def start_daemon(workdir: Path, backend: str) -> tuple[subprocess.Popen, str]:
    server = f"unix:{workdir / 'bitshared.sock'}"
    gpus = ["--backend", "nvml"] if backend == "nvml" else ["--simulate", "1x16GiB"]
    log = open(workdir / "bitshared.log", "wb")  # noqa: SIM115 - kept open for the daemon's life
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bitshare.daemon", "--listen", server, "--state-dir", str(workdir / "state"), *gpus],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while b"daemon.ready" not in (workdir / "bitshared.log").read_bytes():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bitshared did not start:\n{(workdir / 'bitshared.log').read_text()}")
        time.sleep(0.05)
    return daemon, server


def run_leased(server: str, mode: str, args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bitshare", "--server", server, "run", mode, "-p", "0.5", "--", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"the leased run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("simulated", "nvml"), default="simulated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--local-compute", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args.repeats)))
        return 0
    if args.local_compute:
        print(json.dumps(local_compute()))
        return 0

    baseline_s = socket_transfer(args.repeats, fresh=True)
    reused_s = socket_transfer(args.repeats, fresh=False)
    with tempfile.TemporaryDirectory(prefix="bitshare-remote-bench-") as tmp:
        daemon, server = start_daemon(Path(tmp), args.backend)
        try:
            remote = run_leased(server, "--remote", [__file__, "--inside", "--repeats", str(args.repeats)])
            local = run_leased(server, "--local", [__file__, "--local-compute"]) if args.backend == "nvml" else None
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

    gib = TRANSFER_MIB / 1024
    figures = {
        "socket_gib_s": gib / baseline_s,
        "socket_reused_buffer_gib_s": gib / reused_s,
        "upload_vs_reused_buffer": reused_s / remote["upload_s"],
        "download_vs_reused_buffer": reused_s / remote["download_s"],
        "upload_gib_s": gib / remote["upload_s"],
        "download_gib_s": gib / remote["download_s"],
        "upload_vs_socket": baseline_s / remote["upload_s"],
        "download_vs_socket": baseline_s / remote["download_s"],
        "ops_per_s": remote["ops_per_s"],
        "round_trips_per_sync": remote["round_trips_per_sync"],
        "data_socket": remote["data_socket"],
        "compute_vs_local": remote["compute_s"] / local["compute_s"] if local else None,
    }
    rows = [
        [
            "upload 256 MiB",
            f"{figures['upload_gib_s']:.2f} GiB/s",
            f"{figures['upload_vs_socket']:.2f} of socket",
            ">= 0.8",
        ],
        [
            "download 256 MiB",
            f"{figures['download_gib_s']:.2f} GiB/s",
            f"{figures['download_vs_socket']:.2f} of socket",
            ">= 0.8",
        ],
        ["plain socket, new array", f"{figures['socket_gib_s']:.2f} GiB/s", "baseline", "-"],
        [
            "plain socket, reused buffer",
            f"{figures['socket_reused_buffer_gib_s']:.2f} GiB/s",
            f"up {figures['upload_vs_reused_buffer']:.2f}, down {figures['download_vs_reused_buffer']:.2f}",
            "-",
        ],
        ["queued small operations", f"{figures['ops_per_s']:,.0f} ops/s", "-", ">= 20,000"],
        ["round trips per sync point", figures["round_trips_per_sync"], "-", "1"],
        [
            "compute loop vs local CuPy",
            "-" if local is None else f"{remote['compute_s']:.3f}s",
            "needs a GPU" if local is None else f"{figures['compute_vs_local']:.3f}x",
            "<= 1.10x",
        ],
    ]
    print(f"remote CuPy on a {args.backend} daemon, loopback (Unix socket; data socket: {remote['data_socket']})")
    print_table(["measure", "result", "ratio", "target"], rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "remote_bench",
        "backend": args.backend,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "repeats": args.repeats,
        "transfer_mib": TRANSFER_MIB,
        "small_ops": SMALL_OPS,
        "figures": figures,
        "targets": TARGETS,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
