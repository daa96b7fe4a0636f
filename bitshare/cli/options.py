"""Request flags shared by ``run`` and ``request-gpus``, checked before anything is sent."""

from __future__ import annotations

import math
import shlex

from ..client import LeaseRequest
from ..errors import UsageError
from ..units import parse_mib


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise UsageError(f"-p must be a fraction of a GPU in (0, 1], got {text!r}") from None
    if not (0 < value <= 1) or not math.isfinite(value):
        raise UsageError(f"-p must be a fraction of a GPU in (0, 1], got {text}")
    return value


def _memory(text: str) -> int:
    try:
        return parse_mib(text)
    except ValueError:
        raise UsageError(f"-m must be a positive memory size (MiB, or like 4GiB), got {text!r}") from None


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
            found["min_memory_mib"] = _memory(value)
        elif key in ("index", "gpu"):
            try:
                found["indices"] = tuple(sorted({int(v) for v in value.split(",")}))
            except ValueError:
                raise UsageError(f"--filter index= takes GPU indices like 0,2; got {value!r}") from None
            if any(i < 0 for i in found["indices"]):
                raise UsageError(f"--filter index= takes GPU indices >= 0; got {value!r}")
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
    if fraction is not None and memory is not None:
        raise UsageError("give -p (a fraction of a GPU) or -m (a memory size), not both")
    if compute is not None and not 1 <= compute <= 100:
        raise UsageError(f"--compute must be a percentage in 1..100, got {compute}")
    if timeout is not None and (timeout <= 0 or not math.isfinite(timeout)):
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    size = {"fraction": _fraction(fraction)} if fraction is not None else {}
    if memory is not None:
        size = {"memory_mib": _memory(memory)}
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
