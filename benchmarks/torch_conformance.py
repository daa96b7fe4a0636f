"""Remote PyTorch against PyTorch's own operator database: how many operators agree with the CPU.

Starts a real ``bitshared`` on a temporary Unix socket (``--simulate 1x16GiB``), then runs itself
under ``bitshare run --remote`` so that the measuring part is a remote PyTorch program. For each
OpInfo of ``torch.testing._internal.common_methods_invocations.op_db`` that supports float32 on
the CPU, it takes up to ``--samples`` of its sample inputs, runs the operator on the CPU, copies
the sample to ``cuda`` (the lease's GPU), runs it there, brings the results back and compares
them with ``torch.testing.assert_close`` (rtol 1e-4, atol 1e-5, NaNs equal; integers and bools
exactly), after the sample's own output processing (PyTorch's CPU-against-CUDA test does the
same, for results defined up to a sign such as an SVD's).

An operator agrees when every sample compared agrees. A sample whose CPU run raises is skipped;
an operator whose CPU results change with the seed, or whose comparison with the CPU PyTorch's
own tests skip as not reproducible (``TestCommon.test_compare_cpu``), is reported as random and
left out of the ratio, as is one with no sample to compare. Each operator has ``--limit``
seconds; one that hangs past that is ended with its run, and the run goes on from the next one.

Prints a table (operators tried, agree, disagree, error on the remote only, over the time limit,
skipped, random) and the agreement ratio (target: at least 0.95), then each failing operator with
one line of reason; writes everything to ``benchmarks/results/torch_conformance.json``.

    .venv/bin/python benchmarks/torch_conformance.py
    .venv/bin/python benchmarks/torch_conformance.py --ops add,nn.functional.conv2d --samples 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from remote_bench import start_daemon
from tables import finished_at, machine, print_table, write_results

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "torch_conformance.json"
RTOL, ATOL = 1e-4, 1e-5
TARGET_RATIO = 0.95
OP_LIMIT_S = 20.0
START_LIMIT_S = 180.0  # a leased run's start: the lease, the worker, importing torch and op_db
# Outcomes, as the table counts them; the first four are the ratio's denominator.
AGREE, DISAGREE, REMOTE_ERROR, TIMEOUT, SKIPPED, RANDOM = (
    "agree",
    "disagree",
    "error on remote only",
    "over the time limit",
    "skipped",
    "random, not compared",
)
# The words of PyTorch's reasons for not comparing an operator's results with the CPU's that say
# they are not reproducible.
UNREPRODUCIBLE = ("non-deterministic", "undefined")
COMPARED = (AGREE, DISAGREE, REMOTE_ERROR, TIMEOUT)
OUTCOMES = (*COMPARED, SKIPPED, RANDOM)


# ----- inside the lease (bitshare's remote PyTorch) ------------------------------------------


def float32_ops(names: set[str] | None) -> list[tuple[int, Any]]:
    """(index in op_db, OpInfo) of each operator with float32 on the CPU, those named only
    (by name, or by name and variant)."""
    import torch
    from torch.testing._internal.common_methods_invocations import op_db

    unknown = sorted((names or set()) - {o.name for o in op_db} - {o.full_name for o in op_db})
    if unknown:
        raise SystemExit(f"torch_conformance: no operator of op_db is named {', '.join(unknown)}")
    chosen = []
    for index, opinfo in enumerate(op_db):
        if names is not None and opinfo.name not in names and opinfo.full_name not in names:
            continue
        if opinfo.supports_dtype(torch.float32, "cpu"):
            chosen.append((index, opinfo))
    return chosen


def unreproducible_by_pytorch(opinfo: Any) -> str | None:
    """The reason PyTorch's own CPU-against-CUDA comparison skips this operator in float32 when
    that reason is that its results are not reproducible (random, undefined, unordered); None
    otherwise (a skip for a CUDA kernel's precision, say, says nothing of this comparison)."""
    import torch

    for decorator in opinfo.get_decorators("TestCommon", "test_compare_cpu", "cuda", torch.float32, {}):
        try:
            decorator(lambda: None)()
        except unittest.SkipTest as skip:
            if any(word in str(skip) for word in UNREPRODUCIBLE):
                return str(skip)
        except Exception:  # a decorator that is not a skip says nothing here
            continue
    return None


def to_device(sample: Any, device: str) -> Any:
    """The sample with its tensors copied to ``device`` (and a factory's ``device=`` pointed at it)."""
    import torch

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, torch.Tensor) else value

    moved = sample.transform(move)
    if "device" in moved.kwargs:
        moved.kwargs["device"] = device
    return moved


def fresh(sample: Any) -> Any:
    """A copy of the sample's tensors, so a run that writes its inputs leaves the original alone."""
    import torch

    return sample.transform(lambda value: value.clone() if isinstance(value, torch.Tensor) else value)


