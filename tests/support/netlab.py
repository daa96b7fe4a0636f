"""An emulated network made by the test itself: two network namespaces joined by a veth pair,
its rate shaped by ``tc`` (tbf) on both ends, and a delay relay in the path.

    with emulated_link(rate="1gbit", delay_ms=1.0) as link:
        link.forward(port)                                   # dial_ip:port -> server_ip:port
        daemon = subprocess.Popen(link.server_cmd([...]))    # in the server's namespace
        client = subprocess.Popen(link.client_cmd([...]))    # dials link.dial_ip

Everything it made (relays, the veth pair, both namespaces and whatever still runs in them) is
removed when the block ends, also when it raised. It needs root, ``ip`` and ``tc``;
``skip_reason()`` says why it cannot run here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .harness import ROOT, isolated_env, make_token

SERVER_IP = "10.231.0.1"
CLIENT_IP = "10.231.0.2"
DIAL_IP = "10.231.0.3"  # the relay's address: on the client namespace's lo, so only its own programs reach it
PREFIX = 24
# The largest time a packet may wait for the shaper's timer, which the burst must cover: the qdisc
# watchdog is an hrtimer, but the softirq that dequeues can wait a scheduler tick on a busy host,
# and HZ may be as low as 100. A burst of one such tick of line rate keeps the link busy across it
# (a smaller one idles the link a little on every late tick: 1 Gbit/s came out near 0.8).
TICK_S = 0.010
# Never below a few of the largest (GSO) packets the stack hands a veth (64 KiB): a burst smaller
# than one packet makes tbf segment or drop it, and TCP then backs off for nothing.
MIN_BURST = 256 * 1024
# The queue in front of the shaper, beyond the burst: enough that TCP sees no drops at line rate
# (TCP small queues keep each flow's share near 1 MiB anyway), little enough not to bloat.
QUEUE_S = 0.020
READY_TIMEOUT_S = 15.0

_serial = itertools.count()
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(k|m|g)?bit$")


def rate_bits(rate: str) -> float:
    """Bits per second of a tc rate such as "1gbit" or "200mbit"."""
    match = _RATE.match(rate.strip().lower())
    if not match:
        raise ValueError(f"not a rate: {rate!r} (expected e.g. 1gbit, 200mbit, 500kbit)")
    return float(match.group(1)) * {None: 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)]


def burst_bytes(rate: str) -> int:
    """The tbf burst used for ``rate``: one tick of line rate, at least MIN_BURST."""
    return max(MIN_BURST, int(rate_bits(rate) / 8 * TICK_S))


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)


def _must(*argv: str) -> None:
    done = _run(*argv)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")


def skip_reason() -> str | None:
    """Why an emulated link cannot be made here (None: it can): tries a namespace, a veth pair
    and a tbf shaper, and removes them."""
    if sys.platform != "linux":
        return "the emulated network needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the emulated network needs root (network namespaces, veth, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the emulated network needs the {tool!r} command (iproute2)"
    try:
        with emulated_link(rate="1gbit"):
            pass
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return f"the emulated network cannot be made here: {exc}"
    return None


@dataclass
class Link:
    """Two namespaces joined by a shaped veth pair; the client reaches the server through relays."""

    server_ns: str
    client_ns: str
    rate: str | None
    delay_ms: float
    server_ip: str = SERVER_IP
    client_ip: str = CLIENT_IP
    dial_ip: str = DIAL_IP
    relays: dict[int, subprocess.Popen] = field(default_factory=dict)

    def server_cmd(self, argv: list[str]) -> list[str]:
        """``argv`` run in the server's namespace."""
        return ["ip", "netns", "exec", self.server_ns, *argv]

    def client_cmd(self, argv: list[str]) -> list[str]:
        """``argv`` run in the client's namespace."""
        return ["ip", "netns", "exec", self.client_ns, *argv]

    def forward(self, port: int) -> None:
        """Relay ``dial_ip:port`` to ``server_ip:port``, each chunk held ``delay_ms`` each way;
        returns once the relay listens."""
        if port in self.relays:
            raise ValueError(f"port {port} is relayed already")
        argv = [
            sys.executable,
            "-m",
            "tests.support.delay_relay",
            "--delay-ms",
            str(self.delay_ms),
            f"{self.dial_ip}:{port}",
            f"{self.server_ip}:{port}",
        ]
        proc = subprocess.Popen(
            self.client_cmd(argv), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.relays[port] = proc
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:  # its first line says it listens
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(READY_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("relay.ready"):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"the delay relay for port {port} did not start: {line.strip()} {err.strip()}")

    def namespace_pids(self) -> list[int]:
        """Processes still running in either namespace (relays included)."""
        pids: list[int] = []
        for ns in (self.server_ns, self.client_ns):
            done = _run("ip", "netns", "pids", ns)
            pids += [int(p) for p in done.stdout.split()] if done.returncode == 0 else []
        return pids

    def _stop_relays(self) -> None:
        for proc in self.relays.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.relays.values():
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
        self.relays.clear()

    def _end_the_rest(self) -> None:
        """Whatever the test started in the namespaces and left running: TERM, then KILL."""
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            pids = self.namespace_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while self.namespace_pids() and time.monotonic() < deadline:
                time.sleep(0.05)


def _shape(ns: str, dev: str, rate: str) -> None:
    burst = burst_bytes(rate)
    limit = burst + int(rate_bits(rate) / 8 * QUEUE_S)
    _must("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
          "burst", str(burst), "limit", str(limit))  # fmt: skip


@contextlib.contextmanager
def emulated_link(rate: str | None = "1gbit", delay_ms: float = 0.0) -> Iterator[Link]:
    """A fresh pair of namespaces joined by a veth pair shaped to ``rate`` (None: unshaped) each
    way; relays made with ``forward`` hold each chunk ``delay_ms`` each way."""
    if rate is not None:
        rate_bits(rate)  # a bad rate is refused before anything is made
    if delay_ms < 0:
        raise ValueError(f"delay_ms must be >= 0, not {delay_ms}")
    tag = f"{os.getpid()}x{next(_serial)}"
    link = Link(server_ns=f"bsnet-s-{tag}", client_ns=f"bsnet-c-{tag}", rate=rate, delay_ms=delay_ms)
    server_dev, client_dev = f"bss{tag}"[:15], f"bsc{tag}"[:15]
    made: list[str] = []
    try:
        for ns in (link.server_ns, link.client_ns):
            _must("ip", "netns", "add", ns)
            made.append(ns)
        # Made inside the namespaces at once: no name is ever taken in the host's namespace.
        _must("ip", "link", "add", server_dev, "netns", link.server_ns, "type", "veth",
              "peer", "name", client_dev, "netns", link.client_ns)  # fmt: skip
        for ns, dev, ip in ((link.server_ns, server_dev, SERVER_IP), (link.client_ns, client_dev, CLIENT_IP)):
            _must("ip", "-n", ns, "addr", "add", f"{ip}/{PREFIX}", "dev", dev)
            _must("ip", "-n", ns, "link", "set", dev, "up")
            _must("ip", "-n", ns, "link", "set", "lo", "up")
            if rate is not None:
                _shape(ns, dev, rate)
        _must("ip", "-n", link.client_ns, "addr", "add", f"{DIAL_IP}/32", "dev", "lo")
        yield link
    finally:
        link._stop_relays()
        if made:
            link._end_the_rest()
        for ns in made:  # (the veth pair goes with its namespaces)
            _run("ip", "netns", "del", ns)


def namespaces() -> set[str]:
    """The names of the network namespaces that exist now."""
    return {Path(p).name for p in os.listdir("/run/netns")} if os.path.isdir("/run/netns") else set()


# ----- a TLS bitshared on the link (or on loopback) and remote programs run against it ---------

DAEMON_PORT = 7470  # any: each link's namespaces are new, nothing else listens there


def make_tls(directory: Path, ips: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for ``ips`` (openssl CLI): (ca.pem, key, cert)."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = directory / "srv.ext"
    ext.write_text("subjectAltName=" + ",".join(f"IP:{ip}" for ip in ips) + "\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _must("openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=netlab-ca",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _must("openssl", "req", "-new", *ec, "-subj", "/CN=bitshared", "-keyout", str(key), "-out", str(csr))
    _must("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-set_serial", "7",
          "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, key, cert


@dataclass
class Site:
    """A TLS bitshared and what a client needs to run remote programs on it."""

    server: str  # HOST:PORT the client dials
    env: dict[str, str]
    client_prefix: list[str]
    log_path: Path

    def run_remote(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """``argv`` under ``bitshare run --remote`` (a quarter GPU), from the client's side."""
        command = [sys.executable, "-m", "bitshare", "--server", self.server, "run", "--remote", "-p", "0.25", "--"]
        return subprocess.run(
            [*self.client_prefix, *command, *argv],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@contextlib.contextmanager
def bitshared_site(
    workdir: Path, link: Link | None, daemon_args: list[str], relay_bulk: bool = True, port: int | None = None
) -> Iterator[Site]:
    """A bitshared with TLS on ``link``'s server address (None: on 127.0.0.1 in this namespace),
    its gRPC port and (``relay_bulk``) its bulk port, the next one, relayed to the dial address."""
    from .harness import free_port

    host, dial = (link.server_ip, link.dial_ip) if link else ("127.0.0.1", "127.0.0.1")
    port = port or (DAEMON_PORT if link else free_port())
    workdir.mkdir(parents=True, exist_ok=True)
    ca, key, cert = make_tls(workdir, sorted({host, dial}))
    tokens = workdir / "tokens.toml"
    env = isolated_env(workdir)
    env.update(BITSHARE_TOKEN=make_token(tokens, "netlab", "client"), BITSHARE_TLS_CA=str(ca))
    log_path = workdir / "bitshared.log"
    argv = [sys.executable, "-m", "bitshare.daemon", "--listen", f"{host}:{port}", "--bulk-port", str(port + 1),
            "--state-dir", str(workdir / "state"), "--runtime-dir", str(workdir / "runtime"),
            "--tokens-file", str(tokens), "--tls-cert", str(cert), "--tls-key", str(key), *daemon_args]  # fmt: skip
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        daemon = subprocess.Popen(link.server_cmd(argv) if link else argv, stdout=log, stderr=log, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while b"daemon.ready" not in log_path.read_bytes():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bitshared did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        if link:
            link.forward(port)
            if relay_bulk:
                link.forward(port + 1)
        yield Site(f"{dial}:{port}", env, link.client_cmd([]) if link else [], log_path)
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
