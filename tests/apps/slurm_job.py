"""A Slurm job's program on a simulated GPU: hold device memory, say what it saw, wait to be told to end.

    slurm_job.py OUTDIR MIB [--no-wait]

Writes OUTDIR/<job id>.json (the bitshare and CUDA variables it was started with, whether
the in-process agent runs, and what allocating MIB gave: "ok" or "oom ..."), then holds the
memory until OUTDIR/<job id>.go exists (unless --no-wait).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bitshare import simgpu

MIB = 1024 * 1024


def main() -> None:
    out, mib = Path(sys.argv[1]), int(sys.argv[2])
    job = os.environ.get("SLURM_JOB_ID", "nojob")
    try:
        held = simgpu.device(0).empty(mib * MIB, "uint8")
        result = f"ok {simgpu.device(0).used_bytes // MIB}"
    except simgpu.OutOfMemoryError as exc:
        held, result = None, f"oom {exc}"
    except Exception as exc:  # no simulated GPU in this environment: say so, for the test to show
        held, result = None, f"error {exc}"
    seen = {k: v for k, v in os.environ.items() if k.startswith(("BITSHARE_", "CUDA_", "SLURM_SHARDS", "SLURM_GPUS"))}
    report = {"env": seen, "result": result, "agent": "bitshare_agent" in sys.modules, "pid": os.getpid()}
    temporary = out / f".{job}.json"
    temporary.write_text(json.dumps(report))
    temporary.rename(out / f"{job}.json")
    if "--no-wait" not in sys.argv:
        while not (out / f"{job}.go").exists():
            time.sleep(0.05)
    del held


if __name__ == "__main__":
    main()