def call(opinfo: Any, sample: Any, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    result = opinfo.op(sample.input, *sample.args, **sample.kwargs)
    return sample.output_process_fn_grad(result)


def to_host(value: Any) -> Any:
    """A result with its tensors on the CPU (a sync point for remote ones)."""
    import torch
    from torch.utils._pytree import tree_map

    return tree_map(lambda leaf: leaf.cpu() if isinstance(leaf, torch.Tensor) else leaf, value)


def difference(expected: Any, got: Any) -> str | None:
    """None when ``got`` agrees with ``expected``; else one line saying how they differ."""
    import torch
    from torch.utils._pytree import tree_flatten

    expected_leaves, expected_spec = tree_flatten(expected)
    got_leaves, got_spec = tree_flatten(got)
    if len(expected_leaves) != len(got_leaves):
        return f"results differ in structure: {len(got_leaves)} parts, expected {len(expected_leaves)}"
    for position, (want, have) in enumerate(zip(expected_leaves, got_leaves, strict=True)):
        where = f" (result {position})" if len(expected_leaves) > 1 else ""
        if isinstance(want, torch.Tensor):
            if not isinstance(have, torch.Tensor):
                return f"a {type(have).__name__} where a tensor was expected{where}"
            try:
                torch.testing.assert_close(
                    have, want, rtol=RTOL, atol=ATOL, equal_nan=True, check_device=False, check_stride=False
                )
            except AssertionError as exc:
                if have.shape != want.shape or have.dtype != want.dtype:
                    return first_line(str(exc).strip()) + where
                return f"values differ: max abs diff {max_abs_diff(want, have):.3g}{where}"
        elif isinstance(want, float) and isinstance(have, float):
            if not (math.isclose(have, want, rel_tol=RTOL, abs_tol=ATOL) or (math.isnan(have) and math.isnan(want))):
                return f"values differ: {have!r}, expected {want!r}{where}"
        elif have != want:
            return f"values differ: {have!r}, expected {want!r}{where}"
    if expected_spec != got_spec:
        return f"results differ in structure: {got_spec}, expected {expected_spec}"
    return None


def max_abs_diff(want: Any, have: Any) -> float:
    import torch

    kind = torch.complex128 if want.is_complex() or have.is_complex() else torch.float64
    a, b = want.to(kind), have.to(kind)
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    gaps = (a - b).abs()[~same]
    return float(gaps.max()) if gaps.numel() else 0.0


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no message)"


def reproducible(opinfo: Any, sample: Any) -> tuple[bool, Any]:
    """(whether two CPU runs with different seeds agree, the first run's result); raises what
    the CPU run raises."""
    first = call(opinfo, fresh(sample), seed=0)
    second = call(opinfo, fresh(sample), seed=1)
    return difference(first, second) is None, first


def judge(opinfo: Any, samples: int, limit_s: float) -> dict[str, Any]:
    """One operator's outcome over its first ``samples`` sample inputs."""
    import itertools

    import torch

    started = time.monotonic()
    reason = unreproducible_by_pytorch(opinfo)
    if reason is not None:
        return {"outcome": RANDOM, "reason": f"PyTorch's CPU comparison skips it: {reason}", "samples": 0}
    compared = 0
    try:
        inputs = list(itertools.islice(opinfo.sample_inputs("cpu", torch.float32), samples))
    except Exception as exc:  # PyTorch's sample generator itself failed: nothing to compare
        return {"outcome": SKIPPED, "reason": f"no samples: {type(exc).__name__}: {first_line(str(exc))}", "samples": 0}
    for sample in inputs:
        if time.monotonic() - started > limit_s:
            return {"outcome": TIMEOUT, "reason": f"over {limit_s:g} s after {compared} samples", "samples": compared}
        try:
            same, expected = reproducible(opinfo, sample)
            expected = to_host(expected)
        except Exception:  # a sample the CPU refuses is not compared
            continue
        if not same:
            return {"outcome": RANDOM, "reason": "CPU results change with the seed", "samples": compared}
        try:
            got = to_host(call(opinfo, to_device(sample, "cuda"), seed=0))
            torch.cuda.synchronize()  # (an error of work queued and not read back is this sample's)
        except Exception as exc:  # what the remote raised is the finding
            return {
                "outcome": REMOTE_ERROR,
                "reason": f"{type(exc).__name__}: {first_line(str(exc))}",
                "samples": compared,
            }
        compared += 1
        found = difference(expected, got)
        if found is not None:
            return {"outcome": DISAGREE, "reason": found, "samples": compared}
    if compared == 0:
        return {"outcome": SKIPPED, "reason": "no sample the CPU runs", "samples": 0}
    return {"outcome": AGREE, "reason": "", "samples": compared}


def inside(names: set[str] | None, start: int, samples: int, limit_s: float) -> None:
    """Print one JSON line as each operator starts and one with its outcome (the outer run
    watches them, and ends a run stuck in one operator)."""
    import torch

    torch.set_num_threads(1)  # as many as the simulated worker computes on: the same kernels' order
    for index, opinfo in float32_ops(names):
        if index < start:
            continue
        print(json.dumps({"start": index, "op": opinfo.full_name}), flush=True)
        began = time.monotonic()
        found = judge(opinfo, samples, limit_s)
        found.update(index=index, op=opinfo.full_name, seconds=round(time.monotonic() - began, 3))
        print(json.dumps(found), flush=True)
    print(json.dumps({"done": True}), flush=True)


