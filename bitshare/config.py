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

Convert = Callable[[Any], Any]

BACKENDS = ("auto", "nvml", "simulated")
LOG_LEVELS = ("debug", "info", "warning", "error")
MPS_MODES = ("auto", "on", "off")  # auto: where NVIDIA MPS can run
WATCHDOG_MODES = ("enforce", "warn", "off")  # leases over their partition: warn then end, warn, or nothing


def _must(predicate: Callable[[Any], bool]) -> Convert:
    """A converter that keeps the value when the predicate holds (else the setting's hint is the error)."""

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


def one_of(choices: tuple[str, ...]) -> str:
    """``("a", "b", "c")`` as ``a, b or c``."""
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


def _typed(value: Any, kind: type | tuple[type, ...], refused: ValueError) -> Any:
    """A TOML value of the kind a setting takes (an int where a float is taken becomes one), else ``refused``."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise refused
    if kind is list and not all(isinstance(item, str) for item in value):
        raise refused
    return value


_POSITIVE = _must(lambda v: v > 0)
_NON_NEGATIVE = _must(lambda v: v >= 0)


@dataclass(frozen=True)
class Setting:
    """One daemon setting: its TOML key, its flag, what it accepts. Both the file and the flags are
    checked by :meth:`check`, so a bad value gets the same one-line error from either."""

    section: str
    key: str
    flag: str
    hint: str  # what a good value is, said after "must be"
    help: str
    convert: Convert | None = None  # raises ValueError, with a message or empty (then the hint is the error)
    kind: type | tuple[type, ...] | None = None  # the TOML value's type(s); None: the field's type
    choices: tuple[str, ...] = ()
    short: str = ""
    field: str = ""  # the DaemonConfig field it fills, and that field's default (set from the field)
    default: Any = None

    def check(self, value: Any, where: str) -> Any:
        """The value the setting takes; ValueError names ``where`` and says what is wrong in one line."""
        assert self.kind is not None, "a Setting is used from DAEMON_SETTINGS, where its kind is known"
        value = _typed(value, self.kind, ValueError(f"{where} must be {self.hint}, got {value!r}"))
        refused = ValueError(f"{where} must be {self.hint}, got {value!r}")  # as taken: 3 for 3.0 is 3.0 from both
        if self.choices and value not in self.choices:
            raise refused
        try:
            return self.convert(value) if self.convert else value
        except ValueError as exc:
            raise (ValueError(f"{where}: {exc}") if str(exc) else refused) from None

    def from_text(self, text: str) -> Any:
        """A flag's text as the value its TOML key would hold (then checked by :meth:`check`)."""
        try:
            if self.kind is float:
                return float(text)
            if self.kind is int:
                return int(text)
        except ValueError:
            raise ValueError(f"{self.flag} must be {self.hint}, got {text!r}") from None
        return text


def _setting(section: str, key: str, flag: str, hint: str, help: str, convert: Convert | None = None, **more: Any):
    """A DaemonConfig field's metadata: the setting it is."""
    return {"setting": Setting(section, key, flag, hint, help, convert, **more)}


def _choice(section: str, key: str, flag: str, choices: tuple[str, ...], help: str):
    return _setting(section, key, flag, one_of(choices), help, choices=choices)


