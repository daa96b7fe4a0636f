"""Commands for leases under test: they report their lease and run until told to stop."""

from __future__ import annotations

import sys
from pathlib import Path

# Writes its environment's lease id to argv[1], then runs until argv[2] exists (at most 60 s).
HOLD = """
import os, sys, time, pathlib
pathlib.Path(sys.argv[1]).write_text(os.environ["BITSHARE_LEASE_ID"])
deadline = time.monotonic() + 60
while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def hold_command(marker: Path, stop: Path) -> list[str]:
    return [sys.executable, "-c", HOLD, str(marker), str(stop)]
