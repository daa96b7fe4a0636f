"""What a client trusts: plaintext TCP only to loopback, TLS failures in one line, and local
daemons (the per-user one, any Unix socket) that are the user's own, root's or bitshare's."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ..support.harness import ROOT, Daemon, bitshare_cmd, free_port, make_token, wait_for

GRPC_LOG_LINE = re.compile(r"^[IWEF]\d{4} |ssl_transport_security|WRONG_VERSION_NUMBER|Socket closed", re.M)
NEEDS_SETPRIV = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv (processes of other users)"
)


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(bitshare_cmd(*args), capture_output=True, text=True, env=env, timeout=timeout)


def one_line(done: subprocess.CompletedProcess) -> str:
    """The command's stderr, which must be exactly one line and none of gRPC's own."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{done.stderr}"
    assert not GRPC_LOG_LINE.search(done.stderr), done.stderr
    return lines[0]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return key, cert


def make_server_cert(
    directory: Path, name: str, ca: tuple[Path, Path] | None, days: int = 1, san: str = "DNS:localhost"
) -> tuple[Path, Path]:
    """A server certificate signed by ``ca`` (None: self-signed); a negative ``days`` has expired."""
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n")
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    signer = ["-signkey", str(key)] if ca is None else ["-CA", str(ca[1]), "-CAkey", str(ca[0]), "-set_serial", "7"]
    openssl(
        "x509", "-req", "-in", str(csr), *signer, "-days", str(days),
        "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return key, cert


def tls_config(directory: Path, name: str, key_cert: tuple[Path, Path]) -> Path:
    config = directory / f"{name}.toml"
    config.write_text(f'[security]\ntls_cert = "{key_cert[1]}"\ntls_key = "{key_cert[0]}"\n')
    return config


def non_loopback_address() -> str:
    """An address of this host that is not loopback (a listener on it is local but off loopback)."""
    done = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    for address in done.stdout.split():
        if "." in address and not address.startswith("127."):
            return address
    pytest.skip("this host has no IPv4 address off loopback")


class RecordingListener:
    """A plain TCP server that keeps every byte it is sent and answers like a non-TLS server."""

    def __init__(self, host: str) -> None:
        self.server = socket.create_server((host, 0))
        self.address = f"{host}:{self.server.getsockname()[1]}"
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with self._lock:
                self.connections += 1
            try:
                while chunk := conn.recv(65536):
                    with self._lock:
                        self.received += chunk
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    return
            except OSError:
                return

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def recording() -> Iterator[RecordingListener]:
    listener = RecordingListener(non_loopback_address())
    yield listener
    listener.close()


# ----- plaintext TCP, tokens and TLS with the system's CAs ----------------------------------------


def test_a_token_is_never_sent_in_the_clear_off_loopback(make_daemon, recording: RecordingListener) -> None:
    daemon: Daemon = make_daemon("--simulate", "1x16GiB")
    secret = "bst_" + "s3cret" * 6
    done = cli(daemon.env, "--server", recording.address, "--token", secret, "leases")
    assert done.returncode == 69
    line = one_line(done)
    assert f"bitshared at {recording.address} does not speak TLS" in line
    assert "allow_insecure_tcp" in line
    assert recording.connections >= 1
    received = bytes(recording.received)
    assert received[:1] == b"\x16", received[:40]  # a TLS handshake record, not gRPC's plaintext preface
    assert b"PRI * HTTP/2.0" not in received and secret.encode() not in received


def test_insecure_tcp_can_be_allowed_explicitly(make_daemon, tmp_path: Path) -> None:
    host = non_loopback_address()
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "alice", "client")
    port = free_port()
    daemon: Daemon = make_daemon(
        "--simulate", "1x16GiB", "--listen", f"{host}:{port}", "--allow-insecure-tcp", "--tokens-file", str(tokens)
    )
    server = f"{host}:{port}"
    refused = cli(daemon.env, "--server", server, "--token", token, "leases")
    assert refused.returncode == 69 and "does not speak TLS" in one_line(refused)
    by_flag = cli(daemon.env, "--server", server, "--token", token, "--allow-insecure-tcp", "leases")
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = cli({**daemon.env, "BITSHARE_ALLOW_INSECURE_TCP": "1"}, "--server", server, "--token", token, "leases")
    assert by_env.returncode == 0, by_env.stderr
    config = tmp_path / "client.toml"
    config.write_text("allow_insecure_tcp = true\n")
    by_config = cli({**daemon.env, "BITSHARE_CONFIG": str(config)}, "--server", server, "--token", token, "leases")
    assert by_config.returncode == 0, by_config.stderr
    wrong = cli({**daemon.env, "BITSHARE_ALLOW_INSECURE_TCP": "maybe"}, "--server", server, "leases")
    assert wrong.returncode == 78 and "BITSHARE_ALLOW_INSECURE_TCP" in one_line(wrong)


