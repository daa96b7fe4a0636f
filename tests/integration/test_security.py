"""TCP callers: bearer tokens with roles, TLS, and plaintext refused off loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from bitshare.client.connection import LeaseRequest, connect
from bitshare.errors import Denied, Unreachable
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, free_port, make_token, refused_start, run_cli, wait_for


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens.toml"
    made = {
        name: make_token(path, name, role) for name, role in (("alice", "client"), ("bob", "client"), ("ops", "admin"))
    }
    assert path.stat().st_mode & 0o777 == 0o640
    assert all(token not in path.read_text() for token in made.values())  # only hashes are stored
    return path, made


def test_tokens_decide_identity_and_role(make_daemon, tokens) -> None:
    path, made = tokens
    port = free_port()
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(path))
    tcp = f"127.0.0.1:{port}"

    with connect(tcp, made["alice"]) as alice, connect(tcp, made["bob"]) as bob, connect(tcp, made["ops"]) as ops:
        assert alice.server_info().caller == "token:alice"
        lease = alice.request(LeaseRequest(fraction=0.25))
        assert lease.owner == "token:alice"
        # bob sees alice's partition on the GPU but not whose it is, and cannot touch it
        partition = bob.gpus()[0].partitions[0]
        assert partition.memory_mib == lease.allocations[0].memory_mib and not partition.owner
        assert bob.my_leases() == []
        with pytest.raises(Denied):
            bob.release(lease.id)
        assert ops.all_leases()[0].owner == "token:alice"

    revoke = run_cli(daemon, "lease", "revoke", lease.id, server=tcp, env={**daemon.env, "BITSHARE_TOKEN": made["bob"]})
    assert revoke.returncode == 77
    assert revoke.stderr.strip() == "bitshare: error: RevokeLease needs the admin role; token:bob is a client"
    listed = run_cli(daemon, "leases", "--all", server=tcp, env={**daemon.env, "BITSHARE_TOKEN": made["alice"]})
    assert listed.returncode == 77

    wrong = run_cli(
        daemon,
        "run",
        "-p",
        "0.25",
        "--",
        "true",
        server=tcp,
        env={**daemon.env, "BITSHARE_TOKEN": "bst_not-a-real-token"},
    )
    assert wrong.returncode == 77 and "unknown or invalid token" in wrong.stderr

    with connect(tcp, made["ops"]) as ops:
        assert ops.get(lease.id).state == pb.LEASE_STATE_ACTIVE  # nothing above changed it
        assert len(ops.all_leases()) == 1


def test_plaintext_tcp_off_loopback_is_refused(tmp_path: Path) -> None:
    done = refused_start(
        "--simulate", "1x16GiB", "--state-dir", str(tmp_path / "s"), "--listen", f"0.0.0.0:{free_port()}"
    )
    assert done.returncode == 78
    assert "refusing plaintext TCP" in done.stderr
    assert not (tmp_path / "s" / "state.db").exists()


def test_tls_listener(make_daemon, tokens, tmp_path: Path) -> None:
    path, made = tokens
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "tls.toml"
    config.write_text(f'[security]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    port = free_port()
    make_daemon(
        "--config", str(config), "--simulate", "1x16GiB", "--listen", f"localhost:{port}", "--tokens-file", str(path)
    )
    with connect(f"localhost:{port}", made["alice"], tls_ca=str(cert)) as alice:
        assert alice.server_info().caller == "token:alice"
    with pytest.raises(Unreachable):
        connect(f"localhost:{port}", made["alice"]).server_info()  # plaintext to a TLS port fails


def test_clients_cannot_watch_telemetry(make_daemon, tokens) -> None:
    import grpc

    path, made = tokens
    port = free_port()
    make_daemon("--simulate", "1x16GiB", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(path))
    with connect(f"127.0.0.1:{port}", made["alice"]) as alice:
        stream = alice.admin.WatchTelemetry(pb.WatchTelemetryRequest(), metadata=alice.metadata)
        with pytest.raises(grpc.RpcError) as err:
            next(stream)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_sighup_reloads_the_tokens_file(make_daemon, tokens) -> None:
    import signal

    path, made = tokens
    port = free_port()
    daemon: Daemon = make_daemon("--simulate", "1x16GiB", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(path))
    tcp = f"127.0.0.1:{port}"
    newcomer = make_token(path, "carol", "client")
    with pytest.raises(Denied):
        connect(tcp, newcomer)
    with connect(tcp, made["alice"]) as alice:
        alice.server_info()  # alice is cached as known before the reload
    path.write_text(path.read_text().replace('name = "alice"', 'name = "alice-old"'))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "daemon.reload tokens=4" in daemon.log(), 10, "the reload")
    with connect(tcp, newcomer) as carol:
        assert carol.server_info().caller == "token:carol"
    with connect(tcp, made["alice"]) as alice:
        assert alice.server_info().caller == "token:alice-old"  # the cache was dropped
    path.write_text("[[token]]\nname = 1\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "daemon.reload_failed" in daemon.log(), 10, "the failed reload")
    with connect(tcp, newcomer) as carol:  # a bad file keeps the tokens already loaded
        assert carol.server_info().caller == "token:carol"


def test_processes_are_named_only_over_the_local_socket(make_daemon, tokens) -> None:
    path, made = tokens
    port = free_port()
    make_daemon("--simulate", "1x16GiB", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(path))
    with connect(f"127.0.0.1:{port}", made["alice"]) as alice:
        lease = alice.request(LeaseRequest(fraction=0.25))
        call = alice.leases.AttachLease(
            iter([pb.AttachRequest(lease_id=lease.id, pids=[1])]), metadata=alice.metadata, timeout=10
        )
        with pytest.raises(grpc.RpcError) as refused:
            list(call)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == "processes can be named only over the daemon's local Unix socket"
        assert alice.get(lease.id).enforcement == "none"
