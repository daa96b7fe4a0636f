"""Pure parsing and checking: sizes, addresses, config files, request flags, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitshare.address import parse_address
from bitshare.cli.options import build_request
from bitshare.config import ConfigError, load_client_config, load_daemon_config
from bitshare.daemon.api.auth import Authenticator, TokenEntry, hash_token, load_tokens
from bitshare.errors import UsageError
from bitshare.units import format_mib, parse_mib, parse_simulate


def test_sizes() -> None:
    assert parse_mib("512") == 512
    assert parse_mib("16GiB") == parse_mib("16G") == parse_mib("16 gb") == 16384
    assert parse_mib("1.5GiB") == 1536
    assert parse_simulate("4x16GiB") == [16384] * 4
    assert parse_simulate("16GiB,8GiB") == [16384, 8192]
    assert format_mib(3968) == "3.9 GiB" and format_mib(512) == "512 MiB" and format_mib(16384) == "16 GiB"
    for bad in ("", "-5", "12 parsecs", "0.1"):
        with pytest.raises(ValueError):
            parse_mib(bad)
    for bad in ("0x16GiB", "x", "100x1GiB"):
        with pytest.raises(ValueError):
            parse_simulate(bad)


def test_addresses() -> None:
    assert parse_address("unix:/run/b.sock").target == "unix:/run/b.sock"
    assert parse_address("/run/b.sock").kind == "unix"
    tcp = parse_address("gpu1.example:7443")
    assert (tcp.host, tcp.port, tcp.is_loopback) == ("gpu1.example", 7443, False)
    assert parse_address("[::1]:50051").is_loopback and parse_address("127.0.0.1:1").is_loopback
    for bad in ("unix:relative.sock", "host", "host:0", "host:99999", ":80"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_daemon_config_reads_every_section(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text(
        '[daemon]\nlisten = ["unix:/tmp/x.sock", "127.0.0.1:7000"]\nstate_dir = "/tmp/s"\n'
        '[gpus]\nsimulate = "2x8GiB"\nreserve = "1GiB"\n[leases]\nttl_s = 10\nidle_timeout_s = 600\n'
        "[queue]\naging_s = 30\nstarvation_s = 60\n[security]\nallow_insecure_tcp = true\n"
        '[enforcement]\nmps = "off"\nwatchdog = "warn"\ngrace_s = 3\nsample_interval_s = 0.5\n'
        'context_allowance = "256MiB"\n'
    )
    config = load_daemon_config(path)
    assert config.listen == ["unix:/tmp/x.sock", "127.0.0.1:7000"]
    assert (config.simulate, config.reserve_mib, config.lease_ttl_s, config.idle_timeout_s) == (
        "2x8GiB",
        1024,
        10.0,
        600.0,
    )
    assert (config.aging_s, config.starvation_s, config.allow_insecure_tcp) == (30.0, 60.0, True)
    assert (config.mps, config.watchdog, config.grace_s, config.sample_interval_s, config.context_mib) == (
        "off",
        "warn",
        3.0,
        0.5,
        256,
    )
    assert config.runtime_path() == Path("/tmp")  # the first socket's directory


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen = []", "must be a [section]"),
        ('[gpus]\nbackend = "cuda"', "[gpus] backend must be auto, nvml or simulated"),
        ('[security]\nallow_insecure_tcp = "yes"', "[security] allow_insecure_tcp must be true or false"),
        ("[leases]\nttl_s = true", "[leases] ttl_s must be > 0 seconds, got True"),
        ('[gpus]\nreserve = "lots"', "not a memory size"),
        ("[daemon]\nlisten = [1]", "[daemon] listen must be a list of addresses"),
        ('[enforcement]\nmps = "yes"', "[enforcement] mps must be auto, on or off"),
        ('[enforcement]\nwatchdog = "kill"', "[enforcement] watchdog must be enforce, warn or off"),
        ("[enforcement]\nsample_interval_s = 0", "[enforcement] sample_interval_s must be >= 0.05 seconds"),
    ],
)
def test_daemon_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_daemon_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_client_config_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text('server = "gpu1:7443"\ntoken = "from-file"\n')
    config = load_client_config(path, environ={"BITSHARE_TOKEN": "from-env"})
    assert (config.servers, config.token) == (["gpu1:7443"], "from-env")
    path.write_text('servers = ["unix:/run/a.sock", "gpu2:7443"]\n')
    assert load_client_config(path, environ={}).servers == ["unix:/run/a.sock", "gpu2:7443"]
    assert load_client_config(path, environ={"BITSHARE_SERVER": "h1:1, h2:2"}).servers == ["h1:1", "h2:2"]
    path.write_text('servers = ["gpu2"]\n')
    with pytest.raises(ConfigError, match="not a server address"):
        load_client_config(path, environ={})
    path.write_text('servr = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'servr'"):
        load_client_config(path, environ={})


def test_build_request() -> None:
    request = build_request(
        gpus=2,
        fraction=".25",
        memory=None,
        compute=30,
        filters=["name=H100", "index=1,0"],
        priority=3,
        wait=False,
        timeout=5,
        command=["python", "a b.py"],
    )
    assert (request.fraction, request.gpu_count, request.compute_pct, request.indices) == (0.25, 2, 30, (0, 1))
    assert request.command == "python 'a b.py'" and request.wait_timeout_s == 5
    assert (
        build_request(
            gpus=1, fraction=None, memory=None, compute=None, filters=[], priority=0, wait=True, timeout=None
        ).fraction
        == 1.0
    )
    assert (
        build_request(
            gpus=1, fraction="25%", memory=None, compute=None, filters=[], priority=0, wait=True, timeout=None
        ).fraction
        == 0.25
    )
    with pytest.raises(UsageError):
        build_request(gpus=1, fraction=None, memory="0", compute=None, filters=[], priority=0, wait=True, timeout=None)


def test_tokens_and_local_identities(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(f'[[token]]\nname = "ci"\nrole = "client"\nsha256 = "{hash_token("secret-1")}"\n')
    auth = Authenticator(b"k" * 32, load_tokens(path), admin_group="no-such-group-here")
    assert auth.identify("secret-1", via_unix=False).name == "token:ci"
    assert auth.identify("secret-2", via_unix=False) is None
    local = auth.issue_local(4242)
    assert auth.identify(local, via_unix=True).role == "client"
    assert auth.identify(local, via_unix=False) is None  # local tokens only count on the Unix socket
    assert auth.identify(local[:-1] + ("0" if local[-1] != "0" else "1"), via_unix=True) is None
    forged = local.replace("4242", "0", 1)
    assert auth.identify(forged, via_unix=True) is None
    assert auth.identify(auth.issue_local(0), via_unix=True).role == "admin"
    other = Authenticator(b"x" * 32, [TokenEntry("a", "admin", hash_token("t"))], "g")
    assert other.identify(local, via_unix=True) is None  # bound to the daemon's secret
    path.write_text('[[token]]\nname = "x"\nrole = "root"\nsha256 = "00"\n')
    with pytest.raises(ConfigError, match="role must be client or admin"):
        load_tokens(path)


def test_the_shipped_config_and_tokens_example_load() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_daemon_config(root / "etc" / "bitshare.toml")
    assert config.listen == ["unix:/run/bitshare/bitshared.sock"] and config.reserve_mib == 512
    assert (config.mps, config.watchdog, config.grace_s, config.context_mib) == ("auto", "enforce", 10.0, 1024)
    assert [t.role for t in load_tokens(root / "etc" / "tokens.toml.example")] == ["client", "admin"]
    client = load_client_config(root / "etc" / "client.toml", environ={})
    assert client.servers == [] and client.token == ""  # every option is shown, commented out


def test_the_users_client_file_is_read_before_the_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bitshare import paths

    host = tmp_path / "etc-client.toml"
    host.write_text('servers = ["gpu1:7443"]\n')
    monkeypatch.setattr(paths, "SYSTEM_CLIENT_CONFIG", host)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    environ: dict[str, str] = {}
    assert load_client_config(environ=environ).servers == ["gpu1:7443"]
    user = tmp_path / "config" / "bitshare" / "client.toml"
    user.parent.mkdir(parents=True)
    user.write_text('servers = ["gpu2:7443"]\n')
    assert load_client_config(environ=environ).servers == ["gpu2:7443"]
    assert load_client_config(environ={**environ, "BITSHARE_SERVER": "gpu3:7443"}).servers == ["gpu3:7443"]


def test_private_directories_must_be_ours_and_closed(tmp_path: Path) -> None:
    from bitshare.errors import Denied
    from bitshare.paths import ensure_private_dir

    mine = ensure_private_dir(tmp_path / "runtime")
    assert mine.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(Denied, match="not a private directory"):
        ensure_private_dir(shared)
