"""The few things the node side asks of Slurm, through ``scontrol`` (it reads ``SLURM_CONF``)."""

from __future__ import annotations

import subprocess

from ..errors import BitshareError
from .job import Job, parse_job

TIMEOUT_S = 30.0
MAX_COMMENT = 1000  # characters of an admin comment that bitshare writes


class SlurmError(BitshareError):
    """``scontrol`` failed or could not be run."""


def scontrol(*args: str) -> str:
    try:
        done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise SlurmError("scontrol is not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"scontrol {' '.join(args)} did not answer in {TIMEOUT_S:g}s") from None
    if done.returncode != 0:
        why = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise SlurmError(f"scontrol {' '.join(args)}: {why}")
    return done.stdout


class Scontrol:
    """Slurm as the prolog and epilog see it."""

    def job(self, job_id: str) -> Job:
        return parse_job(scontrol("-d", "show", "job", job_id))

    def node_gres(self, node: str) -> str:
        """The node's configured generic resources (``gpu:4,shard:64``)."""
        for token in scontrol("-o", "show", "node", node).split():
            if token.startswith("Gres="):
                return token[len("Gres=") :]
        return ""

    def set_admin_comment(self, job_id: str, text: str) -> None:
        flat = " ".join(text.split())[:MAX_COMMENT]
        scontrol("update", f"JobId={job_id}", f"AdminComment={flat}")
