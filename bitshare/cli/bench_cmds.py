"""``bitshare bench seed``: the GPU-sharing experiment of the Bitfusion paper, through real leases."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from .. import __version__
from ..bench import report
from ..bench.seed import LOADS, BenchError, Plan, builtin_workloads, run_seed, user_workloads
from ..errors import UsageError
from ..holder.environment import credentials_environment
from ..present.printable import printable
from .base import JSON, app, emit, state
from .output import note, say

bench_app = typer.Typer(no_args_is_help=True, help="Experiments through real leases.")
app.add_typer(bench_app, name="bench")


@bench_app.command("seed")
def seed(
    ctx: typer.Context,
    load: str = typer.Option("both", "--load", help="light, heavy or both."),
    duration: float = typer.Option(30.0, "--duration", help="Seconds of one workload's slot alone."),
    workloads: str = typer.Option("", "--workloads", help="Built-in workloads to run, comma-separated."),
    workload: list[str] | None = typer.Option(
        None, "--workload", help="Your own program instead (repeatable): 'python my_infer.py'."
    ),
    gpu: int = typer.Option(0, "--gpu", help="The GPU to share (its index on the daemon)."),
    bare: bool = typer.Option(False, "--bare", help="Also run them at once without bitshare."),
    out: Path | None = typer.Option(None, "--out", help="Directory for seed.json and the plots."),
    json_output: bool = JSON,
) -> None:
    """Four workloads under 25% leases of one GPU: one after another, then all at once."""
    if load not in (*LOADS, "both"):
        raise UsageError(f"--load must be light, heavy or both, got {load!r}")
    if not 1 <= duration <= 3600:
        raise UsageError(f"--duration must be between 1 and 3600 seconds, got {duration:g}")
    client = state(ctx).pool()[0]
    info = client.info
    gpus = {g.index: g for g in client.gpus()}
    if gpu not in gpus:
        raise UsageError(f"--gpu {gpu}: {client.address} has GPUs {sorted(gpus)}")
    try:
        chosen = user_workloads(workload) if workload else builtin_workloads(info.simulated, _names(workloads))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if bare and info.simulated and not workload:
        raise UsageError("--bare needs a real GPU: the built-in workloads reach simulated GPUs only through leases")
    out = out or Path(f"bitshare-seed-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **credentials_environment(*client.credentials)}  # the workloads reach it as we do
    plan = Plan(
        workloads=chosen,
        loads=LOADS if load == "both" else (load,),
        duration_s=duration,
        share=round(1 / len(chosen), 4),
        gpu_index=gpu,
        bare=bare,
        env=env,
    )
    device = gpus[gpu]
    label = "CPU-simulated: NumPy in the daemon's worker, not a GPU" if device.simulated else "NVIDIA GPU"
    say(
        f"seed experiment: {len(chosen)} workloads x {plan.share:.0%} of GPU {gpu} ({device.name}) on "
        f"{client.address}, about {plan.seconds() / 60:.1f} min; results in {out}",
        err=True,
    )
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        loads = run_seed(client, str(client.address), plan, out / "logs", _progress)
    except BenchError as exc:
        raise BenchError(f"{exc} (logs in {out / 'logs'})") from None
    data = {
        "experiment": "seed",
        "bitshare_version": __version__,
        "server": str(client.address),
        "device": device.name,
        "simulated": device.simulated,
        "label": label,
        "gpu_index": gpu,
        "memory_mib": device.total_mib,
        "share": plan.share,
        "duration_s": duration,
        "workloads": [{"name": w.name, "command": w.command} for w in chosen],
        "started_at": started,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loads": loads,
    }
    (out / "seed.json").write_text(json.dumps(data, indent=2) + "\n")
    emit(ctx, json_output, data, report.text_report(data))  # the JSON is seed.json's
    try:
        plots = report.write_plots(data, out)
    except ImportError:
        note("no plots: install matplotlib (pip install 'bitshare[bench]')")
        plots = []
    say(f"written: {', '.join(str(p) for p in [out / 'seed.json', *plots])}", err=True)


def _names(text: str) -> list[str] | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _progress(what: str, left_s: float) -> None:
    line = printable(f"[{left_s / 60:4.1f} min left] {what}")
    if sys.stderr.isatty():
        print(f"\r\x1b[2K{line}", end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)
