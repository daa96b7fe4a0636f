"""Slurm's node side: a job's GPU allocation becomes a bitshare lease for the job's lifetime.

- :func:`start_job` (the Prolog, as root): a lease owned by the job's user, keyed by the job id
  (a repeated prolog gets the same lease), whole GPUs for ``gpu:N``, N/K of the GPU Slurm picked
  for ``shard:N``. One that does not fit now fails the prolog, so Slurm requeues the job.
- :func:`task_environment` (the TaskProlog, as the job's user): the lease's variables for each task.
- :func:`end_job` (the Epilog, as root): the lease is released.

Between them the daemon keeps the lease alive while the job's step daemons run on the node
(see bitshare/daemon/enforcement/slurm_steps.py): a job needs no holder process, a step ending
does not end the lease, and a node that loses the job (a crash) lets it expire after its TTL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..client.connection import Client, LeaseRequest
from ..errors import LeaseLost, NoLease, UsageError
from ..holder.agent_hub import agent_environment
from ..holder.environment import lease_environment
from ..present.leases import state_name
from ..protocol.v1 import bitshare_pb2 as pb
from .job import Job, lease_ask, shards_per_gpu

DEFAULT_TTL_S = 300.0  # how long a job's lease outlives the last sight of its steps
COMMENT_MARK = "bitshare"


class Slurm(Protocol):
    def job(self, job_id: str) -> Job: ...
    def node_gres(self, node: str) -> str: ...
    def set_admin_comment(self, job_id: str, text: str) -> None: ...


@dataclass(frozen=True)
class JobContext:
    """What Slurm tells its prolog, task prolog and epilog in their environment."""

    job_id: str
    user: str
    node: str
    cluster: str = ""
    restart_count: int = 0

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> JobContext:
        job_id = env.get("SLURM_JOB_ID", "")
        if not job_id.isdigit():
            raise UsageError("not run by Slurm: SLURM_JOB_ID is not set to a job id")
        user = env.get("SLURM_JOB_USER", "")
        if not user:
            raise UsageError(f"Slurm gave job {job_id} no SLURM_JOB_USER")
        restarts = env.get("SLURM_JOB_RESTART_COUNT", "0")
        return cls(
            job_id=job_id,
            user=user,
            node=env.get("SLURMD_NODENAME", ""),
            cluster=env.get("SLURM_CLUSTER_NAME", ""),
            restart_count=int(restarts) if restarts.isdigit() else 0,
        )

    @property
    def request_id(self) -> str:
        """The job's lease key: the same for a repeated prolog, new for each run of a requeued job."""
        return f"slurm-{self.cluster or 'cluster'}-{self.job_id}-{self.restart_count}"


def start_job(
    client: Client, context: JobContext, slurm: Slurm, ttl_s: float = DEFAULT_TTL_S, per_gpu: int | None = None
) -> pb.Lease | None:
    """The Prolog: lease the job's GPUs on this node (None when it holds none here)."""
    job = slurm.job(context.job_id)
    gres = job.gres_on(context.node)
    needs_split = any(item.name == "shard" for item in gres) and per_gpu is None
    ask = lease_ask(gres, shards_per_gpu(slurm.node_gres(context.node)) if needs_split else per_gpu)
    if ask is None:
        return None
    request = LeaseRequest(
        fraction=ask.fraction,
        gpu_count=ask.gpu_count,
        indices=ask.indices,
        wait=False,
        ttl_s=ttl_s,
        command=f"slurm job {context.job_id} ({job.name})" if job.name else f"slurm job {context.job_id}",
        request_id=context.request_id,
        owner_user=context.user,
        slurm_job=context.job_id,
        client_host=context.node,
    )
    try:
        lease = client.request(request)
    except NoLease as exc:
        _comment(slurm, context, job.admin_comment, f"{COMMENT_MARK}: no lease on {context.node}: {exc}")
        raise
    if lease.state != pb.LEASE_STATE_ACTIVE:  # a repeated prolog of a job whose lease has ended
        raise LeaseLost(f"job {context.job_id}'s lease {lease.id} is {state_name(lease.state)}")
    _comment(slurm, context, job.admin_comment, describe(lease, context.node))
    return lease


def describe(lease: pb.Lease, node: str) -> str:
    """The job's admin comment: which lease holds which part of which GPU."""
    parts = ", ".join(f"GPU {a.gpu_index} {a.memory_mib} MiB" for a in lease.allocations)
    return f"{COMMENT_MARK} lease {lease.id} on {node}: {parts}"


def task_environment(client: Client, context: JobContext, env: Mapping[str, str], server: str) -> dict[str, str]:
    """The TaskProlog: the variables a task of the job runs with (none for a job without GPUs)."""
    leases = [lease for lease in client.my_leases(slurm_job=context.job_id) if lease.state == pb.LEASE_STATE_ACTIVE]
    if not leases:
        if _holds_gpus(env):
            raise LeaseLost(f"job {context.job_id} holds GPUs but has no active bitshare lease on {context.node}")
        return {}
    lease = max(leases, key=lambda item: item.created_at.ToNanoseconds())
    variables = lease_environment(lease, server, local_gpus=True, simgpu_directory=client.info.simgpu_directory)
    variables.update(agent_environment(dict(env)))
    return variables


def _holds_gpus(env: Mapping[str, str]) -> bool:
    return any(env.get(name, "0") not in ("", "0") for name in ("SLURM_SHARDS_ON_NODE", "SLURM_GPUS_ON_NODE"))


def export_lines(variables: Mapping[str, str]) -> str:
    """The TaskProlog's output: one ``export NAME=value`` line each, as slurmstepd reads them."""
    for name, value in variables.items():
        if "\n" in value or "\n" in name:
            raise UsageError(f"variable {name!r} holds a line break and cannot be handed to Slurm")
    return "".join(f"export {name}={value}\n" for name, value in variables.items())


def end_job(client: Client, context: JobContext) -> list[pb.Lease]:
    """The Epilog: release the job's leases on this node; returns them, as they ended. (How a lease
    ended otherwise, by the watchdog say, is in bitshare's events: Slurm takes no comment on a job
    that has finished.)"""
    leases = client.all_leases(include_ended=True, slurm_job=context.job_id)
    ended = []
    for lease in leases:
        if lease.owner != f"user:{context.user}":
            continue
        live = lease.state in (pb.LEASE_STATE_ACTIVE, pb.LEASE_STATE_QUEUED)
        ended.append(client.release(lease.id) if live else lease)
    return ended


def _comment(slurm: Slurm, context: JobContext, existing: str, ours: str) -> None:
    slurm.set_admin_comment(context.job_id, merge_comment(existing, ours, context.node))


def merge_comment(existing: str, ours: str, node: str) -> str:
    """Put this node's part in a job's admin comment: it replaces the node's earlier one; other
    nodes' parts (a job on several nodes) and an admin's own text are kept."""
    mine = f" on {node}:"
    kept = [
        part
        for part in existing.split(" | ")
        if part.strip() not in ("", "(null)") and not (part.startswith(COMMENT_MARK) and mine in part)
    ]
    return " | ".join([*kept, ours])
