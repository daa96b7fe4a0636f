"""Plain-text result tables for the benchmarks (standard library only)."""

from __future__ import annotations

from collections.abc import Iterable


def cell(value: object) -> str:
    """A figure as a table shows it: thousands separated, two decimals below 1,000, "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(headers: list[str], rows: Iterable[list[object]]) -> None:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(" | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=False)))
    print("-+-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=False)))
