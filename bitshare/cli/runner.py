"""Running the ``bitshare`` app: one-line errors on stderr and exit codes scripts can trust."""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors

from ..errors import EXIT_USAGE, BitshareError
from .base import app
from .output import note


def run(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors on stderr and exit codes scripts can trust."""
    try:
        code = app(args=argv, prog_name="bitshare", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # a bare group: its help, as a usage error
        exc.show()
        code = EXIT_USAGE
    except click_errors.UsageError as exc:
        note(f"error: {usage_message(exc)}")
        code = EXIT_USAGE
    except click_errors.ClickException as exc:
        note(f"error: {exc.format_message()}")
        code = exc.exit_code
    except typer.Abort:  # end of input at a prompt
        note("aborted")
        code = 1
    except BitshareError as exc:
        note(f"error: {exc}")  # its text may be a daemon's: note() makes it printable
        code = exc.exit_code
    except KeyboardInterrupt:
        note("interrupted")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


def usage_message(exc: click_errors.UsageError) -> str:
    """Click's usage error in one line, with where to read more (click itself prints four)."""
    message = " ".join(exc.format_message().split())
    if exc.ctx is None:
        return message
    return f"{message} (see {exc.ctx.command_path} --help)"
