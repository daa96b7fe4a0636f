"""Where the CLI's human-readable text leaves for the terminal: all of it made printable first.

Much of what the CLI shows was chosen by someone else: a lease's command and host by any client,
and every string a daemon sends (names, versions, error details) by the daemon or whatever answers
at its address. Made printable here, none of it can act on the reader's terminal (JSON needs no
such pass: :func:`json.dumps` escapes every control and non-ASCII character)."""

from __future__ import annotations

import sys

import typer

from ..present.printable import printable, printable_lines


def say(text: str, err: bool = False) -> None:
    """Print ``text`` (lines of it) on stdout, or stderr with ``err``."""
    typer.echo(printable_lines(text), err=err)


def note(message: str) -> None:
    """One line on stderr, ``bitshare: message``: line breaks in ``message`` become spaces."""
    sys.stderr.write(f"bitshare: {printable(message)}\n")
