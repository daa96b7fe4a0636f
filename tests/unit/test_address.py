"""Which addresses count as loopback, and the route a client takes to a TCP daemon."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from bitshare.address import is_loopback_ip, parse_address
from bitshare.client.transport import plan
from bitshare.errors import Unreachable


def self_signed(cert: Path) -> None:
    """A CA certificate at ``cert`` (its key beside it)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=site-ca", "-keyout", str(cert.with_suffix(".key")), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("fd00::2", False),
        ("0.0.0.0", False),
        ("localhost", False),  # a name, until it is resolved
        ("vm", False),
    ],
)
def test_loopback_ips(text: str, loopback: bool) -> None:
    assert is_loopback_ip(text) is loopback


def loopback_only_hostname() -> str:
    """This host's name when it resolves to loopback addresses only (as Debian's 127.0.1.1 does)."""
    name = socket.gethostname()
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(name, 1, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        pytest.skip(f"{name} does not resolve")
    if not resolved or not all(is_loopback_ip(ip) for ip in resolved):
        pytest.skip(f"{name} resolves off loopback: {sorted(resolved)}")
    return name


def test_a_name_that_resolves_to_loopback_is_reached_at_the_resolved_address() -> None:
    name = loopback_only_hostname()
    route = plan(parse_address(f"{name}:17999"), tls_ca="", allow_insecure_tcp=False)
    assert not route.tls
    assert is_loopback_ip(route.host) and route.host != name  # never the name again
    assert route.target.endswith(":17999")


def test_off_loopback_is_tls_by_name_with_the_systems_cas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle.pem"
    self_signed(bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # OpenSSL's override of the system bundle
    route = plan(parse_address("192.0.2.77:17999"), tls_ca="", allow_insecure_tcp=False)
    assert route.tls and route.host == "192.0.2.77" and route.ca_file == ""
    assert route.root_certificates == bundle.read_bytes()


def test_insecure_tcp_allowed_is_plaintext_by_name() -> None:
    route = plan(parse_address("192.0.2.77:17999"), tls_ca="", allow_insecure_tcp=True)
    assert not route.tls and route.target == "192.0.2.77:17999"


def test_a_ca_file_means_tls_even_on_loopback(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    self_signed(ca)
    route = plan(parse_address("localhost:17999"), tls_ca=str(ca), allow_insecure_tcp=False)
    assert route.tls and route.host == "localhost" and route.root_certificates == ca.read_bytes()


def test_a_name_that_does_not_resolve_is_unreachable() -> None:
    with pytest.raises(Unreachable, match=r"cannot resolve no-such-host\.invalid"):
        plan(parse_address("no-such-host.invalid:17999"), tls_ca="", allow_insecure_tcp=False)
