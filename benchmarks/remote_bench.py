"""Remote GPU access benchmark: bulk transfers, queued small operations, and (on a GPU) compute.

Starts a real ``bitshared`` on a temporary Unix socket (simulated GPU unless ``--backend nvml``),
then runs itself under ``bitshare run --remote`` so that its ``import cupy`` is bitshare's
remote CuPy, and measures in that one run:

- upload and download of 256 MiB (GiB/s), against a plain socket transfer of the same bytes
  between two processes measured in the same run (target: at least 0.8 of it);
- queued small operations per second, and round trips per sync point (targets: 20,000 ops/s,
  one round trip);
- on a GPU (``--backend nvml``), a compute-bound loop through the interposer against the same
  loop with local CuPy (target: at most 1.10x).

With ``--torch``, remote PyTorch instead (``import torch`` in the leased program):

- forwarded operations per second, with the meta-result cache and without it (target: 20,000/s);
- client time per resnet50 forward (target: at most 10 ms) and round trips per sync (1);
- resnet50 inference at batch 8 through the remote against the same model in local CPU PyTorch
  on as many threads as the simulated worker has (one), in the same run (target: at least 0.9 of
  its throughput: the compute is the same CPU's, so the gap is the remote's own cost), and a
  training step against local; on a GPU (``--backend nvml``), resnet50 at batch 32 in fp16
  against local CUDA (target: at least 0.9 of its throughput).

Each transfer is repeated (``--repeats``) after a warm-up and the best time counts, for the
remote path and the baselines alike: on a small, noisy machine that is the stable figure.
The plain-socket baseline is measured twice: received into a new array each time (as the
worker's uploads and the client's downloads are: the ratio that counts) and into one reused
buffer (the transport alone).

    .venv/bin/python benchmarks/remote_bench.py
    .venv/bin/python benchmarks/remote_bench.py --backend nvml      # on a GPU host
    .venv/bin/python benchmarks/remote_bench.py --torch [--backend nvml]
    .venv/bin/python benchmarks/remote_bench.py --tcp

With ``--tcp``, remote CuPy over TCP with TLS on loopback (the daemon listens on a Unix socket
and on 127.0.0.1 with a certificate made with the openssl CLI; the program dials
127.0.0.1:PORT with a client token): the same transfers (their bytes on the TLS bulk port)
against a plain TLS socket between two processes (Python ``ssl``, the same certificate);
sync round-trip p50/p99 against a bare gRPC unary call on the same channel; queued small
operations per second and the longest single queueing call (the flush every 4,096 operations
must not wait for the worker); round trips per sync. Results go to
``benchmarks/results/remote_bench_tcp.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tables import finished_at, machine, print_table, write_results

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "remote_bench.json"
MIB = 1024 * 1024
TRANSFER_MIB = 256
SMALL_OPS = 20_000
READY_TIMEOUT_S = 60.0
TARGETS = {"transfer_vs_socket": 0.8, "ops_per_s": 20_000, "round_trips_per_sync": 1, "compute_vs_local": 1.10}
TORCH_TARGETS = {
    "ops_per_s": 20_000,
    "forward_client_ms": 10.0,
    "round_trips_per_sync": 1,
    "inference_vs_local": 0.9,
    "train_step_vs_local": None,
}
TORCH_OPS = 20_000
TCP_TARGETS = {"transfer_vs_tls_socket": 0.8, "ops_per_s": 20_000, "round_trips_per_sync": 1}
SYNCS = 2_000  # round trips timed for the p50/p99, for the syncs and the bare gRPC calls alike


# ----- inside the lease (bitshare's remote CuPy) ---------------------------------------------


def transfers(cupy: Any, repeats: int, peer: TlsPeer | None = None) -> dict[str, float]:
    """Best upload and download seconds of TRANSFER_MIB (after a warm-up round); with ``peer``, the
    plain TLS socket's in the same rounds (new arrays, then a reused buffer), between the remote's."""
    import numpy as np

    host = np.ones(TRANSFER_MIB * MIB // 8)
    times: dict[str, list[float]] = {}

    def timed(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    for _ in range(repeats + 1):  # the first round warms both ends' memory up and is dropped
        started = time.perf_counter()
        remote = cupy.asarray(host)
        cupy.cuda.Device().synchronize()
        timed("upload_s", time.perf_counter() - started)
        if peer is not None:
            timed("tls_upload_s", peer.upload(fresh=True))
            timed("tls_upload_reused_s", peer.upload(fresh=False))
        started = time.perf_counter()
        back = remote.get()
        timed("download_s", time.perf_counter() - started)
        assert back.shape == host.shape
        del remote, back
        if peer is not None:
            timed("tls_download_s", peer.download(fresh=True))
            timed("tls_download_reused_s", peer.download(fresh=False))
    return {name: min(seconds[1:]) for name, seconds in times.items()}


def small_ops(cupy: Any, owner: Any) -> dict[str, Any]:
    """SMALL_OPS queued ``a = a + 1`` then one sync: the rate, the longest single call (a flush
    that waited for the worker would show here), and the round trips the sync took."""
    small = cupy.ones(16, dtype=cupy.float32)
    trips = owner.round_trips
    calls = [0.0] * SMALL_OPS
    started = time.perf_counter()
    for index in range(SMALL_OPS):
        before = time.perf_counter()
        small = small + 1
        calls[index] = time.perf_counter() - before
    value = float(small[0])  # the one sync point
    elapsed = time.perf_counter() - started
    assert value == SMALL_OPS + 1
    slowest = sorted(range(SMALL_OPS), key=calls.__getitem__)[-5:][::-1]
    return {
        "ops_per_s": SMALL_OPS / elapsed,
        "longest_op_ms": 1000 * calls[slowest[0]],
        # (call number, ms): a flush every 4,096 operations is numbers 4095, 8191, ...
        "slowest_ops": [(index, round(1000 * calls[index], 3)) for index in slowest],
        "round_trips_per_sync": owner.round_trips - trips,
    }


def inside(repeats: int) -> dict[str, Any]:
    import cupy

    from bitshare.remote.session import session

    owner = session()
    return {
        **transfers(cupy, repeats),
        **small_ops(cupy, owner),
        "data_socket": owner._data is not None,
        "compute_s": compute_loop(cupy) if not os.environ.get("BITSHARE_SIMULATED") else None,
    }


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``times``, in microseconds."""
    ordered = sorted(times)
    return 1e6 * ordered[len(ordered) // 2], 1e6 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def tcp_inside(repeats: int, peer_port: int) -> dict[str, Any]:
    """Over TCP with TLS: transfers against the plain TLS socket to ``peer_port``, sync round trips
    against bare gRPC calls, queued operations. No ``peer_port``: the channel goes through a
    delaying relay: no transfers, fewer round trips."""
    import cupy

    from bitshare.remote import session as sessions

    owner = sessions.session()
    assert sessions.current() is owner
    bulk_path = owner.bulk_path
    if bulk_path != "tls":
        raise SystemExit(f"array bytes go by {bulk_path!r}, not the TLS bulk port")
    peer = TlsPeer(peer_port) if peer_port else None
    moved = transfers(cupy, repeats, peer) if peer is not None else {}
    count = SYNCS if peer is not None else SYNCS // 10
    tiny = cupy.ones(4, dtype=cupy.float32)
    syncs, calls = [], []
    trips = owner.round_trips
    for _ in range(count // 10):  # (warm)
        float(tiny.sum())
        owner.client.server_info()
    for _ in range(count):  # interleaved: both see the same moments of a noisy machine
        started = time.perf_counter()
        value = float(tiny.sum())
        syncs.append(time.perf_counter() - started)
        started = time.perf_counter()
        owner.client.server_info()  # a bare unary call on the session's own channel
        calls.append(time.perf_counter() - started)
    assert value == 4
    sync_trips = (owner.round_trips - trips) / (count + count // 10)
    sync_p50, sync_p99 = percentiles(syncs)
    grpc_p50, grpc_p99 = percentiles(calls)
    return {
        "bulk_path": bulk_path,
        "cipher": owner._data._sock.cipher()[0],
        "baseline_cipher": peer.cipher if peer is not None else None,
        **moved,
        **small_ops(cupy, owner),
        "sync_round_trips_each": sync_trips,
        "sync_p50_us": sync_p50,
        "sync_p99_us": sync_p99,
        "grpc_p50_us": grpc_p50,
        "grpc_p99_us": grpc_p99,
    }


def compute_loop(xp: Any) -> float:
    """A compute-bound loop: matrix products, one sync at the end."""
    x = xp.random.random((4096, 4096)).astype(xp.float32)
    xp.cuda.Device().synchronize()
    started = time.perf_counter()
    for _ in range(50):
        x = x @ x
        x = x / xp.abs(x).max()
    xp.cuda.Device().synchronize()
    return time.perf_counter() - started


def local_compute() -> dict[str, Any]:
    import cupy

    compute_loop(cupy)  # warm-up: kernels compiled, memory pooled
    return {"compute_s": compute_loop(cupy)}


# ----- remote PyTorch ---------------------------------------------------------------------------


def torch_model(gpu: bool) -> tuple[Any, Any, int]:
    """resnet50 (random weights) and a batch: 8 at 128x128 on the CPU, 32 at 224x224 in fp16 on a GPU."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    batch = torch.randn(32, 3, 224, 224) if gpu else torch.randn(8, 3, 128, 128)
    return model, batch, batch.shape[0]


def torch_throughput(model: Any, batch: Any, rounds: int) -> float:
    """Images per second of inference, the batch already on the device, one sync per batch."""
    import torch

    with torch.inference_mode():
        model(batch).sum().item()  # warm-up: the meta cache, the allocator, the kernels
        started = time.perf_counter()
        for _ in range(rounds):
            model(batch).sum().item()
        return rounds * batch.shape[0] / (time.perf_counter() - started)


def torch_train_step(device: str, steps: int) -> float:
    """Seconds per training step of resnet18 at batch 8 (64x64): forward, backward, Adam, loss.item()."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = torch.randn(8, 3, 64, 64).to(device), torch.randint(0, 10, (8,)).to(device)
    times = []
    for _ in range(steps + 1):  # the first warms the cache and the optimizer's state
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        times.append(time.perf_counter() - started)
    return min(times[1:])


def torch_inside(gpu: bool, rounds: int) -> dict[str, Any]:
    import torch

    from bitshare.remote.session import session
    from bitshare.remote.torch import dispatch

    owner = session()
    small = torch.ones(16, device="cuda")
    rates = {}
    for cached in (False, True):
        dispatch._cache.enabled = cached
        count = TORCH_OPS if cached else TORCH_OPS // 10
        for _ in range(100):
            small = small + 1  # (warm)
        started = time.perf_counter()
        for _ in range(count):
            small = small + 1
        rates[cached] = count / (time.perf_counter() - started)
        torch.cuda.synchronize()
    trips = owner.round_trips
    value = (small * 0 + 1).sum().item()  # one sync point after the queued operations
    assert value == 16
    round_trips = owner.round_trips - trips
    model, batch, _ = torch_model(gpu)
    model = model.to("cuda")
    batch = batch.to("cuda")
    if gpu:
        model, batch = model.half(), batch.half()
    throughput = torch_throughput(model, batch, rounds)
    forwards, cpu = [], []
    with torch.inference_mode():
        for _ in range(5):
            started, used = time.perf_counter(), time.process_time()
            out = model(batch)  # queued only: the client's own time (and its CPU, all its threads)
            forwards.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
            out.sum().item()
    return {
        "ops_per_s": rates[True],
        "ops_per_s_uncached": rates[False],
        "round_trips_per_sync": round_trips,
        "forward_client_ms": 1000 * min(forwards),
        "forward_client_cpu_ms": 1000 * min(cpu),
        "images_per_s": throughput,
        "train_step_s": torch_train_step("cuda", 3),
    }


def torch_local(gpu: bool, rounds: int) -> dict[str, Any]:
    import torch

    if not gpu:
        torch.set_num_threads(1)  # as many as a simulated worker computes on
    model, batch, _ = torch_model(gpu)
    device = "cuda" if gpu else "cpu"
    model, batch = model.to(device), batch.to(device)
    if gpu:
        model, batch = model.half(), batch.half()
    return {"images_per_s": torch_throughput(model, batch, rounds), "train_step_s": torch_train_step(device, 3)}


def torch_report(args: argparse.Namespace) -> int:
    gpu = args.backend == "nvml"
    with tempfile.TemporaryDirectory(prefix="bitshare-remote-bench-") as tmp:
        daemon, server = start_daemon(Path(tmp), args.backend)
        try:
            flags = ["--torch", "--rounds", str(args.rounds), "--backend", args.backend]
            remote = run_leased(server, "--remote", [__file__, "--inside", *flags])
            local = run_leased(server, "--local", [__file__, "--local-compute", *flags])
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    figures = {
        **{
            key: remote[key]
            for key in (
                "ops_per_s",
                "ops_per_s_uncached",
                "round_trips_per_sync",
                "forward_client_ms",
                "forward_client_cpu_ms",
            )
        },
        "client_us_per_op": 1e6 / remote["ops_per_s"],
        "client_us_per_op_uncached": 1e6 / remote["ops_per_s_uncached"],
        "remote_images_per_s": remote["images_per_s"],
        "local_images_per_s": local["images_per_s"],
        "inference_vs_local": remote["images_per_s"] / local["images_per_s"],
        "remote_train_step_s": remote["train_step_s"],
        "local_train_step_s": local["train_step_s"],
        "train_step_vs_local": local["train_step_s"] / remote["train_step_s"],
    }
    shape = "batch 32, 224x224, fp16" if gpu else "batch 8, 128x128, fp32, 1 thread"
    rows = [
        [
            "forwarded ops, meta cache",
            f"{figures['ops_per_s']:,.0f} ops/s",
            f"{figures['client_us_per_op']:.1f} us/op",
            ">= 20,000",
        ],
        [
            "forwarded ops, no cache",
            f"{figures['ops_per_s_uncached']:,.0f} ops/s",
            f"{figures['client_us_per_op_uncached']:.1f} us/op",
            "-",
        ],
        [
            "resnet50 forward, client time",
            f"{figures['forward_client_ms']:.1f} ms",
            f"CPU {figures['forward_client_cpu_ms']:.1f} ms",
            "<= 10 ms",
        ],
        ["round trips per sync point", figures["round_trips_per_sync"], "-", "1"],
        [
            f"resnet50 inference ({shape})",
            f"{figures['remote_images_per_s']:.1f} img/s",
            f"{figures['inference_vs_local']:.2f} of local ({figures['local_images_per_s']:.1f})",
            ">= 0.9",
        ],
        [
            "resnet18 training step (batch 8, 64x64)",
            f"{1000 * figures['remote_train_step_s']:.0f} ms",
            f"{figures['train_step_vs_local']:.2f} of local ({1000 * figures['local_train_step_s']:.0f} ms)",
            "-",
        ],
    ]
    print(f"remote PyTorch on a {args.backend} daemon, loopback (Unix socket)")
    print_table(["measure", "result", "ratio", "target"], rows)
    out = args.out if args.out != DEFAULT_OUT else HERE / "results" / "remote_bench_torch.json"
    result = {
        "benchmark": "remote_bench --torch",
        "backend": args.backend,
        "machine": machine(),
        "rounds": args.rounds,
        "figures": figures,
        "targets": TORCH_TARGETS,
        "finished_at": finished_at(),
    }
    write_results(out, result)
    return 0


# ----- the baseline: a plain socket between two processes ------------------------------------


def socket_transfer(repeats: int, fresh: bool) -> float:
    """Best seconds to move TRANSFER_MIB through a socket pair between two processes, received into
    a new array each time (``fresh``: as the worker's uploads and the client's downloads are) or
    into one reused buffer (the transport alone)."""
    import numpy as np

    sender, receiver = socket.socketpair()
    size = TRANSFER_MIB * MIB
    pid = os.fork()
    if pid == 0:  # the receiving process
        sender.close()
        buffer = memoryview(np.empty(size, np.uint8))
        for _ in range(repeats + 1):
            if fresh:
                buffer = memoryview(np.empty(size, np.uint8))
            got = 0
            while got < size:
                got += receiver.recv_into(buffer[got:])
            receiver.sendall(b"k")
        os._exit(0)
    receiver.close()
    data = memoryview(np.ones(size, np.uint8))
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        sender.sendall(data)
        sender.recv(1)
        times.append(time.perf_counter() - started)
    os.waitpid(pid, 0)
    return min(times[1:])


# ----- the TCP baseline: a plain TLS socket to another process ---------------------------------


@contextlib.contextmanager
def tls_peer(tls: TlsFiles) -> Iterator[int]:
    """A process serving TLS on 127.0.0.1 with the daemon's certificate, for the leased program to
    time against its remote transfers, interleaved with them (see TlsPeer); yields its port.
    It receives ("u": into a new array, "U": into one reused buffer, then "k") or sends ("d", "D")
    TRANSFER_MIB per one-byte command."""
    import numpy as np

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            conn = context.wrap_socket(listener.accept()[0], server_side=True)
            size = TRANSFER_MIB * MIB
            reused, data = memoryview(np.empty(size, np.uint8)), memoryview(np.ones(size, np.uint8))
            while (command := conn.recv(1)) not in (b"", b"q"):
                if command in (b"u", b"U"):
                    read_exactly(conn, memoryview(np.empty(size, np.uint8)) if command == b"u" else reused)
                    conn.sendall(b"k")
                else:
                    conn.sendall(data)
        finally:
            os._exit(0)
    listener.close()
    try:
        yield port
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


class TlsPeer:
    """The leased program's end of tls_peer: TLS checked against BITSHARE_TLS_CA, as bitshare's."""

    def __init__(self, port: int) -> None:
        import numpy as np

        context = ssl.create_default_context(cafile=os.environ["BITSHARE_TLS_CA"])
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
        self.cipher = self.sock.cipher()[0]
        self.size = TRANSFER_MIB * MIB
        self.data, self.reused = memoryview(np.ones(self.size, np.uint8)), memoryview(np.empty(self.size, np.uint8))

    def upload(self, fresh: bool) -> float:
        started = time.perf_counter()
        self.sock.sendall(b"u" if fresh else b"U")
        self.sock.sendall(self.data)
        self.sock.recv(1)
        return time.perf_counter() - started

    def download(self, fresh: bool) -> float:
        import numpy as np

        started = time.perf_counter()
        self.sock.sendall(b"d" if fresh else b"D")
        read_exactly(self.sock, memoryview(np.empty(self.size, np.uint8)) if fresh else self.reused)
        return time.perf_counter() - started


def read_exactly(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise SystemExit("the TLS baseline's peer closed its socket")
        got += n


# ----- TLS material and the TCP listener ------------------------------------------------------


class TlsFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, made with the openssl CLI."""

    def __init__(self, directory: Path) -> None:
        self.ca, ca_key = directory / "ca.pem", directory / "ca.key"
        self.cert, self.key = directory / "server.pem", directory / "server.key"
        csr, extensions = directory / "server.csr", directory / "server.ext"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl(
            "req", "-x509", *ec, "-days", "2", "-subj", "/CN=bitshare bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(ca_key), "-out", str(self.ca),
        )  # fmt: skip
        openssl("req", "-new", *ec, "-subj", "/CN=localhost", "-keyout", str(self.key), "-out", str(csr))
        extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(ca_key), "-set_serial", "1",
            "-days", "2", "-extfile", str(extensions), "-out", str(self.cert),
        )  # fmt: skip


def openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"openssl {args[0]} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def delay_relay(port: int, delay_ms: float) -> Iterator[int]:
    """tests/support/delay_relay.py in front of 127.0.0.1:``port`` (the gRPC listener only: the
    bulk port is dialed directly); yields the relay's port."""
    relayed = free_port_pair()
    ends = [f"127.0.0.1:{relayed}", f"127.0.0.1:{port}"]
    relay = subprocess.Popen(
        [sys.executable, "-m", "tests.support.delay_relay", "--delay-ms", str(delay_ms), *ends],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        if not relay.stdout.readline().startswith("relay.ready"):
            raise SystemExit("the delay relay did not start")
        yield relayed
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def free_port_pair() -> int:
    """A loopback port free now whose next port (the daemon's bulk port) is free too."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise SystemExit("no two consecutive free ports on 127.0.0.1")


# ----- the run -----------------------------------------------------------------------------------


def start_daemon(workdir: Path, backend: str, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """bitshared on a Unix socket in ``workdir`` (and whatever ``extra`` adds); its Unix address."""
    server = f"unix:{workdir / 'bitshared.sock'}"
    gpus = ["--backend", "nvml"] if backend == "nvml" else ["--simulate", "1x16GiB"]
    log = open(workdir / "bitshared.log", "wb")  # noqa: SIM115 - kept open for the daemon's life
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitshare.daemon",
            "--listen",
            server,
            "--state-dir",
            str(workdir / "state"),
            *gpus,
            *extra,
        ],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while b"daemon.ready" not in (workdir / "bitshared.log").read_bytes():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bitshared did not start:\n{(workdir / 'bitshared.log').read_text()}")
        time.sleep(0.05)
    return daemon, server


def run_leased(server: str, mode: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bitshare", "--server", server, "run", mode, "-p", "0.5", "--", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=None if env is None else {**os.environ, **env},
    )
    if done.returncode != 0:
        raise SystemExit(f"the leased run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tcp_report(args: argparse.Namespace) -> int:
    """Remote CuPy over TCP with TLS on loopback, against a plain TLS socket and bare gRPC calls."""
    with tempfile.TemporaryDirectory(prefix="bitshare-remote-bench-") as tmp:
        workdir = Path(tmp)
        tls = TlsFiles(workdir)
        tokens = workdir / "tokens"
        create = ["token", "create", "--name", "bench", "--role", "client", "--file", str(tokens)]
        made = subprocess.run(
            [sys.executable, "-m", "bitshare", *create],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise SystemExit(f"bitshare token create failed: {made.stderr.strip()}")
        port = free_port_pair()
        listen = ("--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens))
        certs = ("--tls-cert", str(tls.cert), "--tls-key", str(tls.key))
        daemon, _ = start_daemon(workdir, args.backend, (*listen, *certs))
        env = {"BITSHARE_TOKEN": made.stdout.strip(), "BITSHARE_TLS_CA": str(tls.ca)}
        inner = [__file__, "--inside", "--tcp", "--repeats", str(args.repeats)]
        try:
            with tls_peer(tls) as peer_port:
                remote = run_leased(f"127.0.0.1:{port}", "--remote", [*inner, "--tls-peer", str(peer_port)], env=env)
            slow = None
            if args.delay_ms > 0:
                with delay_relay(port, args.delay_ms) as relayed:
                    slow = run_leased(f"127.0.0.1:{relayed}", "--remote", inner, env=env)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    gib = TRANSFER_MIB / 1024
    figures = {
        "bulk_path": remote["bulk_path"],
        "upload_gib_s": gib / remote["upload_s"],
        "download_gib_s": gib / remote["download_s"],
        "tls_upload_gib_s": gib / remote["tls_upload_s"],
        "tls_download_gib_s": gib / remote["tls_download_s"],
        "tls_upload_reused_buffer_gib_s": gib / remote["tls_upload_reused_s"],
        "tls_download_reused_buffer_gib_s": gib / remote["tls_download_reused_s"],
        "upload_vs_tls_socket": remote["tls_upload_s"] / remote["upload_s"],
        "download_vs_tls_socket": remote["tls_download_s"] / remote["download_s"],
        "upload_vs_reused_buffer": remote["tls_upload_reused_s"] / remote["upload_s"],
        "download_vs_reused_buffer": remote["tls_download_reused_s"] / remote["download_s"],
        **{key: remote[key] for key in ("sync_p50_us", "sync_p99_us", "grpc_p50_us", "grpc_p99_us")},
        "sync_p50_vs_grpc": remote["sync_p50_us"] / remote["grpc_p50_us"],
        "sync_p99_vs_grpc": remote["sync_p99_us"] / remote["grpc_p99_us"],
        "round_trips_per_tiny_sync": remote["sync_round_trips_each"],
        "ops_per_s": remote["ops_per_s"],
        "longest_op_ms": remote["longest_op_ms"],
        "round_trips_per_sync": remote["round_trips_per_sync"],
        "slowest_ops": remote["slowest_ops"],
        "delay_ms_each_way": args.delay_ms if slow else None,
        "slow_link": None
        if slow is None
        else {
            key: slow[key]
            for key in (
                "ops_per_s",
                "longest_op_ms",
                "slowest_ops",
                "round_trips_per_sync",
                "sync_p50_us",
                "sync_p99_us",
                "grpc_p50_us",
                "grpc_p99_us",
            )
        },
    }
    rows = [
        [
            "upload 256 MiB",
            f"{figures['upload_gib_s']:.2f} GiB/s",
            f"{figures['upload_vs_tls_socket']:.2f} of TLS socket",
            ">= 0.8",
        ],
        [
            "download 256 MiB",
            f"{figures['download_gib_s']:.2f} GiB/s",
            f"{figures['download_vs_tls_socket']:.2f} of TLS socket",
            ">= 0.8",
        ],
        [
            "plain TLS socket, new array",
            f"up {figures['tls_upload_gib_s']:.2f}, down {figures['tls_download_gib_s']:.2f} GiB/s",
            "baseline",
            "-",
        ],
        [
            "plain TLS socket, reused buffer",
            f"up {figures['tls_upload_reused_buffer_gib_s']:.2f}, "
            f"down {figures['tls_download_reused_buffer_gib_s']:.2f} GiB/s",
            f"up {figures['upload_vs_reused_buffer']:.2f}, down {figures['download_vs_reused_buffer']:.2f}",
            "-",
        ],
        [
            f"sync round trip p50 / p99 ({SYNCS:,})",
            f"{figures['sync_p50_us']:.0f} / {figures['sync_p99_us']:.0f} us",
            f"{figures['sync_p50_vs_grpc']:.2f} / {figures['sync_p99_vs_grpc']:.2f} of gRPC",
            "-",
        ],
        [
            "bare gRPC unary p50 / p99",
            f"{figures['grpc_p50_us']:.0f} / {figures['grpc_p99_us']:.0f} us",
            "baseline",
            "-",
        ],
        [
            "queued small operations",
            f"{figures['ops_per_s']:,.0f} ops/s",
            f"longest call {figures['longest_op_ms']:.1f} ms",
            ">= 20,000",
        ],
        [
            "round trips per sync point",
            figures["round_trips_per_sync"],
            f"tiny syncs: {figures['round_trips_per_tiny_sync']:.2f} each",
            "1",
        ],
    ]
    if slow is not None:
        rows += [
            [
                f"+{args.delay_ms:g} ms each way: queued ops",
                f"{slow['ops_per_s']:,.0f} ops/s",
                f"longest call {slow['longest_op_ms']:.1f} ms",
                ">= 20,000",
            ],
            [
                f"+{args.delay_ms:g} ms each way: sync p50 / p99",
                f"{slow['sync_p50_us'] / 1000:.1f} / {slow['sync_p99_us'] / 1000:.1f} ms",
                f"gRPC {slow['grpc_p50_us'] / 1000:.1f} / {slow['grpc_p99_us'] / 1000:.1f} ms",
                f"trips {slow['round_trips_per_sync']}",
            ],
        ]
    print(f"remote CuPy on a {args.backend} daemon, TCP with TLS on loopback (bulk path: {figures['bulk_path']})")
    print_table(["measure", "result", "ratio", "target"], rows)
    out = args.out if args.out != DEFAULT_OUT else HERE / "results" / "remote_bench_tcp.json"
    result = {
        "benchmark": "remote_bench --tcp",
        "backend": args.backend,
        "machine": machine(),
        "repeats": args.repeats,
        "transfer_mib": TRANSFER_MIB,
        "small_ops": SMALL_OPS,
        "syncs": SYNCS,
        "tls": {
            "openssl": ssl.OPENSSL_VERSION,
            "key": "EC prime256v1",
            "bulk_cipher": remote["cipher"],
            "baseline_cipher": remote["baseline_cipher"],
        },
        "figures": figures,
        "targets": TCP_TARGETS,
        "finished_at": finished_at(),
    }
    write_results(out, result)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("simulated", "nvml"), default="simulated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--torch", action="store_true", help="remote PyTorch instead of remote CuPy")
    parser.add_argument("--rounds", type=int, default=3, help="--torch: inference batches timed")
    parser.add_argument("--tcp", action="store_true", help="remote CuPy over TCP with TLS on loopback")
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=5.0,
        help="--tcp: also the queued operations and syncs through a relay adding this each way (0: not)",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tls-peer", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--local-compute", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    gpu = args.backend == "nvml"
    if args.torch and args.tcp:
        parser.error("--torch and --tcp are separate runs")
    if args.inside:
        if args.torch:
            figures = torch_inside(gpu, args.rounds)
        else:
            figures = tcp_inside(args.repeats, args.tls_peer) if args.tcp else inside(args.repeats)
        print(json.dumps(figures))
        return 0
    if args.local_compute:
        print(json.dumps(torch_local(gpu, args.rounds) if args.torch else local_compute()))
        return 0
    if args.torch:
        return torch_report(args)
    if args.tcp:
        return tcp_report(args)

    baseline_s = socket_transfer(args.repeats, fresh=True)
    reused_s = socket_transfer(args.repeats, fresh=False)
    with tempfile.TemporaryDirectory(prefix="bitshare-remote-bench-") as tmp:
        daemon, server = start_daemon(Path(tmp), args.backend)
        try:
            remote = run_leased(server, "--remote", [__file__, "--inside", "--repeats", str(args.repeats)])
            local = run_leased(server, "--local", [__file__, "--local-compute"]) if args.backend == "nvml" else None
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

    gib = TRANSFER_MIB / 1024
    figures = {
        "socket_gib_s": gib / baseline_s,
        "socket_reused_buffer_gib_s": gib / reused_s,
        "upload_vs_reused_buffer": reused_s / remote["upload_s"],
        "download_vs_reused_buffer": reused_s / remote["download_s"],
        "upload_gib_s": gib / remote["upload_s"],
        "download_gib_s": gib / remote["download_s"],
        "upload_vs_socket": baseline_s / remote["upload_s"],
        "download_vs_socket": baseline_s / remote["download_s"],
        "ops_per_s": remote["ops_per_s"],
        "round_trips_per_sync": remote["round_trips_per_sync"],
        "data_socket": remote["data_socket"],
        "compute_vs_local": remote["compute_s"] / local["compute_s"] if local else None,
    }
    rows = [
        [
            "upload 256 MiB",
            f"{figures['upload_gib_s']:.2f} GiB/s",
            f"{figures['upload_vs_socket']:.2f} of socket",
            ">= 0.8",
        ],
        [
            "download 256 MiB",
            f"{figures['download_gib_s']:.2f} GiB/s",
            f"{figures['download_vs_socket']:.2f} of socket",
            ">= 0.8",
        ],
        ["plain socket, new array", f"{figures['socket_gib_s']:.2f} GiB/s", "baseline", "-"],
        [
            "plain socket, reused buffer",
            f"{figures['socket_reused_buffer_gib_s']:.2f} GiB/s",
            f"up {figures['upload_vs_reused_buffer']:.2f}, down {figures['download_vs_reused_buffer']:.2f}",
            "-",
        ],
        ["queued small operations", f"{figures['ops_per_s']:,.0f} ops/s", "-", ">= 20,000"],
        ["round trips per sync point", figures["round_trips_per_sync"], "-", "1"],
        [
            "compute loop vs local CuPy",
            "-" if local is None else f"{remote['compute_s']:.3f}s",
            "needs a GPU" if local is None else f"{figures['compute_vs_local']:.3f}x",
            "<= 1.10x",
        ],
    ]
    print(f"remote CuPy on a {args.backend} daemon, loopback (Unix socket; data socket: {remote['data_socket']})")
    print_table(["measure", "result", "ratio", "target"], rows)
    result = {
        "benchmark": "remote_bench",
        "backend": args.backend,
        "machine": machine(),
        "repeats": args.repeats,
        "transfer_mib": TRANSFER_MIB,
        "small_ops": SMALL_OPS,
        "figures": figures,
        "targets": TARGETS,
        "finished_at": finished_at(),
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
