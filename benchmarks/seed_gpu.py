"""The "seed" heavy experiment of the Bitfusion paper on one NVIDIA GPU: four inference workloads
sharing the card, bare and through bitshare.

Workloads (``seed_workload.py``, fp16, random weights, random inputs made on the GPU once):
resnet50, mobilenet_v2 and efficientnet_b0 at batch 32, vit_b_16 at batch 8. Each runs flat out
for ``--seconds`` after ``--warmup`` seconds that are not counted. Phases, one after another:

1. **alone**: each workload alone on the GPU, one at a time, no bitshare;
2. **bare time-slicing**: the four at once, no bitshare, no MPS;
3. **bare MPS**: the four at once under an MPS control daemon of the benchmark's own, each
   client with ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` at a quarter of the card (skipped without
   ``nvidia-cuda-mps-control`` or with ``--no-bare-mps``);
4. **bitshare**: a real ``bitshared`` (``--backend nvml --mps on``) on a temporary socket, each
   workload started as ``bitshare run -p 0.25 -- python seed_workload.py ...``.

Concurrent workloads open their measured windows together: each warms up, prints ``ready`` and
waits for a start file that is created once all of them are ready. The figure of a phase is the
sum over the workloads of (concurrent samples/s / alone samples/s): 1.0 is no gain over running
them one after another, 4.0 would be four GPUs' worth.

    .venv/bin/python benchmarks/seed_gpu.py                      # full run on a GPU host, ~7 minutes
    .venv/bin/python benchmarks/seed_gpu.py --seconds 10 --warmup 3
    .venv/bin/python benchmarks/seed_gpu.py --smoke              # CPU-only check of the orchestration

``--smoke`` replaces the models by NumPy matmuls (``--model cpu-matmul``), measures 2 s with no
warm-up, skips bare MPS and starts the daemon with ``--simulate 1x16GiB --mps off``: it runs on a
machine without a GPU and writes its JSON to the system's temporary directory unless ``--out``.

The workloads need torch and torchvision in the interpreter given by ``--python`` (default: this
one); this script itself uses only the standard library. Exit status: 0 when every phase ran
(whether or not the targets were met), 1 when a phase failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tables import cell, print_table

HERE = Path(__file__).resolve().parent
WORKLOAD_SCRIPT = HERE / "seed_workload.py"
DEFAULT_OUT = HERE / "results" / "seed_gpu.json"
SMOKE_OUT = Path(tempfile.gettempdir()) / "seed_gpu_smoke.json"
BIN_DIR = Path(sys.executable).parent
MPS_CONTROL = "nvidia-cuda-mps-control"

PARTITION = 0.25
SMOKE_SIMULATE = "1x16GiB"
DAEMON_LOG_LEVEL = "info"
DAEMON_READY_TIMEOUT_S = 60.0
DAEMON_STOP_TIMEOUT_S = 30.0
MPS_START_TIMEOUT_S = 15.0
MPS_STOP_TIMEOUT_S = 30.0
WORKER_STOP_TIMEOUT_S = 20.0
WORKER_KILL_GRACE_S = 5.0
EXIT_MARGIN_S = 120.0  # past the measured window, for the last iteration, teardown and the JSON line
POLL_S = 0.05
COMMAND_TIMEOUT_S = 30.0
TAIL_LINES = 20

REF_TIME_SLICING = 1.35  # sum of relative throughputs, bare time-slicing, measured on an H100
REF_BARE_MPS = 1.74  # same, bare MPS, measured on an H100
REF_BITFUSION = 1.13  # Bitfusion paper, heavy case
TARGET_BITSHARE = 1.70
TARGET_VS_BARE_MPS = 0.98

ALONE, TIME_SLICING, BARE_MPS, BITSHARE = "alone", "time_slicing", "bare_mps", "bitshare"
PHASE_TITLES = {ALONE: "alone", TIME_SLICING: "bare time-slicing", BARE_MPS: "bare MPS", BITSHARE: "bitshare"}
# Variables of the caller's that would steer a phase somewhere else than the benchmark means it to go.
SCRUBBED_ENV = ("BITSHARE_SERVER", "BITSHARE_TOKEN", "BITSHARE_TLS_CA")
SCRUBBED_ENV_PREFIX = "CUDA_MPS_"


@dataclass(frozen=True)
class Workload:
    model: str
    batch: int

    @property
    def label(self) -> str:
        return f"{self.model}/b{self.batch}"


GPU_WORKLOADS = (
    Workload("resnet50", 32),
    Workload("mobilenet_v2", 32),
    Workload("efficientnet_b0", 32),
    Workload("vit_b_16", 8),
)
SMOKE_WORKLOADS = tuple(Workload("cpu-matmul", batch) for batch in (1, 2, 3, 4))


class PhaseError(RuntimeError):
    """A phase could not be measured; the message says why, with the failing workloads' stderr."""


