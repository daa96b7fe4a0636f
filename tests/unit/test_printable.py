"""Text from daemons is made safe to draw: no character a terminal acts on gets through."""

from __future__ import annotations

from bitshare.present.printable import MARK, make_printable, printable, printable_lines
from bitshare.protocol.v1 import bitshare_pb2 as pb


def test_controls_become_marks_and_line_breaks_spaces() -> None:
    assert printable("python serve.py --port 8080") == "python serve.py --port 8080"
    assert printable("a\x1b[2Jb\x07c\x9bd\x7fe") == f"a{MARK}[2Jb{MARK}c{MARK}d{MARK}e"
    assert printable("one\ttwo\nthree\r\x00") == f"one two three {MARK}"
    assert printable("left\u202eright\u2066") == f"left{MARK}right{MARK}"  # bidi overrides reorder text
    assert printable("GPU 0: 20 GiB · 61% ▁▂█ é") == "GPU 0: 20 GiB · 61% ▁▂█ é"


def test_lines_keep_their_breaks_and_lose_their_controls() -> None:
    assert printable_lines("LEASE  COMMAND\nab12   job\x1b[2J\r\u202e") == f"LEASE  COMMAND\nab12   job{MARK}[2J {MARK}"
    assert printable_lines("plain\n\nlines") == "plain\n\nlines"


def test_every_string_in_a_snapshot_is_made_printable() -> None:
    lease = pb.Lease(id="abc", command="x\x1b]52;c;aGk=\x07", client_host="h\x1b[H")
    lease.usage.processes.add(pid=1, name="py\x1b[31m", user="bob")
    gpu = pb.Gpu(index=0, name="GPU\x1b[2J")
    gpu.unleased.add(pid=2, name="miner\x1b[8m")
    snapshot = pb.TelemetrySnapshot(server=pb.ServerInfo(hostname="host\x1b[H"), gpus=[gpu], leases=[lease])
    make_printable(snapshot)
    assert snapshot.leases[0].command == f"x{MARK}]52;c;aGk={MARK}"
    assert snapshot.leases[0].usage.processes[0].name == f"py{MARK}[31m"
    assert snapshot.gpus[0].unleased[0].name == f"miner{MARK}[8m"
    assert snapshot.server.hostname == f"host{MARK}[H" and snapshot.leases[0].id == "abc"
