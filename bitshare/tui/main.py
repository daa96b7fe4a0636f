"""``bitshare-admin``: open the console on the configured daemons (or ``--server``, repeated)."""

from __future__ import annotations

import gc
from pathlib import Path

import typer

from ..client.finding import load_settings, running_default
from ..errors import EXIT_UNAVAILABLE, EXIT_USAGE, BitshareError
from .data import DaemonSource

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def main(
    server: list[str] | None = typer.Option(
        None, "--server", "-s", help="A daemon (unix:PATH or HOST:PORT); repeatable."
    ),
    token: str | None = typer.Option(None, "--token", help="Bearer token for TCP daemons [env BITSHARE_TOKEN]."),
    tls_ca: Path | None = typer.Option(None, "--tls-ca", help="CA certificate for TLS daemons."),
    allow_insecure_tcp: bool = typer.Option(
        False, "--allow-insecure-tcp", help="Talk plaintext (token included) to TCP daemons off loopback."
    ),
    readonly: bool = typer.Option(False, "--readonly", help="Watch only: no resize, revoke, drain or priority."),
    interval: float = typer.Option(0.5, "--interval", help="At most one update per daemon per SECONDS."),
) -> None:
    """The live admin console: GPUs, leases and the queue of one or several bitshare daemons."""
    from .app import AdminApp

    try:
        settings = load_settings(server or [], token or "", str(tls_ca) if tls_ca else "", allow_insecure_tcp)
        servers = list(settings.servers)
        if not servers and (default := running_default()):
            servers = [default]
    except BitshareError as exc:  # a bad config; a per-user directory that is not this user's own
        typer.echo(f"bitshare-admin: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if not servers:
        typer.echo("bitshare-admin: error: no daemon to watch: give --server or `servers` in the config", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE)
    if interval < 0.1:
        typer.echo("bitshare-admin: error: --interval must be at least 0.1 seconds", err=True)
        raise typer.Exit(EXIT_USAGE)
    reach = settings.credentials
    sources = [DaemonSource(s, reach.token, reach.tls_ca, reach.allow_insecure_tcp) for s in servers]
    # Everything loaded so far (Textual, gRPC, protobuf: most of the process's objects) lives as
    # long as the console: keeping it out of the collector's full passes keeps those passes from
    # stalling a keypress by 30-60 ms.
    gc.freeze()
    AdminApp(sources, readonly=readonly, min_interval_s=interval).run()


def run() -> None:
    app()
