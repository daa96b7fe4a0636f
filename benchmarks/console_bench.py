"""Console responsiveness: bitshare-admin in a real terminal (tmux) against a busy daemon.

Starts a real ``bitshared`` with 8 simulated GPUs and 200 leases, keeps it changing twice a
second (a lease released and another granted every 0.5 s, so telemetry snapshots arrive at
the console's 2 per second), and runs ``bitshare-admin`` in a 160x48 tmux pane. Then:

- **keypress latency**: move the cursor up the lease table (the header names the lease under
  it) and switch between the GPUs and Leases views (``g``/``l``), ``--presses`` times each, timing
  from the key until the pane shows the change (tmux capture-pane, polled every 5 ms). Target:
  p95 under 100 ms.
- **CPU**: the console process's CPU time over ``--seconds`` of updates with no keys. Target:
  under 10% of one core.

    .venv/bin/python benchmarks/console_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from tables import print_table

from bitshare.client.connection import LeaseRequest, connect

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "console_bench.json"
GPUS, LEASES = 8, 200
SESSION = "bitshare-console-bench"
TARGET_P95_MS, TARGET_CPU_PCT = 100.0, 10.0


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def pane_text() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_screen(predicate, timeout: float, what: str, missed: list[str] | None = None) -> float:
    """Seconds until the pane satisfies ``predicate``. A timeout ends the run, unless ``missed``
    collects it (the key then counts as answered after ``timeout``, and the run goes on)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate(pane_text()):
            return time.perf_counter() - started
        time.sleep(0.005)
    if missed is not None:
        missed.append(what)
        return timeout
    raise SystemExit(f"the console did not show {what} within {timeout:g}s:\n{pane_text()}")


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 (nearest rank)."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def verdict(met: bool, target: str) -> str:
    return f"{target}: {'MET' if met else 'MISSED'}"


