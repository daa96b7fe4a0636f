"""Frames between the daemon and a worker, read back in large pieces: the same frames, in order,
however the bytes arrive, and a stream that ends inside a frame is an error."""

from __future__ import annotations

import random
import socket
import threading

import pytest

from bitshare.protocol.framing import LIMIT, FrameReader, frame


def test_frames_of_every_size_come_back_whole_and_in_order_however_the_bytes_are_split() -> None:
    rng = random.Random(7)
    sizes = (0, 1, 5, 100, 70_000, 300_000, 5_000_000)
    sent = [(rng.choice((0, LIMIT)), rng.randbytes(rng.choice(sizes))) for _ in range(120)]
    ours, theirs = socket.socketpair()

    def send() -> None:
        data = b"".join(frame(body, kind) for kind, body in sent)
        at = 0
        while at < len(data):
            step = rng.randint(1, 200_000)
            ours.sendall(data[at : at + step])
            at += step
        ours.close()

    sender = threading.Thread(target=send)
    sender.start()
    frames = FrameReader(theirs, size=64 * 1024)
    received = []
    while (got := frames.next()) is not None:
        received.append((got[0], bytes(got[1])))
    sender.join()
    theirs.close()
    assert received == sent


@pytest.mark.parametrize(
    "data",
    [frame(b"hello")[:6], frame(b"x" * 600_000)[:1000], b"\x00\x00"],
    ids=["in a small frame", "in a large frame", "in a header"],
)
def test_a_stream_that_ends_inside_a_frame_is_an_error(data: bytes) -> None:
    ours, theirs = socket.socketpair()
    ours.sendall(data)
    ours.close()
    with pytest.raises(ValueError, match="the stream ended inside a frame"):
        FrameReader(theirs).next()
    theirs.close()


def test_a_frame_larger_than_the_limit_is_refused() -> None:
    ours, theirs = socket.socketpair()
    ours.sendall((64 * 1024 * 1024 + 1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(ValueError, match="a frame of"):
        FrameReader(theirs).next()
    ours.close()
    theirs.close()
