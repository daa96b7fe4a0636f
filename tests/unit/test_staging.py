"""Piecewise transfers through two host buffers: every byte lands in its place, and no buffer is
filled again (or sent) before its copy is done, whatever the sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitshare.daemon.workers import staging

PIECE = staging.PIECE


class DeferredStager:
    """A device whose copies run only when waited for (as a GPU's run later): a buffer reused
    too soon, or read before its copy, gives wrong bytes."""

    def __init__(self, device: np.ndarray) -> None:
        self.device = device
        self.host = [np.zeros(PIECE, np.uint8) for _ in range(2)]
        self.queued: list[tuple[int, object]] = []

    def buffer(self, slot: int) -> memoryview:
        return memoryview(self.host[slot])

    def to_device(self, slot: int, offset: int, size: int) -> None:
        def copy() -> None:
            self.device[offset : offset + size] = self.host[slot][:size]

        self.queued.append((slot, copy))

    def from_device(self, slot: int, offset: int, size: int) -> None:
        def copy() -> None:
            self.host[slot][:size] = self.device[offset : offset + size]

        self.queued.append((slot, copy))

    def wait(self, slot: int) -> None:
        # A stream runs in order: waiting for this buffer's copy runs every copy queued before it.
        while any(queued_slot == slot for queued_slot, _ in self.queued):
            _, copy = self.queued.pop(0)
            copy()  # type: ignore[operator]

    def finish(self) -> None:
        while self.queued:
            _, copy = self.queued.pop(0)
            copy()  # type: ignore[operator]


def _reader(source: np.ndarray):
    position = 0

    def read_into(view: memoryview) -> None:
        nonlocal position
        view[:] = source[position : position + len(view)]
        position += len(view)

    return read_into


SIZES = st.sampled_from([0, 1, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE, 3 * PIECE + 12345, 5 * PIECE])


@settings(max_examples=12, deadline=None)
@given(nbytes=SIZES, seed=st.integers(0, 2**16))
def test_an_upload_in_pieces_lands_every_byte_in_place(nbytes: int, seed: int) -> None:
    source = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    device = np.zeros(nbytes, np.uint8)
    stager = DeferredStager(device)
    staging.receive(_reader(source), nbytes, stager)
    assert not stager.queued
    assert np.array_equal(device, source)


@settings(max_examples=12, deadline=None)
@given(nbytes=SIZES, seed=st.integers(0, 2**16))
def test_a_download_in_pieces_sends_every_byte_in_order(nbytes: int, seed: int) -> None:
    device = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    stager = DeferredStager(device)
    sent = b"".join(bytes(piece) for piece in staging.send(nbytes, stager))
    assert sent == device.tobytes()


def test_a_read_that_fails_part_way_still_waits_for_the_copies_under_way() -> None:
    source = np.arange(3 * PIECE, dtype=np.uint64).view(np.uint8)[: 3 * PIECE]
    device = np.zeros(3 * PIECE, np.uint8)
    stager = DeferredStager(device)
    reads = 0
    read_piece = _reader(source)

    def failing(view: memoryview) -> None:
        nonlocal reads
        reads += 1
        if reads == 3:
            raise ConnectionResetError("cut")
        read_piece(view)

    with pytest.raises(ConnectionResetError):
        staging.receive(failing, 3 * PIECE, stager)
    assert not stager.queued  # nothing left copying into a buffer about to be dropped
    assert np.array_equal(device[: 2 * PIECE], source[: 2 * PIECE])
