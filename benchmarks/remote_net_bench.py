"""Remote GPU access across an emulated network: bulk transfers against the link, and the examples
against loopback.

Makes the network itself (tests/support/netlab.py: two network namespaces joined by a veth pair
shaped by tc tbf, and a relay that holds each chunk a fixed delay each way; needs root), starts a
real ``bitshared`` (simulated GPU) with TLS in the server's namespace, and runs clients in the
client's namespace through the relay. In one run:

1. upload and download of 256 MiB (``cupy.asarray`` of a NumPy array, ``cupy.asnumpy`` back)
   through remote CuPy over the 1 Gbit/s link with 0.1 ms each way (a LAN's latency; the delay
   does not cap the rate: the relay pipelines), against a plain TLS socket moving the same bytes
   into a buffer over the same link and relay, each way (target: at least 0.9 of it);
2. the examples (``examples/cupy_kmeans.py``, ``cupy_mlp.py``, ``cupy_fft_filter.py
   --no-kernel``, and ``torch_*.py`` but the out-of-memory one, when torch is installed) timed
   end to end (``bitshare run --remote`` included) over the 1 Gbit/s link with 1 ms each way,
   against the same on a daemon on TCP loopback with the same TLS (target: at most 1.5x);
3. (not with ``--quick``) the examples again over the link with 0.1 ms each way.

Best of ``--repeats`` everywhere, link and loopback runs interleaved (the machine is noisy).
Exits 0 whether or not the targets are met; it says which are not.

    sudo .venv/bin/python benchmarks/remote_net_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tables import finished_at, machine, print_table, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.support.netlab: the emulated network

from tests.support.netlab import Link, Site, bitshared_site, emulated_link, skip_reason  # noqa: E402

DEFAULT_OUT = HERE / "results" / "remote_net_bench.json"
MIB = 1024 * 1024
TRANSFER_MIB = 256
RATE = "1gbit"
TRANSFER_DELAY_MS = 0.1
EXAMPLES_DELAY_MS = 1.0
SHORT_DELAY_MS = 0.1
SOCKET_PORT = 7480  # the plain TLS socket's, in the server's namespace (relayed like the daemon's)
TARGETS = {"transfer_vs_socket": 0.9, "examples_vs_loopback": 1.5}
CUPY_EXAMPLES = [["cupy_kmeans.py"], ["cupy_mlp.py"], ["cupy_fft_filter.py", "--no-kernel"]]
TORCH_EXAMPLES = [["torch_inference.py"], ["torch_tensor_ops.py"], ["torch_train_cnn.py"]]
DAEMON_ARGS = ["--simulate", "1x16GiB"]


# ----- inside the lease (remote CuPy, in the client's namespace) ------------------------------


def inside(repeats: int) -> dict[str, Any]:
    import cupy
    import numpy as np

    from bitshare.remote import session

    host = np.ones(TRANSFER_MIB * MIB // 8)
    uploads, downloads = [], []
    for _ in range(repeats + 1):  # the first round warms both ends' memory up and is dropped
        started = time.perf_counter()
        remote = cupy.asarray(host)
        cupy.cuda.Device().synchronize()
        uploads.append(time.perf_counter() - started)
        started = time.perf_counter()
        back = cupy.asnumpy(remote)
        downloads.append(time.perf_counter() - started)
        assert back.shape == host.shape
        del remote, back
    return {"upload_s": min(uploads[1:]), "download_s": min(downloads[1:]), "bulk": session.current().bulk_path}


# ----- the baseline: a plain TLS socket over the same link and relay --------------------------


def socket_server(host: str, port: int, cert: str, key: str) -> None:
    """In the server's namespace: per connection, "U" receives TRANSFER_MIB into one buffer and
    answers a byte; "D" sends TRANSFER_MIB."""
    import numpy as np

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server((host, port))
    print("listening", flush=True)
    size = TRANSFER_MIB * MIB
    buffer = memoryview(np.empty(size, np.uint8))
    data = memoryview(np.ones(size, np.uint8))
    while True:
        raw, _ = listener.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with context.wrap_socket(raw, server_side=True) as conn:
            mode = conn.recv(1)
            if mode == b"U":
                got = 0
                while got < size:
                    got += conn.recv_into(buffer[got:])
                conn.sendall(b"k")
            elif mode == b"D":
                conn.sendall(data)


def socket_client(host: str, port: int, ca: str, repeats: int) -> dict[str, float]:
    """In the client's namespace: best seconds to send TRANSFER_MIB, and to receive it into one buffer."""
    import numpy as np

    context = ssl.create_default_context(cafile=ca)
    size = TRANSFER_MIB * MIB
    data, buffer = memoryview(np.ones(size, np.uint8)), memoryview(np.empty(size, np.uint8))
    times: dict[str, list[float]] = {"U": [], "D": []}
    for _ in range(repeats + 1):
        for mode in ("U", "D"):
            raw = socket.create_connection((host, port))
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with context.wrap_socket(raw, server_hostname=host) as conn:
                started = time.perf_counter()  # (the handshake is not timed: the bulk port's is not either)
                conn.sendall(mode.encode())
                if mode == "U":
                    conn.sendall(data)
                    assert conn.recv(1) == b"k"
                else:
                    got = 0
                    while got < size:
                        got += conn.recv_into(buffer[got:])
                times[mode].append(time.perf_counter() - started)
    return {"upload_s": min(times["U"][1:]), "download_s": min(times["D"][1:])}


