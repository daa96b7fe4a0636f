"""The ``bitshare`` Typer app and its global options; command modules add to it."""

from __future__ import annotations

import typer

from .output import say
from .render import to_json
from .session import CliState

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Share NVIDIA GPUs, whole or in partitions: lease them from bitshared and run commands on them.",
)


@app.callback()
def main(
    ctx: typer.Context,
    server: str | None = typer.Option(
        None,
        "--server",
        "-s",
        envvar="BITSHARE_SERVER",
        help="bitshared's address (unix:PATH or HOST:PORT), or a comma-separated pool of them.",
    ),
    token: str | None = typer.Option(None, "--token", envvar="BITSHARE_TOKEN", help="Bearer token for TCP servers."),
    tls_ca: str | None = typer.Option(None, "--tls-ca", envvar="BITSHARE_TLS_CA", help="CA file for a TLS server."),
    allow_insecure_tcp: bool = typer.Option(
        False,
        "--allow-insecure-tcp",
        help="Talk plaintext (token included) to TCP servers off loopback [env BITSHARE_ALLOW_INSECURE_TCP].",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    ctx.obj = CliState(
        server=server or "",
        token=token or "",
        tls_ca=tls_ca or "",
        allow_insecure_tcp=allow_insecure_tcp,
        json=json_output,
    )
    ctx.call_on_close(ctx.obj.close)


def state(ctx: typer.Context) -> CliState:
    return ctx.ensure_object(CliState)


# Taken by every verb that prints, as well as before the verb; either asks for JSON.
JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def wants_json(ctx: typer.Context, json_flag: bool) -> bool:
    return json_flag or state(ctx).json


def emit(ctx: typer.Context, json_flag: bool, data: object, text: str) -> None:
    """Print ``data`` as JSON (see :func:`render.to_json`) when asked to, else ``text`` (made printable)."""
    if wants_json(ctx, json_flag):
        typer.echo(to_json(data))
    else:
        say(text)
