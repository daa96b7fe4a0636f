"""Server addresses: ``unix:PATH`` (also a bare absolute path) or ``HOST:PORT``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def target(self) -> str:
        """The target string gRPC takes."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def credentials_path(self) -> str:
        """The side socket where local callers obtain their identity token."""
        return self.path + ".cred"

    @property
    def is_loopback(self) -> bool:
        if self.kind == "unix":
            return True
        return self.host == "localhost" or is_loopback_ip(self.host)

    def __str__(self) -> str:
        return self.target


def is_loopback_ip(text: str) -> bool:
    """``text`` is a loopback IP address (127.0.0.0/8, ::1, or IPv4-mapped loopback); a name is not."""
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def parse_address(text: str) -> Address:
    """Parse ``unix:/run/bitshare/bitshared.sock``, ``/path.sock``, ``host:port`` or ``[::1]:port``."""
    text = text.strip()
    if text.startswith("unix://"):
        text = "unix:" + text[len("unix://") - 1 :]
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"unix socket path must be absolute: {text!r}")
        return Address("unix", path=path)
    if text.startswith("/"):
        return Address("unix", path=text)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a server address: {text!r} (write unix:/path/to.sock or host:port)")
    return Address("tcp", host=host, port=int(port))
