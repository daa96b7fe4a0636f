"""Bad input gets a one-line error and the right exit code, and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from bitshare.client.connection import LeaseRequest
from bitshare.protocol.v1 import bitshare_pb2 as pb

from ..support.harness import Daemon, free_port, refused_start, run_cli


def _state(daemon: Daemon) -> tuple:
    with daemon.client() as client:
        return tuple(
            (lease.id, lease.state, tuple(a.memory_mib for a in lease.allocations)) for lease in client.all_leases()
        ), tuple(g.granted_mib for g in client.gpus())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-p", "0"], 2, "-p must be a fraction of a GPU in (0, 1], got 0"),
        (["-p", "1.5"], 2, "-p must be a fraction of a GPU in (0, 1], got 1.5"),
        (["-p", "nan"], 2, "-p must be a fraction of a GPU in (0, 1]"),
        (["-m", "-5"], 2, "-m must be a positive memory size"),
        (["-n", "0"], 2, "-n must be at least 1 GPU, got 0"),
        (["-n", "3"], 2, "3 GPU(s) asked; 2 on this host match the request"),
        (["-m", "64GiB"], 2, "the largest matching GPU has 15872 MiB to lend"),
        (["--compute", "101"], 2, "--compute must be a percentage in 1..100"),
        (["--filter", "colour=red"], 2, "unknown --filter key"),
        (["--filter", "index=9"], 2, "no GPU 9"),
        (["-p", "0.5", "-m", "100"], 2, "not both"),
        (["--timeout", "-1"], 2, "--timeout must be a positive number"),
    ],
)
def test_bad_request_flags(make_daemon, args: list[str], code: int, message: str) -> None:
    daemon = make_daemon("--simulate", "2x16GiB")
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=0.5))
    before = _state(daemon)
    done = run_cli(daemon, "run", *args, "--", "true")
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert _state(daemon) == before


def test_unknown_lease_ids(daemon: Daemon) -> None:
    before = _state(daemon)
    for args in (
        ["release-gpus", "--lease", "nope"],
        ["lease", "revoke", "nope"],
        ["lease", "resize", "nope", "-p", "0.5"],
    ):
        done = run_cli(daemon, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.strip() == "bitshare: error: no lease 'nope'"
    assert _state(daemon) == before


def test_bad_rpc_fields_get_invalid_argument(daemon: Daemon) -> None:
    with daemon.client() as client:
        cases = [
            pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1)),  # no size
            pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=0, fraction=0.5)),
            pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, fraction=float("inf"))),
            pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, fraction=0.5, wait_timeout_s=-1)),
            pb.RequestLeaseRequest(spec=pb.LeaseSpec(gpu_count=1, fraction=0.5, ttl_s=1e12)),
            pb.RequestLeaseRequest(request_id="x" * 200, spec=pb.LeaseSpec(gpu_count=1, fraction=0.5)),
        ]
        for request in cases:
            with pytest.raises(grpc.RpcError) as err:
                client.leases.RequestLease(request, metadata=client.metadata)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
            assert err.value.details()
        assert client.all_leases() == []
        with pytest.raises(grpc.RpcError) as err:
            client.leases.GetServerInfo(pb.GetServerInfoRequest())  # no token at all
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[daemon\nlisten = 1", "not valid TOML"),
        ("[daemon]\nlisen = []\n", "unknown key 'lisen' in [daemon]"),
        ('[gpus]\nsimulate = "4x"\n', "[gpus] simulate"),
        ("[leases]\nttl_s = -3\n", "[leases] ttl_s must be > 0 seconds, got -3.0"),
        ('[daemon]\nlisten = ["nowhere"]\n', "not a server address"),
        (
            "[queue]\nmax_client_priority = 2000000\n",
            "max_client_priority must be a priority between -1000000 and 1000000",
        ),
        ('[queue]\nmax_client_priority = "high"\n', "[queue] max_client_priority must be a priority"),
    ],
)
def test_malformed_daemon_config(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bitshare.toml"
    config.write_text(text)
    done = refused_start(
        "--config", str(config), "--state-dir", str(tmp_path / "s"), "--listen", f"127.0.0.1:{free_port()}"
    )
    assert done.returncode == 78, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("section", "key", "toml_value", "flag", "flag_value"),
    [
        ("queue", "max_client_priority", "2000000", "--max-client-priority", "2000000"),
        ("enforcement", "watchdog", '"kill"', "--watchdog", "kill"),
        ("gpus", "reserve", '"lots"', "--reserve", "lots"),
    ],
)
def test_a_bad_setting_gets_one_error_from_the_file_exit_78_and_the_flag_exit_2(
    tmp_path: Path, section: str, key: str, toml_value: str, flag: str, flag_value: str
) -> None:
    config = tmp_path / "bitshare.toml"
    config.write_text(f"[{section}]\n{key} = {toml_value}\n")
    where = ["--state-dir", str(tmp_path / "s"), "--listen", f"127.0.0.1:{free_port()}"]
    by_file = refused_start("--config", str(config), *where)
    by_flag = refused_start(flag, flag_value, *where)
    assert (by_file.returncode, by_flag.returncode) == (78, 2), (by_file.stderr, by_flag.stderr)
    file_line, flag_line = by_file.stderr.strip(), by_flag.stderr.strip()
    assert "\n" not in file_line and "\n" not in flag_line
    said_by_file = file_line.removeprefix(f"bitshared: error: {config}: [{section}] {key}")
    assert said_by_file != file_line and said_by_file == flag_line.removeprefix(f"bitshared: error: {flag}")
    assert not (tmp_path / "s").exists()


def test_unreachable_server_exits_69(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bitshare", "--server", f"unix:{tmp_path}/none.sock", "leases"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 69
    assert "cannot reach bitshared" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "bitshare", "--server", f"127.0.0.1:{free_port()}", "list-gpus"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 69


def test_second_daemon_on_the_same_state_dir_is_refused(daemon: Daemon) -> None:
    done = refused_start(
        "--state-dir", str(daemon.state_dir), "--simulate", "1x16GiB", "--listen", f"unix:{daemon.tmp}/other.sock"
    )
    assert done.returncode == 1
    assert "another bitshared is using the state directory" in done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--simulate", "4y"], "--simulate: not a memory size: '4y'"),
        (["--reserve", "lots"], "--reserve: not a memory size"),
        (["--listen", "nowhere"], "--listen: not a server address"),
        (["--lease-ttl", "0"], "--lease-ttl must be > 0 seconds"),
        (["--backend", "cuda"], "--backend must be auto, nvml or simulated"),
    ],
)
def test_bad_daemon_flags_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    done = refused_start("--state-dir", str(tmp_path / "s"), *flags)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"bitshared: error: {message}")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--state-dir", "/etc/passwd/state"], "cannot use the state directory /etc/passwd/state: Not a directory"),
        (["--listen", "unix:/etc/passwd/bitshared.sock"], "cannot listen on unix:/etc/passwd/bitshared.sock"),
    ],
)
def test_unusable_paths_are_reported_in_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    args = ["--state-dir", str(tmp_path / "s"), "--listen", f"unix:{tmp_path}/ok.sock", "--simulate", "1x1GiB"]
    done = refused_start(*args, *flags)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"bitshared: error: {message}")
    assert "Traceback" not in done.stderr


def test_token_create_reports_unusable_files_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "tokens.toml"
    broken.write_text("x = 1\n")
    cases = [
        (broken, 78, "unknown key 'x'"),
        (Path("/etc/passwd/tokens.toml"), 1, "cannot write /etc/passwd/tokens.toml"),
    ]
    for path, code, message in cases:
        done = subprocess.run(
            [sys.executable, "-m", "bitshare", "token", "create", "--name", "ci", "--file", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == code, done.stderr
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert broken.read_text() == "x = 1\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--priority", "2147483648", "--", "true"], "--priority must be between -1000000 and 1000000"),
        (["run", "--priority", "-1000001", "--", "true"], "--priority must be between -1000000 and 1000000"),
        (["run", "--priority", "high", "--", "true"], "'--priority'"),
        (["run", "-n", "4294967296", "--", "true"], "-n must be between 1 and 4294967295 GPUs"),
        (["run", "-m", "99999999999999999TiB", "--", "true"], "-m must be a positive memory size"),
        (["run", "--filter", "index=4294967296", "--", "true"], "--filter index= takes GPU indices"),
        (["run", "--filter", "min_memory=999999999999999TiB", "--", "true"], "--filter min_memory= must be a positive"),
        (["run", "--kill-grace", "-1", "-p", "0.1", "--", "true"], "--kill-grace must be between 0 and 3600"),
        (["run", "--kill-grace", "nan", "-p", "0.1", "--", "true"], "--kill-grace must be between 0 and 3600"),
        (["request-gpus", "-p", "0.1", "--session-ttl", "inf"], "--session-ttl must be a positive number"),
        (["request-gpus", "-p", "0.1", "--session-ttl", "0"], "--session-ttl must be a positive number"),
        (["request-gpus", "-p", "0.1", "--priority", "2147483648"], "--priority must be between"),
        (["events", "--limit", "4294967296"], "--limit must be between 1 and 4294967295"),
        (["gpu", "drain", "4294967296"], "GPU index must be between 0 and 4294967295"),
        (["gpu", "undrain", "--", "-1"], "GPU index must be between 0 and 4294967295"),
        (["lease", "priority", "abc", "2147483648"], "PRIORITY must be between -1000000 and 1000000"),
        (["lease", "resize", "abc", "-m", "99999999999999999TiB"], "-m must be a positive memory size"),
        (["smi", "--watch", "nan"], "--watch must be between 0 and 3600 seconds"),
        (["smi", "--watch", "inf"], "--watch must be between 0 and 3600 seconds"),
        (["leases", "--no-such-flag"], "No such option: --no-such-flag"),
    ],
)
def test_out_of_range_numbers_get_one_line_and_exit_2(daemon: Daemon, args: list[str], message: str) -> None:
    with daemon.client() as client:
        client.request(LeaseRequest(fraction=0.5))
    before = _state(daemon)
    done = run_cli(daemon, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("bitshare: error: "), done.stderr
    assert _state(daemon) == before


def test_extreme_numbers_at_the_rpc_edge_get_a_clear_status(daemon: Daemon) -> None:
    """What the CLI checks before sending, the daemon checks again for any other program."""
    uint32, uint64 = 2**32 - 1, 2**64 - 1
    invalid, never = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE
    with daemon.client() as client:
        cases = [
            (pb.LeaseSpec(gpu_count=1, fraction=0.5, priority=2**31 - 1), invalid),
            (pb.LeaseSpec(gpu_count=1, fraction=0.5, priority=-(2**31)), invalid),
            (pb.LeaseSpec(gpu_count=1, fraction=0.5, compute_pct=uint32), invalid),
            (pb.LeaseSpec(gpu_count=1, fraction=0.5, filter=pb.GpuFilter(indices=[uint32])), invalid),
            (pb.LeaseSpec(gpu_count=uint32, fraction=0.5), never),
            (pb.LeaseSpec(gpu_count=1, memory_mib=uint64), never),
            (pb.LeaseSpec(gpu_count=1, fraction=0.5, filter=pb.GpuFilter(min_memory_mib=uint64)), never),
        ]
        for spec, code in cases:
            with pytest.raises(grpc.RpcError) as err:
                client.leases.RequestLease(pb.RequestLeaseRequest(spec=spec), metadata=client.metadata)
            assert err.value.code() == code, spec
            assert err.value.details() and "\n" not in err.value.details()
        queued = client.request(LeaseRequest(fraction=1.0))
        waiting = client.request(LeaseRequest(fraction=1.0))
        for call, request in (
            (client.admin.SetPriority, pb.SetPriorityRequest(lease_id=waiting.id, priority=2**31 - 1)),
            (client.admin.DrainGpu, pb.GpuRef(index=uint32)),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call(request, metadata=client.metadata)
            assert err.value.code() == invalid, request
        assert [lease.id for lease in client.all_leases()] == [queued.id, waiting.id]
        assert client.get(waiting.id).priority == 0 and not client.gpus()[0].drained
