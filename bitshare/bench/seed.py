"""The seed experiment: four inference workloads, each under its own lease of a share of one GPU,
run one after another (each with the device to itself for its slot) and then all at once (for as
long as the slots together), under a heavy load (flat out) and a light one (Poisson arrivals at
LIGHT_SHARE of what the workload serves alone flat out, calibrated on the spot).

Workloads are programs speaking :mod:`bitshare.bench.protocol`, each started as
``bitshare run -p SHARE --filter index=GPU -- CMD``. The device's utilisation and memory are read
from the daemon while they run. Baselines (:mod:`.baselines`) run them all at once again, on the
same GPU, without bitshare.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..client.connection import Client
from ..errors import BitshareError
from . import baselines, protocol
from .stats import LIGHT_SHARE, PAPER, Window, compare, poisson_arrivals

LOADS = ("heavy", "light")
IN_FLIGHT = 2  # flat out: requests kept outstanding, so a workload never waits for the next one
BACKLOG_S = 1.0  # light load: at most this many seconds of requests wait; later arrivals are dropped
READY_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 60.0
SAMPLE_EVERY_S = 0.25
TORCH_MODELS = (("resnet50", 32), ("mobilenet_v2", 32), ("efficientnet_b0", 32), ("vit_b_16", 8))
MLP_SIZES = ("small", "medium", "large", "xlarge")


class BenchError(BitshareError):
    """The experiment could not run (a workload failed, a lease was refused...)."""


@dataclass(frozen=True)
class Workload:
    name: str
    command: list[str]


def has_torchvision() -> bool:
    return bool(importlib.util.find_spec("torch") and importlib.util.find_spec("torchvision"))


def builtin_library(simulated: bool, asked: str) -> str:
    """The built-in workloads' library: torch (torchvision models) or cupy (MLPs). By default
    torch on NVIDIA GPUs when torchvision is here, else CuPy; on simulated GPUs torch is asked for,
    and runs as remote PyTorch (the clients have no GPU, as in the paper)."""
    if asked == "auto":
        return "torch" if not simulated and has_torchvision() else "cupy"
    if asked == "torch" and not has_torchvision():
        raise ValueError("--library torch needs torch and torchvision here (pip install 'bitshare[torch]' torchvision)")
    return asked


def builtin_workloads(simulated: bool, names: list[str] | None = None, library: str = "auto") -> list[Workload]:
    """The four built-in workloads: torchvision models (fp16, at the paper's batches, on NVIDIA GPUs;
    fp32, small batches and images, through remote PyTorch on simulated ones), or CuPy MLPs of four
    sizes (through remote CuPy on simulated GPUs)."""
    python = sys.executable
    if builtin_library(simulated, library) == "torch":
        found = []
        for model, batch in TORCH_MODELS:
            shape = ["--batch", str(batch)]
            if simulated:  # the CPU computes: small enough for a slot of seconds
                shape = ["--batch", "1", "--image-size", "224" if model.startswith("vit") else "96", "--fp32"]
            found.append(
                Workload(model, [python, "-m", "bitshare.bench.workloads.torch_model", "--model", model, *shape])
            )
    else:
        found = [
            Workload(f"mlp-{size}", [python, "-m", "bitshare.bench.workloads.cupy_mlp", "--size", size])
            for size in MLP_SIZES
        ]
    if names:
        unknown = set(names) - {w.name for w in found}
        if unknown:
            known = ", ".join(w.name for w in found)
            raise ValueError(f"no built-in workload {', '.join(sorted(unknown))} here (built-in: {known})")
        found = [w for w in found if w.name in names]
    return found


def user_workloads(commands: list[str]) -> list[Workload]:
    """``--workload 'python my_infer.py'``: a name from the program, numbered when repeated."""
    workloads = []
    for number, command in enumerate(commands, 1):
        words = shlex.split(command)
        if not words:
            raise ValueError("--workload needs a command")
        scripts = [w for w in words[1:] if not w.startswith("-") and " " not in w and Path(w).suffix]
        name = Path(scripts[0]).stem if scripts else Path(words[0]).name  # my_infer.py, else the program
        workloads.append(Workload(f"{number}-{name}", words))
    return workloads


class Driven:
    """One workload's process, fed requests and timed. Under a lease unless ``lease_args`` is None."""

    def __init__(
        self, workload: Workload, server: str, lease_args: list[str] | None, log: Path, env: dict[str, str]
    ) -> None:
        self.workload = workload
        command = workload.command
        if lease_args is not None:
            command = [sys.executable, "-m", "bitshare", "--server", server, "run", *lease_args, "--", *command]
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1, env=env
        )
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._pending: deque[float] = deque()  # arrival times of requests sent, not yet done
        self._window: Window | None = None
        self._window_span = (0.0, 0.0)
        self._refill = False  # flat out: each done sends the next
        self._error = ""
        self._reader = threading.Thread(target=self._read, name=f"bench-{workload.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        for line in stdout:
            if line.strip() == protocol.READY:
                self.ready.set()
                continue
            try:
                samples = protocol.parse_done(line)
            except ValueError as exc:
                self._error = str(exc)
                break
            if samples is not None:
                self._done(samples)
        self.ready.set()  # ended: whoever waits learns it from the exit status

    def _done(self, samples: int) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._pending:
                self._error = f"{self.workload.name} answered a request it was not sent"
                return
            arrival = self._pending.popleft()
            start, end = self._window_span
            if self._window is not None and start <= arrival and now < end:
                self._window.requests += 1
                self._window.samples += samples
                self._window.latencies_s.append(now - arrival)
            if self._refill and now < end:
                self._send(now)

    def _send(self, now: float) -> None:
        self._pending.append(now)
        try:
            self.process.stdin.write(protocol.RUN + "\n")  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            self._error = f"{self.workload.name} stopped reading requests"

    def wait_ready(self) -> None:
        if not self.ready.wait(READY_TIMEOUT_S) or self.process.poll() is not None:
            self.fail("did not get ready")

    def measure(self, start: float, seconds: float, rate: float, seed: int) -> Window:
        """Requests from ``start`` (monotonic) for ``seconds``: at Poisson times of ``rate`` per
        second, or flat out when ``rate`` is 0. Returns what was done within the window."""
        window = Window(self.workload.name, seconds, target_rate=rate)
        end = start + seconds
        with self._lock:
            self._window, self._window_span, self._refill = window, (start, end), rate == 0
        _sleep_until(start)
        if rate == 0:
            with self._lock:
                for _ in range(IN_FLIGHT):
                    self._send(time.monotonic())
        else:
            backlog = max(IN_FLIGHT, round(rate * BACKLOG_S))
            for offset in poisson_arrivals(rate, seconds, seed):
                _sleep_until(start + offset)
                with self._lock:
                    if len(self._pending) >= backlog:  # a workload that cannot keep up: not queued forever
                        window.dropped += 1
                    else:
                        self._send(start + offset)
        _sleep_until(end)
        self._drain()
        if self._error:
            self.fail(self._error)
        return window

    def _drain(self) -> None:
        """Wait for the requests still out (served after the window: not counted)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            with self._lock:
                self._refill = False
                if not self._pending:
                    return
            if self.process.poll() is not None:
                self.fail("ended during the run")
            if time.monotonic() > deadline:
                self.fail(f"left requests unanswered {DRAIN_TIMEOUT_S:g}s after its window")
            time.sleep(0.01)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=30)
        self._log.close()

    def fail(self, what: str) -> None:
        self.close()
        tail = Path(self._log.name).read_text()[-600:].strip()
        raise BenchError(f"workload {self.workload.name} {what} (exit {self.process.returncode}): {tail}")


class DeviceSampler:
    """The daemon's figures for one GPU, sampled in the background: utilisation and used memory."""

    def __init__(self, client: Client, gpu_index: int) -> None:
        self._client, self._gpu = client, gpu_index
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, util %, used MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            with contextlib.suppress(BitshareError):
                for gpu in self._client.gpus():
                    if gpu.index == self._gpu:
                        self.samples.append((time.monotonic(), gpu.utilization_pct, gpu.used_mib))

    def fill(self, window: Window, start: float) -> None:
        inside = [(u, m) for t, u, m in self.samples if start <= t <= start + window.seconds]
        if inside:
            window.util_pct = sum(u for u, _ in inside) / len(inside)
            window.memory_mib = max(m for _, m in inside)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Plan:
    workloads: list[Workload]
    loads: tuple[str, ...]
    duration_s: float  # one sequential slot; a concurrent run lasts len(workloads) slots
    share: float
    gpu_index: int
    env: dict[str, str]  # the workloads' environment (with the caller's token, if any)
    baselines: tuple[str, ...] = ()  # run after the leased runs, in this order
    gpu_uuid: str = ""  # the GPU's, for the baselines: the one they make visible
    memory_limit_mib: int = 0  # a lease's memory at this share: each bare MPS client's limit
    calibrate_s: float = 3.0

    def lease_args(self) -> list[str]:
        return ["-p", f"{self.share:g}", "--filter", f"index={self.gpu_index}"]

    def seconds(self) -> float:
        """About how long the experiment takes (starts not counted)."""
        slots = len(self.workloads) * self.duration_s * len(self.loads)
        calibrating = len(self.workloads) * self.calibrate_s if self.loads == ("light",) else 0
        return (2 + len(self.baselines)) * slots + calibrating


Progress = Callable[[str, float], None]  # (what runs now, seconds left in the experiment)


def run_seed(client: Client, server: str, plan: Plan, logs: Path, progress: Progress) -> dict[str, Any]:
    """Run the experiment; returns everything measured (the JSON the report is made from)."""
    logs.mkdir(parents=True, exist_ok=True)
    sampler = DeviceSampler(client, plan.gpu_index)
    started, budget = time.monotonic(), plan.seconds()

    def say(what: str) -> None:
        progress(what, max(0.0, budget - (time.monotonic() - started)))

    try:
        sequential, flat_out = _sequential(server, plan, logs, sampler, say)
        rates = {name: LIGHT_SHARE * flat_out[name] for name in flat_out}
        concurrent = _concurrent(server, plan, plan.lease_args(), rates, logs, sampler, say, "concurrent")
        bare = {name: _baseline(name, server, plan, rates, logs, sampler, say) for name in plan.baselines}
    finally:
        sampler.stop()
    results: dict[str, Any] = {}
    for load in plan.loads:
        results[load] = {
            "sequential": [w.summary() for w in sequential[load]],
            "concurrent": [w.summary() for w in concurrent[load]],
            "comparison": _jsonable(compare(sequential[load], concurrent[load])),
            "paper": PAPER[load],
        }
        if plan.baselines:
            results[load]["baselines"] = {
                name: _baseline_result(sequential[load], got if isinstance(got, str) else got[load])
                for name, got in bare.items()
            }
        if load == "light":
            results[load]["target_requests_per_s"] = rates
    return results


def _baseline(
    name: str,
    server: str,
    plan: Plan,
    rates: dict[str, float],
    logs: Path,
    sampler: DeviceSampler,
    say: Callable[[str], None],
) -> dict[str, list[Window]] | str:
    """A baseline's windows, or why it failed: the leased runs' results are kept either way."""
    say(f"{name}: setting up, without bitshare")
    try:
        with baselines.prepared(name, plan.env, plan.gpu_index, plan.gpu_uuid, plan.memory_limit_mib) as env:
            bare_plan = dataclasses.replace(plan, env=env)
            return _concurrent(server, bare_plan, None, rates, logs, sampler, say, name)
    except (BenchError, baselines.BaselineError) as exc:
        return str(exc)


def _baseline_result(sequential: list[Window], got: list[Window] | str) -> dict[str, Any]:
    if isinstance(got, str):
        return {"error": got}
    return {"concurrent": [w.summary() for w in got], "comparison": _jsonable(compare(sequential, got))}


def _sequential(
    server: str, plan: Plan, logs: Path, sampler: DeviceSampler, say: Callable[[str], None]
) -> tuple[dict[str, list[Window]], dict[str, float]]:
    """Each workload alone, one after another: its heavy slot, then its light slot (at LIGHT_SHARE
    of the rate it served flat out; calibrated first when the heavy slot is not run)."""
    windows: dict[str, list[Window]] = {load: [] for load in plan.loads}
    flat_out: dict[str, float] = {}
    for number, workload in enumerate(plan.workloads):
        say(f"sequential: {workload.name} alone ({number + 1}/{len(plan.workloads)}), starting")
        driven = Driven(workload, server, plan.lease_args(), logs / f"sequential-{workload.name}.log", plan.env)
        try:
            driven.wait_ready()
            if "heavy" in plan.loads:
                say(f"sequential, heavy load: {workload.name} alone, flat out")
                start = time.monotonic() + 0.05
                window = driven.measure(start, plan.duration_s, 0.0, seed=number)
                sampler.fill(window, start)
                windows["heavy"].append(window)
                flat_out[workload.name] = window.requests_per_s
            if "light" in plan.loads:
                if workload.name not in flat_out:
                    say(f"calibrating {workload.name}: flat out for {plan.calibrate_s:g}s")
                    probe = driven.measure(time.monotonic() + 0.05, plan.calibrate_s, 0.0, seed=number)
                    flat_out[workload.name] = probe.requests_per_s
                if flat_out[workload.name] <= 0:
                    driven.fail("served no request flat out, so it has no light rate")
                rate = LIGHT_SHARE * flat_out[workload.name]
                say(f"sequential, light load: {workload.name} alone, {rate:.1f} requests/s")
                start = time.monotonic() + 0.05
                window = driven.measure(start, plan.duration_s, rate, seed=1000 + number)
                sampler.fill(window, start)
                windows["light"].append(window)
        finally:
            driven.close()
    return windows, flat_out


def _concurrent(
    server: str,
    plan: Plan,
    lease_args: list[str] | None,
    rates: dict[str, float],
    logs: Path,
    sampler: DeviceSampler,
    say: Callable[[str], None],
    mode: str,
) -> dict[str, list[Window]]:
    """All workloads at once, for as long as their slots together, each load in turn."""
    windows: dict[str, list[Window]] = {load: [] for load in plan.loads}
    say(f"{mode}: starting {len(plan.workloads)} workloads")
    drivens = [Driven(w, server, lease_args, logs / f"{mode}-{w.name}.log", plan.env) for w in plan.workloads]
    try:
        for driven in drivens:
            driven.wait_ready()
        seconds = plan.duration_s * len(plan.workloads)
        for load in plan.loads:
            say(f"{mode}, {load} load: {len(drivens)} workloads at once")
            start = time.monotonic() + 0.1
            with ThreadPoolExecutor(len(drivens)) as pool:  # one feeder per workload, windows together
                futures = [
                    pool.submit(d.measure, start, seconds, rates[d.workload.name] if load == "light" else 0.0, 2000 + n)
                    for n, d in enumerate(drivens)
                ]
                for future in futures:
                    window = future.result()  # a workload's failure is raised here
                    sampler.fill(window, start)
                    windows[load].append(window)
    finally:
        for driven in drivens:
            driven.close()
    return windows


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _jsonable(value: Any) -> Any:
    """NaN (a ratio with nothing to divide by) as null."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