@dataclass
class DaemonConfig:
    """The daemon's settings, each declared once: its field (type and default) and its setting."""

    listen: list[str] = field(
        default_factory=list,
        metadata=_setting(
            "daemon",
            "listen",
            "--listen",
            'a list of addresses like ["unix:/run/bitshare/bitshared.sock"]',
            "unix:PATH or HOST:PORT; repeatable.",
            _listen,
            short="-l",
        ),
    )
    state_dir: str = field(
        default="",
        metadata=_setting("daemon", "state_dir", "--state-dir", "a directory path", "Where the SQLite state lives."),
    )
    runtime_dir: str = field(
        default="",
        metadata=_setting(
            "daemon",
            "runtime_dir",
            "--runtime-dir",
            "a directory path",
            "MPS pipes and the simulated-GPU registry [default: the first socket's directory].",
        ),
    )
    log_level: str = field(
        default="info", metadata=_choice("daemon", "log_level", "--log-level", LOG_LEVELS, f"{one_of(LOG_LEVELS)}.")
    )
    metrics_listen: str = field(
        default="",
        metadata=_setting(
            "daemon",
            "metrics_listen",
            "--metrics-listen",
            'a TCP address like "127.0.0.1:9464"',
            "Serve Prometheus metrics at HOST:PORT/metrics.",
            metrics_address,
        ),
    )
    bulk_port: int = field(
        default=-1,
        metadata=_setting(
            "daemon",
            "bulk_port",
            "--bulk-port",
            "a TCP port (1-65535), -1 or 0",
            "Remote sessions' bulk data from other hosts, on each TCP listener's host "
            "[default -1: that listener's port + 1; 0: off, bulk data goes on the gRPC stream].",
            _must(lambda v: -1 <= v <= 65535),
        ),
    )
    history_days: float = field(
        default=30.0,
        metadata=_setting(
            "daemon", "history_days", "--history-days", "> 0 days", "Days ended leases and events are kept.", _POSITIVE
        ),
    )
    backend: str = field(
        default="auto", metadata=_choice("gpus", "backend", "--backend", BACKENDS, f"{one_of(BACKENDS)}.")
    )
    simulate: str = field(
        default="",
        metadata=_setting(
            "gpus",
            "simulate",
            "--simulate",
            'a GPU list like "4x16GiB"',
            "Simulated CPU-backed GPUs, e.g. 4x16GiB (the simulated backend).",
            _simulate,
        ),
    )
    reserve_mib: int = field(
        default=512,
        metadata=_setting(
            "gpus",
            "reserve",
            "--reserve",
            'a size like "512MiB"',
            "Memory kept back per GPU for contexts, e.g. 512MiB.",
            parse_reserve,
            kind=(str, int),
        ),
    )
    lease_ttl_s: float = field(
        default=30.0,
        metadata=_setting(
            "leases",
            "ttl_s",
            "--lease-ttl",
            "> 0 seconds",
            "Seconds of holder silence before a lease expires.",
            _POSITIVE,
        ),
    )
    max_ttl_s: float = field(
        default=7 * 24 * 3600.0,
        metadata=_setting(
            "leases",
            "max_ttl_s",
            "--max-ttl",
            "> 0 seconds",
            "The longest lease TTL a holder may ask, in seconds.",
            _POSITIVE,
        ),
    )
    aging_s: float = field(
        default=60.0,
        metadata=_setting(
            "queue",
            "aging_s",
            "--aging",
            ">= 0 seconds (0 turns aging off)",
            "Seconds of waiting that raise a queued request's priority by one (0: off).",
            _NON_NEGATIVE,
        ),
    )
    starvation_s: float = field(
        default=120.0,
        metadata=_setting(
            "queue",
            "starvation_s",
            "--starvation",
            "> 0 seconds",
            "Seconds the head of the queue waits before backfill stops passing it.",
            _POSITIVE,
        ),
    )
    max_client_priority: int = field(
        default=0,
        metadata=_setting(
            "queue",
            "max_client_priority",
            "--max-client-priority",
            f"a priority between -{MAX_PRIORITY} and {MAX_PRIORITY}",
            "The highest priority a client may ask; above it is for admins.",
            _must(lambda v: abs(v) <= MAX_PRIORITY),
        ),
    )
    idle_timeout_s: float = field(
        default=0.0,
        metadata=_setting(
            "leases",
            "idle_timeout_s",
            "--idle-timeout",
            ">= 0 seconds (0 turns idle reclaim off)",
            "Seconds without GPU activity before a lease is reclaimed (0: off).",
            _NON_NEGATIVE,
        ),
    )
    admin_group: str = field(
        default="bitshare",
        metadata=_setting(
            "security", "admin_group", "--admin-group", "a Unix group name", "Members of this Unix group are admins."
        ),
    )
    tokens_file: str = field(
        default="",
        metadata=_setting("security", "tokens_file", "--tokens-file", "a file path", "Bearer tokens for TCP callers."),
    )
    tls_cert: str = field(
        default="",
        metadata=_setting("security", "tls_cert", "--tls-cert", "a PEM file path", "TLS certificate for TCP."),
    )
    tls_key: str = field(
        default="", metadata=_setting("security", "tls_key", "--tls-key", "a PEM file path", "TLS private key for TCP.")
    )
    allow_insecure_tcp: bool = field(
        default=False,
        metadata=_setting(
            "security",
            "allow_insecure_tcp",
            "--allow-insecure-tcp",
            "true or false",
            "Allow plaintext TCP off loopback.",
        ),
    )
    mps: str = field(
        default="auto",
        metadata=_choice("enforcement", "mps", "--mps", MPS_MODES, f"Run NVIDIA MPS per GPU: {one_of(MPS_MODES)}."),
    )
    watchdog: str = field(
        default="enforce",
        metadata=_choice(
            "enforcement",
            "watchdog",
            "--watchdog",
            WATCHDOG_MODES,
            "Leases over their partition: enforce (warn, then end), warn, or off.",
        ),
    )
    grace_s: float = field(
        default=10.0,
        metadata=_setting(
            "enforcement",
            "grace_s",
            "--grace",
            ">= 0 seconds",
            "Seconds an over-limit or ended lease's processes have before they are ended.",
            _NON_NEGATIVE,
        ),
    )
    sample_interval_s: float = field(
        default=1.0,
        metadata=_setting(
            "enforcement",
            "sample_interval_s",
            "--sample-interval",
            ">= 0.05 seconds",
            "Seconds between measurements of GPU use.",
            _must(lambda v: v >= 0.05),
        ),
    )
    context_mib: int = field(
        default=1024,
        metadata=_setting(
            "enforcement",
            "context_allowance",
            "--context-allowance",
            'a size like "1GiB"',
            "Per process, on real GPUs: memory outside the partition (the CUDA context), e.g. 1GiB.",
            parse_reserve,
            kind=(str, int),
        ),
    )

    def runtime_path(self) -> Path:
        """``runtime_dir``, else the directory of the first Unix socket, else ``<state_dir>/run``."""
        if self.runtime_dir:
            return Path(self.runtime_dir)
        sockets = [parse_address(a) for a in self.listen if a.startswith("unix:")]
        return Path(sockets[0].path).parent if sockets else Path(self.state_dir) / "run"


