"""The daemon's settings are declared once: every setting has a flag, the flag and the TOML key give
the same value, and a bad value gets the same one-line error from either."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bitshare.config import DAEMON_SETTINGS, ConfigError, DaemonConfig, Setting, load_daemon_config
from bitshare.daemon.main import build_parser, flag_settings

# A good value for each setting, other than its default, as its TOML key would hold it.
EXAMPLES: dict[str, Any] = {
    "listen": ["unix:/tmp/bitshare-example.sock", "127.0.0.1:7443"],
    "state_dir": "/tmp/bitshare-state",
    "runtime_dir": "/tmp/bitshare-run",
    "log_level": "debug",
    "metrics_listen": "127.0.0.1:9464",
    "bulk_port": 7444,
    "history_days": 7.5,
    "backend": "simulated",
    "simulate": "2x8GiB",
    "reserve_mib": "1GiB",
    "lease_ttl_s": 12.5,
    "max_ttl_s": 3600.0,
    "aging_s": 0.0,
    "starvation_s": 30.0,
    "max_client_priority": 10,
    "idle_timeout_s": 600.0,
    "admin_group": "gpu-admins",
    "tokens_file": "/etc/bitshare/tokens.toml",
    "tls_cert": "/etc/bitshare/cert.pem",
    "tls_key": "/etc/bitshare/key.pem",
    "allow_insecure_tcp": True,
    "mps": "off",
    "watchdog": "warn",
    "grace_s": 2.0,
    "sample_interval_s": 0.5,
    "context_mib": "256MiB",
}


def toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (str, list)) else repr(value)


def flags_for(setting: Setting, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [setting.flag] if value else []
    items = value if isinstance(value, list) else [value]
    return [part for item in items for part in (setting.flag, str(item))]


def from_toml(tmp_path: Path, setting: Setting, value: Any) -> Any:
    path = tmp_path / "bitshare.toml"
    path.write_text(f"[{setting.section}]\n{setting.key} = {toml_literal(value)}\n")
    return getattr(load_daemon_config(path), setting.field)


def from_flags(*args: str) -> dict[str, Any]:
    return flag_settings(build_parser().parse_args(list(args)))


def test_every_field_is_a_declared_setting_with_an_example() -> None:
    assert [setting.field for setting in DAEMON_SETTINGS] == [f for f in DaemonConfig.__dataclass_fields__]
    assert set(EXAMPLES) == {setting.field for setting in DAEMON_SETTINGS}
    assert len({setting.flag for setting in DAEMON_SETTINGS}) == len(DAEMON_SETTINGS)


@pytest.mark.parametrize("setting", DAEMON_SETTINGS, ids=lambda s: s.field)
def test_each_settings_flag_gives_what_its_toml_key_gives(tmp_path: Path, setting: Setting) -> None:
    assert setting.flag in build_parser()._option_string_actions  # every setting has its flag
    example = EXAMPLES[setting.field]
    in_file = from_toml(tmp_path, setting, example)
    assert in_file != setting.default  # the example is not the default: the comparison means something
    assert from_flags(*flags_for(setting, example)) == {setting.field: in_file}


def test_a_flag_not_given_leaves_the_file_alone() -> None:
    assert from_flags() == {}


@pytest.mark.parametrize("setting", [s for s in DAEMON_SETTINGS if s.kind is bool], ids=lambda s: s.field)
def test_a_boolean_flag_sets_false_over_a_true_in_the_file(tmp_path: Path, setting: Setting) -> None:
    assert from_toml(tmp_path, setting, True) is True
    negated = "--no-" + setting.flag.removeprefix("--")
    assert from_flags(negated) == {setting.field: False}
    path = tmp_path / "bitshare.toml"
    merged = dataclasses.replace(load_daemon_config(path), **from_flags(negated))
    assert getattr(merged, setting.field) is False


# (field, a bad TOML value, the same value as a flag's text)
BAD_VALUES = [
    ("lease_ttl_s", -3.0, "-3"),
    ("history_days", 0.0, "0"),
    ("bulk_port", 70000, "70000"),
    ("sample_interval_s", 0.01, "0.01"),
    ("max_client_priority", 2000000, "2000000"),
    ("mps", "maybe", "maybe"),
    ("watchdog", "kill", "kill"),
    ("backend", "cuda", "cuda"),
    ("log_level", "loud", "loud"),
    ("simulate", "4y", "4y"),
    ("reserve_mib", "lots", "lots"),
    ("listen", ["nowhere"], "nowhere"),
    ("metrics_listen", "unix:/tmp/m.sock", "unix:/tmp/m.sock"),
]
SETTINGS = {setting.field: setting for setting in DAEMON_SETTINGS}


@pytest.mark.parametrize(("field", "in_file", "as_flag"), BAD_VALUES, ids=[case[0] for case in BAD_VALUES])
def test_a_bad_value_gets_the_same_error_from_the_file_and_the_flag(
    tmp_path: Path, field: str, in_file: Any, as_flag: str
) -> None:
    setting = SETTINGS[field]
    with pytest.raises(ConfigError) as file_error:
        from_toml(tmp_path, setting, in_file)
    with pytest.raises(ValueError) as flag_error:
        from_flags(setting.flag, as_flag)
    file_where = f"{tmp_path / 'bitshare.toml'}: [{setting.section}] {setting.key}"
    assert str(file_error.value).startswith(file_where)
    assert str(flag_error.value).startswith(setting.flag)
    assert str(file_error.value).removeprefix(file_where) == str(flag_error.value).removeprefix(setting.flag)


def test_a_flag_that_is_not_a_number_names_itself() -> None:
    with pytest.raises(ValueError, match=r"^--lease-ttl must be > 0 seconds, got 'soon'$"):
        from_flags("--lease-ttl", "soon")
    with pytest.raises(ValueError, match=r"^--max-client-priority must be a priority between"):
        from_flags("--max-client-priority", "high")
