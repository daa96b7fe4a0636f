"""Starting and stopping bitshared: configurations it refuses in one line, and prompt clean stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import (
    Daemon,
    assert_refused_in_one_line,
    finish,
    free_port,
    hold_and_exit,
    refused_start,
    spawn_cli,
    wait_for,
)

# ----- the reserve against the GPUs' memory ------------------------------------------------


def test_a_reserve_that_leaves_every_gpu_lending_nothing_stops_the_start(tmp_path: Path) -> None:
    done = refused_start(
        "--simulate", "2x4GiB", "--reserve", "8GiB", "--state-dir", str(tmp_path / "s"),
        "--listen", f"unix:{tmp_path / 'd.sock'}",
    )  # fmt: skip
    assert_refused_in_one_line(done, "reserve", "8 GiB", "GPU 0 (4 GiB)", "GPU 1 (4 GiB)")
    assert not (tmp_path / "s" / "state.db").exists()


def test_a_reserve_as_large_as_a_gpu_is_refused_too(tmp_path: Path) -> None:
    done = refused_start(
        "--simulate", "4GiB", "--reserve", "4GiB", "--state-dir", str(tmp_path / "s"),
        "--listen", f"unix:{tmp_path / 'd.sock'}",
    )  # fmt: skip
    assert_refused_in_one_line(done, "GPU 0 (4 GiB)")


def test_a_reserve_larger_than_some_gpus_is_a_warning_naming_them(make_daemon) -> None:
    daemon: Daemon = make_daemon("--simulate", "4GiB,16GiB", "--reserve", "8GiB")
    warnings = [line for line in daemon.log().splitlines() if "daemon.reserve" in line]
    assert len(warnings) == 1, daemon.log()
    assert "warning" in warnings[0] and "GPU 0 (4 GiB)" in warnings[0], warnings[0]
    with daemon.client() as client:
        assert [gpu.capacity_mib for gpu in client.gpus()] == [0, 8 * 1024]


# ----- where the daemon listens and keeps its runtime files ---------------------------------


def _assert_unusable_path_refusal(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 1, done.stderr  # as every unusable path is refused
    assert "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after the start's log lines
    assert line.startswith("bitshared: error: "), line
    for text in expected:
        assert text in line, line


def test_a_runtime_directory_that_cannot_be_made_stops_the_start_in_one_line(tmp_path: Path) -> None:
    done = refused_start(
        "--simulate", "1x4GiB", "--state-dir", str(tmp_path / "s"), "--listen", "unix:/proc/nowhere/b.sock",
    )  # fmt: skip
    _assert_unusable_path_refusal(done, "/proc/nowhere", "No such file or directory")


def test_a_listener_that_cannot_bind_leaves_no_socket_of_the_others_behind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = refused_start(
            "--simulate", "1x4GiB", "--state-dir", str(tmp_path / "s"),
            "--listen", f"unix:{tmp_path / 'a.sock'}", "--listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    _assert_unusable_path_refusal(done, f"cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "a.sock").exists()
    assert not (tmp_path / "a.sock.cred").exists()


# ----- TLS material, checked before anything listens -----------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key_and_cert(tmp_path: Path, name: str, days: int = 1) -> tuple[Path, Path]:
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    csr = tmp_path / f"{name}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-signkey", str(key), "-days", str(days), "-out", str(cert))
    return key, cert


def _tls_config(tmp_path: Path, key: Path, cert: Path) -> Path:
    config = tmp_path / "tls.toml"
    config.write_text(f'[security]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    return config


def _start_with_tls(tmp_path: Path, key: Path, cert: Path) -> subprocess.CompletedProcess:
    return refused_start(
        "--config", str(_tls_config(tmp_path, key, cert)), "--simulate", "1x4GiB",
        "--state-dir", str(tmp_path / "s"), "--listen", f"127.0.0.1:{free_port()}",
    )  # fmt: skip


def test_a_tls_key_that_does_not_match_the_certificate_stops_the_start_in_one_line(tmp_path: Path) -> None:
    key, _ = _key_and_cert(tmp_path, "one")
    _, cert = _key_and_cert(tmp_path, "other")
    done = _start_with_tls(tmp_path, key, cert)
    assert_refused_in_one_line(done, str(key), "does not match", str(cert))
    assert not (tmp_path / "s" / "state.db").exists()


@pytest.mark.parametrize("which", ["cert", "key"])
def test_garbage_tls_material_stops_the_start_in_one_line(tmp_path: Path, which: str) -> None:
    key, cert = _key_and_cert(tmp_path, "good")
    bad = tmp_path / "garbage.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    done = _start_with_tls(tmp_path, bad if which == "key" else key, bad if which == "cert" else cert)
    assert_refused_in_one_line(done, str(bad))


def test_an_expired_tls_certificate_starts_with_a_warning_and_its_date(make_daemon, tmp_path: Path) -> None:
    key, cert = _key_and_cert(tmp_path, "expired", days=-1)
    config = _tls_config(tmp_path, key, cert)
    daemon: Daemon = make_daemon(
        "--config", str(config), "--simulate", "1x4GiB", "--listen", f"127.0.0.1:{free_port()}"
    )
    (warning,) = [line for line in daemon.log().splitlines() if "daemon.tls_expired" in line]
    assert " warning " in warning and str(cert) in warning, warning
    assert time.strftime("%Y", time.gmtime()) in warning  # when it expired


def test_a_tls_key_every_user_can_read_is_a_warning(make_daemon, tmp_path: Path) -> None:
    key, cert = _key_and_cert(tmp_path, "shared")
    key.chmod(0o644)
    config = _tls_config(tmp_path, key, cert)
    listen = f"127.0.0.1:{free_port()}"
    daemon: Daemon = make_daemon("--config", str(config), "--simulate", "1x4GiB", "--listen", listen)
    (warning,) = [line for line in daemon.log().splitlines() if "daemon.tls_key_readable" in line]
    assert " warning " in warning and str(key) in warning, warning
    key.chmod(0o600)
    daemon.stop()
    daemon.restart()
    assert "daemon.tls_key_readable" not in daemon.log()


# ----- stopping --------------------------------------------------------------------------


def _expiry(daemon: Daemon, lease_id: str) -> float:
    with daemon.client() as client:
        return client.get(lease_id).expires_at.ToNanoseconds() / 1e9


def _wait_until_attached(daemon: Daemon, lease_id: str) -> None:
    """A restored lease expires one TTL after the restart; the holder's attach moves that on."""
    restored = _expiry(daemon, lease_id)
    wait_for(lambda: _expiry(daemon, lease_id) > restored, 10, "the holder to attach")


