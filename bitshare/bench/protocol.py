"""How a benchmark workload talks to its driver: lines on its stdin and stdout.

The workload prints ``ready`` once it is loaded and warmed up. Then, for each line ``run`` it
reads, it serves one request (one batch) and prints ``done N``, N being the samples in it. It
exits when its stdin closes. Any other output line is ignored, so a program may log freely
(stderr is better). :func:`serve` does all of this for a Python workload:

    from bitshare.bench.protocol import serve
    serve(infer_one_batch, warmup_s=3)    # the function returns the samples it served
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

READY = "ready"
RUN = "run"
DONE = "done"


def parse_done(line: str) -> int | None:
    """The samples of a ``done N`` line; None for any other line. A malformed one raises."""
    head, _, rest = line.strip().partition(" ")
    if head != DONE:
        return None
    try:
        samples = int(rest)
    except ValueError:
        raise ValueError(f"a workload printed {line.strip()!r}: `done` must be followed by a sample count") from None
    if samples < 0:
        raise ValueError(f"a workload printed {line.strip()!r}: a sample count is not negative")
    return samples


def serve(
    step: Callable[[], int], warmup_s: float = 0.0, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    """Run ``step`` for ``warmup_s`` (not counted), announce ``ready``, then serve one ``step`` per
    ``run`` line until stdin closes; returns the requests served."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    deadline = time.monotonic() + warmup_s
    while time.monotonic() < deadline:
        step()
    print(READY, file=stdout, flush=True)
    served = 0
    for line in stdin:
        if line.strip() != RUN:
            continue
        samples = step()
        print(f"{DONE} {samples}", file=stdout, flush=True)
        served += 1
    return served
