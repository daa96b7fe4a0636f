"""Text from clients and daemons made safe to show on a terminal (pure: no UI).

A lease's command and client host, process names and error details come from whoever made them:
any client. Drawn as they are, an escape sequence among them would reach the admin's terminal and
act there (clear the screen, write anywhere on it, set the title, the clipboard). Every such
character is shown as U+FFFD instead, as are the controls that reorder text (bidi overrides)."""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_SPACES = re.compile("[\t\n\r]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MARK = "\ufffd"


def printable(text: str) -> str:
    """``text`` with tabs and line breaks as spaces, and every other control character as MARK."""
    return _CONTROLS.sub(MARK, _SPACES.sub(" ", text)) if _CONTROLS.search(text) else text


def make_printable(message: Message) -> Message:
    """Make every string in ``message`` (and the messages within it) printable, in place; returns it."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.label == FieldDescriptor.LABEL_REPEATED:
                value[:] = [printable(item) for item in value]
            else:
                setattr(message, field.name, printable(value))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                continue  # no maps in what the console shows (snapshots, leases, events)
            for item in value if field.label == FieldDescriptor.LABEL_REPEATED else (value,):
                make_printable(item)
    return message


def printable_lines(text: str) -> str:
    """``text`` with its line breaks kept and each line made :func:`printable`."""
    return "\n".join(printable(line) for line in text.split("\n"))
