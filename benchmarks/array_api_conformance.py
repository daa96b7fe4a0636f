"""Remote CuPy against an Array API test suite, next to NumPy.

Runs a suite twice with the same tests and seed: first on NumPy here, then on remote CuPy under
``bitshare run --remote`` against a real ``bitshared`` it starts on a temporary Unix socket with a
simulated GPU (``--simulate 1x16GiB``), where the worker computes with NumPy. ``--kind`` says
which suite ``--suite`` is (an unpacked source tree) and so how it picks a library:

- ``array-api-tests``: data-apis/array-api-tests (with its ``array-api`` submodule), on the
  module named by ``ARRAY_API_TESTS_MODULE``; ``--max-examples`` Hypothesis examples per test,
  deadline off (remote calls take longer than local ones).
- ``extra``: array-api-extra's ``tests/main``, and ``compat``: array-api-compat's ``tests``,
  parametrized over libraries. Each run keeps the tests with the library among the ids of their
  parameters (``test_nan_to_num[cupy-float32]``) or in a file named for it (``test_cupy.py``); this
  module is loaded into pytest (``-p``) to deselect the others. Tests run by both libraries
  (``test_asarray_cross_library[numpy-cupy]``) count in both runs, and the suite's own skips and
  xfails for CuPy count as it says.

Reads each run's JUnit XML, prints a table (passed, failed, skipped, errors, seconds for each, the
remote's passes over NumPy's and its time over NumPy's), then the remote run's failures grouped
by reason (the first line of each test's error); writes everything, with the tests of each group,
to ``benchmarks/results/array_api_conformance_<kind>.json`` (``--json``), and keeps each run's
output and JUnit XML in ``--logs`` when given. Arguments after ``--`` go to both pytests.

    .venv/bin/python benchmarks/array_api_conformance.py --kind extra --suite /tmp/array_api_extra-0.11.5
    .venv/bin/python benchmarks/array_api_conformance.py --kind compat --suite /tmp/array_api_compat-1.16.0
    .venv/bin/python benchmarks/array_api_conformance.py --kind array-api-tests --suite /tmp/array-api-tests \\
        --max-examples 5 -- --disable-extension fft
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from remote_bench import start_daemon
from tables import finished_at, machine, print_table, write_results

HERE = Path(__file__).resolve().parent
OUTCOMES = ("passed", "failed", "skipped", "errors")
TESTS = {"array-api-tests": "array_api_tests", "extra": "tests/main", "compat": "tests"}
LIBRARY = "BITSHARE_CONFORMANCE_LIBRARY"  # the library a run keeps, for the hook below


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """In a suite's pytest: deselect the tests that are not of the run's library."""
    library = os.environ.get(LIBRARY)
    if not library:
        return
    keep, drop = [], []
    for item in items:
        (keep if of_library(item, library) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def of_library(item: Any, library: str) -> bool:
    callspec = getattr(item, "callspec", None)
    return (callspec is not None and library in callspec.id.split("-")) or item.path.name == f"test_{library}.py"


def run_suite(suite: Path, library: str, prefix: list[str], args: argparse.Namespace, junit: Path) -> dict[str, Any]:
    """One pytest run of the suite on ``library`` (behind ``prefix``): its outcomes and seconds."""
    pytest = [sys.executable, "-m", "pytest", TESTS[args.kind], "-q", "-p", "no:cacheprovider"]
    options = [f"--hypothesis-seed={args.seed}", f"--junitxml={junit}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.kind == "array-api-tests":
        options += [f"--max-examples={args.max_examples}", "--disable-deadline"]
        env["ARRAY_API_TESTS_MODULE"] = library
    else:
        pytest += ["-p", Path(__file__).stem]
        env[LIBRARY] = library
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    log = junit.with_suffix(".log")
    junit.unlink(missing_ok=True)  # a kept one from an earlier run is not this run's
    started = time.monotonic()
    with open(log, "wb") as out:
        done = subprocess.run(
            [*prefix, *pytest, *options, *args.pytest_args],
            cwd=suite,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=args.limit,
        )
    seconds = time.monotonic() - started
    if not junit.exists():
        raise SystemExit(
            f"array_api_conformance: the {library} run wrote no results ({done.returncode}):\n{log.read_text()[-4000:]}"
        )
    return {"library": library, "exit_code": done.returncode, "seconds": round(seconds, 1), **read_junit(junit)}


def read_junit(path: Path) -> dict[str, Any]:
    """Outcome counts of a JUnit XML file, and each test that did not pass or skip, with its reason."""
    counts = Counter({outcome: 0 for outcome in OUTCOMES})
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        found = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if found is None:
            counts["passed"] += 1
        elif found.tag == "skipped":
            counts["skipped"] += 1
        else:
            counts["failed" if found.tag == "failure" else "errors"] += 1
            failures.append({"test": test, "kind": found.tag, "reason": reason(found)})
    return {"counts": dict(counts), "tests": sum(counts.values()), "failures": failures}


def reason(element: ET.Element) -> str:
    """The first line of a failure's message (or of its text), memory addresses left out."""
    text = element.get("message") or element.text or ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")
    return re.sub(r"0x[0-9a-f]+", "0x…", first)[:300]


