"""A table kept up to date in place: rows by key, the cursor on a row's key (never on a
position), and only the lines that changed redrawn.

Textual's DataTable re-renders every visible cell whenever any row is added, removed or
updated; with hundreds of leases changing twice a second that cost most of the console's
CPU. This table draws each line as one strip from its text (microseconds), asks Textual to
repaint only the lines whose text changed, and keeps a fixed header line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..table_rows import TableRows

HEADER_LINES = 1


class RowMessage(Message):
    """Something that happened to a row of a table: the table, and the row's key."""

    def __init__(self, table: LiveTable, key: str | None) -> None:
        super().__init__()
        self.table = table
        self.key = key

    @property
    def control(self) -> LiveTable:
        return self.table


class LiveTable(ScrollView, can_focus=True):
    """``sync`` takes every row by key; the filter (``set_query``) and sort (``next_sort``) are kept."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "live-table--odd-row",
    }
    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        & > .live-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .live-table--odd-row { background: $surface-lighten-1 50%; }
        & > .live-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .live-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Select", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "move_to_end(False)", "First", show=False),
        Binding("end", "move_to_end(True)", "Last", show=False),
    ]

    class RowHighlighted(RowMessage):
        """The cursor is on another row (``key`` None: the table is empty)."""

    class RowSelected(RowMessage):
        """Enter, or a click on the row under the cursor."""

    def __init__(self, columns: Sequence[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.model = TableRows(columns)
        self.cursor = 0  # index into model.order
        self._cursor_key: str | None = None  # the row the cursor is on: kept across updates

    # ----- what the app asks --------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor (actions aim at it, never at a row position)."""
        return self._cursor_key

    @property
    def keys(self) -> set[str]:
        """Every row's key as last synced (shown or not)."""
        return set(self.model.rows)

    @property
    def shown_keys(self) -> list[str]:
        """The keys on show, top to bottom (after the filter and sort)."""
        return list(self.model.order)

    def sync(self, rows: dict[str, tuple[str, ...]], show: bool = True) -> None:
        """Take the rows; ``show`` False only keeps them (a hidden table neither draws nor moves
        its cursor; the app syncs it again when it is shown)."""
        if not show:
            self.model.set_rows(rows)
            return
        before = self._on_screen()
        self.model.set_rows(rows)
        self._redraw(*before)

    def set_query(self, text: str) -> None:
        before = self._on_screen()
        self.model.set_query(text)
        self._redraw(*before)

    def next_sort(self) -> str:
        """Sort by the next column; returns its name."""
        before = self._on_screen()
        name = self.model.next_sort()
        self._redraw(*before)
        return name

    def move_to(self, key: str) -> None:
        """Put the cursor on the row ``key`` (if shown)."""
        if key in self.model.order:
            self._place_cursor(self.model.order.index(key))

    # ----- arranging and drawing ----------------------------------------------------------------

    def _on_screen(self) -> tuple[list[tuple[str, bool]], list[int]]:
        """What the table shows now (its visible lines, and column widths), to redraw only changes."""
        return self._visible_lines(), list(self.model.widths)

    def _redraw(self, before_lines: list[tuple[str, bool]], before_widths: list[int]) -> None:
        """After the model changed: keep the cursor on its row, and repaint the lines that changed."""
        order = self.model.order
        if self._cursor_key in order:
            self.cursor = order.index(self._cursor_key)
        else:  # its row is gone: the cursor stays at its place, on whichever row is there now
            self.cursor = min(self.cursor, max(0, len(order) - 1))
        width = cell_len(self.model.header())
        size = Size(width, len(order) + HEADER_LINES)
        if size != self.virtual_size:
            self.virtual_size = size
        self._follow_cursor()
        self._announce()
        if self.model.widths != before_widths:
            self.refresh()
        else:
            after_lines = self._visible_lines()
            for y, (old, new) in enumerate(zip(before_lines, after_lines, strict=False)):
                if old != new:
                    self.refresh(Region(0, y + HEADER_LINES, self.size.width, 1))
            if len(before_lines) != len(after_lines):
                self.refresh()

    def _visible_lines(self) -> list[tuple[str, bool]]:
        """What each visible row line shows now: its text, and whether the cursor is on it."""
        top = int(self.scroll_offset.y)
        keys = self.model.order[top : top + max(0, self.size.height - HEADER_LINES)]
        return [(self.model.line(key), key == self._cursor_key) for key in keys]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y < HEADER_LINES:
            text, style = self.model.header(), base + self.get_component_rich_style("live-table--header")
        else:
            row = int(scroll_y) + y - HEADER_LINES
            if row >= len(self.model.order):
                return Strip.blank(width, base)
            key = self.model.order[row]
            text = self.model.line(key)
            if row == self.cursor:
                style = base + self.get_component_rich_style("live-table--cursor")
            elif row % 2:
                style = base + self.get_component_rich_style("live-table--odd-row")
            else:
                style = base
        strip = Strip([Segment(text, style)], cell_len(text))
        return strip.crop(int(scroll_x), int(scroll_x) + width).extend_cell_length(width, style)

    def on_resize(self, event: events.Resize) -> None:
        self._follow_cursor()

    # ----- moving the cursor --------------------------------------------------------------------

    def _place_cursor(self, row: int) -> None:
        if not self.model.order:
            return
        old = self.cursor
        self.cursor = max(0, min(row, len(self.model.order) - 1))
        self._follow_cursor()
        self._announce()
        for line in (old, self.cursor):
            self.refresh(Region(0, line - int(self.scroll_offset.y) + HEADER_LINES, self.size.width, 1))

    def _follow_cursor(self) -> None:
        """Scroll so the cursor's row is on screen."""
        rows_on_screen = max(1, self.size.height - HEADER_LINES)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            top = self.cursor
        elif self.cursor >= top + rows_on_screen:
            top = self.cursor - rows_on_screen + 1
        if top != int(self.scroll_offset.y):
            self.scroll_to(y=top, animate=False, force=True, immediate=True)
            self.refresh()

    def _announce(self) -> None:
        key = self.model.order[self.cursor] if self.model.order else None
        if key != self._cursor_key:
            self._cursor_key = key
            self.post_message(self.RowHighlighted(self, key))

    def action_move(self, step: int) -> None:
        self._place_cursor(self.cursor + step)

    def action_page(self, direction: int) -> None:
        self._place_cursor(self.cursor + direction * max(1, self.size.height - HEADER_LINES - 1))

    def action_move_to_end(self, last: bool) -> None:
        self._place_cursor(len(self.model.order) - 1 if last else 0)

    def action_select(self) -> None:
        if self._cursor_key is not None:
            self.post_message(self.RowSelected(self, self._cursor_key))

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_offset.y) + event.y - HEADER_LINES
        if event.y < HEADER_LINES or not 0 <= row < len(self.model.order):
            return
        if row == self.cursor:
            self.action_select()
        else:
            self._place_cursor(row)
