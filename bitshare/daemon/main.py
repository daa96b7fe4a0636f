"""``bitshared``: the GPU-server daemon's command line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from .. import __version__, log, paths
from ..config import ConfigError, finish_daemon_config, load_daemon_config
from ..units import parse_mib
from .backends import BackendUnavailable
from .server import StartupError, run_daemon
from .store import StoreError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bitshared {__version__}")
        raise typer.Exit()


@app.command()
def main(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file [default: /etc/bitshare/bitshare.toml if present]."
    ),
    listen: list[str] | None = typer.Option(None, "--listen", "-l", help="unix:PATH or HOST:PORT; repeatable."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where the SQLite state lives."),
    simulate: str | None = typer.Option(None, "--simulate", help="Simulated CPU-backed GPUs, e.g. 4x16GiB."),
    backend: str | None = typer.Option(None, "--backend", help="auto, nvml or simulated."),
    reserve: str | None = typer.Option(None, "--reserve", help="Memory kept back per GPU for contexts, e.g. 512MiB."),
    lease_ttl: float | None = typer.Option(
        None, "--lease-ttl", help="Seconds of holder silence before a lease expires."
    ),
    idle_timeout: float | None = typer.Option(
        None, "--idle-timeout", help="Seconds without GPU activity before a lease is reclaimed (0: off)."
    ),
    tokens_file: Path | None = typer.Option(None, "--tokens-file", help="Bearer tokens for TCP callers."),
    allow_insecure_tcp: bool = typer.Option(False, "--allow-insecure-tcp", help="Allow plaintext TCP off loopback."),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning or error."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Run the bitshare GPU-server daemon in the foreground."""
    try:
        if config is None and paths.SYSTEM_CONFIG.exists():
            config = paths.SYSTEM_CONFIG
        settings = load_daemon_config(config)
        overrides = {
            "listen": list(listen) if listen else None,
            "state_dir": str(state_dir) if state_dir else None,
            "simulate": simulate,
            "backend": backend,
            "reserve_mib": parse_mib(reserve) if reserve not in (None, "0") else (0 if reserve == "0" else None),
            "lease_ttl_s": lease_ttl,
            "idle_timeout_s": idle_timeout,
            "tokens_file": str(tokens_file) if tokens_file else None,
            "allow_insecure_tcp": True if allow_insecure_tcp else None,
            "log_level": log_level,
        }
        settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        _check(settings)
        settings = finish_daemon_config(settings)
        log.setup(settings.log_level)
        code = run_daemon(settings)
    except (ConfigError, StartupError, StoreError, BackendUnavailable, ValueError, RuntimeError) as exc:
        typer.echo(f"bitshared: error: {exc}", err=True)
        raise typer.Exit(78 if isinstance(exc, ConfigError) else 1) from None
    raise typer.Exit(code)


def _check(settings) -> None:
    if settings.backend not in ("auto", "nvml", "simulated"):
        raise ConfigError(f"--backend must be auto, nvml or simulated, got {settings.backend!r}")
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"--log-level must be debug, info, warning or error, got {settings.log_level!r}")
    if settings.lease_ttl_s <= 0:
        raise ConfigError(f"--lease-ttl must be > 0 seconds, got {settings.lease_ttl_s:g}")
    if settings.idle_timeout_s < 0:
        raise ConfigError(f"--idle-timeout must be >= 0 seconds, got {settings.idle_timeout_s:g}")
    from ..address import parse_address
    from ..units import parse_simulate

    for item in settings.listen:
        parse_address(item)
    if settings.simulate:
        parse_simulate(settings.simulate)


def run() -> None:
    app()