# ----- the run -------------------------------------------------------------------------------


def leased_lines(command: list[str], limit_s: float) -> Iterator[dict[str, Any] | None]:
    """The JSON lines of a leased run as they come; None (and the run ended) when one does not
    come within its time: ``START_LIMIT_S`` for the first, ``limit_s`` and a margin after."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    wait_s = START_LIMIT_S
    try:
        while True:
            try:
                line = lines.get(timeout=wait_s)
            except queue.Empty:
                yield None
                return
            if line is None:
                if proc.wait() != 0:
                    assert proc.stderr is not None
                    raise SystemExit(f"the leased run failed ({proc.returncode}):\n{proc.stderr.read()[-4000:]}")
                return
            if line.startswith("{"):
                yield json.loads(line)
                wait_s = limit_s * 2 + 30  # (the op's own limit is checked between samples)
    finally:
        end(proc)


def end(proc: subprocess.Popen) -> None:
    """End a leased run and what it started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(server: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each operator's outcome, the run restarted past an operator that hangs."""
    found: dict[str, dict[str, Any]] = {}
    start = 0
    while True:
        flags = ["--inside", "--start", str(start), "--samples", str(args.samples), "--limit", str(args.limit)]
        if args.ops:
            flags += ["--ops", args.ops]
        command = [
            *(sys.executable, "-m", "bitshare", "--server", server, "run", "--remote", "-p", "0.5", "--"),
            *(sys.executable, __file__, *flags),
        ]
        current: dict[str, Any] | None = None
        finished = False
        for line in leased_lines(command, args.limit):
            if line is None:
                break
            if "start" in line:
                current = line
            elif line.get("done"):
                finished = True
            else:
                found[line["op"]] = line
                current = None
                print(f"{line['index']:4} {line['op']:<40} {line['outcome']:<22} {line['reason'][:80]}", flush=True)
        if finished:
            return found
        if current is None:
            raise SystemExit("the leased run stopped before its first operator")
        found[current["op"]] = {
            "index": current["start"],
            "op": current["op"],
            "outcome": TIMEOUT,
            "reason": f"no answer within {args.limit * 2 + 30:g} s: the run was ended",
            "samples": 0,
        }
        print(f"{current['start']:4} {current['op']:<40} {TIMEOUT}", flush=True)
        start = current["start"] + 1


def summary(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counts = {outcome: sum(1 for r in found.values() if r["outcome"] == outcome) for outcome in OUTCOMES}
    denominator = sum(counts[o] for o in COMPARED)
    return {
        "tried": len(found),
        "counts": counts,
        "ratio": counts[AGREE] / denominator if denominator else None,
        "failures": {op: r["reason"] for op, r in sorted(found.items()) if r["outcome"] in COMPARED[1:]},
        "not_compared": {op: r["reason"] for op, r in sorted(found.items()) if r["outcome"] in (SKIPPED, RANDOM)},
    }


def report(args: argparse.Namespace) -> int:
    import torch

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bitshare-torch-conformance-") as tmp:
        daemon, server = start_daemon(Path(tmp), "simulated")
        try:
            found = measure(server, args)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    elapsed = time.monotonic() - started
    figures = summary(found)
    counts = figures["counts"]
    print()
    print(f"remote PyTorch against the CPU, op_db float32, up to {args.samples} samples per operator")
    print_table(
        ["operators tried", *OUTCOMES, "agreement", "target"],
        [[figures["tried"], *(counts[o] for o in OUTCOMES), figures["ratio"], f">= {TARGET_RATIO}"]],
    )
    for op, reason in figures["failures"].items():
        print(f"  {op}: {found[op]['outcome']}: {reason}")
    print(f"{elapsed:.0f} s")
    result = {
        "benchmark": "torch_conformance",
        "torch": torch.__version__,
        "machine": machine(),
        "samples_per_op": args.samples,
        "op_limit_s": args.limit,
        "tolerances": {"rtol": RTOL, "atol": ATOL},
        **figures,
        "target_ratio": TARGET_RATIO,
        "elapsed_s": round(elapsed, 1),
        "per_op": {
            op: {k: r[k] for k in ("outcome", "reason", "samples", "seconds") if k in r}
            for op, r in sorted(found.items())
        },
        "finished_at": finished_at(),
    }
    write_results(args.out, result)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default="", help="only these OpInfo names, comma-separated")
    parser.add_argument("--samples", type=int, default=4, help="sample inputs per operator at most")
    parser.add_argument("--limit", type=float, default=OP_LIMIT_S, help="seconds per operator")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.samples < 1 or args.limit <= 0:
        parser.error("--samples and --limit must be positive")
    names = {n.strip() for n in args.ops.split(",") if n.strip()} or None
    if args.inside:
        inside(names, args.start, args.samples, args.limit)
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
