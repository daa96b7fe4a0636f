"""``bitshared``: the GPU-server daemon's command line, its flags made from the settings' declaration."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__, log, paths
from ..config import DAEMON_SETTINGS, Setting, finish_daemon_config, load_daemon_config
from ..errors import EXIT_FAILURE, EXIT_USAGE, BitshareError
from .server import run_daemon


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line and exit 2, as every bitshare error is (argparse prints its usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _flag_help(setting: Setting) -> str:
    default = setting.default
    if default is None or default is False or default in ("", []):
        return setting.help
    if setting.kind == (str, int):  # a size, held in MiB
        return f"{setting.help} [default: {default}MiB]"
    return (
        f"{setting.help} [default: {default:g}]"
        if isinstance(default, float)
        else f"{setting.help} [default: {default}]"
    )


def _metavar(setting: Setting) -> str:
    if setting.choices:
        return "{" + ",".join(setting.choices) + "}"
    if setting.kind is float:
        return "DAYS" if "days" in setting.hint else "SECONDS"
    if setting.kind is int:
        return "N"
    if setting.kind == (str, int):
        return "SIZE"
    words = {"path": "PATH", "address": "ADDRESS", "name": "NAME", "GPU": "GPUS"}
    return next((metavar for word, metavar in words.items() if word in setting.hint), "VALUE")


def build_parser() -> argparse.ArgumentParser:
    """``bitshared``'s flags: ``--config``, ``--version``, and one per declared setting."""
    parser = _OneLineParser(
        prog="bitshared", description="Run the bitshare GPU-server daemon in the foreground.", allow_abbrev=False
    )
    parser.add_argument(
        "--config", "-c", type=Path, help="Config file [default: /etc/bitshare/bitshare.toml if present]."
    )
    parser.add_argument("--version", action="version", version=f"bitshared {__version__}", help="Print the version.")
    for setting in DAEMON_SETTINGS:
        names = [setting.flag, *([setting.short] if setting.short else [])]
        # default None: a flag not given leaves the config file's value alone
        common: dict[str, Any] = {"dest": setting.field, "default": None, "help": _flag_help(setting)}
        if setting.kind is bool:
            # --x and --no-x: a flag can set either value over the config file's
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        else:
            # choices are checked by the declaration (not argparse), so the flag's error is the config key's
            action = "append" if setting.kind is list else "store"
            parser.add_argument(*names, action=action, metavar=_metavar(setting), **common)
    return parser


def flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, each checked by its declaration; ValueError names the flag."""
    given: dict[str, Any] = {}
    for setting in DAEMON_SETTINGS:
        value = getattr(args, setting.field)
        if value is None:
            continue
        if isinstance(value, str):
            value = setting.from_text(value)
        given[setting.field] = setting.check(value, setting.flag)
    return given


def main(argv: list[str] | None = None) -> int:
    """Run the bitshare GPU-server daemon in the foreground; the exit code."""
    args = build_parser().parse_args(argv)
    try:
        overrides = flag_settings(args)
    except ValueError as exc:
        print(f"bitshared: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = args.config
    try:
        if config is None and paths.SYSTEM_CONFIG.exists():
            config = paths.SYSTEM_CONFIG
        settings = finish_daemon_config(dataclasses.replace(load_daemon_config(config), **overrides))
        log.setup(settings.log_level)
        return run_daemon(settings)
    except (BitshareError, RuntimeError) as exc:
        print(f"bitshared: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_FAILURE)
    except OSError as exc:  # the environment refused something no guard above names: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"bitshared: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE


def run() -> None:
    sys.exit(main())
