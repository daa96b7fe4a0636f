"""``bitshare``: the client command line."""

from __future__ import annotations

from . import admin_cmds, bench_cmds, info_cmds, lease_cmds, slurm_cmds, token_cmds  # noqa: F401  (the commands register themselves)
from .base import app
from .runner import run

__all__ = ["app", "run"]
