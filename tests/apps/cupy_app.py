"""A leased CuPy application on a real GPU, driven line by line on stdin (one answer line each).

    pid | alloc MIB | free | limit | meminfo | fill | child | spin SECONDS | agent | exit

``fill`` lifts CuPy's own pool limit and allocates 256 MiB blocks until the device refuses
(what is left is the driver's limit: MPS's, or the card's). ``child`` runs a child process
that reports what the device tells it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cupy

MIB = 1024 * 1024
CHILD = (
    "import cupy, json; free, total = cupy.cuda.runtime.memGetInfo();"
    "print(json.dumps({'total_mib': total // 2**20, 'limit': cupy.get_default_memory_pool().get_limit() // 2**20}))"
)


def main() -> None:
    pool = cupy.get_default_memory_pool()
    held: list[object] = []
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word == "pid":
            answer(f"pid {os.getpid()}")
        elif word == "alloc":
            try:
                block = cupy.empty(int(arg) * MIB, dtype=cupy.uint8)
                block.fill(1)
                held.append(block)
                answer(f"ok {pool.used_bytes() // MIB}")
            except cupy.cuda.memory.OutOfMemoryError as exc:
                answer(f"oom {exc}")
        elif word == "free":
            held.clear()
            pool.free_all_blocks()
            answer(f"ok {pool.used_bytes() // MIB}")
        elif word == "limit":
            answer(f"limit {pool.get_limit() // MIB}")
        elif word == "meminfo":
            free, total = cupy.cuda.runtime.memGetInfo()
            answer(f"meminfo {free // MIB} {total // MIB}")
        elif word == "fill":
            pool.set_limit(size=0)
            filled = 0
            while True:
                try:
                    held.append(cupy.empty(256 * MIB, dtype=cupy.uint8))
                    filled += 256
                except (cupy.cuda.memory.OutOfMemoryError, cupy.cuda.runtime.CUDARuntimeError):
                    break
            answer(f"filled {filled}")
        elif word == "child":
            out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=False)
            answer(out.stdout.strip() or f"child failed: {out.stderr.strip()[-300:]}")
        elif word == "spin":
            x = cupy.ones(1 << 24, dtype=cupy.float32)
            started, steps = time.time(), 0
            while time.time() - started < float(arg):
                x *= 1.0000001
                cupy.cuda.Device().synchronize()
                steps += 1
            answer(json.dumps({"started": started, "ended": time.time(), "steps": steps}))
        elif word == "agent":
            agent = sys.modules.get("bitshare_agent")
            applied = agent._agent.applied if agent is not None and agent._agent is not None else []
            answer("agent " + (",".join(applied) or "none"))
        elif word == "exit":
            break
        else:
            answer(f"unknown {word}")


def answer(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
