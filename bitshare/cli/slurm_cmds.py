"""``bitshare slurm prolog|task-prolog|epilog``: Slurm's node side, and the launchers slurm.conf names.

slurm.conf runs its Prolog, TaskProlog and Epilog without arguments, so each also has a
launcher of its own (``bitshare-slurm-prolog`` ...); settings then come from the client
config (``/etc/bitshare/client.toml``) and ``BITSHARE_*`` variables, as for every command.
"""

from __future__ import annotations

import os
import sys
import time

import typer

from .. import paths
from ..address import parse_address
from ..client.connection import Client
from ..client.finding import Credentials, load_settings
from ..errors import Unreachable, UsageError
from ..present.leases import state_name
from ..slurm.node import DEFAULT_TTL_S, JobContext, end_job, export_lines, start_job, task_environment
from ..slurm.scontrol import Scontrol
from .base import app, state
from .options import positive_seconds, seconds
from .output import note
from .runner import run

slurm_app = typer.Typer(
    no_args_is_help=True,
    help="Slurm's node side: make each job's GPUs a bitshare lease (run by slurmd as Prolog, TaskProlog, Epilog).",
)
app.add_typer(slurm_app, name="slurm")

_CONNECT = typer.Option(30.0, "--connect-timeout", help="Seconds to wait for bitshared (a restart, say).")


def _node_client(ctx: typer.Context, wait_s: float) -> tuple[Client, str]:
    """The node's own bitshared, over its Unix socket: the named server, else the system daemon's.
    Waits up to ``wait_s`` while it does not answer."""
    cli = state(ctx)
    settings = load_settings([cli.server], cli.token, cli.tls_ca, cli.allow_insecure_tcp)
    if len(settings.servers) > 1:
        raise UsageError("bitshare slurm acts on this node's bitshared only; name one server, not a pool")
    server = settings.servers[0] if settings.servers else f"unix:{paths.SYSTEM_SOCKET}"
    if parse_address(server).kind != "unix":
        raise UsageError(f"bitshare slurm needs this node's bitshared on its Unix socket, not {server}")
    credentials: Credentials = settings.credentials
    deadline = time.monotonic() + seconds("--connect-timeout", wait_s)
    pause = 0.1
    while True:
        try:
            return credentials.connect(server), server
        except Unreachable:
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # bitshared is away (restarting): try again until the deadline
        pause = min(pause * 2, 2.0)


@slurm_app.command("prolog")
def prolog(
    ctx: typer.Context,
    ttl: float = typer.Option(DEFAULT_TTL_S, "--ttl", help="Seconds the lease outlives the last sight of the job."),
    shards_per_gpu: int | None = typer.Option(
        None, "--shards-per-gpu", min=1, help="Shards per GPU (default: the node's shard count over its GPU count)."
    ),
    connect_timeout: float = _CONNECT,
) -> None:
    """Slurm's Prolog (as root): lease the job's GPUs here, owned by the job's user; fail if they do not fit."""
    context = JobContext.from_environ(os.environ)
    positive_seconds("--ttl", ttl)
    client, _ = _node_client(ctx, connect_timeout)
    try:
        lease = start_job(client, context, Scontrol(), ttl, shards_per_gpu)
    finally:
        client.close()
    if lease is not None:
        sizes = ", ".join(f"GPU {a.gpu_index} {a.memory_mib} MiB" for a in lease.allocations)
        note(f"job {context.job_id}: lease {lease.id} for {context.user}: {sizes}")


@slurm_app.command("task-prolog")
def task_prolog(ctx: typer.Context, connect_timeout: float = typer.Option(10.0, "--connect-timeout")) -> None:
    """Slurm's TaskProlog (as the job's user): print the lease's variables for the task."""
    context = JobContext.from_environ(os.environ)
    client, server = _node_client(ctx, connect_timeout)
    try:
        variables = task_environment(client, context, os.environ, server)
    finally:
        client.close()
    sys.stdout.write(export_lines(variables))


@slurm_app.command("epilog")
def epilog(ctx: typer.Context, connect_timeout: float = _CONNECT) -> None:
    """Slurm's Epilog (as root): release the job's lease here."""
    context = JobContext.from_environ(os.environ)
    try:
        client, _ = _node_client(ctx, connect_timeout)
    except Unreachable as exc:
        # Not a reason to drain the node: with the job's steps gone, bitshared lets the lease
        # expire after its TTL once it is back.
        note(f"job {context.job_id}: could not release its lease now ({exc}); it expires after its TTL")
        return
    try:
        ended = end_job(client, context)
    finally:
        client.close()
    for lease in ended:
        how = state_name(lease.state) + (f": {lease.end_reason}" if lease.end_reason else "")
        note(f"job {context.job_id}: lease {lease.id} {how}")


def _launch(verb: str) -> None:
    run(["slurm", verb, *sys.argv[1:]])


def prolog_main() -> None:
    """``bitshare-slurm-prolog``: what slurm.conf's Prolog names."""
    _launch("prolog")


def task_prolog_main() -> None:
    """``bitshare-slurm-task-prolog``: what slurm.conf's TaskProlog names."""
    _launch("task-prolog")


def epilog_main() -> None:
    """``bitshare-slurm-epilog``: what slurm.conf's Epilog names."""
    _launch("epilog")
