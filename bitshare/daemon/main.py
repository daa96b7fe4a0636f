"""``bitshared``: the GPU-server daemon's command line."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from .. import __version__, log, paths
from ..address import parse_address
from ..config import ConfigError, finish_daemon_config, load_daemon_config, metrics_address
from ..units import parse_reserve, parse_simulate
from .backends import BackendUnavailable
from .server import StartupError, run_daemon
from .state.store import StoreError, UnusableState

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
    mps: str | None = typer.Option(None, "--mps", help="Run NVIDIA MPS per GPU: auto, on or off."),
    watchdog: str | None = typer.Option(
        None, "--watchdog", help="Leases over their partition: enforce (warn, then end), warn, or off."
    ),
    grace: float | None = typer.Option(
        None, "--grace", help="Seconds an over-limit or ended lease's processes have before they are ended."
    ),
    sample_interval: float | None = typer.Option(
        None, "--sample-interval", help="Seconds between measurements of GPU use."
    ),
    tokens_file: Path | None = typer.Option(None, "--tokens-file", help="Bearer tokens for TCP callers."),
    allow_insecure_tcp: bool = typer.Option(False, "--allow-insecure-tcp", help="Allow plaintext TCP off loopback."),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning or error."),
    metrics_listen: str | None = typer.Option(
        None, "--metrics-listen", help="Serve Prometheus metrics at HOST:PORT/metrics."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Run the bitshare GPU-server daemon in the foreground."""
    try:
        overrides = _flag_overrides(
            listen,
            state_dir,
            simulate,
            backend,
            reserve,
            lease_ttl,
            idle_timeout,
            tokens_file,
            allow_insecure_tcp,
            log_level,
        )
        overrides.update(_enforcement_overrides(mps, watchdog, grace, sample_interval))
        if metrics_listen is not None:
            overrides["metrics_listen"] = _named("--metrics-listen", metrics_address, metrics_listen)
    except ValueError as exc:
        typer.echo(f"bitshared: error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        if config is None and paths.SYSTEM_CONFIG.exists():
            config = paths.SYSTEM_CONFIG
        settings = finish_daemon_config(dataclasses.replace(load_daemon_config(config), **overrides))
        log.setup(settings.log_level)
        code = run_daemon(settings)
    except (ConfigError, StartupError, StoreError, BackendUnavailable, RuntimeError) as exc:
        typer.echo(f"bitshared: error: {exc}", err=True)
        raise typer.Exit(78 if isinstance(exc, (ConfigError, UnusableState)) else 1) from None
    raise typer.Exit(code)


def _named(flag: str, parse: Callable[[str], Any], value: str) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _flag_overrides(
    listen: list[str] | None,
    state_dir: Path | None,
    simulate: str | None,
    backend: str | None,
    reserve: str | None,
    lease_ttl: float | None,
    idle_timeout: float | None,
    tokens_file: Path | None,
    allow_insecure_tcp: bool,
    log_level: str | None,
) -> dict[str, Any]:
    """The settings given as flags, checked; ValueError names the bad flag."""
    overrides: dict[str, Any] = {}
    if listen:
        for item in listen:
            _named("--listen", parse_address, item)
        overrides["listen"] = list(listen)
    if state_dir:
        overrides["state_dir"] = str(state_dir)
    if simulate is not None:
        _named("--simulate", parse_simulate, simulate)
        overrides["simulate"] = simulate
    if backend is not None:
        if backend not in ("auto", "nvml", "simulated"):
            raise ValueError(f"--backend must be auto, nvml or simulated, got {backend!r}")
        overrides["backend"] = backend
    if reserve is not None:
        overrides["reserve_mib"] = _named("--reserve", parse_reserve, reserve)
    if lease_ttl is not None:
        if not lease_ttl > 0:
            raise ValueError(f"--lease-ttl must be > 0 seconds, got {lease_ttl:g}")
        overrides["lease_ttl_s"] = lease_ttl
    if idle_timeout is not None:
        if not idle_timeout >= 0:
            raise ValueError(f"--idle-timeout must be >= 0 seconds, got {idle_timeout:g}")
        overrides["idle_timeout_s"] = idle_timeout
    if tokens_file:
        overrides["tokens_file"] = str(tokens_file)
    if allow_insecure_tcp:
        overrides["allow_insecure_tcp"] = True
    if log_level is not None:
        if log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"--log-level must be debug, info, warning or error, got {log_level!r}")
        overrides["log_level"] = log_level
    return overrides


def _enforcement_overrides(
    mps: str | None, watchdog: str | None, grace: float | None, sample_interval: float | None
) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if mps is not None:
        if mps not in ("auto", "on", "off"):
            raise ValueError(f"--mps must be auto, on or off, got {mps!r}")
        overrides["mps"] = mps
    if watchdog is not None:
        if watchdog not in ("enforce", "warn", "off"):
            raise ValueError(f"--watchdog must be enforce, warn or off, got {watchdog!r}")
        overrides["watchdog"] = watchdog
    if grace is not None:
        if not grace >= 0:
            raise ValueError(f"--grace must be >= 0 seconds, got {grace:g}")
        overrides["grace_s"] = grace
    if sample_interval is not None:
        if not sample_interval >= 0.05:
            raise ValueError(f"--sample-interval must be >= 0.05 seconds, got {sample_interval:g}")
        overrides["sample_interval_s"] = sample_interval
    return overrides


def run() -> None:
    app()
