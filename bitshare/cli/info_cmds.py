"""Read-only commands: list-gpus, smi, health, leases, queue, version."""

from __future__ import annotations

import contextlib
import time
from collections import deque

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .. import __version__
from ..client.connection import Client
from ..errors import EXIT_UNAVAILABLE, BitshareError, Unreachable
from ..protocol.v1 import bitshare_pb2 as pb
from .base import JSON, app, emit, state, wants_json
from .options import seconds
from .output import say
from .render import gpus_table, leases_table, tagged, to_json
from .render import smi as smi_text

CLEAR_SCREEN = "\x1b[H\x1b[2J"  # smi --watch redraws from the top


@app.command("list-gpus")
def list_gpus(ctx: typer.Context, json_output: bool = JSON) -> None:
    """The GPUs of every daemon: size, what is lent, what is free."""
    items = [(str(c.address), gpu) for c in state(ctx).pool() for gpu in c.gpus()]
    emit(ctx, json_output, tagged(items), gpus_table(items))


@app.command()
def smi(
    ctx: typer.Context,
    json_output: bool = JSON,
    watch: float = typer.Option(0.0, "--watch", help="Redraw every SECONDS until interrupted."),
) -> None:
    """The GPUs and the partitions granted on them, drawn as the console draws them."""
    seconds("--watch", watch)
    pool = state(ctx).pool()
    history: dict[tuple[str, int], deque[float]] = {}  # utilisation per GPU, one point per redraw
    while True:
        views = [(str(c.address), c.info, c.gpus()) for c in pool]
        if wants_json(ctx, json_output):
            typer.echo(to_json([{"server": s, "info": i, "gpus": gs} for s, i, gs in views]))
        else:
            texts = []
            for client, (server, info, gpus) in zip(pool, views, strict=True):
                for gpu in gpus:
                    history.setdefault((server, gpu.index), deque(maxlen=30)).append(gpu.utilization_pct)
                points = {gpu.index: history[(server, gpu.index)] for gpu in gpus}
                leases = client.all_leases() if info.caller_role == pb.ROLE_ADMIN else client.my_leases()
                texts.append(smi_text(server, info, gpus, leases, points))
            if watch:
                typer.echo(CLEAR_SCREEN, nl=False)
            say("\n\n".join(texts))
        if watch <= 0:
            return
        time.sleep(watch)


@app.command()
def health(ctx: typer.Context, json_output: bool = JSON) -> None:
    """Check that every daemon answers (standard gRPC health check); exit 69 if one does not."""
    reports = [_health(client) for client in state(ctx).pool(start_embedded=False)]
    emit(ctx, json_output, [report for report, _ in reports], "\n".join(line for _, line in reports))
    if any(report["status"] != "SERVING" for report, _ in reports):
        raise typer.Exit(EXIT_UNAVAILABLE)


def _health(client: Client) -> tuple[dict, str]:
    stub = health_pb2_grpc.HealthStub(client.channel)
    try:
        status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    except grpc.RpcError as exc:
        raise Unreachable(f"bitshared at {client.address} is not healthy: {exc.details()}") from None
    info = client.server_info()
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
    kind = "simulated GPUs (CPU-backed)" if info.simulated else f"{info.backend} GPUs"
    role = pb.Role.Name(info.caller_role).removeprefix("ROLE_").lower()
    line = (
        f"{name.replace('_', ' ')}  {client.address}  bitshared {info.version}  {info.gpu_count} {kind}  "
        f"you are {info.caller} ({role})"
    )
    return {"server": str(client.address), "status": name, "info": info}, line


@app.command()
def leases(
    ctx: typer.Context,
    all_users: bool = typer.Option(False, "--all", "-a", help="Everyone's leases (admin)."),
    ended: bool = typer.Option(False, "--ended", help="Include recently ended leases."),
    json_output: bool = JSON,
) -> None:
    """Live and queued leases on every daemon: yours, or everyone's with --all."""
    items = [
        (str(c.address), lease)
        for c in state(ctx).pool()
        for lease in (c.all_leases(ended) if all_users else c.my_leases(ended))
    ]
    emit(ctx, json_output, tagged(items), leases_table(items))


@app.command()
def queue(ctx: typer.Context, json_output: bool = JSON) -> None:
    """Waiting requests in the order each daemon will grant them (yours only, unless you are an admin)."""
    items: list[tuple[str, pb.Lease]] = []
    for client in state(ctx).pool():
        if client.info.caller_role == pb.ROLE_ADMIN:
            waiting = client.queue()
        else:
            mine = (lease for lease in client.my_leases() if lease.state == pb.LEASE_STATE_QUEUED)
            waiting = sorted(mine, key=lambda lease: lease.queue_position)
        items += [(str(client.address), lease) for lease in waiting]
    emit(ctx, json_output, tagged(items), leases_table(items))


@app.command()
def version(ctx: typer.Context, json_output: bool = JSON) -> None:
    """bitshare's version, and each running daemon's."""
    servers: dict[str, str] = {}
    with contextlib.suppress(BitshareError):  # no daemon running: the client's version alone
        servers = {str(c.address): c.info.version for c in state(ctx).pool(start_embedded=False)}
    text = "\n".join([f"bitshare {__version__}", *(f"bitshared {v} at {s}" for s, v in servers.items())])
    emit(ctx, json_output, {"client": __version__, "servers": servers}, text)
