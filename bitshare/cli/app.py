"""``bitshare``: the client command line."""

from __future__ import annotations

import sys

from ..errors import BitshareError
from . import admin_cmds, bench_cmds, info_cmds, lease_cmds, token_cmds  # noqa: F401  (the commands register themselves)
from .base import app

__all__ = ["app", "run"]


def run(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors on stderr and exit codes scripts can trust."""
    try:
        app(args=argv, prog_name="bitshare")
    except BitshareError as exc:
        sys.stderr.write(f"bitshare: error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("bitshare: interrupted\n")
        sys.exit(130)
