"""How long ago something was, as the CLI and the console write it (5s, 12m, 3.1h), and back."""

from __future__ import annotations

import re
import time

from google.protobuf.timestamp_pb2 import Timestamp

UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smh])$")


def since(stamp: Timestamp, now: float | None = None) -> str:
    """How long ago a Timestamp was, as 5s / 12m / 3.1h ("-" when unset)."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    seconds = max(0.0, (now or time.time()) - stamp.ToNanoseconds() / 1e9)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def age_seconds(text: str) -> float | None:
    """The seconds an age written by :func:`since` stands for (to sort by); None for other text."""
    match = _AGE.match(text)
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)] if match else None