def socket_baseline(link: Link, workdir: Path, repeats: int) -> dict[str, float]:
    tls = [str(workdir / "srv.pem"), str(workdir / "srv.key")]  # the daemon's own certificate
    server = subprocess.Popen(
        link.server_cmd([sys.executable, __file__, "--socket-server", link.server_ip, str(SOCKET_PORT), *tls]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline() != "listening\n":
            raise SystemExit("the plain TLS socket's server did not start")
        link.forward(SOCKET_PORT)
        argv = [sys.executable, __file__, "--socket-client", link.dial_ip, str(SOCKET_PORT), str(workdir / "ca.pem")]
        done = subprocess.run(
            link.client_cmd([*argv, str(repeats)]), capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"the plain TLS socket's client failed:\n{done.stderr}")
        return json.loads(done.stdout)
    finally:
        server.kill()
        server.wait()


# ----- the examples ----------------------------------------------------------------------------


def time_example(site: Site, example: list[str]) -> float:
    started = time.perf_counter()
    done = site.run_remote([sys.executable, str(ROOT / "examples" / example[0]), *example[1:]], timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(example)} failed ({done.returncode}):\n{done.stderr}\n{site.log()[-3000:]}")
    return elapsed


def time_examples(sites: dict[str, Site], examples: list[list[str]], repeats: int) -> dict[str, dict[str, float]]:
    """Best end-to-end seconds of each example on each site, the sites taking turns."""
    best: dict[str, dict[str, float]] = {}
    for example in examples:
        name = " ".join(example)
        best[name] = {}
        for _ in range(repeats):
            for where, site in sites.items():
                seconds = time_example(site, example)
                best[name][where] = min(best[name].get(where, seconds), seconds)
        print(f"  {name}: " + ", ".join(f"{w} {s:.2f}s" for w, s in best[name].items()), flush=True)
    return best


# ----- the run -----------------------------------------------------------------------------------


def has_torch() -> bool:
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, check=False).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (transfers: after a warm-up)")
    parser.add_argument("--quick", action="store_true", help="a short run: 1 repeat, no 0.1 ms examples")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--socket-server", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--socket-client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args.repeats)))
        return 0
    if args.socket_server:
        host, port, cert, key = args.socket_server
        socket_server(host, int(port), cert, key)
        return 0
    if args.socket_client:
        host, port, ca, repeats = args.socket_client
        print(json.dumps(socket_client(host, int(port), ca, int(repeats))))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    reason = skip_reason()
    if reason is not None:
        raise SystemExit(f"remote_net_bench: {reason}")
    repeats = 1 if args.quick else args.repeats
    examples = CUPY_EXAMPLES + (TORCH_EXAMPLES if has_torch() else [])

    with tempfile.TemporaryDirectory(prefix="bitshare-net-bench-") as tmp:
        work = Path(tmp)
        print(f"1. 256 MiB over the emulated {RATE} link, {TRANSFER_DELAY_MS} ms each way", flush=True)
        with (
            emulated_link(RATE, TRANSFER_DELAY_MS) as link,
            bitshared_site(work / "transfer", link, DAEMON_ARGS) as site,
        ):
            plain = socket_baseline(link, work / "transfer", max(repeats, 2))
            done = site.run_remote([sys.executable, __file__, "--inside", "--repeats", str(max(repeats, 2))], 900)
            if done.returncode != 0:
                raise SystemExit(f"the remote transfer failed:\n{done.stderr}\n{site.log()[-3000:]}")
            remote = json.loads(done.stdout.strip().splitlines()[-1])

        print(f"2. the examples: {EXAMPLES_DELAY_MS} ms each way against TCP loopback (TLS both)", flush=True)
        with contextlib.ExitStack() as stack:
            sites = {"loopback": stack.enter_context(bitshared_site(work / "loopback", None, DAEMON_ARGS))}
            far = stack.enter_context(emulated_link(RATE, EXAMPLES_DELAY_MS))
            sites["1 ms"] = stack.enter_context(bitshared_site(work / "far", far, DAEMON_ARGS))
            if not args.quick:
                near = stack.enter_context(emulated_link(RATE, SHORT_DELAY_MS))
                sites["0.1 ms"] = stack.enter_context(bitshared_site(work / "near", near, DAEMON_ARGS))
            best = time_examples(sites, examples, repeats)

    mbit = TRANSFER_MIB * MIB * 8 / 1e6
    figures: dict[str, Any] = {
        "bulk_path": remote["bulk"],
        "upload_mbit_s": mbit / remote["upload_s"],
        "download_mbit_s": mbit / remote["download_s"],
        "socket_upload_mbit_s": mbit / plain["upload_s"],
        "socket_download_mbit_s": mbit / plain["download_s"],
        "upload_vs_socket": plain["upload_s"] / remote["upload_s"],
        "download_vs_socket": plain["download_s"] / remote["download_s"],
        "examples_s": best,
        "examples_vs_loopback": {name: t["1 ms"] / t["loopback"] for name, t in best.items()},
        "examples_vs_loopback_0_1ms": {name: t["0.1 ms"] / t["loopback"] for name, t in best.items() if "0.1 ms" in t},
    }
    missed = []
    rows = []
    for way in ("upload", "download"):
        ratio = figures[f"{way}_vs_socket"]
        rows.append(
            [
                f"{way} 256 MiB, {TRANSFER_DELAY_MS} ms",
                f"{figures[f'{way}_mbit_s']:,.0f} Mbit/s",
                f"{ratio:.2f} of TLS socket ({figures[f'socket_{way}_mbit_s']:,.0f})",
                ">= 0.9",
            ]
        )
        if ratio < TARGETS["transfer_vs_socket"]:
            missed.append(f"{way} {ratio:.2f} of the socket")
    for name, t in best.items():
        ratio = figures["examples_vs_loopback"][name]
        near = f", 0.1 ms {t['0.1 ms']:.2f}s" if "0.1 ms" in t else ""
        rows.append([name, f"{t['1 ms']:.2f}s (loopback {t['loopback']:.2f}s{near})", f"{ratio:.2f}x", "<= 1.5x"])
        if ratio > TARGETS["examples_vs_loopback"]:
            missed.append(f"{name} {ratio:.2f}x loopback")
    print(f"remote access over an emulated {RATE} link (tbf, veth, delay relay), TLS; bulk path: {remote['bulk']}")
    print_table(["measure", "result", "ratio", "target"], rows)
    print("targets: all met" if not missed else "targets missed: " + "; ".join(missed))
    result = {
        "benchmark": "remote_net_bench" + (" --quick" if args.quick else ""),
        "machine": machine(),
        "link": {"rate": RATE, "transfer_delay_ms": TRANSFER_DELAY_MS, "examples_delay_ms": EXAMPLES_DELAY_MS},
        "repeats": repeats,
        "transfer_mib": TRANSFER_MIB,
        "figures": figures,
        "targets": TARGETS,
        "missed": missed,
        "finished_at": finished_at(),
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
