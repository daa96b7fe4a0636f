"""Read-only commands: list-gpus, smi, health, leases, queue, version."""

from __future__ import annotations

import time

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .. import __version__
from ..errors import BitshareError, Unreachable
from ..v1 import bitshare_pb2 as pb
from .base import app, state
from .render import gpus_table, leases_table, to_json
from .render import smi as smi_text

_JSON = typer.Option(False, "--json", help="Print JSON.")


def _wants_json(ctx: typer.Context, json_flag: bool) -> bool:
    return json_flag or state(ctx).json


@app.command("list-gpus")
def list_gpus(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """The daemon's GPUs: size, what is lent, what is free."""
    gpus = state(ctx).client().gpus()
    typer.echo(to_json(gpus) if _wants_json(ctx, json_output) else gpus_table(gpus))


@app.command()
def smi(
    ctx: typer.Context,
    json_output: bool = _JSON,
    watch: float = typer.Option(0.0, "--watch", help="Redraw every SECONDS until interrupted."),
) -> None:
    """An nvidia-smi-like view of the GPUs and the partitions granted on them."""
    client = state(ctx).client()
    while True:
        info, gpus = client.server_info(), client.gpus()
        if _wants_json(ctx, json_output):
            typer.echo(to_json({"server": to_dict(info), "gpus": [to_dict(g) for g in gpus]}))
        else:
            typer.echo(("\x1b[H\x1b[2J" if watch else "") + smi_text(info, gpus))
        if watch <= 0:
            return
        time.sleep(watch)


def to_dict(message: object) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True)


@app.command()
def health(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """Check that the daemon answers (standard gRPC health check); exit 69 if not."""
    client = state(ctx).client(start_embedded=False)
    stub = health_pb2_grpc.HealthStub(client.channel)
    try:
        status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    except grpc.RpcError as exc:
        raise Unreachable(f"bitshared at {client.address} is not healthy: {exc.details()}") from None
    info = client.server_info()
    serving = status.status == health_pb2.HealthCheckResponse.SERVING
    if _wants_json(ctx, json_output):
        typer.echo(
            to_json(
                {
                    "server": str(client.address),
                    "status": health_pb2.HealthCheckResponse.ServingStatus.Name(status.status),
                    "info": to_dict(info),
                }
            )
        )
    else:
        kind = "simulated GPUs (CPU-backed)" if info.simulated else f"{info.backend} GPUs"
        typer.echo(
            f"{'SERVING' if serving else 'NOT SERVING'}  {client.address}  bitshared {info.version}  "
            f"{info.gpu_count} {kind}  you are {info.caller} ({pb.Role.Name(info.caller_role)[5:].lower()})"
        )
    if not serving:
        raise typer.Exit(69)


@app.command()
def leases(
    ctx: typer.Context,
    all_users: bool = typer.Option(False, "--all", "-a", help="Everyone's leases (admin)."),
    ended: bool = typer.Option(False, "--ended", help="Include recently ended leases."),
    json_output: bool = _JSON,
) -> None:
    """Live and queued leases: yours, or everyone's with --all."""
    client = state(ctx).client()
    items = client.all_leases(ended) if all_users else client.my_leases(ended)
    typer.echo(to_json(items) if _wants_json(ctx, json_output) else leases_table(items))


@app.command()
def queue(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """Waiting requests in the order they will be granted (yours only, unless you are an admin)."""
    client = state(ctx).client()
    if client.server_info().caller_role == pb.ROLE_ADMIN:
        items = client.queue()
    else:
        items = sorted(
            (lease for lease in client.my_leases() if lease.state == pb.LEASE_STATE_QUEUED),
            key=lambda lease: lease.queue_position,
        )
    typer.echo(to_json(items) if _wants_json(ctx, json_output) else leases_table(items))


@app.command()
def version(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """bitshare's version, and the daemon's when one is running."""
    server = ""
    try:
        info = state(ctx).client(start_embedded=False).server_info()
        server = info.version
    except BitshareError:
        pass
    if _wants_json(ctx, json_output):
        typer.echo(to_json({"client": __version__, "server": server or None}))
    else:
        typer.echo(f"bitshare {__version__}" + (f" (bitshared {server})" if server else ""))
