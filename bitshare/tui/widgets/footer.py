"""The footer of keys, rebuilt only when the keys it shows change.

Textual's Footer rebuilds all its key widgets whenever the bindings in force change, which
includes every focus change; the console moves focus on every view switch, and that rebuild
(and the layout it forces) was a large part of a switch's cost.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeysFooter(Footer):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._shown_keys: tuple[tuple[str, str, bool], ...] | None = None

    def bindings_changed(self, screen: Screen) -> None:
        shown = tuple(
            (binding.key, binding.description, enabled)
            for (_, binding, enabled, _) in screen.active_bindings.values()
            if binding.show
        )
        if shown != self._shown_keys or not self._bindings_ready:
            self._shown_keys = shown
            super().bindings_changed(screen)
