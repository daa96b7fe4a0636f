"""A DataTable kept up to date in place: rows by key, cells updated, the cursor kept on its row."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from ..format import matches


class LiveTable(DataTable):
    """``sync`` takes every row by key; filtering (``query``) and sorting (``sort_by``) are kept."""

    def __init__(self, columns: Sequence[str], **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._columns = list(columns)
        self.query_text = ""
        self.sort_column: int | None = None  # None: in the order the daemon lists them (oldest first)
        self._rows: dict[str, tuple[str, ...]] = {}
        self._shown: dict[str, tuple[str, ...]] = {}  # the cells as the table holds them
        self._pending = False

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column, key=column)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor (actions aim at it, never at a row position)."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except RowDoesNotExist:
            return None

    @property
    def keys(self) -> set[str]:
        """Every row's key as last synced (shown or not yet)."""
        return set(self._rows)

    def sync(self, rows: dict[str, tuple[str, ...]], show: bool = True) -> None:
        """Take the rows; ``show`` False keeps them until the table is next shown (a hidden
        table is not redrawn on every update)."""
        self._rows = rows
        self._pending = not show
        if show:
            self._apply(resort=False)

    def set_query(self, text: str) -> None:
        self.query_text = text
        self._apply()

    def next_sort(self) -> str:
        self.sort_column = 0 if self.sort_column is None else (self.sort_column + 1) % len(self._columns)
        self._apply()
        return self._columns[self.sort_column]

    def _apply(self, resort: bool = True) -> None:
        keep = self.selected_key
        shown = {k: v for k, v in self._rows.items() if matches(" ".join(v), self.query_text)}
        existing = {key.value for key in self.rows}
        reorder = resort or bool(existing ^ shown.keys())
        for key in existing - shown.keys():
            self.remove_row(key)
            self._shown.pop(key, None)
        for key, cells in shown.items():
            before = self._shown.get(key)
            if before is None:
                self.add_row(*cells, key=key)
            elif before != cells:
                for column, old, new in zip(self._columns, before, cells, strict=True):
                    if old != new:
                        self.update_cell(key, column, new)
                sorted_by = self.sort_column
                reorder = reorder or (sorted_by is not None and before[sorted_by] != cells[sorted_by])
            self._shown[key] = cells
        if shown and reorder and self.sort_column is not None:  # sorting redraws the whole table
            self.sort(self._columns[self.sort_column], key=_sort_key)
        if keep is not None and keep in shown:
            self.move_cursor(row=self.get_row_index(keep), animate=False)


def _sort_key(value: str) -> tuple[int, float, str]:
    """Numbers (and sizes like "4 GiB", ages like "5m") sort by value, text alphabetically."""
    head = value.split(" ", maxsplit=1)[0].rstrip("smh%")
    try:
        return (0, float(head), value)
    except ValueError:
        return (1, 0.0, value)
