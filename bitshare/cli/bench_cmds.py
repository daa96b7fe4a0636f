"""``bitshare bench seed``: the GPU-sharing experiment of the Bitfusion paper, through real leases."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from .. import __version__
from ..bench import baselines, report
from ..bench.seed import LOADS, BenchError, Plan, Workload, builtin_workloads, run_seed, user_workloads
from ..client.connection import Client
from ..errors import UsageError
from ..holder.environment import credentials_environment
from ..present.printable import printable
from ..protocol.v1 import bitshare_pb2 as pb
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
    library: str = typer.Option(
        "auto",
        "--library",
        help="The built-in workloads: torch (torchvision models; remote PyTorch on simulated GPUs), cupy "
        "(MLPs), or auto (torch on NVIDIA GPUs with torchvision here, else cupy).",
    ),
    workload: list[str] | None = typer.Option(
        None, "--workload", help="Your own program instead (repeatable): 'python my_infer.py'."
    ),
    gpu: int = typer.Option(0, "--gpu", help="The GPU to share (its index on the daemon)."),
    baseline: list[str] | None = typer.Option(
        None,
        "--baseline",
        help="Also run them at once without bitshare (repeatable): time-slicing (no MPS) or mps "
        "(bare MPS, each held to the lease's memory). NVIDIA GPUs of a local daemon only.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Directory for seed.json and the plots."),
    json_output: bool = JSON,
) -> None:
    """Four workloads under 25% leases of one GPU: one after another, then all at once."""
    chosen_baselines = tuple(dict.fromkeys(baseline or ()))  # each once, in the order given
    _check_options(load, duration, chosen_baselines, library)
    client = state(ctx).pool()[0]
    plan, device = _plan(client, load, duration, gpu, workload or [], workloads, chosen_baselines, library)
    out = out or Path(f"bitshare-seed-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    label = _label(device.simulated, plan.workloads)
    say(
        f"seed experiment: {len(plan.workloads)} workloads x {plan.share:.0%} of GPU {gpu} ({device.name}) on "
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
        "workloads": [{"name": w.name, "command": w.command} for w in plan.workloads],
        "baselines": list(plan.baselines),
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
    failed = report.baseline_failures(data)
    if failed:  # the leased runs' results are written all the same
        raise BenchError(f"baseline {'; '.join(failed)} (logs in {out / 'logs'})")


def _label(simulated: bool, workloads: list[Workload]) -> str:
    if not simulated:
        return "NVIDIA GPU"
    if any("bitshare.bench.workloads.torch_model" in w.command for w in workloads):
        return (
            "CPU-simulated: remote PyTorch from GPU-less clients, PyTorch on the CPU in the daemon's worker, not a GPU"
        )
    return "CPU-simulated: NumPy in the daemon's worker, not a GPU"


def _check_options(load: str, duration: float, chosen_baselines: tuple[str, ...], library: str) -> None:
    """The options that need no daemon to check: refused before it is reached."""
    if library not in ("auto", "torch", "cupy"):
        raise UsageError(f"--library must be torch, cupy or auto, got {library!r}")
    if load not in (*LOADS, "both"):
        raise UsageError(f"--load must be light, heavy or both, got {load!r}")
    if not 1 <= duration <= 3600:
        raise UsageError(f"--duration must be between 1 and 3600 seconds, got {duration:g}")
    unknown = [name for name in chosen_baselines if name not in baselines.BASELINES]
    if unknown:
        raise UsageError(f"--baseline {unknown[0]!r}: the baselines are {' and '.join(baselines.BASELINES)}")


def _plan(
    client: Client,
    load: str,
    duration: float,
    gpu: int,
    commands: list[str],
    names: str,
    chosen_baselines: tuple[str, ...],
    library: str,
) -> tuple[Plan, pb.Gpu]:
    """The experiment asked for, checked against what the daemon serves (UsageError, before
    anything runs or is written), and the GPU it shares."""
    gpus = {g.index: g for g in client.gpus()}
    if gpu not in gpus:
        raise UsageError(f"--gpu {gpu}: {client.address} has GPUs {sorted(gpus)}")
    device = gpus[gpu]
    try:
        chosen = (
            user_workloads(commands) if commands else builtin_workloads(client.info.simulated, _names(names), library)
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    mps_control = baselines.find_mps_control() if baselines.MPS in chosen_baselines else None
    why_not = baselines.refusal(chosen_baselines, device.simulated, client.address.is_loopback, mps_control)
    if why_not:
        raise UsageError(why_not)
    share = round(1 / len(chosen), 4)
    plan = Plan(
        workloads=chosen,
        loads=LOADS if load == "both" else (load,),
        duration_s=duration,
        share=share,
        gpu_index=gpu,
        env={**os.environ, **credentials_environment(*client.credentials)},  # the workloads reach it as we do
        baselines=chosen_baselines,
        gpu_uuid=device.uuid,
        memory_limit_mib=int(device.capacity_mib * share),
    )
    return plan, device


def _names(text: str) -> list[str] | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _progress(what: str, left_s: float) -> None:
    line = printable(f"[{left_s / 60:4.1f} min left] {what}")
    if sys.stderr.isatty():
        print(f"\r\x1b[2K{line}", end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)