# ----- small helpers ---------------------------------------------------------------------------


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``condition()`` is true; raise PhaseError if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise PhaseError(f"{what}: not within {timeout:g}s")
        time.sleep(POLL_S)


def console_script(name: str, module: str) -> list[str]:
    """The venv's console script beside this interpreter, else ``python -m module``."""
    script = BIN_DIR / name
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV and not k.startswith(SCRUBBED_ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def gpu_info() -> dict[str, Any]:
    """Name, driver and memory of the first GPU from nvidia-smi; empty when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {}
    fields = [f.strip() for f in lines[0].split(",")]
    if len(fields) < 3:
        return {}
    try:
        memory = int(float(fields[2]))
    except ValueError:
        memory = None
    return {"name": fields[0], "driver": fields[1], "memory_mib": memory, "count": len(lines)}


def mps_processes(pipe_dir: str | None = None) -> list[int]:
    """PIDs of MPS control daemons and servers; with ``pipe_dir``, only those started on that directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("nvidia-cuda-mps"):
                continue
            if pipe_dir is not None:
                environ = (entry / "environ").read_bytes().split(b"\0")
                if f"CUDA_MPS_PIPE_DIRECTORY={pipe_dir}".encode() not in environ:
                    continue
        except OSError:  # gone, or not ours to read
            continue
        found.append(int(entry.name))
    return found


# ----- workload processes ----------------------------------------------------------------------


class Worker:
    """One workload process. A thread reads its stdout (``ready``, then the JSON line) and reports
    to ``events``; its stderr goes to a file, shown when it fails."""

    def __init__(
        self, index: int, workload: Workload, argv: list[str], env: dict[str, str], stderr: Path, events: queue.Queue
    ) -> None:
        self.index = index
        self.workload = workload
        self.argv = argv
        self.stderr_path = stderr
        self.lines: list[str] = []
        self.ready = False
        with open(stderr, "wb") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                text=True,
                errors="replace",
                start_new_session=True,  # its own group: ended as a whole, and spared our Ctrl-C
            )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout, events), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str], events: queue.Queue) -> None:
        for raw in stream:
            line = raw.strip()
            self.lines.append(line)
            if line == "ready" and not self.ready:
                self.ready = True
                events.put((self.index, "ready"))
        events.put((self.index, "eof"))

    def result(self) -> dict[str, Any] | None:
        """The workload's JSON line (the last stdout line that is one), if it printed it."""
        for line in reversed(self.lines):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    data = json.loads(line)
                    if isinstance(data, dict) and "samples_per_s" in data:
                        return data
        return None

    def failure(self, why: str) -> str:
        code = self.proc.poll()
        state = "still running" if code is None else f"exit {code}"
        return f"{self.workload.label}: {why} ({state}); stderr:\n{indent(tail(self.stderr_path)) or '    (empty)'}"

    def wait(self, timeout: float) -> None:
        self.proc.wait(timeout)
        self._reader.join(timeout)

    def stop(self) -> None:
        """SIGTERM to its group (``bitshare run`` forwards it and ends its command), then SIGKILL."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(WORKER_STOP_TIMEOUT_S)


@dataclass(frozen=True)
class Settings:
    workloads: tuple[Workload, ...]
    python: str
    seconds: float
    warmup: float
    ready_timeout: float


def workload_argv(settings: Settings, workload: Workload, start_file: Path) -> list[str]:
    return [
        settings.python,
        str(WORKLOAD_SCRIPT),
        "--model",
        workload.model,
        "--batch",
        str(workload.batch),
        "--seconds",
        f"{settings.seconds:g}",
        "--warmup",
        f"{settings.warmup:g}",
        "--start-file",
        str(start_file),
        "--start-timeout",
        f"{settings.ready_timeout + 60:g}",
    ]


def run_together(
    name: str,
    workloads: Iterable[Workload],
    settings: Settings,
    workdir: Path,
    env: dict[str, str],
    prefix: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Start the workloads together, open their measured windows together once all are warmed up,
    and return each one's JSON figures by label. Every process is ended before this returns."""
    start_file = workdir / f"start-{name}"
    events: queue.Queue = queue.Queue()
    workers: list[Worker] = []
    try:
        for i, workload in enumerate(workloads):
            argv = (prefix or []) + workload_argv(settings, workload, start_file)
            workers.append(Worker(i, workload, argv, env, workdir / f"{name}-{i}.stderr", events))
        wait_ready(workers, events, settings.ready_timeout)
        start_file.touch()
        deadline = time.monotonic() + settings.seconds + EXIT_MARGIN_S
        for worker in workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise PhaseError(worker.failure("did not finish its window in time")) from None
        results = {w.workload.label: w.result() for w in workers}
        failures = [w.failure("failed") for w in workers if w.proc.returncode != 0 or results[w.workload.label] is None]
        if failures:
            raise PhaseError("\n".join(failures))
        return {label: result for label, result in results.items() if result is not None}
    finally:
        for worker in workers:
            worker.stop()


