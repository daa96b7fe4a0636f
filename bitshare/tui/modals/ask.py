"""Modal dialogs that ask for one value, checked before anything is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class AskModal(ModalScreen[Any]):
    """Ask ``question``; ``check`` turns the text into the value or raises ValueError (shown)."""

    AUTO_FOCUS = "#answer"

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]
    DEFAULT_CSS = """
    AskModal { align: center middle; }
    AskModal > Grid { width: 64; height: auto; border: thick $accent; padding: 1 2; background: $surface;
                      grid-size: 1; grid-gutter: 1; }
    AskModal #error { color: $error; height: auto; }
    AskModal Horizontal { height: auto; align: right middle; }
    """

    def __init__(self, question: str, check: Callable[[str], Any], placeholder: str = "", confirm: str = "OK") -> None:
        super().__init__()
        self.question = question
        self.check = check
        self.placeholder = placeholder
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(self.question)
            yield Input(placeholder=self.placeholder, id="answer")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm, variant="primary", id="ok")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit(self.query_one("#answer", Input).value)
        else:
            self.dismiss(None)

    def _submit(self, text: str) -> None:
        try:
            value = self.check(text.strip())
        except ValueError as exc:
            self.query_one("#error", Label).update(str(exc))
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
