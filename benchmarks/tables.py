"""Plain-text result tables for the benchmarks, and their JSON files (standard library only)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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


def machine() -> dict[str, Any]:
    """What the figures were measured on, for the results file."""
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def finished_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_results(path: Path, result: dict[str, Any]) -> None:
    """The benchmark's results as JSON at ``path`` (its directory made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {path}")