def test_a_stop_is_prompt_and_clean_and_a_restart_at_once_always_starts(make_daemon, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--lease-ttl", "10")
    marker, stop = tmp_path / "lease", tmp_path / "stop"
    holder_err = tmp_path / "holder.err"
    holder = spawn_cli(
        daemon, "run", "-p", "0.25", "--", sys.executable, "-c", hold_and_exit(3), str(marker), str(stop),
        stderr_path=holder_err,
    )  # fmt: skip
    lease_id = wait_for(lambda: marker.exists() and marker.read_text(), 30, "the command to start")
    stops: list[float] = []
    logs = ""
    for _ in range(10):
        _wait_until_attached(daemon, lease_id)  # so that each stop has a holder's stream to end
        began = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=15) == 0, daemon.log()
        stops.append(time.monotonic() - began)
        logs += daemon.log()
        daemon.restart()  # at once: the old daemon's lock went with its process
    logs += daemon.log()
    assert "Traceback" not in logs and "Error" not in logs, logs
    # A stop ends its holders' streams at once rather than after a grace period; a second and a
    # half is far above what it takes even on a loaded machine.
    assert max(stops) < 1.5, stops
    with daemon.client() as client:
        wait_for(lambda: client.get(lease_id).state == pb.LEASE_STATE_ACTIVE, 10, "the lease, still held")
    assert holder.poll() is None, holder_err.read_text()
    stop.touch()
    code, _ = finish(holder, 30, holder_err)
    assert code == 3, holder_err.read_text()
