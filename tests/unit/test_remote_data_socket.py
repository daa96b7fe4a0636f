"""The data socket's secret goes only to a worker served by this user, root or bitshare's user:
a socket at that path served by anyone else is not given it, and transfers go on the stream."""

from __future__ import annotations

import os
import select
import socket
import tempfile
from pathlib import Path

import pytest

from bitshare.protocol.v1 import bitshare_pb2 as pb
from bitshare.remote.bulk import DataSocket

STRANGER = 23573  # a uid with no user: neither this one, root nor bitshare's
WAIT_S = 30.0


def serve_as_stranger(path: Path, told: int) -> None:
    """In a forked child: listen at ``path`` as STRANGER and tell ``told`` what the client sent."""
    try:
        os.setgid(STRANGER)
        os.setuid(STRANGER)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            listener.listen(1)
            os.write(told, b"ready\n")
            listener.settimeout(WAIT_S)
            conn, _ = listener.accept()
            conn.settimeout(WAIT_S)
            os.write(told, b"heard:" + conn.recv(64) + b"\n")
    finally:
        os._exit(0)


def read_line(fd: int) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        assert select.select([fd], [], [], WAIT_S)[0], "the stranger's socket did not answer"
        chunk = os.read(fd, 256)
        assert chunk, f"the stranger's socket ended: {line!r}"
        line += chunk
    return line


@pytest.mark.skipif(os.getuid() != 0, reason="serving a socket as another user needs root")
def test_a_data_socket_served_by_a_stranger_is_not_given_the_secret() -> None:
    with tempfile.TemporaryDirectory() as directory:  # (in /tmp: pytest's own is root's alone)
        home = Path(directory)
        os.chown(home, STRANGER, STRANGER)
        path = home / "worker.sock"
        theirs_read, told = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(theirs_read)
            serve_as_stranger(path, told)
        os.close(told)
        try:
            assert read_line(theirs_read) == b"ready\n"
            opened = DataSocket.open(pb.RSession(data_socket=str(path), secret=b"s" * 32), "abc123")
            assert opened is None, "the data socket was opened"
            assert read_line(theirs_read) == b"heard:\n"  # the connection closed with nothing sent
        finally:
            os.close(theirs_read)
            os.waitpid(child, 0)
