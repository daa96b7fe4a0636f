"""Let other local users run this Python and reach the tree (a job of Slurm runs as its own user).

The suite's interpreter may live under a home directory only root can enter (pyenv in /root);
a job's processes, run as another user, must run it too. For the block's length, each
directory on the way that others cannot enter is given search permission only (o+x: enter,
not list), and its mode is put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path


def _closed_ancestors(path: Path) -> list[Path]:
    closed = []
    for directory in [*reversed(path.parents)]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            closed.append(directory)
    return closed


@contextlib.contextmanager
def reachable_by_others(*paths: Path) -> Iterator[None]:
    """Every directory above ``paths`` (and the interpreter) searchable by others, for the block."""
    targets = [Path(os.path.realpath(sys.executable)), Path(sys.prefix) / "bin", *paths]
    changed: dict[Path, int] = {}
    try:
        for target in targets:
            for directory in _closed_ancestors(target):
                if directory not in changed:
                    mode = stat.S_IMODE(os.stat(directory).st_mode)
                    changed[directory] = mode
                    os.chmod(directory, mode | stat.S_IXOTH)
        yield
    finally:
        for directory, mode in changed.items():
            os.chmod(directory, mode)
