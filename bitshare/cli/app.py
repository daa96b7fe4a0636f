"""``bitshare``: the client command line."""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors

from ..errors import EXIT_USAGE, BitshareError
from . import admin_cmds, bench_cmds, info_cmds, lease_cmds, token_cmds  # noqa: F401  (the commands register themselves)
from .base import app

__all__ = ["app", "run"]


def run(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors on stderr and exit codes scripts can trust."""
    try:
        code = app(args=argv, prog_name="bitshare", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # a bare group: its help, as a usage error
        exc.show()
        code = EXIT_USAGE
    except click_errors.UsageError as exc:
        sys.stderr.write(f"bitshare: error: {usage_message(exc)}\n")
        code = EXIT_USAGE
    except click_errors.ClickException as exc:
        sys.stderr.write(f"bitshare: error: {exc.format_message()}\n")
        code = exc.exit_code
    except typer.Abort:  # end of input at a prompt
        sys.stderr.write("bitshare: aborted\n")
        code = 1
    except BitshareError as exc:
        sys.stderr.write(f"bitshare: error: {exc}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("bitshare: interrupted\n")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


def usage_message(exc: click_errors.UsageError) -> str:
    """Click's usage error in one line, with where to read more (click itself prints four)."""
    message = " ".join(exc.format_message().split())
    if exc.ctx is None:
        return message
    return f"{message} (see {exc.ctx.command_path} --help)"
