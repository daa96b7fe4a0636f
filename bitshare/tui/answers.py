"""What the console's ask boxes accept: each answer checked before anything is sent, a ValueError
saying what is wrong (pure: no Textual)."""

from __future__ import annotations

from ..units import MAX_PRIORITY, format_mib, parse_fraction_or_size


def parse_size(text: str, capacity_mib: int) -> tuple[float | None, int | None]:
    """A resize's new size, read as the CLI reads sizes: (fraction, None) or (None, MiB);
    ValueError says what is wrong."""
    fraction, mib = parse_fraction_or_size(text)
    if mib is not None and capacity_mib and mib > capacity_mib:
        raise ValueError(f"{format_mib(mib)} is more than the GPU lends ({format_mib(capacity_mib)})")
    return fraction, mib


def check_reason(text: str) -> str:
    """A revoke's reason, as the holder is told it and the event log keeps it."""
    if len(text) > 200:
        raise ValueError("keep the reason under 200 characters")
    return text


def check_priority(text: str) -> int:
    """A queued request's new priority: a whole number within the bounds the daemon keeps."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"a priority is a whole number, got {text!r}") from None
    if abs(value) > MAX_PRIORITY:
        raise ValueError(f"a priority is within ±{MAX_PRIORITY:,}")
    return value
