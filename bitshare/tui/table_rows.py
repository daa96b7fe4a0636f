"""What a live table shows: its rows by key, filtered, sorted, and the width of each column
(pure: no Textual, so it is tested on its own). Widths are terminal cells, not characters."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size

from ..present.ages import age_seconds
from ..units import parse_mib

_SIZE = re.compile(r"^\d+(?:\.\d+)? [KMGT]iB\b")  # as units.format_mib writes sizes
MAX_CELL = 40  # a longer cell is cut (with "…"), so one long command cannot widen the table


class TableRows:
    """Rows by key. ``order`` is the keys shown: those matching ``query``, in the order given
    (the daemon's, oldest first) or sorted by ``sort_column``."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.rows: dict[str, tuple[str, ...]] = {}
        self.query = ""
        self.sort_column: int | None = None
        self.order: list[str] = []
        self.widths = [cell_len(name) for name in self.columns]

    def set_rows(self, rows: dict[str, tuple[str, ...]]) -> None:
        for key, cells in rows.items():
            if len(cells) != len(self.columns):
                raise ValueError(f"row {key!r} has {len(cells)} cells for {len(self.columns)} columns")
        self.rows = {key: tuple(_cut(cell) for cell in cells) for key, cells in rows.items()}
        self._arrange()

    def set_query(self, text: str) -> None:
        self.query = text
        self._arrange()

    def next_sort(self) -> str:
        """Sort by the next column (the first, after the daemon's order); returns its name."""
        self.sort_column = 0 if self.sort_column is None else (self.sort_column + 1) % len(self.columns)
        self._arrange()
        return self.columns[self.sort_column]

    def line(self, key: str) -> str:
        """The row as one line of text: cells padded to their column's width, one space apart."""
        return _join(self.rows[key], self.widths)

    def header(self) -> str:
        return _join(self.columns, self.widths)

    def _arrange(self) -> None:
        shown = [key for key, cells in self.rows.items() if matches(" ".join(cells), self.query)]
        if self.sort_column is not None:
            column = self.sort_column
            shown.sort(key=lambda key: sort_key(self.rows[key][column]))
        self.order = shown
        self.widths = [
            max([cell_len(name), *(cell_len(cells[n]) for cells in self.rows.values())])
            for n, name in enumerate(self.columns)
        ]


def sort_key(value: str) -> tuple[int, float, str]:
    """Sizes ("512 MiB" before "4 GiB"), ages ("50s" before "2m") and numbers sort by value,
    text alphabetically after them."""
    if (seconds := age_seconds(value)) is not None:
        return (0, seconds, value)
    if _SIZE.match(value):
        return (0, float(parse_mib(value.split(" / ", maxsplit=1)[0])), value)
    try:
        return (0, float(value.rstrip("%")), value)
    except ValueError:
        return (1, 0.0, value)


def matches(text: str, query: str) -> bool:
    """Whether a row's text holds the filter's ``query``, in any case ("" holds everything)."""
    return not query or query.lower() in text.lower()


def _cut(cell: str) -> str:
    return cell if cell_len(cell) <= MAX_CELL else set_cell_size(cell, MAX_CELL - 1) + "…"


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    return " " + "  ".join(set_cell_size(cell, width) for cell, width in zip(cells, widths, strict=True)) + " "
