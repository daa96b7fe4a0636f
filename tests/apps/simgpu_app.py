"""A leased application on a simulated GPU, driven line by line on stdin (one answer line each).

    pid | alloc MIB | free | limit | unlimit | child MIB | busy SECONDS | agent | exit

``child MIB`` starts a child process that allocates MIB and holds it until this one exits.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bitshare import simgpu

MIB = 1024 * 1024


def main() -> None:
    if sys.argv[1:2] == ["--hold"]:
        hold(int(sys.argv[2]))
        return
    held: list[object] = []
    children: list[subprocess.Popen] = []
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word == "pid":
            answer(f"pid {__import__('os').getpid()}")
        elif word == "alloc":
            try:
                held.append(simgpu.device(0).empty(int(arg) * MIB, "uint8"))
                answer(f"ok {simgpu.device(0).used_bytes // MIB}")
            except simgpu.OutOfMemoryError as exc:
                answer(f"oom {exc}")
        elif word == "free":
            held.clear()
            answer(f"ok {simgpu.device(0).used_bytes // MIB}")
        elif word == "limit":
            answer(f"limit {simgpu.device(0).limit_bytes // MIB}")
        elif word == "unlimit":
            simgpu.device(0).set_limit(0)
            answer("ok")
        elif word == "child":
            child = subprocess.Popen(
                [sys.executable, __file__, "--hold", arg], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            children.append(child)
            answer(child.stdout.readline().strip())
        elif word == "busy":
            end = time.monotonic() + float(arg)
            with simgpu.device(0).busy():
                while time.monotonic() < end:
                    pass
            answer("ok")
        elif word == "agent":
            agent = sys.modules.get("bitshare_agent")
            applied = agent._agent.applied if agent is not None and agent._agent is not None else []
            answer("agent " + (",".join(applied) or "none"))
        elif word == "exit":
            break
        else:
            answer(f"unknown {word}")


def hold(mib: int) -> None:
    try:
        buffer = simgpu.device(0).empty(mib * MIB, "uint8")
        answer(f"child ok {simgpu.device(0).used_bytes // MIB} of {simgpu.device(0).limit_bytes // MIB}")
    except simgpu.OutOfMemoryError as exc:
        answer(f"child oom {exc}")
        buffer = None
    sys.stdin.read()  # hold until the parent exits
    del buffer


def answer(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