_FIELD_KINDS: dict[str, type] = {"list[str]": list, "str": str, "float": float, "int": int, "bool": bool}


def _declared(item: dataclasses.Field) -> Setting:
    setting: Setting = item.metadata["setting"]
    default = item.default_factory() if item.default is dataclasses.MISSING else item.default  # type: ignore[misc]
    kind = setting.kind or _FIELD_KINDS[str(item.type)]
    return dataclasses.replace(setting, field=item.name, default=default, kind=kind)


DAEMON_SETTINGS: tuple[Setting, ...] = tuple(_declared(item) for item in dataclasses.fields(DaemonConfig))
_DAEMON_KEYS = {(setting.section, setting.key): setting for setting in DAEMON_SETTINGS}
_SECTIONS = tuple(dict.fromkeys(setting.section for setting in DAEMON_SETTINGS))


@dataclass
class ClientConfig:
    servers: list[str] = field(default_factory=list)  # the pool, in order of preference
    token: str = ""
    tls_ca: str = ""
    allow_insecure_tcp: bool = False  # plaintext (and the token) to TCP daemons off loopback


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


def load_daemon_config(path: Path | None) -> DaemonConfig:
    """Read the daemon's TOML file (None: built-in defaults) and check every key."""
    config = DaemonConfig()
    if path is None:
        return finish_daemon_config(config)
    data = _read_toml(path)
    updates: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section!r} must be a [section]; sections are {', '.join(_SECTIONS)}")
        for key, value in table.items():
            setting = _DAEMON_KEYS.get((section, key))
            if setting is None:
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]")
            try:
                updates[setting.field] = setting.check(value, f"{path}: [{section}] {key}")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
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
            checked = _typed(value, kind, ConfigError(f"{path}: {key}: expected {hint}, got {value!r}"))
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
