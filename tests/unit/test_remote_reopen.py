"""A remote session reopening after bitshared went away: whatever the new stream does, the
connection made for each try is closed, and its stream ended, unless the session opened on it."""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from bitshare.remote.cupy import errors
from bitshare.remote.session import Session


class FakeStream:
    """A stream that ends, or fails with ``code``, before its first reply."""

    def __init__(self, code: grpc.StatusCode | None) -> None:
        self.code = code
        self.cancelled = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.code is None:
            raise StopIteration
        raise FakeRpcError(self.code)

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def done(self) -> bool:
        return self.cancelled


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "no such lease"


class FakeChannel:
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return lambda requests, metadata=None: self.stream


class FakeClient:
    def __init__(self, stream: FakeStream) -> None:
        self.channel = FakeChannel(stream)
        self.metadata = ()
        self.closed = False
        self.clones: list[FakeClient] = []

    def clone(self) -> FakeClient:
        self.clones.append(FakeClient(self.channel.stream))
        return self.clones[-1]

    def close(self) -> None:
        self.closed = True


def session_on(client: FakeClient) -> Session:
    session = Session.__new__(Session)  # (its opening needs a daemon; reopening does not)
    session.client = client  # type: ignore[assignment]
    session.lease_id = "abc123"
    session._ttl_s = 0.001  # one try
    session._outgoing, session._replies, session._data = queue.SimpleQueue(), FakeStream(None), None
    session.closed = session._released = False
    return session


@pytest.mark.parametrize(
    "code, said",
    [
        (None, "and on its return ended the session"),
        (grpc.StatusCode.NOT_FOUND, "and on its return refused to open the session again: no such lease"),
        (grpc.StatusCode.UNAVAILABLE, "and did not come back within the lease's TTL"),
    ],
    ids=["the stream ends at once", "the daemon refuses", "not back in time"],
)
def test_a_try_that_does_not_open_the_session_closes_its_connection_and_stream(
    code: grpc.StatusCode | None, said: str
) -> None:
    stream = FakeStream(code)
    client = FakeClient(stream)
    session = session_on(client)
    with pytest.raises(errors.LeaseLost, match=f"lease abc123 ended: bitshared went away,? {re.escape(said)}"):
        session._resume()
    assert session.closed
    [clone] = client.clones
    assert clone.closed, "the connection made for the try is left open"
    assert stream.cancelled, "the stream opened for the try is left running"
