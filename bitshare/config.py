"""Daemon and client configuration: TOML files, checked key by key.

The daemon reads ``/etc/bitshare/bitshare.toml`` (or ``--config``); flags override it.
Clients read ``~/.config/bitshare/client.toml``, then ``BITSHARE_*`` variables, then flags.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from . import paths
from .address import parse_address
from .errors import ConfigError
from .units import MAX_PRIORITY, parse_reserve, parse_simulate


@dataclass
class DaemonConfig:
    listen: list[str] = field(default_factory=list)
    state_dir: str = ""
    runtime_dir: str = ""  # MPS pipes and the simulated-GPU registry; default: the first socket's directory
    log_level: str = "info"
    metrics_listen: str = ""  # HOST:PORT of the Prometheus endpoint; "" for none
    history_days: float = 30.0  # ended leases and events are kept this long
    backend: str = "auto"  # auto | nvml | simulated
    simulate: str = ""  # e.g. "4x16GiB"; implies the simulated backend
    reserve_mib: int = 512
    lease_ttl_s: float = 30.0
    max_ttl_s: float = 7 * 24 * 3600.0
    aging_s: float = 60.0
    starvation_s: float = 120.0
    max_client_priority: int = 0  # the highest priority a client may ask; above it is for admins
    idle_timeout_s: float = 0.0
    admin_group: str = "bitshare"
    tokens_file: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    allow_insecure_tcp: bool = False
    mps: str = "auto"  # auto | on | off
    watchdog: str = "enforce"  # enforce | warn | off
    grace_s: float = 10.0  # over-limit and ended leases: how long their processes have
    sample_interval_s: float = 1.0
    context_mib: int = 1024  # per process, on real GPUs: memory outside the partition (CUDA context)

    def runtime_path(self) -> Path:
        """``runtime_dir``, else the directory of the first Unix socket, else ``<state_dir>/run``."""
        if self.runtime_dir:
            return Path(self.runtime_dir)
        sockets = [parse_address(a) for a in self.listen if a.startswith("unix:")]
        return Path(sockets[0].path).parent if sockets else Path(self.state_dir) / "run"


@dataclass
class ClientConfig:
    servers: list[str] = field(default_factory=list)  # the pool, in order of preference
    token: str = ""
    tls_ca: str = ""
    allow_insecure_tcp: bool = False  # plaintext (and the token) to TCP daemons off loopback


Convert = Callable[[Any], Any]


def _must(predicate: Callable[[Any], bool]) -> Convert:
    """A converter that keeps the value when the predicate holds (else the key's hint is the error)."""

    def convert(value: Any) -> Any:
        if not predicate(value):
            raise ValueError
        return value

    return convert


def _listen(value: list[str]) -> list[str]:
    for item in value:
        parse_address(item)
    return value


def metrics_address(value: str) -> str:
    """ "" (no metrics endpoint) or a TCP address; ValueError says what is wrong."""
    if value and parse_address(value).kind != "tcp":
        raise ValueError(f"the metrics endpoint is served over TCP (HOST:PORT), not {value!r}")
    return value


def _simulate(value: str) -> str:
    if value:
        parse_simulate(value)
    return value


_POSITIVE = _must(lambda v: v > 0)
_NON_NEGATIVE = _must(lambda v: v >= 0)

# (section, key) -> (field, type(s) accepted, converter raising ValueError, what a good value looks like)
_DAEMON_KEYS: dict[tuple[str, str], tuple[str, type | tuple[type, ...], Convert | None, str]] = {
    ("daemon", "listen"): ("listen", list, _listen, 'a list like ["unix:/run/bitshare/bitshared.sock"]'),
    ("daemon", "state_dir"): ("state_dir", str, None, "a directory path"),
    ("daemon", "runtime_dir"): ("runtime_dir", str, None, "a directory path"),
    ("daemon", "metrics_listen"): ("metrics_listen", str, metrics_address, 'a TCP address like "127.0.0.1:9464"'),
    ("daemon", "history_days"): ("history_days", float, _POSITIVE, "days > 0"),
    ("daemon", "log_level"): (
        "log_level",
        str,
        _must(lambda v: v in ("debug", "info", "warning", "error")),
        "debug, info, warning or error",
    ),
    ("gpus", "backend"): (
        "backend",
        str,
        _must(lambda v: v in ("auto", "nvml", "simulated")),
        "auto, nvml or simulated",
    ),
    ("gpus", "simulate"): ("simulate", str, _simulate, 'a GPU list like "4x16GiB"'),
    ("gpus", "reserve"): ("reserve_mib", (str, int), parse_reserve, 'a size like "512MiB"'),
    ("leases", "ttl_s"): ("lease_ttl_s", float, _POSITIVE, "seconds > 0"),
    ("leases", "max_ttl_s"): ("max_ttl_s", float, _POSITIVE, "seconds > 0"),
    ("leases", "idle_timeout_s"): ("idle_timeout_s", float, _NON_NEGATIVE, "seconds >= 0 (0 turns idle reclaim off)"),
    ("queue", "aging_s"): ("aging_s", float, _NON_NEGATIVE, "seconds >= 0 (0 turns aging off)"),
    ("queue", "starvation_s"): ("starvation_s", float, _POSITIVE, "seconds > 0"),
    ("queue", "max_client_priority"): (
        "max_client_priority",
        int,
        _must(lambda v: abs(v) <= MAX_PRIORITY),
        f"a priority between -{MAX_PRIORITY} and {MAX_PRIORITY}",
    ),
    ("security", "admin_group"): ("admin_group", str, None, "a Unix group name"),
    ("security", "tokens_file"): ("tokens_file", str, None, "a file path"),
    ("security", "tls_cert"): ("tls_cert", str, None, "a PEM file path"),
    ("security", "tls_key"): ("tls_key", str, None, "a PEM file path"),
    ("security", "allow_insecure_tcp"): ("allow_insecure_tcp", bool, None, "true or false"),
    ("enforcement", "mps"): ("mps", str, _must(lambda v: v in ("auto", "on", "off")), "auto, on or off"),
    ("enforcement", "watchdog"): (
        "watchdog",
        str,
        _must(lambda v: v in ("enforce", "warn", "off")),
        "enforce, warn or off",
    ),
    ("enforcement", "grace_s"): ("grace_s", float, _NON_NEGATIVE, "seconds >= 0"),
    ("enforcement", "sample_interval_s"): ("sample_interval_s", float, _must(lambda v: v >= 0.05), "seconds >= 0.05"),
    ("enforcement", "context_allowance"): ("context_mib", (str, int), parse_reserve, 'a size like "1GiB"'),
}

_CLIENT_KEYS: dict[str, tuple[str, type]] = {
    "server": ("servers", str),
    "servers": ("servers", list),
    "token": ("token", str),
    "tls_ca": ("tls_ca", str),
    "allow_insecure_tcp": ("allow_insecure_tcp", bool),
}


def split_servers(text: str) -> list[str]:
    """``BITSHARE_SERVER`` and ``--server`` take one address or a comma-separated pool."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _coerce(value: Any, kind: type | tuple[type, ...], where: str, hint: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {hint}, got {value!r}")
    if kind is list and not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: expected {hint}, got {value!r}")
    return value


def load_daemon_config(path: Path | None) -> DaemonConfig:
    """Read the daemon's TOML file (None: built-in defaults) and check every key."""
    config = DaemonConfig()
    if path is None:
        return finish_daemon_config(config)
    data = _read_toml(path)
    updates: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: {section!r} must be a [section]; sections are daemon, gpus, leases, queue, security, "
                "enforcement"
            )
        for key, value in table.items():
            spec = _DAEMON_KEYS.get((section, key))
            if spec is None:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
            name, kind, convert, hint = spec
            where = f"{path}: [{section}] {key}"
            checked = _coerce(value, kind, where, hint)
            try:
                updates[name] = convert(checked) if convert else checked
            except ValueError as exc:
                raise ConfigError(f"{where}: {str(exc) or f'expected {hint}, got {checked!r}'}") from None
    return finish_daemon_config(dataclasses.replace(config, **updates))


