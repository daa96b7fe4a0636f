"""``bitshare slurm prolog|task-prolog|epilog``: Slurm's node side, and the launchers slurm.conf names.

slurm.conf runs its Prolog, TaskProlog and Epilog without arguments, so each also has a
launcher of its own (``bitshare-slurm-prolog`` ...). The daemon is the node's own: the host's
client config (``/etc/bitshare/client.toml``) or the system daemon's socket.
"""

from __future__ import annotations

import os
import sys
import time

import typer

from .. import paths
from ..address import parse_address
from ..client.connection import Client, connect
from ..config import load_client_config
from ..errors import BitshareError, Unreachable, UsageError
from ..present.leases import state_name
from ..present.printable import printable
from ..slurm.node import DEFAULT_TTL_S, JobContext, end_job, export_lines, start_job, task_environment
from ..slurm.scontrol import Scontrol
from .base import app
from .options import positive_seconds, seconds
from .output import note
from .runner import run

slurm_app = typer.Typer(
    no_args_is_help=True,
    help="Slurm's node side: make each job's GPUs a bitshare lease (run by slurmd as Prolog, TaskProlog, Epilog).",
)
app.add_typer(slurm_app, name="slurm")

_CONNECT = typer.Option(30.0, "--connect-timeout", help="Seconds to wait for bitshared (a restart, say).")
_SERVER = typer.Option(
    "",
    "--server",
    help="This node's bitshared (unix:PATH); default: the one in /etc/bitshare/client.toml, else the system daemon.",
)


def node_server(given: str) -> str:
    """This node's bitshared: ``given``, else the one Unix socket the host's client config names,
    else the system daemon's. A user's own settings (their config file, BITSHARE_SERVER, which a
    job passes to its task prolog) are not read: a job does not choose its node's daemon."""
    if not given:
        config = load_client_config(paths.SYSTEM_CLIENT_CONFIG, environ={})
        local = [server for server in config.servers if parse_address(server).kind == "unix"]
        given = local[0] if len(local) == 1 else f"unix:{paths.SYSTEM_SOCKET}"
    if parse_address(given).kind != "unix":
        raise UsageError(f"bitshare slurm needs this node's bitshared on its Unix socket, not {given}")
    return given


def _node_client(server: str, wait_s: float) -> tuple[Client, str]:
    """A connection to the node's bitshared, waiting up to ``wait_s`` while it does not answer."""
    server = node_server(server)
    deadline = time.monotonic() + seconds("--connect-timeout", wait_s)
    pause = 0.1
    while True:
        try:
            return connect(server), server
        except Unreachable:
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # bitshared is away (restarting): try again until the deadline
        pause = min(pause * 2, 2.0)


@slurm_app.command("prolog")
def prolog(
    server: str = _SERVER,
    ttl: float = typer.Option(DEFAULT_TTL_S, "--ttl", help="Seconds the lease outlives the last sight of the job."),
    shards_per_gpu: int | None = typer.Option(
        None, "--shards-per-gpu", min=1, help="Shards per GPU (default: the node's shard count over its GPU count)."
    ),
    connect_timeout: float = _CONNECT,
) -> None:
    """Slurm's Prolog (as root): lease the job's GPUs here, owned by the job's user; fail if they do not fit."""
    context = JobContext.from_environ(os.environ)
    positive_seconds("--ttl", ttl)
    client, _ = _node_client(server, connect_timeout)
    try:
        lease = start_job(client, context, Scontrol(), ttl, shards_per_gpu)
    finally:
        client.close()
    if lease is not None:
        sizes = ", ".join(f"GPU {a.gpu_index} {a.memory_mib} MiB" for a in lease.allocations)
        note(f"job {context.job_id}: lease {lease.id} for {context.user}: {sizes}")


@slurm_app.command("task-prolog")
def task_prolog(server: str = _SERVER, connect_timeout: float = typer.Option(10.0, "--connect-timeout")) -> None:
    """Slurm's TaskProlog (as the job's user): print the lease's variables for the task."""
    context = JobContext.from_environ(os.environ)
    try:
        client, server = _node_client(server, connect_timeout)
        try:
            variables = task_environment(client, context, os.environ, server)
        finally:
            client.close()
    except BitshareError as exc:
        # A failed TaskProlog stops the task; a "print" line is what its output says of why.
        sys.stdout.write(f"print bitshare: error: {' '.join(printable(str(exc)).split())}\n")
        raise
    sys.stdout.write(export_lines(variables))


@slurm_app.command("epilog")
def epilog(server: str = _SERVER, connect_timeout: float = _CONNECT) -> None:
    """Slurm's Epilog (as root): release the job's lease here."""
    context = JobContext.from_environ(os.environ)
    try:
        client, _ = _node_client(server, connect_timeout)
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
