"""How a client reaches a daemon over TCP, and what it says when TLS goes wrong.

Plaintext goes only to a loopback address the client resolved itself (or where insecure TCP is
explicitly allowed); everywhere else the channel is TLS, checked against the CA file given or
the system's CA bundle. A TLS failure is explained by a handshake of our own with the same
roots, since gRPC only reports "Socket closed" or OpenSSL's internals.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..address import Address, is_loopback_ip
from ..errors import EXIT_CONFIG, BitshareError, Unreachable, UsageError

# Where distributions keep the bundle when OpenSSL's own default path is empty (Debian, Fedora).
FALLBACK_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
INSECURE_HINT = "allow_insecure_tcp = true (BITSHARE_ALLOW_INSECURE_TCP=1, --allow-insecure-tcp)"

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code gives them.
_NOT_YET_VALID, _EXPIRED, _SELF_SIGNED = 9, 10, 18
_UNKNOWN_ISSUER = {2, 19, 20, 21}
_WRONG_NAME = {62, 64}
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"}


@dataclass(frozen=True)
class Route:
    """Where gRPC dials and how: ``host`` is a resolved address for plaintext, the name for TLS."""

    host: str
    port: int
    tls: bool
    root_certificates: bytes = b""
    ca_file: str = ""  # the CA file given; "" when the system's bundle is used

    @property
    def target(self) -> str:
        return Address("tcp", host=self.host, port=self.port).target


def plan(address: Address, tls_ca: str, allow_insecure_tcp: bool) -> Route:
    """The route to a TCP daemon; raises BitshareError for a name that does not resolve or a CA
    that cannot be read."""
    if tls_ca:
        try:
            pem = Path(tls_ca).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read TLS CA {tls_ca}: {exc.strerror}") from None
        if not _holds_certificates(pem):
            raise UsageError(f"the TLS CA file {tls_ca} holds no PEM certificate")
        return Route(address.host, address.port, True, pem, tls_ca)
    resolved = resolve(address)
    if all(is_loopback_ip(ip) for ip in resolved):
        # The address itself, not the name again: a name can resolve elsewhere the second time.
        return Route(_first_answering(resolved, address.port), address.port, False)
    if allow_insecure_tcp:
        return Route(address.host, address.port, False)
    return Route(address.host, address.port, True, system_ca_bundle(address))


def resolve(address: Address) -> list[str]:
    """The host's addresses, in the resolver's order, without repeats."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Unreachable(
            f"cannot reach bitshared at {address}: cannot resolve {address.host}: {exc.strerror}"
        ) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _first_answering(addresses: list[str], port: int) -> str:
    """Of a name's loopback addresses (``localhost``: ::1 and 127.0.0.1), the first that accepts."""
    if len(addresses) > 1:
        for ip in addresses:
            with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=1.0):
                return ip
    return addresses[0]


def _holds_certificates(pem: bytes) -> bool:
    """``pem`` holds at least one certificate OpenSSL can load (gRPC would only fail at connect)."""
    try:
        ssl.create_default_context(cadata=pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        return False
    return True


def system_ca_bundle(address: Address) -> bytes:
    """The system's trusted CAs (OpenSSL's default file, which SSL_CERT_FILE overrides), as PEM.

    gRPC's own default roots are a copy shipped with it, not what this host trusts.
    """
    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.cafile, defaults.openssl_cafile, *FALLBACK_CA_BUNDLES):
        if candidate:
            with contextlib.suppress(OSError):
                pem = Path(candidate).read_bytes()
                if _holds_certificates(pem):
                    return pem
    raise BitshareError(
        f"this system has no CA bundle to check the certificate of bitshared at {address}: "
        f"give its CA with --tls-ca (tls_ca), or set {INSECURE_HINT}",
        exit_code=EXIT_CONFIG,
    )


def explain(route: Route, server: str, timeout: float) -> str | None:
    """Why a channel on ``route`` failed, when it is TLS's doing; None when it is not (or unknown)."""
    if route.tls:
        context = ssl.create_default_context(cadata=route.root_certificates.decode("ascii"))  # checked by plan()
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only to learn whether the port speaks TLS
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((route.host, route.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=route.host),
        ):
            pass
    except ssl.SSLCertVerificationError as exc:
        return _certificate_problem(exc.verify_code, exc.verify_message, route, server)
    except ssl.SSLError as exc:
        if not route.tls:
            return None
        if exc.reason in _NOT_TLS_REASONS or isinstance(exc, ssl.SSLEOFError):
            return _not_tls(route, server)
        return f"TLS with bitshared at {server} failed: {exc.reason or exc}"
    except OSError:
        return None  # not a TLS matter: gRPC's own account stands
    if route.tls:
        return None
    return f"bitshared at {server} speaks TLS: give its CA with --tls-ca (tls_ca)"


def _not_tls(route: Route, server: str) -> str:
    if route.ca_file:
        return f"bitshared at {server} does not speak TLS (a plaintext port): use its TLS port, or leave out --tls-ca"
    return (
        f"bitshared at {server} does not speak TLS and is not on loopback, so nothing was sent: "
        f"use its TLS port, or set {INSECURE_HINT} to talk to it in the clear"
    )


def _certificate_problem(code: int, message: str, route: Route, server: str) -> str:
    given = f"the CA in {route.ca_file}" if route.ca_file else "a CA this system trusts"
    if code == _EXPIRED:
        return f"the certificate of bitshared at {server} has expired: the daemon needs a new one"
    if code == _NOT_YET_VALID:
        return f"the certificate of bitshared at {server} is not valid yet: is a clock wrong?"
    if code == _SELF_SIGNED:
        return (
            f"bitshared at {server} presents a self-signed certificate, not signed by {given}: "
            "give that certificate with --tls-ca to trust it"
        )
    if code in _UNKNOWN_ISSUER:
        hint = "" if route.ca_file else ": give its CA with --tls-ca (tls_ca)"
        return f"the certificate of bitshared at {server} is not signed by {given}{hint}"
    if code in _WRONG_NAME:
        return f"the certificate of bitshared at {server} is not for {route.host}: use a name it was issued for"
    return f"the certificate of bitshared at {server} was refused: {message}"
