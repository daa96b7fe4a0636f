"""A Slurm job's processes on this host: everything under the job's step daemons.

slurmd starts one ``slurmstepd`` per job step, as root, titled with the step
(``slurmstepd: [42.batch]``, ``[42.0]``, and with ``PrologFlags=Contain`` an
``[42.extern]`` step that lasts as long as the job); the job's tasks are its children.
A user cannot make a root process, so a root-owned process with that title is the job's
step daemon, whatever the job's own processes call themselves. Such processes are
anchors: their descendants are the job lease's, the step daemons themselves are neither
measured nor signalled (ending them is Slurm's business).
"""

from __future__ import annotations

import re

import psutil

STEP_TITLE = re.compile(r"slurmstepd: \[([0-9]+)\.[^\]\s]+\]")


def job_of_title(title: str) -> str | None:
    """The job id in a step daemon's process title, or None when it is not one."""
    match = STEP_TITLE.match(title.strip())
    return match.group(1) if match else None


def step_daemons(jobs: set[str]) -> dict[str, list[psutil.Process]]:
    """The live root-owned step daemons of each of ``jobs`` (a scan of /proc)."""
    found: dict[str, list[psutil.Process]] = {}
    if not jobs:
        return found
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "slurmstepd":  # the command name, which a title does not change
            continue
        try:
            if process.uids().real != 0:
                continue
            job = job_of_title(" ".join(process.cmdline()))
        except psutil.Error:
            continue
        if job in jobs:
            found.setdefault(job, []).append(process)
    return found
