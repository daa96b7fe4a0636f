"""Admin verbs: lease resize/revoke/priority, gpu drain/undrain, events."""

from __future__ import annotations

import typer

from ..errors import UsageError
from ..present.table import table
from .base import JSON, app, emit, state
from .options import UINT32_MAX, bounded, check_priority, gpu_index, parse_fraction, parse_memory

lease_app = typer.Typer(no_args_is_help=True, help="Act on one lease (admin).")
gpu_app = typer.Typer(no_args_is_help=True, help="Act on one GPU (admin).")
app.add_typer(lease_app, name="lease")
app.add_typer(gpu_app, name="gpu")


@lease_app.command("resize")
def resize(
    ctx: typer.Context,
    lease_id: str = typer.Argument(..., metavar="ID"),
    partition: str | None = typer.Option(None, "-p", "--partition", help="New fraction of each GPU."),
    memory: str | None = typer.Option(None, "-m", "--memory", help="New memory per GPU."),
    json_output: bool = JSON,
) -> None:
    """Grow (when there is room) or shrink a lease on every GPU it holds."""
    if (partition is None) == (memory is None):
        raise UsageError("give exactly one of -p FRACTION or -m MIB")
    fraction = parse_fraction(partition) if partition is not None else None
    mib = parse_memory(memory) if memory is not None else None
    lease = state(ctx).holder_of(lease_id).resize(lease_id, fraction, mib)
    sizes = ", ".join(f"GPU {a.gpu_index}: {a.memory_mib} MiB" for a in lease.allocations)
    emit(ctx, json_output, lease, f"lease {lease.id} resized to {sizes}")


@lease_app.command("revoke")
def revoke(
    ctx: typer.Context,
    lease_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option("", "--reason", help="Told to the holder and kept in the event log."),
    json_output: bool = JSON,
) -> None:
    """End a lease now: its holder is told and its command is ended."""
    lease = state(ctx).holder_of(lease_id).revoke(lease_id, reason)
    emit(ctx, json_output, lease, f"lease {lease.id} revoked")


@lease_app.command("priority")
def priority(
    ctx: typer.Context,
    lease_id: str = typer.Argument(..., metavar="ID"),
    value: int = typer.Argument(..., metavar="PRIORITY"),
    json_output: bool = JSON,
) -> None:
    """Change a queued request's priority."""
    lease = state(ctx).holder_of(lease_id).set_priority(lease_id, check_priority(value, "PRIORITY"))
    emit(ctx, json_output, lease, f"lease {lease.id} priority {lease.priority}, queue position {lease.queue_position}")


def _drain(ctx: typer.Context, index: int, drained: bool, json_output: bool) -> None:
    gpu = state(ctx).client().drain(gpu_index(index), drained)
    emit(ctx, json_output, gpu, f"GPU {gpu.index} {'drained' if gpu.drained else 'accepting leases'}")


@gpu_app.command("drain")
def drain(ctx: typer.Context, index: int = typer.Argument(..., metavar="GPU"), json_output: bool = JSON) -> None:
    """Stop granting on a GPU; leases on it keep running."""
    _drain(ctx, index, True, json_output)


@gpu_app.command("undrain")
def undrain(ctx: typer.Context, index: int = typer.Argument(..., metavar="GPU"), json_output: bool = JSON) -> None:
    """Grant on a drained GPU again."""
    _drain(ctx, index, False, json_output)


@app.command()
def events(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", help="How many of the latest events."),
    lease_id: str = typer.Option("", "--lease", help="Only this lease's events."),
    json_output: bool = JSON,
) -> None:
    """The daemon's audit log (admin): every lease transition and admin action, and who did it."""
    bounded("--limit", limit, 1, UINT32_MAX)
    cli = state(ctx)
    items = (cli.holder_of(lease_id) if lease_id else cli.client()).events(limit, lease_id)
    rows = [
        [e.at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"), e.kind, e.lease_id or "-", e.actor or "-", e.detail]
        for e in items
    ]
    emit(ctx, json_output, items, table(["TIME (UTC)", "EVENT", "LEASE", "BY", "DETAIL"], rows))
