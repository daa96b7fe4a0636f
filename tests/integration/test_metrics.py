"""The Prometheus endpoint of a real daemon: the text format, the figures it reports, hostile
HTTP clients, and a real Prometheus server scraping it."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bitshare.client.connection import LeaseRequest

from ..support.harness import Daemon, free_port, refused_start, wait_for

MIB = 1 << 20
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return reply.read().decode()


def parse(text: str) -> dict[str, float]:
    """Samples by name+labels, checking the text format strictly: every sample follows its
    family's HELP and TYPE, and a family's samples come together."""
    samples: dict[str, float] = {}
    declared: list[str] = []
    family = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split()[2]
            assert family not in declared, f"{family} declared twice"
            declared.append(family)
            continue
        if line.startswith("# TYPE "):
            assert line.split()[2] == family and line.split()[3] in ("gauge", "counter", "histogram")
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match.group(1)
        assert name == family or name in (f"{family}_bucket", f"{family}_sum", f"{family}_count"), (name, family)
        samples[name + (match.group(2) or "")] = float(match.group(3))
    return samples


def value(samples: dict[str, float], name: str, **labels: str) -> float:
    found = [
        v
        for key, v in samples.items()
        if key.split("{")[0] == name and all(f'{k}="{x}"' in key for k, x in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_report_gpus_leases_queue_and_transitions(make_daemon) -> None:
    port = free_port()
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--metrics-listen", f"127.0.0.1:{port}")
    with daemon.client() as client:
        first = client.request(LeaseRequest(fraction=0.5, command="python serve.py"))
        second = client.request(LeaseRequest(fraction=0.5))
        waiting = client.request(LeaseRequest(fraction=0.5))
        samples = parse(scrape(port))
        granted = first.allocations[0].memory_mib + second.allocations[0].memory_mib
        assert value(samples, "bitshare_gpu_memory_granted_bytes", gpu="0") == granted * MIB
        assert value(samples, "bitshare_gpu_memory_total_bytes", gpu="0") == 16384 * MIB
        assert value(samples, "bitshare_lease_partition_bytes", lease=first.id) == first.allocations[0].memory_mib * MIB
        assert value(samples, "bitshare_leases_active") == 2 and value(samples, "bitshare_queue_length") == 1
        assert value(samples, "bitshare_lease_transitions_total", kind="granted") == 2
        client.revoke(first.id, "maintenance")  # the queued request takes its place
        wait_for(lambda: client.get(waiting.id).allocations, 10, "the queued request granted")
        samples = parse(scrape(port))
        assert value(samples, "bitshare_lease_transitions_total", kind="revoked") == 1
        assert value(samples, "bitshare_lease_transitions_total", kind="granted") == 3
        assert value(samples, "bitshare_queue_length") == 0
        assert value(samples, "bitshare_queue_wait_seconds_count") == 3
        assert value(samples, "bitshare_queue_wait_seconds_bucket", le="+Inf") == 3
        assert value(samples, "bitshare_queue_wait_seconds_sum") > 0  # the third one waited
        assert value(samples, "process_resident_memory_bytes") > 10 * MIB


def test_the_endpoint_shrugs_off_bad_and_slow_http_clients(make_daemon) -> None:
    port = free_port()
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--metrics-listen", f"127.0.0.1:{port}")
    for path, method, status in (("/", "GET", 404), ("/metrics", "POST", 405), ("/metrics/../x", "GET", 404)):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == status
    silent = socket.create_connection(("127.0.0.1", port))  # connects, sends nothing
    flood = socket.create_connection(("127.0.0.1", port))
    flood.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n")
    # An oversized request is dropped: the connection closes (reset if bytes were left unread).
    with contextlib.suppress(ConnectionResetError):
        assert flood.recv(100) == b""
    started = time.monotonic()
    assert "bitshare_leases_active 0" in scrape(port)  # not held up by the silent one
    assert time.monotonic() - started < 2
    silent.close()
    flood.close()
    assert daemon.proc.poll() is None


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs a prometheus server")
def test_a_prometheus_server_scrapes_it(make_daemon, tmp_path: Path) -> None:
    port, web = free_port(), free_port()
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--metrics-listen", f"127.0.0.1:{port}")
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=0.25))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bitshare\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    server = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )  # fmt: skip

    def query(expression: str) -> float | None:
        try:
            url = f"http://127.0.0.1:{web}/api/v1/query?query={expression}"
            with urllib.request.urlopen(url, timeout=5) as reply:
                result = json.load(reply)["data"]["result"]
        except (OSError, KeyError, ValueError):
            return None
        return float(result[0]["value"][1]) if result else None

    try:
        wait_for(lambda: query('up{job="bitshare"}') == 1.0, 60, "prometheus to scrape bitshared")
        assert wait_for(lambda: query("bitshare_leases_active"), 30, "the lease count in prometheus") == 1.0
        assert query("bitshare_gpu_memory_total_bytes") == 16384 * MIB
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("value", "message"),
    [("nowhere", "--metrics-listen: not a server address"), ("unix:/tmp/m.sock", "served over TCP")],
)
def test_bad_metrics_addresses_are_refused(tmp_path: Path, value: str, message: str) -> None:
    done = refused_start("--state-dir", str(tmp_path / "s"), "--metrics-listen", value)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "s").exists()


def test_a_metrics_port_in_use_stops_the_start_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = refused_start(
            "--state-dir", str(tmp_path / "s"), "--listen", f"unix:{tmp_path}/d.sock", "--simulate", "1x1GiB",
            "--metrics-listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines()[-1].startswith(f"bitshared: error: cannot serve metrics on 127.0.0.1:{port}")
    )
