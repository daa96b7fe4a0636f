"""A TCP relay that holds each chunk for a fixed delay in each direction: a network path's latency.

    python -m tests.support.delay_relay --delay-ms 1 LISTEN_HOST:PORT TARGET_HOST:PORT

Each accepted connection is joined to a new connection to the target. Each direction has a
reader and a writer thread: the reader stamps each chunk with its arrival time and queues it, the
writer sends it once ``delay`` has passed since then. So the delay is added to every byte, in
order, while the reader goes on reading: throughput is not capped at one chunk per delay (only
the queue's bound, far above rate x delay, limits what is in flight). An end of stream is
relayed (after the bytes before it) as a half-close. The first line on stdout,
``relay.ready HOST:PORT``, says it listens. SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import signal
import socket
import sys
import threading
import time

CHUNK = 256 * 1024
# Bytes held per direction before the reader stops reading (TCP then pushes back on the sender):
# far above what 1 Gbit/s x 10 ms holds (1.25 MB), so the bound never sets the rate.
QUEUE_BYTES = 16 * 1024 * 1024
BUFFER_BYTES = 4 * 1024 * 1024


def address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host, int(port)


def tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a held chunk goes when due, not later
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)


class Direction:
    """One direction of a relayed connection: bytes from ``source`` to ``sink``, ``delay`` late."""

    def __init__(self, source: socket.socket, sink: socket.socket, delay: float, done: threading.Event) -> None:
        self.source, self.sink, self.delay, self.done = source, sink, delay, done
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.held = 0
        self.cond = threading.Condition()
        self.failed = False

    def start(self) -> None:
        threading.Thread(target=self.read, daemon=True).start()
        threading.Thread(target=self.write, daemon=True).start()

    def read(self) -> None:
        while True:
            try:
                data = self.source.recv(CHUNK)
            except OSError:
                data = b""
            arrived = time.monotonic()
            with self.cond:
                while self.held >= QUEUE_BYTES and not self.failed:
                    self.cond.wait()
                if self.failed:
                    return
                self.queue.append((arrived + self.delay, data))  # b"": the end, relayed in order
                self.held += len(data)
                self.cond.notify_all()
            if not data:
                return

    def write(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.queue:
                        self.cond.wait()
                    due, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.cond:
                    self.queue.popleft()
                    self.held -= len(data)
                    self.cond.notify_all()
                if not data:
                    self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(data)
        except OSError:
            with self.cond:
                self.failed = True
                self.cond.notify_all()
            for sock in (self.source, self.sink):  # the other direction sees its end too
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        finally:
            self.done.set()


def join(accepted: socket.socket, target: tuple[str, int], delay: float) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as exc:
        print(f"relay: cannot reach {target[0]}:{target[1]}: {exc}", file=sys.stderr, flush=True)
        accepted.close()
        return
    upstream.settimeout(None)
    for sock in (accepted, upstream):
        tune(sock)
    ends = [threading.Event(), threading.Event()]
    Direction(accepted, upstream, delay, ends[0]).start()
    Direction(upstream, accepted, delay, ends[1]).start()

    def close_when_done() -> None:
        for end in ends:
            end.wait()
        accepted.close()
        upstream.close()

    threading.Thread(target=close_when_done, daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added each way, in milliseconds")
    parser.add_argument("listen", type=address)
    parser.add_argument("target", type=address)
    args = parser.parse_args()
    if args.delay_ms < 0:
        parser.error(f"--delay-ms must be >= 0, not {args.delay_ms}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server(args.listen, backlog=64)
    print(f"relay.ready {args.listen[0]}:{args.listen[1]}", flush=True)
    while True:
        accepted, _ = listener.accept()
        join(accepted, args.target, args.delay_ms / 1000)


if __name__ == "__main__":
    sys.exit(main())