def test_tls_off_loopback_is_checked_against_the_systems_cas(make_daemon, tmp_path: Path) -> None:
    host = non_loopback_address()
    ca = make_ca(tmp_path, "site-ca")
    config = tls_config(tmp_path, "tls", make_server_cert(tmp_path, "server", ca, san=f"IP:{host}"))
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "alice", "client")
    port = free_port()
    daemon: Daemon = make_daemon(
        "--config", str(config), "--simulate", "1x16GiB", "--listen", f"{host}:{port}", "--tokens-file", str(tokens)
    )
    server = f"{host}:{port}"
    # The system's bundle (OpenSSL's SSL_CERT_FILE names it) holds the site's CA: no --tls-ca needed.
    trusting = {**daemon.env, "SSL_CERT_FILE": str(ca[1])}
    done = cli(trusting, "--server", server, "--token", token, "leases", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    other = {**daemon.env, "SSL_CERT_FILE": str(make_ca(tmp_path, "other-ca")[1])}
    refused = cli(other, "--server", server, "--token", token, "leases")
    assert refused.returncode == 69
    assert "is not signed by a CA this system trusts" in one_line(refused)


# ----- TLS failures, each in one line ---------------------------------------------------------------


@pytest.fixture
def tls_daemons(make_daemon, tmp_path: Path) -> dict[str, str]:
    """Daemons on localhost: one with a certificate of the site's CA, one self-signed, one expired,
    and one on plaintext; and the CA files a client may give."""
    ca = make_ca(tmp_path, "site-ca")
    certs = {
        "good": make_server_cert(tmp_path, "good", ca),
        "self-signed": make_server_cert(tmp_path, "self-signed", None),
        "expired": make_server_cert(tmp_path, "expired", ca, days=-1),
    }
    servers = {}
    for name, key_cert in certs.items():
        port = free_port()
        config = tls_config(tmp_path, name, key_cert)
        make_daemon("--config", str(config), "--simulate", "1x16GiB", "--listen", f"localhost:{port}", name=name)
        servers[name] = f"localhost:{port}"
    port = free_port()
    make_daemon("--simulate", "1x16GiB", "--listen", f"127.0.0.1:{port}", name="plaintext")
    servers["plaintext"] = f"127.0.0.1:{port}"
    servers["ca"] = str(ca[1])
    servers["other-ca"] = str(make_ca(tmp_path, "other-ca")[1])
    return servers


def test_tls_failures_say_what_is_wrong_in_one_line(tls_daemons: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("BITSHARE_SERVER", None)
    ca, other_ca, good = tls_daemons["ca"], tls_daemons["other-ca"], tls_daemons["good"]
    cases = [
        ("good", other_ca, f"the certificate of bitshared at {good} is not signed by the CA in {other_ca}"),
        ("self-signed", ca, f"bitshared at {tls_daemons['self-signed']} presents a self-signed certificate"),
        ("expired", ca, f"the certificate of bitshared at {tls_daemons['expired']} has expired"),
        ("good", "", f"bitshared at {good} speaks TLS: give its CA with --tls-ca"),
        ("plaintext", ca, f"bitshared at {tls_daemons['plaintext']} does not speak TLS"),
    ]
    for name, tls_ca, expected in cases:
        args = ["--server", tls_daemons[name], *(["--tls-ca", tls_ca] if tls_ca else []), "list-gpus"]
        done = cli(env, *args)
        assert done.returncode == 69, (name, done.stderr)
        line = one_line(done)
        assert line.startswith("bitshare: error: ") and expected in line, (name, line)
    right = cli(env, "--server", good, "--tls-ca", ca, "list-gpus", "--json")
    assert right.returncode == 77 and "credentials" in one_line(right)  # TLS is right; a token is wanted


def test_grpc_logs_when_asked_for(tls_daemons: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "GRPC_VERBOSITY": "info"}
    env.pop("BITSHARE_SERVER", None)
    done = cli(env, "--server", tls_daemons["good"], "--tls-ca", tls_daemons["other-ca"], "list-gpus")
    assert done.returncode == 69
    assert "ssl_transport_security" in done.stderr  # the user's own GRPC_VERBOSITY is kept


# ----- local daemons: whose socket is it? -------------------------------------------------------


USER_A, USER_B = 23571, 23572


def as_user(uid: int, command: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]


def user_env(home: Path) -> dict[str, str]:
    """A user's environment with no XDG_RUNTIME_DIR: the runtime directory is /tmp/bitshare-UID."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BITSHARE_"))}
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def homes() -> Iterator[dict[int, Path]]:
    base = Path(tempfile.mkdtemp(prefix="bitshare-users-"))  # reachable by the other users
    base.chmod(0o755)
    made = {}
    for uid in (USER_A, USER_B):
        home = base / f"home-{uid}"
        home.mkdir()
        os.chown(home, uid, uid)
        made[uid] = home
    runtime = Path(f"/tmp/bitshare-{USER_A}")
    shutil.rmtree(runtime, ignore_errors=True)
    yield made
    shutil.rmtree(runtime, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)


def start_daemon_as(uid: int, home: Path, socket_path: Path) -> subprocess.Popen:
    log = home / "bitshared.log"
    command = [sys.executable, "-m", "bitshare.daemon", "--simulate", "1x16GiB", "--listen", f"unix:{socket_path}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            as_user(uid, [*command, "--state-dir", str(home / "bitshared-state")]),
            stdout=out,
            stderr=out,
            env=user_env(home),
        )
    wait_for(lambda: "daemon.ready" in log.read_text() or proc.poll() is not None, 20, "the daemon to listen")
    assert proc.poll() is None, log.read_text()
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bitshared_of(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["uids"] and proc.info["uids"].real == uid and "bitshare.daemon" in cmdline:
            found.append(proc)
    return found


@NEEDS_SETPRIV
def test_another_users_runtime_directory_is_refused(homes: dict[int, Path]) -> None:
    runtime = Path(f"/tmp/bitshare-{USER_A}")
    subprocess.run(as_user(USER_B, ["mkdir", "-m", "0755", str(runtime)]), check=True)
    impostor = start_daemon_as(USER_B, homes[USER_B], runtime / "bitshared.sock")
    try:
        # B also leaves a session naming its daemon, for A's session commands to find.
        session = json.dumps({"server": f"unix:{runtime}/bitshared.sock", "lease_id": "L-planted"})
        subprocess.run(
            as_user(USER_B, [sys.executable, "-c", f"open('{runtime}/session.json','w').write({session!r})"])
        )
        env = user_env(homes[USER_A])
        for args in (
            ["run", "-p", "0.25", "--", "echo", "--password=hunter2"],
            ["leases"],
            ["release-gpus"],
        ):
            done = subprocess.run(as_user(USER_A, bitshare_cmd(*args)), capture_output=True, text=True, env=env)
            assert done.returncode == 77, (args, done.stdout, done.stderr)
            line = one_line(done)
            assert f"{runtime} is not a private directory of this user" in line, line
            assert "hunter2" not in done.stdout
        assert "lease.granted" not in (homes[USER_B] / "bitshared.log").read_text()
        assert bitshared_of(USER_A) == []  # nothing was started in its place
    finally:
        stop(impostor)


@NEEDS_SETPRIV
def test_a_socket_served_by_another_user_is_refused(homes: dict[int, Path]) -> None:
    """Even where the directory and socket files are the user's, the kernel says who serves them."""
    runtime = Path(f"/tmp/bitshare-{USER_A}")
    runtime.mkdir(mode=0o700)
    os.chown(runtime, USER_B, USER_B)
    impostor = start_daemon_as(USER_B, homes[USER_B], runtime / "bitshared.sock")
    try:
        for path in (runtime, runtime / "bitshared.sock", runtime / "bitshared.sock.cred"):
            os.chown(path, USER_A, USER_A)
        env = user_env(homes[USER_A])
        done = subprocess.run(
            as_user(USER_A, bitshare_cmd("run", "-p", "0.25", "--", "true")), capture_output=True, text=True, env=env
        )
        assert done.returncode == 77, (done.stdout, done.stderr)
        assert f"served by uid {USER_B}" in one_line(done)
        assert "lease.granted" not in (homes[USER_B] / "bitshared.log").read_text()
    finally:
        stop(impostor)


@NEEDS_SETPRIV
def test_a_socket_that_others_could_replace_is_refused(make_daemon) -> None:
    """Any Unix socket a client is pointed at: each directory above it must be its owner's or
    root's, and not open to others' writes unless sticky."""
    daemon: Daemon = make_daemon("--simulate", "1x16GiB")
    home = daemon.socket.parent
    try:
        home.chmod(0o777)
        done = cli(daemon.env, "--server", daemon.server, "leases")
        assert done.returncode == 77
        assert one_line(done) == f"bitshare: error: refusing the socket {daemon.socket}: others can write to {home}"
        home.chmod(0o755)
        os.chown(home, USER_B, USER_B)
        done = cli(daemon.env, "--server", daemon.server, "leases")
        assert done.returncode == 77
        assert f"{home} belongs to uid {USER_B}" in one_line(done)
        os.chown(home, 0, 0)
        home.chmod(0o1777)  # sticky, like /tmp: others cannot move the daemon's socket away
        assert cli(daemon.env, "--server", daemon.server, "leases").returncode == 0
    finally:
        os.chown(home, 0, 0)
        home.chmod(0o755)


def test_a_linked_socket_has_the_credentials_socket_beside_its_real_path_checked(make_daemon, tmp_path: Path) -> None:
    """The client asks for its token at the credentials socket beside the socket's real path:
    that one is checked, not the one beside the link."""
    daemon: Daemon = make_daemon("--simulate", "1x16GiB")
    link = tmp_path / "link.sock"
    link.symlink_to(daemon.socket)
    # Beside the link, a socket that passes every check (the daemon's own, linked again).
    Path(f"{link}.cred").symlink_to(daemon.socket)
    credentials = Path(f"{daemon.socket}.cred")
    try:
        os.chown(credentials, USER_B, USER_B)
        done = cli(daemon.env, "--server", f"unix:{link}", "leases")
        assert done.returncode == 77, done.stderr
        assert one_line(done) == f"bitshare: error: refusing the socket {credentials}: it belongs to uid {USER_B}"
    finally:
        os.chown(credentials, 0, 0)
    assert cli(daemon.env, "--server", f"unix:{link}", "leases").returncode == 0


def test_a_ca_file_that_holds_no_certificate_is_a_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("BITSHARE_SERVER", None)
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        server = f"127.0.0.1:{listener.getsockname()[1]}"
        done = cli(env, "--server", server, "--tls-ca", str(garbage), "list-gpus")
    assert done.returncode == 2
    assert one_line(done) == f"bitshare: error: the TLS CA file {garbage} holds no PEM certificate"


def test_the_console_takes_the_insecure_tcp_setting(make_daemon, tmp_path: Path) -> None:
    from bitshare.errors import Unreachable
    from bitshare.tui.data import DaemonSource

    host = non_loopback_address()
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "ops", "admin")
    port = free_port()
    make_daemon(
        "--simulate", "1x16GiB", "--listen", f"{host}:{port}", "--allow-insecure-tcp", "--tokens-file", str(tokens)
    )
    refused = DaemonSource(f"{host}:{port}", token)
    with pytest.raises(Unreachable, match="does not speak TLS"):
        next(refused.snapshots(0.1))
    allowed = DaemonSource(f"{host}:{port}", token, allow_insecure_tcp=True)
    try:
        assert next(allowed.snapshots(0.1)).server.caller == "token:ops"
    finally:
        allowed.stop()


def test_a_remote_program_takes_the_insecure_tcp_setting_of_its_bitshare_run(make_daemon, tmp_path: Path) -> None:
    """The program's own connection (remote CuPy) follows what its ``bitshare run`` was allowed."""
    host = non_loopback_address()
    tokens = tmp_path / "tokens.toml"
    token = make_token(tokens, "alice", "client")
    port = free_port()
    daemon: Daemon = make_daemon(
        "--simulate", "1x16GiB", "--listen", f"{host}:{port}", "--allow-insecure-tcp", "--tokens-file", str(tokens)
    )
    program = "import cupy; print(float(cupy.arange(10.0).sum()))"
    done = cli(
        {**daemon.env, "BITSHARE_TOKEN": token},
        "--server",
        f"{host}:{port}",
        "--allow-insecure-tcp",
        "run",
        "--remote",
        "-p",
        "0.25",
        "--",
        sys.executable,
        "-c",
        program,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "45.0"