def finish_daemon_config(config: DaemonConfig) -> DaemonConfig:
    """Fill in defaults that depend on who runs the daemon."""
    if not config.state_dir:
        config.state_dir = str(paths.default_state_dir())
    if not config.listen:
        socket = paths.SYSTEM_SOCKET if paths.is_root() else paths.embedded_socket()
        config.listen = [f"unix:{socket}"]
    return config


def load_client_config(path: Path | None = None, environ: dict[str, str] | None = None) -> ClientConfig:
    """The client's settings: the config file (BITSHARE_CONFIG, else the user's, else the host's
    /etc/bitshare/client.toml), then BITSHARE_SERVER / _TOKEN / _TLS_CA / _ALLOW_INSECURE_TCP."""
    environ = dict(os.environ) if environ is None else environ
    config = ClientConfig()
    if path is None and environ.get("BITSHARE_CONFIG"):
        path = Path(environ["BITSHARE_CONFIG"])
    if path is None:
        user_file = paths.user_config_file()
        path = user_file if user_file.exists() else paths.SYSTEM_CLIENT_CONFIG
    if path.exists():
        data = _read_toml(path)
        for key, value in data.items():
            spec = _CLIENT_KEYS.get(key)
            if spec is None:
                raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join(_CLIENT_KEYS)})")
            name, kind = spec
            hint = "a list of addresses" if kind is list else f"a {kind.__name__}"
            checked = _coerce(value, kind, f"{path}: {key}", hint)
            setattr(config, name, [checked] if key == "server" else checked)
    if environ.get("BITSHARE_SERVER"):
        config.servers = split_servers(environ["BITSHARE_SERVER"])
    for key in ("token", "tls_ca"):
        if environ.get(f"BITSHARE_{key.upper()}"):
            setattr(config, key, environ[f"BITSHARE_{key.upper()}"])
    insecure = environ.get("BITSHARE_ALLOW_INSECURE_TCP", "")
    if insecure:
        if insecure.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ConfigError(f"BITSHARE_ALLOW_INSECURE_TCP: expected 1 or 0 (true or false), got {insecure!r}")
        config.allow_insecure_tcp = insecure.lower() in ("1", "true", "yes")
    for server in config.servers:
        try:
            parse_address(server)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return config
