"""Messages from the console's worker threads to its widgets."""

from __future__ import annotations

from textual.message import Message

from ..protocol.v1 import bitshare_pb2 as pb


class SnapshotReceived(Message):
    """A daemon's telemetry snapshot arrived."""

    def __init__(self, server: str, snapshot: pb.TelemetrySnapshot) -> None:
        super().__init__()
        self.server = server
        self.snapshot = snapshot


class SourceLost(Message):
    """A daemon went away (its last data stays, shown as stale, until it is back)."""

    def __init__(self, server: str, error: str) -> None:
        super().__init__()
        self.server = server
        self.error = error
