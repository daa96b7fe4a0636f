"""Memory sizes as people write them ("16GiB", "512MiB") and simulated GPU lists ("4x16GiB")."""

from __future__ import annotations

import re

_UNITS_MIB = {
    "": 1,
    "m": 1,
    "mb": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gib": 1024,
    "t": 1024 * 1024,
    "tb": 1024 * 1024,
    "tib": 1024 * 1024,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIMULATE = re.compile(r"^\s*(?:(\d+)\s*[xX]\s*)?(.+)$")


def parse_mib(text: str) -> int:
    """Parse a memory size into MiB. A bare number is MiB; G/GB/GiB are binary gigabytes."""
    match = _SIZE.match(str(text))
    if not match or match.group(2).lower() not in _UNITS_MIB:
        raise ValueError(f"not a memory size: {text!r} (write it like 512MiB or 16GiB)")
    mib = float(match.group(1)) * _UNITS_MIB[match.group(2).lower()]
    if mib < 1:
        raise ValueError(f"memory size must be at least 1 MiB: {text!r}")
    return int(mib)


def parse_reserve(text: str | int) -> int:
    """Parse the memory kept back per GPU: a size like parse_mib's, or 0 for none."""
    return 0 if str(text).strip() in ("0", "0MiB", "0GiB") else parse_mib(str(text))


def parse_simulate(text: str) -> list[int]:
    """Parse a simulated GPU list such as "4x16GiB" or "16GiB,8GiB" into MiB per GPU."""
    sizes: list[int] = []
    for part in str(text).split(","):
        match = _SIMULATE.match(part)
        if not match or not part.strip():
            raise ValueError(f"not a GPU list: {text!r} (write it like 4x16GiB)")
        count = int(match.group(1) or 1)
        if not 1 <= count <= 64:
            raise ValueError(f"between 1 and 64 simulated GPUs per entry, got {count} in {text!r}")
        sizes.extend([parse_mib(match.group(2))] * count)
    return sizes


def format_mib(mib: float) -> str:
    """Format MiB for people: 3968 MiB, 15.5 GiB."""
    if mib >= 1024:
        return f"{mib / 1024:.1f} GiB".replace(".0 GiB", " GiB")
    return f"{int(mib)} MiB"