def wait_ready(workers: list[Worker], events: queue.Queue, timeout: float) -> None:
    """Wait until every worker has said ``ready``; fail as soon as one ends first, or at the deadline."""
    deadline = time.monotonic() + timeout
    pending = {w.index for w in workers}
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            late = [workers[i].failure(f"not ready within {timeout:g}s") for i in sorted(pending)]
            raise PhaseError("\n".join(late))
        try:
            index, what = events.get(timeout=remaining)
        except queue.Empty:
            continue
        if what == "ready":
            pending.discard(index)
        elif index in pending:  # its stdout closed before it was ready: it is ending
            with contextlib.suppress(subprocess.TimeoutExpired):
                workers[index].proc.wait(WORKER_STOP_TIMEOUT_S)
            raise PhaseError(workers[index].failure("ended before it was ready"))


# ----- the MPS control daemon of the bare-MPS phase ---------------------------------------------


class BareMps:
    """An ``nvidia-cuda-mps-control -d`` of our own, on fresh pipe and log directories."""

    def __init__(self, workdir: Path, control: str) -> None:
        self.control = control
        self.pipe_dir = workdir / "mps-pipe"
        self.log_dir = workdir / "mps-log"
        self.pipe_dir.mkdir()
        self.log_dir.mkdir()
        self.env = base_env() | {
            "CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir),
            "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir),
        }
        self.started = False

    def start(self) -> None:
        done = subprocess.run(
            [self.control, "-d"], env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        if done.returncode != 0:
            raise PhaseError(f"{self.control} -d exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
        self.started = True
        wait_until(lambda: bool(self.pids()), MPS_START_TIMEOUT_S, f"{self.control} -d to come up")

    def pids(self) -> list[int]:
        return mps_processes(str(self.pipe_dir))

    def stop(self) -> dict[str, Any]:
        """``quit`` on its control pipe, then wait until its processes are gone; SIGKILL what is left."""
        if not self.started:
            return {"stopped": True, "killed": []}
        began = time.monotonic()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [self.control], input="quit\n", env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
            )
        killed: list[int] = []
        try:
            wait_until(lambda: not self.pids(), MPS_STOP_TIMEOUT_S, "MPS control daemon to exit")
        except PhaseError:
            killed = self.pids()
            for pid in killed:  # ours: they carry our pipe directory
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.started = False
        return {"stopped": not killed, "killed": killed, "stop_s": round(time.monotonic() - began, 3)}

    def log_tail(self) -> str:
        return tail(self.log_dir / "control.log")


# ----- the bitshare daemon -----------------------------------------------------------------------


def daemon_supports_mps() -> bool:
    try:
        done = subprocess.run(
            [*console_script("bitshared", "bitshare.daemon"), "--help"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            env=base_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--mps" in done.stdout


class Daemon:
    """A ``bitshared`` subprocess on a Unix socket in ``workdir``, with its own state directory."""

    def __init__(self, workdir: Path, backend_args: list[str], mps: str, mps_flag: bool) -> None:
        self.socket = workdir / "bitshared.sock"
        self.target = f"unix:{self.socket}"
        self.log_path = workdir / "bitshared.log"
        config = workdir / "empty.toml"  # keeps any /etc/bitshare/bitshare.toml out of the run
        config.write_text("")
        self.command = [
            *console_script("bitshared", "bitshare.daemon"),
            "--config",
            str(config),
            "--listen",
            self.target,
            "--state-dir",
            str(workdir / "state"),
            *backend_args,
            *(["--mps", mps] if mps_flag else []),
            "--log-level",
            DAEMON_LOG_LEVEL,
        ]
        self.client = [*console_script("bitshare", "bitshare"), "--server", self.target]
        self.env = base_env()
        self.gpus: Any = None
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env, start_new_session=True
            )

    def wait_ready(self, timeout: float) -> None:
        """Poll ``bitshare --json list-gpus`` until it succeeds; keep what it printed."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PhaseError(f"bitshared exited with {self.proc.returncode}:\n{indent(self.log_tail())}")
            try:
                done = subprocess.run(
                    [*self.client, "--json", "list-gpus"],
                    capture_output=True,
                    text=True,
                    env=self.env,
                    timeout=max(1.0, min(COMMAND_TIMEOUT_S, deadline - time.monotonic())),
                )
            except subprocess.TimeoutExpired:
                last = "list-gpus timed out"
                continue
            if done.returncode == 0:
                with contextlib.suppress(ValueError):
                    self.gpus = json.loads(done.stdout)
                return
            said = (done.stderr or done.stdout).strip().splitlines()
            last = said[-1] if said else f"exit {done.returncode}"
            time.sleep(POLL_S)
        raise PhaseError(f"bitshared did not answer within {timeout:g}s ({last}):\n{indent(self.log_tail())}")

    def run_prefix(self, partition: float) -> list[str]:
        return [
            *self.client,
            "run",
            "-p",
            f"{partition:g}",
            "--no-wait",
            "--kill-grace",
            f"{WORKER_KILL_GRACE_S:g}",
            "--",
        ]

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then wait; SIGKILL only if it does not stop in time."""
        began = time.monotonic()
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DAEMON_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                killed = True
        return {"exit_code": self.proc.returncode, "killed": killed, "stop_s": round(time.monotonic() - began, 3)}

    def log_tail(self) -> str:
        return tail(self.log_path)


# ----- phases ------------------------------------------------------------------------------------


def phase_alone(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Each workload on its own, one after another; a failing one is recorded and the rest still run."""
    results: dict[str, Any] = {}
    errors: list[str] = []
    for i, workload in enumerate(settings.workloads):
        try:
            results |= run_together(f"alone-{i}", [workload], settings, workdir, base_env())
        except PhaseError as exc:
            errors.append(str(exc))
        report(ALONE, results.get(workload.label), workload)
    return {"workloads": results, "error": "\n".join(errors) or None}


def phase_time_slicing(settings: Settings, workdir: Path) -> dict[str, Any]:
    return {"workloads": run_together(TIME_SLICING, settings.workloads, settings, workdir, base_env())}


def phase_bare_mps(settings: Settings, workdir: Path, control: str, limit_mib: int | None) -> dict[str, Any]:
    mps = BareMps(workdir, control)
    env = dict(mps.env)
    if limit_mib is not None:
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={limit_mib}M"
    info: dict[str, Any] = {"pipe_directory": str(mps.pipe_dir), "pinned_device_mem_limit_mib": limit_mib}
    try:
        mps.start()
        info["control_pids"] = mps.pids()
        info["workloads"] = run_together(BARE_MPS, settings.workloads, settings, workdir, env)
    except (PhaseError, OSError) as exc:  # kept with the MPS log, rather than raised without it
        info["error"] = str(exc)
    finally:
        info["stop"] = mps.stop()
        info["control_log_tail"] = mps.log_tail()
    return info


def phase_bitshare(
    settings: Settings, workdir: Path, backend_args: list[str], mps: str, partition: float
) -> dict[str, Any]:
    mps_flag = daemon_supports_mps()
    if not mps_flag and mps != "off":
        print(f"  warning: this bitshared has no --mps flag; it runs without '--mps {mps}'", file=sys.stderr)
    daemon_dir = workdir / "bitshared"
    daemon_dir.mkdir()
    daemon = Daemon(daemon_dir, backend_args, mps, mps_flag)
    info: dict[str, Any] = {"daemon_command": daemon.command, "mps": mps, "mps_flag_passed": mps_flag}
    try:
        daemon.wait_ready(DAEMON_READY_TIMEOUT_S)
        info["gpus"] = daemon.gpus
        prefix = daemon.run_prefix(partition)
        info["run_prefix"] = prefix
        info["workloads"] = run_together(BITSHARE, settings.workloads, settings, workdir, base_env(), prefix)
    except (PhaseError, OSError) as exc:  # kept with the daemon's log, rather than raised without it
        info["error"] = f"{exc}\nbitshared's log:\n{indent(daemon.log_tail())}"
    finally:
        info["daemon_stop"] = daemon.stop()
        info["daemon_log_tail"] = daemon.log_tail()
    return info


def report(phase: str, result: dict[str, Any] | None, workload: Workload) -> None:
    rate = "failed" if result is None else f"{result['samples_per_s']:,.1f} samples/s"
    print(f"  {PHASE_TITLES[phase]:>17}: {workload.label:<22} {rate}", flush=True)


# ----- figures -----------------------------------------------------------------------------------


def relative_sum(phase: dict[str, Any], alone: dict[str, Any], labels: list[str]) -> float | None:
    """Sum over the workloads of concurrent samples/s over alone samples/s; None if any is missing."""
    got = phase.get("workloads") or {}
    total = 0.0
    for label in labels:
        if label not in got or label not in alone or not alone[label]["samples_per_s"]:
            return None
        relative = got[label]["samples_per_s"] / alone[label]["samples_per_s"]
        got[label]["relative_to_alone"] = round(relative, 4)
        total += relative
    return round(total, 4)


def window_spread(phase: dict[str, Any]) -> dict[str, float] | None:
    """How far apart the measured windows of a concurrent phase started and ended, in seconds."""
    results = list((phase.get("workloads") or {}).values())
    starts = [r["started_at"] for r in results if "started_at" in r]
    ends = [r["ended_at"] for r in results if "ended_at" in r]
    if len(starts) < 2 or len(ends) < 2:
        return None
    return {"start_spread_s": round(max(starts) - min(starts), 4), "end_spread_s": round(max(ends) - min(ends), 4)}


def targets(sums: dict[str, float | None], bare_mps_ran: bool) -> list[dict[str, Any]]:
    """The bitshare figure against its target and, when bare MPS ran, against bare MPS."""
    bitshare, bare = sums.get(BITSHARE), sums.get(BARE_MPS)
    checks: list[tuple[str, float | None, float]] = [
        (f"bitshare sum >= {TARGET_BITSHARE:g}", bitshare, TARGET_BITSHARE)
    ]
    if bare_mps_ran:
        vs = None if bitshare is None or not bare else round(bitshare / bare, 4)
        checks.append((f"bitshare / bare MPS >= {TARGET_VS_BARE_MPS:g}", vs, TARGET_VS_BARE_MPS))
    return [
        {
            "target": what,
            "measured": value,
            "met": None if value is None else value >= goal,
            "result": "NOT MEASURED" if value is None else ("PASS" if value >= goal else "MISS"),
        }
        for what, value, goal in checks
    ]


# ----- output ------------------------------------------------------------------------------------


def print_summary(
    card: dict[str, Any],
    phases: dict[str, dict[str, Any]],
    labels: list[str],
    sums: dict[str, float | None],
    goals: list[dict[str, Any]],
) -> None:
    shown = [p for p in (TIME_SLICING, BARE_MPS, BITSHARE) if "workloads" in phases.get(p, {})]

    def rate(phase: str, label: str) -> str:
        result = (phases[phase].get("workloads") or {}).get(label)
        if result is None:
            return "-"
        relative = result.get("relative_to_alone")
        return f"{result['samples_per_s']:,.1f}" + ("" if relative is None else f" ({relative:.2f})")

    def measured(phase: str) -> object:
        got = phases.get(phase, {})
        if "skipped" in got:
            return f"skipped ({got['skipped']})"
        return "failed" if got.get("error") and sums.get(phase) is None else sums.get(phase)

    print()
    if card:
        print(f"card: {card['name']}, driver {card['driver']}, {cell(card['memory_mib'])} MiB")
    else:
        print("card: none (nvidia-smi missing or not answering)")
    print("samples/s per workload (relative to alone):")
    print_table(
        ["workload", "alone", *(PHASE_TITLES[p] for p in shown)],
        [[label, rate(ALONE, label), *(rate(p, label) for p in shown)] for label in labels],
    )
    print()
    print("sum over workloads of (concurrent samples/s / alone samples/s):")
    verdicts = [f"{goal['target']}: {goal['result']}" for goal in goals]
    rows: list[list[object]] = [
        ["bare time-slicing", measured(TIME_SLICING), f"{REF_TIME_SLICING:g} (H100)", "-"],
        ["bare MPS", measured(BARE_MPS), f"{REF_BARE_MPS:g} (H100)", "-"],
        ["Bitfusion paper, heavy", None, f"{REF_BITFUSION:g}", "-"],
        ["bitshare", measured(BITSHARE), "-", verdicts[0] if verdicts else "- (smoke: no GPU target)"],
    ]
    if len(goals) > 1:
        rows.append(["bitshare / bare MPS", goals[1]["measured"], "-", verdicts[1]])
    print_table(["phase", "measured", "reference", "target"], rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Four inference workloads sharing one GPU: alone, bare time-slicing, bare MPS, and bitshare.",
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per workload [30; smoke 2]")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds, not counted [5; smoke 0]")
    parser.add_argument("--mps", choices=("auto", "on", "off"), default="on", help="bitshared's --mps [on; smoke off]")
    parser.add_argument("--no-bare-mps", action="store_true", help="skip the bare-MPS phase")
    parser.add_argument(
        "--partition", type=float, default=PARTITION, help=f"bitshare run -p per workload [{PARTITION}]"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the workloads (needs torch) [this one]"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=300.0, help="seconds for all workloads of a phase to warm up [300]"
    )
    parser.add_argument("--smoke", action="store_true", help="CPU-only check: NumPy workloads, simulated GPU, no MPS")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON results file [{DEFAULT_OUT}; smoke {SMOKE_OUT}]")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 2.0 if args.smoke else 30.0
    if args.warmup is None:
        args.warmup = 0.0 if args.smoke else 5.0
    if args.out is None:
        args.out = SMOKE_OUT if args.smoke else DEFAULT_OUT
    if args.smoke:
        args.mps = "off"
        args.no_bare_mps = True
    if args.seconds <= 0 or args.warmup < 0 or args.ready_timeout <= 0 or not 0 < args.partition <= 1:
        parser.error("--seconds and --ready-timeout must be > 0, --warmup >= 0 and --partition in (0, 1]")
    return args


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that end every process


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workloads = SMOKE_WORKLOADS if args.smoke else GPU_WORKLOADS
    labels = [w.label for w in workloads]
    settings = Settings(workloads, args.python, args.seconds, args.warmup, args.ready_timeout)
    card = gpu_info()
    control = None if args.no_bare_mps else shutil.which(MPS_CONTROL)
    backend_args = ["--simulate", SMOKE_SIMULATE] if args.smoke else ["--backend", "nvml"]
    limit_mib = int(card["memory_mib"] * args.partition) if card.get("memory_mib") else None
    foreign_mps = mps_processes()
    print(
        f"seed benchmark{' (smoke)' if args.smoke else ''}: {', '.join(labels)}; {args.seconds:g}s measured after "
        f"{args.warmup:g}s warm-up; card: {card.get('name', 'none')}"
    )
    if foreign_mps:
        print(f"  warning: MPS processes already running (pids {foreign_mps}): 'bare' phases may run under them")

    phases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bitshare-seed-") as tmp:
        workdir = Path(tmp)
        plan: list[tuple[str, Any]] = [
            (ALONE, lambda: phase_alone(settings, workdir)),
            (TIME_SLICING, lambda: phase_time_slicing(settings, workdir)),
        ]
        if control is not None:
            plan.append((BARE_MPS, lambda: phase_bare_mps(settings, workdir, control, limit_mib)))
        else:
            why = "--no-bare-mps" if args.no_bare_mps else f"{MPS_CONTROL} not on PATH"
            phases[BARE_MPS] = {"skipped": why}
        plan.append((BITSHARE, lambda: phase_bitshare(settings, workdir, backend_args, args.mps, args.partition)))
        for name, run in plan:
            print(f"phase {PHASE_TITLES[name]} ...", flush=True)
            began = time.monotonic()
            try:
                phases[name] = run()
            except (PhaseError, OSError) as exc:
                phases[name] = {"error": str(exc)}
            phases[name]["wall_s"] = round(time.monotonic() - began, 1)
            if phases[name].get("error"):
                print(f"  {PHASE_TITLES[name]} failed:\n{indent(phases[name]['error'])}", file=sys.stderr, flush=True)
            if name != ALONE:
                for workload in workloads:
                    report(name, (phases[name].get("workloads") or {}).get(workload.label), workload)

    alone = phases[ALONE].get("workloads") or {}
    sums: dict[str, float | None] = {}
    for name in (TIME_SLICING, BARE_MPS, BITSHARE):
        if "workloads" in phases.get(name, {}):
            sums[name] = relative_sum(phases[name], alone, labels)
            phases[name]["sum_relative_to_alone"] = sums[name]
            phases[name]["window_spread"] = window_spread(phases[name])
    # The targets are about GPUs: a smoke run (NumPy on a simulated GPU) checks the plumbing only.
    goals = [] if args.smoke else targets(sums, "workloads" in phases.get(BARE_MPS, {}))
    phases = {name: phases[name] for name in PHASE_TITLES if name in phases}
    failed = [name for name, phase in phases.items() if phase.get("error")]

    result = {
        "benchmark": "seed_gpu",
        "smoke": args.smoke,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "gpu": card,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "mps_processes_before": foreign_mps,
        },
        "parameters": {
            "workloads": [{"model": w.model, "batch": w.batch} for w in workloads],
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "precision": "cpu float32" if args.smoke else "fp16",
            "partition": args.partition,
            "mps": args.mps,
            "daemon_backend": backend_args,
            "workload_python": args.python,
        },
        "phases": phases,
        "sum_relative_to_alone": sums,
        "references": {
            "bare_time_slicing_h100": REF_TIME_SLICING,
            "bare_mps_h100": REF_BARE_MPS,
            "bitfusion_paper_heavy": REF_BITFUSION,
        },
        "targets": goals,
        "failed_phases": failed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print_summary(card, phases, labels, sums, goals)
    if failed:
        print(f"failed phases: {', '.join(PHASE_TITLES[name] for name in failed)} (see above and the JSON)")
    print(f"results written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
