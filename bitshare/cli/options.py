"""Request flags shared by ``run`` and ``request-gpus``, and the range checks of every number the
CLI sends: each is checked here, before anything is sent, so that the error names the flag
(LeaseRequest.to_pb refuses an out-of-range number too, but names its field)."""

from __future__ import annotations

import math
import shlex

from .. import units
from ..client.connection import LeaseRequest
from ..errors import UsageError
from ..units import MAX_PRIORITY, parse_mib

UINT32_MAX = 2**32 - 1
MAX_WAIT_S = 3600.0  # --kill-grace and smi --watch: longer is a mistake, not a wish


def bounded(flag: str, value: int, low: int, high: int, unit: str = "") -> int:
    """``value`` when it is in [low, high]; else a usage error that names the flag and the range."""
    if not low <= value <= high:
        raise UsageError(f"{flag} must be between {low} and {high}{unit}, got {value}")
    return value


def check_priority(value: int, flag: str = "--priority") -> int:
    return bounded(flag, value, -MAX_PRIORITY, MAX_PRIORITY)


def gpu_index(value: int) -> int:
    return bounded("GPU index", value, 0, UINT32_MAX)


def seconds(flag: str, value: float, high: float = MAX_WAIT_S) -> float:
    """A number of seconds in [0, high] (NaN fails this too)."""
    if not 0 <= value <= high:
        raise UsageError(f"{flag} must be between 0 and {high:g} seconds, got {value:g}")
    return value


def positive_seconds(flag: str, value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{flag} must be a positive number of seconds, got {value:g}")
    return value


def parse_fraction(text: str, flag: str = "-p") -> float:
    try:
        return units.parse_fraction(text)
    except units.NotAFraction as exc:
        raise UsageError(f"{flag} must be a fraction of a GPU in (0, 1], got {exc.written}") from None


def parse_memory(text: str, flag: str = "-m") -> int:
    try:
        return parse_mib(text)
    except ValueError:
        raise UsageError(
            f"{flag} must be a positive memory size up to 1 EiB (MiB, or like 4GiB), got {text!r}"
        ) from None


def _filters(items: list[str]) -> dict:
    found: dict = {"name": "", "min_memory_mib": 0, "indices": ()}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not value:
            raise UsageError(f"--filter takes KEY=VALUE (name, min_memory, index), got {item!r}")
        if key == "name":
            found["name"] = value
        elif key == "min_memory":
            found["min_memory_mib"] = parse_memory(value, "--filter min_memory=")
        elif key in ("index", "gpu"):
            try:
                found["indices"] = tuple(sorted({int(v) for v in value.split(",")}))
            except ValueError:
                raise UsageError(f"--filter index= takes GPU indices like 0,2; got {value!r}") from None
            if any(not 0 <= i <= UINT32_MAX for i in found["indices"]):
                raise UsageError(f"--filter index= takes GPU indices between 0 and {UINT32_MAX}; got {value!r}")
        else:
            raise UsageError(f"unknown --filter key {key!r} (use name, min_memory or index)")
    return found


def build_request(
    *,
    gpus: int,
    fraction: str | None,
    memory: str | None,
    compute: int | None,
    filters: list[str],
    priority: int,
    wait: bool,
    timeout: float | None,
    ttl: float = 0.0,
    command: list[str] | None = None,
) -> LeaseRequest:
    if gpus < 1:
        raise UsageError(f"-n must be at least 1 GPU, got {gpus}")
    bounded("-n", gpus, 1, UINT32_MAX, " GPUs")
    check_priority(priority)
    if fraction is not None and memory is not None:
        raise UsageError("give -p (a fraction of a GPU) or -m (a memory size), not both")
    if compute is not None and not 1 <= compute <= 100:
        raise UsageError(f"--compute must be a percentage in 1..100, got {compute}")
    if timeout is not None:
        positive_seconds("--timeout", timeout)
    size = {"fraction": parse_fraction(fraction)} if fraction is not None else {}
    if memory is not None:
        size = {"memory_mib": parse_memory(memory)}
    if not size:
        size = {"fraction": 1.0}  # a whole GPU, as Bitfusion does without -p
    return LeaseRequest(
        gpu_count=gpus,
        compute_pct=compute or 0,
        priority=priority,
        wait=wait,
        wait_timeout_s=timeout or 0.0,
        ttl_s=ttl,
        command=shlex.join(command or []),
        **size,
        **_filters(filters),
    )
