"""Memory sizes as people write them ("16GiB", "512MiB"), shares of a GPU ("0.25", "25%"),
simulated GPU lists ("4x16GiB"), and the bounds the numbers of a request keep to (checked alike
by the CLI, the console and the daemon)."""

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
MAX_MIB = 2**40  # 1 EiB: far above any GPU, and far inside the protocol's uint64
MAX_PRIORITY = 1_000_000  # a request's priority is within +-MAX_PRIORITY
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
    if mib > MAX_MIB:
        raise ValueError(f"memory size must be at most 1 EiB: {text!r}")
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


class NotAFraction(ValueError):
    """Text that is not a fraction of a GPU in (0, 1]; ``written`` quotes it back (a number as
    written, anything else in quotes)."""

    def __init__(self, written: str) -> None:
        super().__init__(f"a fraction of a GPU is in (0, 1], got {written}")
        self.written = written


def _written_number(text: str) -> float | None:
    """The number ``text`` writes ("0.25"; "25%" is 0.25), or None when it writes none."""
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        return None
    return value / 100 if percent else value


def parse_fraction(text: str) -> float:
    """A share of a GPU written as a fraction ("0.25"; "1" is the whole GPU) or a percentage
    ("25%"); raises :class:`NotAFraction` for anything outside (0, 1], NaN included."""
    text = str(text).strip()
    value = _written_number(text)
    if value is None:
        raise NotAFraction(repr(text))
    if not 0 < value <= 1:  # NaN and infinity fail this too
        raise NotAFraction(text)
    return value


def parse_fraction_or_size(text: str) -> tuple[float | None, int | None]:
    """Parse a share of a GPU into (fraction, None) or (None, MiB). A bare number is a fraction, as
    ``-p`` takes it (:func:`parse_fraction`); a memory size carries its unit ("8GiB", "512MiB").
    A bare number above 1 is refused: read as MiB, a "4" meant as 4 GiB would quietly become 4 MiB."""
    text = str(text).strip()
    if not text:
        raise ValueError("give a fraction like 0.25 (1 is the whole GPU), or a memory size like 8GiB")
    value = _written_number(text)
    if value is None:
        match = _SIZE.match(text)
        if not match or match.group(2).lower() not in _UNITS_MIB:
            raise ValueError(f"not a fraction or a memory size: {text!r} (write it like 0.25 or 8GiB)")
        return None, parse_mib(text)
    if not text.endswith("%") and 1 < value < float("inf"):
        raise ValueError(
            f"{text} is more than a whole GPU: a bare number is a fraction (1 is the whole GPU); "
            f"for memory add a unit, like {text}GiB"
        )
    return parse_fraction(text), None