def settle(quiet_s: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the keys sent so far are all handled: the header stays the same for ``quiet_s``."""
    deadline = time.monotonic() + timeout
    last, since = header(pane_text()), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise SystemExit("the console kept changing its header")
        time.sleep(0.05)
        now = header(pane_text())
        if now != last:
            last, since = now, time.monotonic()


def header(text: str) -> str:
    return text.splitlines()[0] if text else ""


def churn(server: str, stop: threading.Event, lease_ids: list[str]) -> None:
    """Release one lease and request another every 0.5 s: the daemon changes twice a second."""
    with connect(server) as client:
        while not stop.wait(0.5):
            client.release(lease_ids.pop(0))
            lease_ids.append(client.request(LeaseRequest(memory_mib=256, ttl_s=3600, command="python infer.py")).id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("console_bench needs tmux")

    with tempfile.TemporaryDirectory(prefix="bitshare-console-bench-") as tmp:
        work = Path(tmp)
        server = f"unix:{work / 'bitshared.sock'}"
        log = open(work / "bitshared.log", "wb")  # noqa: SIM115 - held for the daemon's life
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bitshare.daemon",
                "--listen",
                server,
                "--state-dir",
                str(work / "state"),
                "--simulate",
                f"{GPUS}x80GiB",
                "--lease-ttl",
                "3600",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=log,
        )
        stop = threading.Event()
        try:
            deadline = time.monotonic() + 30
            while not (work / "bitshared.sock").exists():
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bitshared did not start:\n{(work / 'bitshared.log').read_text()}")
                time.sleep(0.05)
            time.sleep(0.5)
            with connect(server) as client:
                lease_ids = [
                    client.request(LeaseRequest(memory_mib=256, ttl_s=3600, command=f"python job{i}.py")).id
                    for i in range(LEASES)
                ]
            console = f"exec {sys.executable} -m bitshare.tui --server {server}"
            tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", console)
            pid = int(tmux("display-message", "-p", "-t", SESSION, "#{pane_pid}").strip())
            wait_screen(lambda text: "GPU 7 ·" in text or "GPU 0 ·" in text, 30, "the GPUs")
            churner = threading.Thread(target=churn, args=(server, stop, lease_ids), daemon=True)
            churner.start()
            time.sleep(2)

            switching: dict[str, list[float]] = {"leases": [], "gpus": []}  # a whole new screen each
            for press in range(args.presses):
                view, key, marker = ("leases", "l", "OWNER") if press % 2 == 0 else ("gpus", "g", "lendable")
                tmux("send-keys", "-t", SESSION, key)
                switching[view].append(1000 * wait_screen(lambda text, m=marker: m in text, 5, f"the view of {key!r}"))
            tmux("send-keys", "-t", SESSION, "l")
            wait_screen(lambda text: "OWNER" in text, 5, "the Leases view")
            tmux("send-keys", "-t", SESSION, *["Down"] * 100)  # to the middle: churn takes rows off the top
            settle()
            if " on unix:" not in header(pane_text()):
                raise SystemExit(f"the header names no lease after moving the cursor:\n{pane_text()}")
            latencies = []  # moving the cursor in the lease table: the header names the lease under it
            missed: list[str] = []  # keys whose effect never showed (counted at the 5 s limit)
            for press in range(args.presses):
                before = header(pane_text())
                tmux("send-keys", "-t", SESSION, "Down" if press % 2 == 0 else "Up")
                latencies.append(
                    1000 * wait_screen(lambda text, b=before: header(text) != b, 5, "the cursor moved", missed)
                )
            process = psutil.Process(pid)
            before, started = process.cpu_times(), time.monotonic()
            time.sleep(args.seconds)
            after, elapsed = process.cpu_times(), time.monotonic() - started
            cpu_pct = 100 * ((after.user + after.system) - (before.user + before.system)) / elapsed
        finally:
            stop.set()
            subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True, check=False)
            daemon.terminate()
            daemon.wait(timeout=30)

    p50, p95 = percentiles(latencies)
    to_leases, to_gpus = percentiles(switching["leases"]), percentiles(switching["gpus"])
    every_switch = percentiles(switching["leases"] + switching["gpus"])
    rows = [
        ["cursor key to redraw, p50", f"{p50:.1f} ms", "-"],
        ["cursor key to redraw, p95", f"{p95:.1f} ms", verdict(p95 < TARGET_P95_MS, f"< {TARGET_P95_MS:g} ms")],
        ["cursor keys never shown (5 s)", str(len(missed)), verdict(not missed, "0")],
        ["switch to Leases, p50 / p95", f"{to_leases[0]:.1f} / {to_leases[1]:.1f} ms", "-"],
        ["switch to GPUs, p50 / p95", f"{to_gpus[0]:.1f} / {to_gpus[1]:.1f} ms", "-"],
        [
            "any view switch to redraw, p95",
            f"{every_switch[1]:.1f} ms",
            verdict(every_switch[1] < TARGET_P95_MS, f"< {TARGET_P95_MS:g} ms"),
        ],
        [
            "console CPU while updating",
            f"{cpu_pct:.1f}% of a core",
            verdict(cpu_pct < TARGET_CPU_PCT, f"< {TARGET_CPU_PCT:g}%"),
        ],
    ]
    print(f"bitshare-admin in tmux 160x48; {GPUS} simulated GPUs, {LEASES} leases, 2 changes/s")
    print_table(["measure", "result", "target"], rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "console_bench",
                "gpus": GPUS,
                "leases": LEASES,
                "presses": args.presses,
                "seconds": args.seconds,
                "cursor_latency_ms": {"p50": p50, "p95": p95, "all": latencies, "not_shown_in_5s": len(missed)},
                "view_switch_latency_ms": {
                    "p50": every_switch[0],
                    "p95": every_switch[1],
                    "to_leases": {"p50": to_leases[0], "p95": to_leases[1], "all": switching["leases"]},
                    "to_gpus": {"p50": to_gpus[0], "p95": to_gpus[1], "all": switching["gpus"]},
                },
                "cpu_pct": cpu_pct,
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