def grouped(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures grouped by reason, the largest group first."""
    groups: dict[str, list[str]] = {}
    for failure in failures:
        groups.setdefault(failure["reason"], []).append(failure["test"])
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [{"reason": text, "count": len(tests), "tests": tests} for text, tests in ordered]


def ratio(top: float, bottom: float) -> float | None:
    return round(top / bottom, 3) if bottom else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(TESTS), required=True, help="which suite --suite is")
    parser.add_argument("--suite", type=Path, required=True, help="the suite's source tree")
    parser.add_argument("--max-examples", type=int, default=10, help="array-api-tests: Hypothesis examples per test")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed, the same for both runs")
    parser.add_argument("--limit", type=float, default=3600.0, help="seconds each run may take")
    parser.add_argument("--json", dest="out", type=Path, help="default: results/array_api_conformance_<kind>.json")
    parser.add_argument("--logs", type=Path, help="where to keep each run's output and JUnit XML")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments, for both runs")
    args = parser.parse_args()
    suite = args.suite.resolve()
    if not (suite / TESTS[args.kind]).is_dir():
        raise SystemExit(f"array_api_conformance: {suite} has no {TESTS[args.kind]}; is it {args.kind}?")
    if args.kind == "array-api-tests" and not (suite / "array-api").is_dir():
        raise SystemExit(f"array_api_conformance: {suite} lacks its array-api submodule")

    with tempfile.TemporaryDirectory(prefix="bitshare-array-api-") as tmp:
        workdir = Path(tmp)
        logs = args.logs.resolve() if args.logs else workdir
        logs.mkdir(parents=True, exist_ok=True)
        numpy = run_suite(suite, "numpy", [], args, logs / f"{args.kind}-numpy.xml")
        daemon, server = start_daemon(workdir, "simulated")
        try:
            leased = [sys.executable, "-m", "bitshare", "--server", server, "run", "--remote", "-p", "0.5", "--"]
            remote = run_suite(suite, "cupy", leased, args, logs / f"{args.kind}-cupy.xml")
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

    print()
    examples = f"{args.max_examples} examples per test, " if args.kind == "array-api-tests" else ""
    print(f"{args.kind} at {suite}, {examples}seed {args.seed}")
    rows = [
        [name, *(run["counts"][o] for o in OUTCOMES), run["seconds"]]
        for name, run in (("numpy", numpy), ("remote cupy", remote))
    ]
    print_table(["library", *OUTCOMES, "seconds"], rows)
    passes = ratio(remote["counts"]["passed"], numpy["counts"]["passed"])
    slower = ratio(remote["seconds"], numpy["seconds"])
    print(f"passed, remote over numpy: {passes}; time, remote over numpy: {slower}")
    groups = grouped(remote["failures"])
    print("remote failures by reason:")
    for group in groups[:30]:
        print(f"  {group['count']:5d}  {group['reason']}")

    result = {
        "benchmark": "array_api_conformance",
        "kind": args.kind,
        "suite": str(suite),
        "machine": machine(),
        "seed": args.seed,
        **({"max_examples": args.max_examples} if args.kind == "array-api-tests" else {}),
        "pytest_args": args.pytest_args,
        "numpy": {k: numpy[k] for k in ("exit_code", "seconds", "tests", "counts")},
        "remote": {k: remote[k] for k in ("exit_code", "seconds", "tests", "counts")},
        "passed_ratio": passes,
        "time_ratio": slower,
        "remote_failures_by_reason": groups,
        "numpy_failures_by_reason": grouped(numpy["failures"]),
        "finished_at": finished_at(),
    }
    write_results(args.out or HERE / "results" / f"array_api_conformance_{args.kind}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
