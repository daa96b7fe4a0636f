"""Commands that hold leases: run, request-gpus, client, release-gpus."""

from __future__ import annotations

from typing import Any

import typer

from ..client.connection import LeaseRequest
from ..errors import BitshareError, NotFound, UsageError
from ..holder.launcher import run_command, run_in_session, wait_for_grant
from ..protocol.v1 import bitshare_pb2 as pb
from .base import JSON, app, emit, state, wants_json
from .options import build_request, positive_seconds, seconds
from .output import note
from .render import to_json
from .session import SessionLease, forget_session, save_session, session_leases

RUN_SETTINGS = {"allow_interspersed_args": False}

_GPUS = typer.Option(1, "-n", "--gpus", help="Number of GPUs (all on one daemon).")
_FRACTION = typer.Option(None, "-p", "--partition", help="Fraction of each GPU's memory, in (0, 1].")
_MEMORY = typer.Option(None, "-m", "--memory", help="Memory per GPU: MiB, or a size like 4GiB.")
_COMPUTE = typer.Option(None, "--compute", help="Compute share per GPU in percent (1-100).")
_FILTER = typer.Option([], "--filter", help="name=SUBSTRING, min_memory=SIZE or index=0,1; repeatable.")
_PRIORITY = typer.Option(0, "--priority", help="Higher goes first in the queue.")
_WAIT = typer.Option(True, "--wait/--no-wait", help="Wait in the queue, or fail at once (exit 75).")
_TIMEOUT = typer.Option(None, "--timeout", help="Give up waiting after SECONDS (exit 75).")
_GRACE = typer.Option(10.0, "--kill-grace", help="Seconds between SIGTERM and SIGKILL when the lease ends.")
_REMOTE = typer.Option(
    None,
    "--remote/--local",
    help="Run CMD's CuPy arrays on the lease's GPU server (default: when its GPUs are not usable from here).",
    show_default=False,
)
_AGENT = typer.Option(
    True, "--agent/--no-agent", help="Load the in-process agent into CMD's Python processes (live limits)."
)


def _request(ctx: typer.Context, **extra: Any) -> LeaseRequest:
    """The request that the flags run and request-gpus share ask for (-n, -p, -m, --compute,
    --filter, --priority, --wait, --timeout), with ``extra`` fields; each flag checked."""
    flags = ctx.params
    return build_request(
        gpus=flags["gpus"],
        fraction=flags["partition"],
        memory=flags["memory"],
        compute=flags["compute"],
        filters=flags["filters"],
        priority=flags["priority"],
        wait=flags["wait"],
        timeout=flags["timeout"],
        **extra,
    )


@app.command(context_settings=RUN_SETTINGS)
def run(
    ctx: typer.Context,
    command: list[str] = typer.Argument(..., metavar="-- CMD [ARGS]...", help="The command to run on the lease."),
    gpus: int = _GPUS,
    partition: str | None = _FRACTION,
    memory: str | None = _MEMORY,
    compute: int | None = _COMPUTE,
    filters: list[str] = _FILTER,
    priority: int = _PRIORITY,
    wait: bool = _WAIT,
    timeout: float | None = _TIMEOUT,
    kill_grace: float = _GRACE,
    agent: bool = _AGENT,
    remote: bool | None = _REMOTE,
) -> None:
    """Lease GPU partitions, run CMD on them, give them back when CMD ends; exit with CMD's code."""
    seconds("--kill-grace", kill_grace)
    request = _request(ctx, command=command)
    raise typer.Exit(
        run_command(state(ctx).pool(), request, command, kill_grace_s=kill_grace, agent=agent, remote=remote)
    )


@app.command("request-gpus")
def request_gpus(
    ctx: typer.Context,
    gpus: int = _GPUS,
    partition: str | None = _FRACTION,
    memory: str | None = _MEMORY,
    compute: int | None = _COMPUTE,
    filters: list[str] = _FILTER,
    priority: int = _PRIORITY,
    wait: bool = _WAIT,
    timeout: float | None = _TIMEOUT,
    session_ttl: float = typer.Option(3600.0, "--session-ttl", help="Seconds the lease is held without use."),
    json_output: bool = JSON,
) -> None:
    """Lease GPUs for a session of several commands (see client and release-gpus); prints the lease id."""
    positive_seconds("--session-ttl", session_ttl)
    request = _request(ctx, ttl=session_ttl)
    session_leases()  # a session file that may not be used stops this before any lease is taken
    client, lease = wait_for_grant(state(ctx).pool(), request)
    try:
        others = save_session(str(client.address), lease.id)
    except BitshareError:
        client.release(lease.id)  # a lease no session command could find would be held for the whole TTL
        raise
    if others:
        held = ", ".join(other.lease_id for other in others)
        note(f"also holding session lease {held} (release-gpus releases the latest first)")
    emit(ctx, json_output, lease, lease.id)


@app.command(context_settings=RUN_SETTINGS)
def client(
    ctx: typer.Context,
    command: list[str] = typer.Argument(..., metavar="-- CMD [ARGS]...", help="The command to run on the lease."),
    lease: str | None = typer.Option(None, "--lease", help="Lease id [default: the latest session's]."),
    kill_grace: float = _GRACE,
    agent: bool = _AGENT,
    remote: bool | None = _REMOTE,
) -> None:
    """Run CMD on a lease held by request-gpus; the lease stays held afterwards."""
    seconds("--kill-grace", kill_grace)
    client, lease_id = state(ctx).session(lease)
    if lease is None and len(held := session_leases()) > 1:
        note(f"on session lease {lease_id}, the latest of {len(held)} (--lease ID for another)")
    raise typer.Exit(run_in_session(client, lease_id, command, kill_grace_s=kill_grace, agent=agent, remote=remote))


@app.command("release-gpus")
def release_gpus(
    ctx: typer.Context,
    lease: str | None = typer.Option(None, "--lease", help="Lease id [default: the latest session's]."),
    every: bool = typer.Option(False, "--all", help="Every lease request-gpus holds for you."),
    json_output: bool = JSON,
) -> None:
    """Give back a session lease (or withdraw a queued request): the latest, --lease ID, or --all."""
    if every and lease:
        raise UsageError("give --lease ID or --all, not both")
    cli = state(ctx)
    count = len(session_leases()) if every else 1
    if count == 0:
        raise UsageError("no session lease: nothing to release")
    released: list[pb.Lease] = []
    remaining: list[SessionLease] = []
    for _ in range(count):  # with --all: the latest first, as one by one would
        client, lease_id = cli.session(lease)
        try:
            released.append(client.release(lease_id))
        except NotFound as exc:  # long gone from the daemon: a session lease of that id would block the others
            forget_session(lease_id)
            if lease is None:
                raise NotFound(f"{exc}; dropped from your session leases") from None
            raise
        remaining = forget_session(lease_id)
        if not wants_json(ctx, json_output):
            held = ", ".join(other.lease_id for other in remaining)
            more = f"; still held: {held} (release-gpus --lease ID, or --all)" if remaining and not every else ""
            note(f"lease {lease_id} released{more}")
    if wants_json(ctx, json_output):
        typer.echo(to_json({"released": released, "still_held": [other.lease_id for other in remaining]}))
