"""Who is calling: local users by uid (Unix socket), remote callers by bearer token (TCP).

gRPC does not expose a Unix socket peer's credentials, so local callers first
connect to a side socket (``<socket>.cred``), where the kernel tells the daemon
their uid (SO_PEERCRED); the daemon answers with a token bound to that uid
(an HMAC under a secret kept in the state directory). That token is accepted on
the daemon's Unix sockets only.
"""

from __future__ import annotations

import grp
import hashlib
import hmac
import os
import pwd
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ...config import ConfigError
from ...errors import UsageError

ROLES = ("client", "admin")
LOCAL_PREFIX = "local."
IDENTITY_CACHE_S = 30.0  # how long a resolved caller is trusted before user and group are read again
IDENTITY_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Identity:
    name: str  # the owner recorded on leases: "user:alice" or "token:ci-runner"
    role: str  # "client" or "admin"
    uid: int | None = None  # a local caller's Unix user (its processes run on this host)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    sha256: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "bst_" + secrets.token_urlsafe(32)


def load_tokens(path: Path) -> list[TokenEntry]:
    """Read a tokens file: ``[[token]]`` tables with name, role and sha256."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such tokens file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    entries = []
    for i, item in enumerate(data.get("token", [])):
        where = f"{path}: token #{i + 1}"
        if not isinstance(item, dict) or set(item) - {"name", "role", "sha256"}:
            raise ConfigError(f"{where}: expected name, role and sha256 only")
        name, role, digest = item.get("name"), item.get("role"), item.get("sha256")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name must be a non-empty string")
        if role not in ROLES:
            raise ConfigError(f"{where}: role must be client or admin, got {role!r}")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ConfigError(f"{where}: sha256 must be 64 hex digits")
        entries.append(TokenEntry(name, role, digest.lower()))
    unknown = set(data) - {"token"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected [[token]] tables)")
    return entries


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


class Authenticator:
    """Turns a call's bearer token into an Identity."""

    def __init__(self, secret: bytes, tokens: list[TokenEntry], admin_group: str) -> None:
        self._secret = secret
        self._tokens = {t.sha256: t for t in tokens}
        self._admin_group = admin_group
        # token -> (identity, when it was resolved): spares a passwd/group lookup on every call.
        self._cache: dict[tuple[str, bool], tuple[Identity, float]] = {}

    def replace_tokens(self, tokens: list[TokenEntry]) -> None:
        """Use a new set of bearer tokens from now on (a removed token stops working at once)."""
        self._tokens = {t.sha256: t for t in tokens}
        self._cache.clear()

    # ----- local users ---------------------------------------------------------

    def local_user(self, name: str) -> Identity:
        """The identity of a local user named by an admin, as if that user had called."""
        try:
            entry = pwd.getpwnam(name) if 0 < len(name) <= 64 else None
        except (KeyError, ValueError):
            entry = None
        if entry is None:
            raise UsageError(f"no local user {name[:64]!r} on this host")
        return Identity(f"user:{entry.pw_name}", self.local_role(entry.pw_uid), entry.pw_uid)

    def issue_local(self, uid: int) -> str:
        return f"{LOCAL_PREFIX}{uid}.{self._mac(uid)}"

    def _mac(self, uid: int) -> str:
        return hmac.new(self._secret, f"uid:{uid}".encode(), hashlib.sha256).hexdigest()

    def local_role(self, uid: int) -> str:
        if uid in (0, os.geteuid()):
            return "admin"
        try:
            group = grp.getgrnam(self._admin_group)
        except KeyError:
            return "client"
        try:
            user = pwd.getpwuid(uid)
        except KeyError:
            return "client"
        if user.pw_gid == group.gr_gid or user.pw_name in group.gr_mem:
            return "admin"
        return "client"

    # ----- every call ----------------------------------------------------------

    def identify(self, token: str, via_unix: bool) -> Identity | None:
        key = (token, via_unix)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[1] < IDENTITY_CACHE_S:
            return cached[0]
        identity = self._resolve(token, via_unix)
        if identity is not None:
            if len(self._cache) >= IDENTITY_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (identity, now)
        return identity

    def _resolve(self, token: str, via_unix: bool) -> Identity | None:
        if token.startswith(LOCAL_PREFIX):
            if not via_unix:
                return None
            uid_text, _, mac = token[len(LOCAL_PREFIX) :].partition(".")
            if not uid_text.isdigit() or not hmac.compare_digest(mac, self._mac(int(uid_text))):
                return None
            uid = int(uid_text)
            return Identity(f"user:{user_name(uid)}", self.local_role(uid), uid)
        entry = self._tokens.get(hash_token(token))
        if entry is None:
            return None
        return Identity(f"token:{entry.name}", entry.role)


def load_or_create_secret(state_dir: Path) -> bytes:
    """The HMAC key for local tokens; kept so that tokens survive a daemon restart."""
    path = state_dir / "local-token.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex())
    return secret
